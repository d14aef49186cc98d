"""What each of the customer's buttons does: the callback verb table of the UserActor.

Callback data is ``verb`` or ``verb:arg:...``; a handler gets the actor, the query, the
message the button was under (to edit in place) and the arguments, checks them again
(callback data is customer input) and returns True when it answered the query itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..errors import NotFound
from ..growth import codes, referrals, topup
from ..support import customers as support_customers
from ..support import desk as support_desk
from ..support import faq as support_faq
from ..support import operators as support
from ..telegram.texts import LANGUAGES
from ..telegram.types import CallbackQuery, Message
from . import screens, shopping, subscription

if TYPE_CHECKING:
    from .user import UserActor

Button = Callable[["UserActor", CallbackQuery, Message | None, list[str]], Awaitable[bool | None]]


def _simple(show: Callable[[UserActor, Message | None], Awaitable[None]]) -> Button:
    async def handler(
        actor: UserActor, query: CallbackQuery, target: Message | None, args: list[str]
    ) -> None:
        if args:
            raise NotFound(":".join(args))
        await show(actor, target)

    return handler


def _with_argument(show: Callable[[UserActor, Message | None, str], Awaitable[None]]) -> Button:
    async def handler(
        actor: UserActor, query: CallbackQuery, target: Message | None, args: list[str]
    ) -> None:
        if len(args) != 1:
            raise NotFound(":".join(args))
        await show(actor, target, args[0])

    return handler


async def _show_menu(actor: UserActor, target: Message | None) -> None:
    await actor.show(target, actor.menu())


async def _show_help(actor: UserActor, target: Message | None) -> None:
    await actor.show(target, actor.help())


async def _pay(
    actor: UserActor, query: CallbackQuery, target: Message | None, args: list[str]
) -> bool:
    return await shopping.start_payment(actor, query, target, args)


def _answering(
    act: Callable[[UserActor, CallbackQuery, Message | None, str], Awaitable[None]],
) -> Button:
    """A button with one argument whose handler answers the query itself."""

    async def handler(
        actor: UserActor, query: CallbackQuery, target: Message | None, args: list[str]
    ) -> bool:
        if len(args) != 1:
            raise NotFound(":".join(args))
        await act(actor, query, target, args[0])
        return True

    return handler


async def _language(
    actor: UserActor, query: CallbackQuery, target: Message | None, args: list[str]
) -> bool:
    if not args:
        await actor.show(target, screens.language_screen(actor.app.texts, actor.lang))
        return False
    if args[0] not in LANGUAGES:
        raise NotFound(args[0])
    await actor.set_language(args[0])
    await actor.answer(query, actor.t("language.changed"))
    await actor.show(target, actor.menu())
    return True


async def _trial(
    actor: UserActor, query: CallbackQuery, target: Message | None, args: list[str]
) -> bool:
    await subscription.take_trial(actor, query, target)
    return True


async def _topup(
    actor: UserActor, query: CallbackQuery, target: Message | None, args: list[str]
) -> None:
    if not args:
        await topup.start(actor, target)
    elif len(args) == 1 and args[0] in actor.app.catalog.topup.minimum:
        await topup.choose_currency(actor, target, args[0])
    else:
        raise NotFound(":".join(args))


#: Buttons that start buying something (or the trial): held back by maintenance and by
#: the required channel.
BUYING = frozenset({"buy", "plan", "pkg", "pay", "conf", "trial", "gift", "topup"})

#: What each callback verb does; handlers return True when they answered the query.
BUTTONS: dict[str, Button] = {
    "menu": _simple(_show_menu),
    "help": _simple(_show_help),
    "lang": _language,
    "buy": _simple(shopping.show_plans),
    "plan": _with_argument(shopping.show_plan),
    "pkg": _with_argument(shopping.show_package),
    "pay": _pay,
    "conf": _answering(shopping.confirm_balance),
    "chk": _answering(shopping.check_payment),
    "auto": _answering(subscription.switch_auto_renew),
    "trial": _trial,
    "sub": _simple(subscription.show_subscription),
    "relink": subscription.reset_link,
    "qr": _simple(subscription.send_qr),
    "bal": _simple(shopping.show_balance),
    "hist": _with_argument(shopping.show_history),
    "tx": _with_argument(shopping.show_entry),
    "gift": _with_argument(shopping.show_gift),
    "promo": _simple(codes.ask),
    "ref": _simple(referrals.show),
    "topup": _topup,
    "faq": support_faq.show,
    "sup": _simple(support_customers.ask),
    support_customers.CLOSE: support_customers.close,
    support_desk.CLOSE: support.close_button,
}
