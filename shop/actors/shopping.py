"""Buying, paying and looking at one's money: the UserActor's shop screens and payment updates.

Every reference a button carries (a plan, a package, a payment) is looked up again and
checked against the customer who pressed it; a forged, foreign or stale one gets a
polite "not found" and changes nothing. Anything that moves money happens in the
payment's own actor (``shop.actors.payment``), which this module asks and waits for.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..catalog import STARS_SUBSCRIPTION_DAYS, Package, Plan
from ..errors import AskTimeout, NotFound, TelegramError
from ..growth import topup
from ..limits import Action
from ..money import STARS
from ..store import checkouts, discounts, ledger, payments
from ..store.payments import NewPayment, PaymentRow
from ..telegram.formatting import money
from ..telegram.keyboards import keyboard, link
from ..telegram.outbox import Lane
from ..telegram.types import CallbackQuery, Message, PreCheckoutQuery
from . import screens
from .payment import KIND as PAYMENT
from .payment import (
    CheckNow,
    OpenCheckout,
    PayFromBalance,
    PreCheckout,
    StarsPaid,
    StarsRefunded,
)
from .screens import HISTORY_DAYS, HISTORY_PAGE, Method

if TYPE_CHECKING:
    from .user import UserActor

log = logging.getLogger(__name__)

#: How long a created payment may be paid.
PAYABLE_FOR = dt.timedelta(hours=24)
#: Telegram's deadline for a pre-checkout answer is 10 s; leave room for the answer itself.
PRE_CHECKOUT_PATIENCE = 7.0
STARS_PERIOD_SECONDS = STARS_SUBSCRIPTION_DAYS * 86_400


# -- browsing ----------------------------------------------------------------------------


async def show_plans(actor: UserActor, target: Message | None) -> None:
    await actor.show(target, screens.plans_screen(actor.app.texts, actor.lang, actor.app.catalog))


async def show_plan(actor: UserActor, target: Message | None, plan_id: str) -> None:
    plan = actor.app.catalog.plan(plan_id)
    if plan is None:
        raise NotFound(plan_id)
    balances, discount = await actor.app.store.run(discounts.balances_and_discount, actor.id)
    methods = await plan_methods(actor, plan, balances=balances)
    screen = screens.plan_screen(actor.app.texts, actor.lang, plan, methods, discount)
    await actor.show(target, screen)


async def show_gift(actor: UserActor, target: Message | None, plan_id: str) -> None:
    """A plan bought for someone else: paying makes a code to pass on."""
    plan = actor.app.catalog.plan(plan_id)
    if plan is None:
        raise NotFound(plan_id)
    methods = await plan_methods(actor, plan, gift=True)
    await actor.show(target, screens.gift_screen(actor.app.texts, actor.lang, plan, methods))


async def show_package(actor: UserActor, target: Message | None, package_id: str) -> None:
    package = actor.app.catalog.package(package_id)
    if package is None:
        raise NotFound(package_id)
    methods = package_methods(actor, package)
    screen = screens.package_screen(actor.app.texts, actor.lang, package, methods)
    await actor.show(target, screen)


async def plan_methods(
    actor: UserActor, plan: Plan, *, gift: bool = False, balances: dict[str, int] | None = None
) -> list[Method]:
    """``balances``: the customer's, when the caller read them already."""
    methods = []
    if STARS in plan.prices:
        methods.append(Method("stars", STARS, plan.prices[STARS]))
        if plan.stars_subscription and not gift:  # a gift is paid once, not monthly
            methods.append(Method("starsub", STARS, plan.prices[STARS]))
    methods += provider_methods(actor, plan.prices)
    if balances is None:
        balances = await actor.app.store.run(ledger.balances, actor.id)
    methods += [
        Method("balance", currency, price)
        for currency, price in plan.prices.items()
        if balances.get(currency, 0) >= price
    ]
    return methods


def package_methods(actor: UserActor, package: Package) -> list[Method]:
    methods = []
    if STARS in package.prices:
        methods.append(Method("stars", STARS, package.prices[STARS]))
    return methods + provider_methods(actor, package.prices)


def provider_methods(actor: UserActor, prices: Mapping[str, int]) -> list[Method]:
    """Enabled providers that can charge one of the prices; a provider whose circuit is
    open is left out, so the customer picks another."""
    methods = []
    for gateway in actor.app.gateways:
        currency = gateway.currency_for(dict(prices))
        if currency is not None and gateway.available:
            methods.append(Method(gateway.name, currency, prices[currency]))
    return methods


# -- paying ------------------------------------------------------------------------------


async def start_payment(
    actor: UserActor, query: CallbackQuery, target: Message | None, args: list[str]
) -> bool:
    """``pay:<p|k>:<item>:<method>:<currency>``: store a pending payment, then invoice.

    Returns True when it answered the button itself (with a reason it could not go on).
    """
    if len(args) != 4:
        raise NotFound(":".join(args))
    kind, item_id, method, currency = args
    item: Plan | Package | None
    if kind in ("p", "g"):  # a plan, for oneself or as a gift
        item = actor.app.catalog.plan(item_id)
        offered = await plan_methods(actor, item, gift=kind == "g") if item else []
    elif kind == "k":
        item = actor.app.catalog.package(item_id)
        offered = package_methods(actor, item) if item else []
    elif kind == "t":  # a top-up of the amount the customer typed, checked again here
        checked = topup.checked_amount(actor.app.catalog.topup, item_id, currency)
        if isinstance(checked, int):
            item = _custom_topup(actor, checked, currency)
            offered = topup.methods_for(actor, checked, currency)
        else:
            item, offered = None, []
    else:
        item, offered = None, []
    chosen = next((m for m in offered if (m.key, m.currency) == (method, currency)), None)
    if item is None or chosen is None:
        raise NotFound(":".join(args))
    new = _new_payment(actor, item, chosen, gift=kind == "g")
    now = actor.app.clock.now()
    payment = None
    if actor.app.gateways.get(chosen.key) is not None and kind != "t":
        payment = await actor.app.store.run(
            checkouts.reusable, actor.id, new.provider, new.product_kind, new.product_id,
            new.currency, now, new.gift,
        )  # fmt: skip
    if payment is None:
        if await actor.over_limit(Action.PAYMENT, query):  # RATE_LIMIT_PAYMENTS
            return True
        payment = await actor.app.store.run(discounts.create_payment, new, now, PAYABLE_FOR)
    if chosen.key == "balance":
        balance = await actor.app.store.run(ledger.balance, actor.id, currency)
        screen = screens.confirm_balance_screen(actor.app.texts, actor.lang, payment, balance)
        await actor.show(target, screen)
    elif chosen.key == "starsub":
        await _send_subscription_link(actor, payment)
    elif chosen.key == "stars":
        await _send_invoice(actor, payment)
    else:
        return await _open_checkout(actor, query, target, payment, item)
    return False


async def _open_checkout(
    actor: UserActor,
    query: CallbackQuery,
    target: Message | None,
    payment: PaymentRow,
    item: Plan | Package,
) -> bool:
    opened = await actor.app.actors.ask(PAYMENT, payment.id, OpenCheckout(actor.id))
    if opened.url is None:
        await actor.answer(query, actor.t(opened.error or "pay.error.retry"))
        if isinstance(item, Plan):  # show what can be used instead
            await show_plan(actor, target, item.id)
        else:
            await show_package(actor, target, item.id)
        return True
    back = f"plan:{item.id}" if isinstance(item, Plan) else f"pkg:{item.id}"
    screen = screens.checkout_screen(actor.app.texts, actor.lang, payment, opened.url, back)
    await actor.show(target, screen)
    return False


async def check_payment(
    actor: UserActor, query: CallbackQuery, target: Message | None, payment_id: str
) -> None:
    """``chk:<payment>``: "I paid — check" asks the provider now."""
    verdict = await actor.app.actors.ask(PAYMENT, payment_id, CheckNow(actor.id))
    if verdict == "pay.error.not_found":
        raise NotFound(payment_id)
    await actor.answer(query, actor.t(verdict))


def _custom_topup(actor: UserActor, amount: int, currency: str) -> Package:
    """A top-up of a typed amount, as a package: credit is the amount plus the bonus."""
    title = actor.t("topup.title", amount=money(amount, currency, actor.lang))
    credit = {currency: amount + actor.app.catalog.topup.bonus(amount)}
    return Package(topup.PRODUCT, {"en": title}, {currency: amount}, credit)


def _new_payment(
    actor: UserActor, item: Plan | Package, method: Method, *, gift: bool = False
) -> NewPayment:
    lang = actor.lang
    provider = {"starsub": "stars", "balance": "balance"}.get(method.key, method.key)
    if isinstance(item, Plan):
        days = STARS_SUBSCRIPTION_DAYS if method.key == "starsub" else item.days
        title = actor.t("gift.payment_title", title=item.title(lang)) if gift else item.title(lang)
        return NewPayment(
            actor.id, provider, "plan", item.id, title, days, {},
            method.amount, method.currency, recurring=method.key == "starsub", gift=gift,
        )  # fmt: skip
    return NewPayment(
        actor.id, provider, "package", item.id, item.title(lang), 0, item.credit,
        method.amount, method.currency,
    )  # fmt: skip


def _invoice_params(actor: UserActor, payment: PaymentRow) -> dict[str, object]:
    t, lang = actor.app.texts, actor.lang
    if payment.product_kind == "plan":
        description = t(lang, "invoice.plan", title=payment.title, days=payment.days)
    else:
        description = t(lang, "invoice.package", title=payment.title)
    return {
        "title": payment.title[:32],
        "description": description[:255],
        "payload": payment.id,
        "currency": payment.currency,
        "prices": [{"label": payment.title[:32], "amount": payment.amount}],
    }


async def _send_invoice(actor: UserActor, payment: PaymentRow) -> None:
    params = {"chat_id": actor.id, **_invoice_params(actor, payment)}
    await actor.app.outbox.send("sendInvoice", params)


async def _send_subscription_link(actor: UserActor, payment: PaymentRow) -> None:
    params = {**_invoice_params(actor, payment), "subscription_period": STARS_PERIOD_SECONDS}
    t, lang = actor.app.texts, actor.lang
    try:
        url = await actor.app.outbox.request("createInvoiceLink", params)
    except TelegramError as exc:
        log.warning("createInvoiceLink failed for %s: %s", payment.id, exc)
        await actor.send_text(t(lang, "invoice.failed"))
        return
    price = money(payment.amount, payment.currency, lang)
    text = t(lang, "starsub.text", title=html.escape(payment.title), price=price)
    markup = keyboard([link(t(lang, "starsub.button", price=price), str(url))])
    await actor.show_new(screens.Screen("starsub", text, markup))


async def confirm_balance(
    actor: UserActor, query: CallbackQuery, target: Message | None, payment_id: str
) -> None:
    """``conf:<payment>``: pay a pending balance payment (once, however often pressed)."""
    error = await actor.app.actors.ask(PAYMENT, payment_id, PayFromBalance(actor.id))
    if error == "pay.error.not_found":
        raise NotFound(payment_id)
    await actor.answer(query, actor.t(error) if error else None)
    if error is None:
        actor.trial_open = False


# -- what the customer has ---------------------------------------------------------------


async def show_balance(actor: UserActor, target: Message | None) -> None:
    balances = await actor.app.store.run(ledger.balances, actor.id)
    screen = screens.balance_screen(
        actor.app.texts,
        actor.lang,
        balances,
        actor.app.catalog.packages,
        custom_topup=bool(actor.app.catalog.topup.minimum),
    )
    await actor.show(target, screen)


async def show_history(actor: UserActor, target: Message | None, page_text: str) -> None:
    if not (page_text.isascii() and page_text.isdecimal() and len(page_text) <= 6):
        raise NotFound(page_text)
    page = int(page_text)
    since = actor.app.clock.now() - dt.timedelta(days=HISTORY_DAYS)
    entries, total = await actor.app.store.run(
        payments.history, actor.id, since, page * HISTORY_PAGE, HISTORY_PAGE
    )
    if page and not entries:
        raise NotFound(page_text)
    screen = screens.history_screen(
        actor.app.texts, actor.lang, entries, page, total, actor.app.config.timezone
    )
    await actor.show(target, screen)


async def show_entry(actor: UserActor, target: Message | None, payment_id: str) -> None:
    payment = await actor.app.store.run(payments.load_owned, payment_id, actor.id)
    if payment is None or payment.status not in ("completed", "refunded"):
        raise NotFound(payment_id)
    screen = screens.entry_screen(actor.app.texts, actor.lang, payment, actor.app.config.timezone)
    await actor.show(target, screen)


# -- payment updates from Telegram -------------------------------------------------------


async def pre_checkout(actor: UserActor, query: PreCheckoutQuery) -> None:
    """Answer Telegram within its 10 s: go ahead only for this customer's pending payment."""
    check = PreCheckout(actor.id, query.total_amount, query.currency)
    try:
        error = await actor.app.actors.ask(
            PAYMENT, query.invoice_payload, check, timeout=PRE_CHECKOUT_PATIENCE
        )
    except AskTimeout:
        error = "pay.error.retry"
    params: dict[str, object] = {"pre_checkout_query_id": query.id, "ok": error is None}
    if error is not None:
        params["error_message"] = actor.t(error)
    await actor.app.outbox.send("answerPreCheckoutQuery", params, lane=Lane.ANSWER)


async def decline_pre_checkout(actor: UserActor, query: PreCheckoutQuery) -> None:
    """A banned customer's invoice is not charged (a Stars subscription's renewal included)."""
    params = {
        "pre_checkout_query_id": query.id,
        "ok": False,
        "error_message": actor.t("banned.notice"),
    }
    await actor.app.outbox.send("answerPreCheckoutQuery", params, lane=Lane.ANSWER)


async def successful_payment(actor: UserActor, message: Message) -> None:
    paid = message.successful_payment
    assert paid is not None
    event = StarsPaid(
        actor.id,
        paid.telegram_payment_charge_id,
        paid.total_amount,
        paid.currency,
        recurring=paid.is_recurring,
    )
    await actor.app.actors.ask(PAYMENT, paid.invoice_payload, event)
    actor.trial_open = False


async def refunded_payment(actor: UserActor, message: Message) -> None:
    refunded = message.refunded_payment
    assert refunded is not None
    event = StarsRefunded(actor.id, refunded.telegram_payment_charge_id)
    await actor.app.actors.ask(PAYMENT, refunded.invoice_payload, event)
