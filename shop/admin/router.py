"""Which operator command or button does what; nothing here for anyone not in ``ADMIN_IDS``.

:func:`on_message` and :func:`on_button` return ``None`` for someone who is not an
operator, and the customer's actor then answers as it answers any unknown command or
stale button: a non-operator learns nothing, not even that these exist. Button data is
``adm:<verb>:<args>``; its arguments are checked again by the handler, and a malformed
one is a stale button.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..actors.conversation import Conversation
from ..support import operators as support
from ..telegram.types import CallbackQuery, Message
from . import broadcasts, customers, panel, promos

Handler = Callable[[Conversation, CallbackQuery, Message | None, list[str]], Awaitable[None]]


def is_admin(conv: Conversation) -> bool:
    return conv.id in conv.app.config.admin_ids


async def on_message(
    conv: Conversation, message: Message, command: str, argument: str
) -> bool | None:
    """Handle an operator's command or forwarded message (a typed answer to a question
    went to the question first); ``None`` when this is not for operators, False when it
    is theirs but not an operator thing."""
    if not is_admin(conv):
        return None
    if command == "/cancel":
        conv.awaiting = None
        await conv.send_text("Canceled.")
    elif command == "/admin":
        conv.awaiting = None
        await conv.show_new(panel.panel())
    elif command == "/user":
        conv.awaiting = None
        await customers.open_by_query(conv, argument)
    elif command == "/audit":
        await conv.show_new(await panel.audit_screen(conv))
    elif command == "/broadcast":
        await broadcasts.start(conv)
    elif command == "/newpromo":
        await promos.create(conv, message, argument)
    elif command == "/maintenance":
        await panel.switch_maintenance(conv, message, argument)
    elif command == "/tickets":
        await conv.show_new(await support.tickets_screen(conv))
    elif message.forward_origin is not None:
        await customers.open_forwarded(conv, message)
    else:
        return False
    return True


async def on_button(
    conv: Conversation, query: CallbackQuery, target: Message | None, args: list[str]
) -> bool | None:
    """An ``adm:`` button; True when it answered the query itself, ``None`` when the one
    who pressed it is not an operator."""
    if not is_admin(conv):
        return None
    verb, rest = (args[0], args[1:]) if args else ("", [])
    handler = _ANSWERING.get(verb)
    if handler is not None:
        try:
            await handler(conv, query, target, rest)
        except (ValueError, IndexError):
            await conv.answer(query, conv.t("stale.button"))
        return True
    show = _SCREENS.get(verb)
    if show is None:
        await conv.answer(query, conv.t("stale.button"))
        return True
    try:
        await show(conv, query, target, rest)
    except (ValueError, IndexError):
        await conv.answer(query, conv.t("stale.button"))
        return True
    return False


async def _panel(conv: Conversation, q: CallbackQuery, t: Message | None, a: list[str]) -> None:
    await conv.show(t, panel.panel())


async def _stats(conv: Conversation, q: CallbackQuery, t: Message | None, a: list[str]) -> None:
    await conv.show(t, await panel.stats_screen(conv))


async def _audit(conv: Conversation, q: CallbackQuery, t: Message | None, a: list[str]) -> None:
    await conv.show(t, await panel.audit_screen(conv, int(a[0]) if a else None))


async def _user(conv: Conversation, q: CallbackQuery, t: Message | None, a: list[str]) -> None:
    await conv.show(t, await customers.profile_screen(conv, int(a[0])))


async def _find(conv: Conversation, q: CallbackQuery, t: Message | None, a: list[str]) -> None:
    await customers.open_by_query(conv, "")


async def _compose(conv: Conversation, q: CallbackQuery, t: Message | None, a: list[str]) -> None:
    await broadcasts.start(conv)


async def _audiences(conv: Conversation, q: CallbackQuery, t: Message | None, a: list[str]) -> None:
    await broadcasts.back_to_audiences(conv, t)


async def _no_button(conv: Conversation, q: CallbackQuery, t: Message | None, a: list[str]) -> None:
    await broadcasts.no_button(conv, q, t)


async def _drop(conv: Conversation, q: CallbackQuery, t: Message | None, a: list[str]) -> None:
    await broadcasts.drop(conv, q, t)


async def _ban(conv: Conversation, q: CallbackQuery, t: Message | None, a: list[str]) -> None:
    await customers.set_ban(conv, q, t, a, True)


async def _unban(conv: Conversation, q: CallbackQuery, t: Message | None, a: list[str]) -> None:
    await customers.set_ban(conv, q, t, a, False)


#: Buttons that show a screen; the query is answered for them.
_SCREENS: dict[str, Handler] = {
    "": _panel,
    "st": _stats,
    "au": _audit,
    "u": _user,
    "fu": _find,
    "b": customers.ask_balance,
    "ban": customers.ask_ban,
    "p": customers.show_payment,
    "bc": _compose,
    "bz": _audiences,
}
#: Buttons that act, and answer the query with what they did.
_ANSWERING: dict[str, Handler] = {
    "d": customers.change_days,
    "l": customers.switch_lifetime,
    "bn": _ban,
    "ub": _unban,
    "rf": customers.refund,
    "bb": _no_button,
    "ba": broadcasts.choose,
    "bgo": broadcasts.send,
    "bx": _drop,
    "bk": broadcasts.cancel,
}
