"""One customer, as an operator sees and changes them: ``/user``, a forwarded message, and
the profile's buttons (days, lifetime, balance, ban, refund).

Every button that changes something carries a nonce made when the screen was drawn; it
is the audit key (``store.audit``), so a double tap, or the update replayed after a
crash, does the action once. An action typed as a message (a balance change) is keyed by
that message. Refunds go to the payment's actor, which gives the money back at its
source first and then reverses the grant by the refund rules.
"""

from __future__ import annotations

import datetime as dt
import html
import logging

from ..actors.conversation import Awaiting, BanChanged, Conversation, resumable
from ..actors.payment import KIND as PAYMENT
from ..actors.payment import OperatorRefund, Refunded
from ..actors.screens import Screen
from ..errors import InsufficientBalance, NotFound
from ..money import MoneyError, format_money, to_minor
from ..store import audit, operators, payments
from ..store.operators import Done, Profile
from ..store.payments import PaymentRow
from ..telegram.formatting import minute, subscription_summary
from ..telegram.keyboards import button, keyboard
from ..telegram.types import CallbackQuery, Message
from .keys import act, nonce

log = logging.getLogger(__name__)

USER_ACTOR = "user"  # shop.actors.user.KIND, named here so that module can import this one
DAY_STEPS = (1, 7, 30)


# -- finding a customer ---------------------------------------------------------------------


async def open_by_query(conv: Conversation, query: str) -> None:
    """``/user <id|@username>``: the profile, or what was not found."""
    query = query.strip()
    if not query:
        conv.awaiting = Awaiting(_found_by_input)
        await conv.send_text("Send a Telegram id or @username, or forward a message of theirs.")
        return
    found = await conv.app.store.run(operators.find, query)
    if found is None:
        await conv.send_text(f"No customer {html.escape(query)}.")
        return
    await conv.show_new(await profile_screen(conv, found))


async def open_forwarded(conv: Conversation, message: Message) -> None:
    """A forwarded message names its author, unless they hide it from forwards."""
    origin = message.forward_origin
    assert origin is not None
    if origin.sender_user is None:
        name = html.escape(origin.sender_user_name or "")
        await conv.send_text(
            f"{name} hides their account from forwards: use /user with their id or @username."
        )
        return
    await open_by_query(conv, str(origin.sender_user.id))


@resumable()
async def _found_by_input(conv: Conversation, message: Message, state: object) -> None:
    if message.forward_origin is not None:
        await open_forwarded(conv, message)
    else:
        await open_by_query(conv, message.text or "")


# -- the profile --------------------------------------------------------------------------


async def profile_screen(conv: Conversation, telegram_id: int) -> Screen:
    found = await conv.app.store.run(operators.profile, telegram_id)
    if found is None:
        return Screen("adm", "No such customer.", keyboard([button("⬅️ Admin", "adm")]))
    return _profile(conv, found)


def _profile(conv: Conversation, p: Profile) -> Screen:
    now, zone = conv.app.clock.now(), conv.app.config.timezone
    name = html.escape(p.first_name or "—")
    handle = f" @{html.escape(p.username)}" if p.username else ""
    lines = [
        f"👤 <b>{name}</b>{handle} · <code>{p.telegram_id}</code>",
        f"Language {p.language} · first seen {minute(p.first_seen, zone)}"
        f" · last seen {minute(p.last_seen, zone)}",
    ]
    if p.banned:
        lines.append("🚫 <b>Banned</b>")
    if p.blocked:
        lines.append("🔕 Blocked the bot")
    lines.append(f"Subscription: {subscription_summary(p.subscription, now, zone)}")
    money = ", ".join(format_money(a, c, "en") for c, a in p.balances.items() if a)
    lines.append(f"Balance: {money or 'empty'}")
    if p.payments:
        lines.append("\n<b>Last payments</b>")
        lines += [_payment_line(payment, zone) for payment in p.payments]
    who = p.telegram_id
    sub = p.subscription
    rows = [
        [button(f"+{d}d", f"adm:d:{who}:{d}:{nonce()}") for d in DAY_STEPS],
        [button(f"−{d}d", f"adm:d:{who}:-{d}:{nonce()}") for d in DAY_STEPS],
        [
            button("♾ Lifetime off", f"adm:l:{who}:0:{nonce()}")
            if sub is not None and sub.lifetime
            else button("♾ Lifetime on", f"adm:l:{who}:1:{nonce()}"),
            button("💰 Balance…", f"adm:b:{who}"),
        ],
        [
            button("✅ Unban", f"adm:ub:{who}:{nonce()}")
            if p.banned
            else button("🚫 Ban…", f"adm:ban:{who}")
        ],
    ]
    rows += [
        [button(f"↩️ {payment.title[:24]} {_amount(payment)}", f"adm:p:{payment.id}")]
        for payment in p.payments
        if payment.status == "completed"
    ]
    rows.append([button("🔄", f"adm:u:{who}"), button("⬅️ Admin", "adm")])
    return Screen("adm:user", "\n".join(lines), keyboard(*rows))


def _payment_line(payment: PaymentRow, zone: dt.tzinfo) -> str:
    return (
        f"• {minute(payment.created_at, zone)} {html.escape(payment.title)} {_amount(payment)}"
        f" · {payment.provider} · {payment.status} · <code>{payment.id}</code>"
    )


def _amount(payment: PaymentRow) -> str:
    return format_money(payment.amount, payment.currency, "en")


# -- actions --------------------------------------------------------------------------------


async def change_days(
    conv: Conversation, query: CallbackQuery, target: Message | None, args: list[str]
) -> None:
    who, days, key = int(args[0]), int(args[1]), args[2]
    if not 0 < abs(days) <= 3650:
        raise ValueError(days)
    change = operators.grant_days if days > 0 else operators.take_days
    done = await conv.app.store.run(change, act(conv, key), who, abs(days))
    await _after(conv, query, target, who, done, f"{days:+d} days")


async def switch_lifetime(
    conv: Conversation, query: CallbackQuery, target: Message | None, args: list[str]
) -> None:
    who, on, key = int(args[0]), args[1] == "1", args[2]
    done = await conv.app.store.run(operators.set_lifetime, act(conv, key), who, on)
    await _after(conv, query, target, who, done, "Lifetime on" if on else "Lifetime off")


async def ask_ban(
    conv: Conversation, query: CallbackQuery, target: Message | None, args: list[str]
) -> None:
    who = int(args[0])
    text = (
        f"Ban <code>{who}</code>? They will see one short notice and nothing else, and lose"
        " access at the fulfilment backend. Payments they already made are still recorded."
    )
    rows = [[button("🚫 Yes, ban", f"adm:bn:{who}:{nonce()}")], [button("⬅️", f"adm:u:{who}")]]
    await conv.show(target, Screen("adm:ban", text, keyboard(*rows)))


async def set_ban(
    conv: Conversation, query: CallbackQuery, target: Message | None, args: list[str], ban: bool
) -> None:
    who, key = int(args[0]), args[1]
    done = await conv.app.store.run(operators.set_banned, act(conv, key), who, ban)
    if done is not None:
        await conv.app.actors.tell(USER_ACTOR, who, BanChanged(ban))
        conv.app.fulfilment_due.poke()
    await _after(conv, query, target, who, done, "Banned" if ban else "Unbanned")


async def ask_balance(
    conv: Conversation, query: CallbackQuery, target: Message | None, args: list[str]
) -> None:
    who = int(args[0])
    conv.awaiting = Awaiting(_balance_typed, who)
    await conv.send_text(
        f"Change the balance of <code>{who}</code>: send the amount, the currency and the"
        " reason, e.g. <code>+100 XTR compensation</code> or"
        " <code>-2.50 USD correction</code>. /cancel to stop."
    )


@resumable(int)
async def _balance_typed(conv: Conversation, message: Message, who: object) -> None:
    assert isinstance(who, int)
    amount, _, rest = (message.text or "").strip().partition(" ")
    currency, _, note = rest.strip().partition(" ")
    currency = currency.upper()
    try:
        delta = to_minor(amount, currency)
    except MoneyError as exc:
        conv.awaiting = Awaiting(_balance_typed, who)
        await conv.send_text(f"{html.escape(str(exc))}. Try again, or /cancel.")
        return
    if delta == 0 or not note.strip() or not amount.startswith(("+", "-")):
        conv.awaiting = Awaiting(_balance_typed, who)
        await conv.send_text(
            "Write a signed amount, a currency and a reason: <code>+100 XTR gift</code>."
        )
        return
    key = f"msg:{message.chat.id}:{message.message_id}"
    try:
        done = await conv.app.store.run(
            operators.adjust_balance, act(conv, key), who, currency, delta, note.strip()[:200]
        )
    except InsufficientBalance as exc:
        have = format_money(exc.available, currency, "en")
        await conv.send_text(f"Not done: the balance is only {have}.")
        return
    await _after(conv, None, None, who, done, f"Balance {format_money(delta, currency, 'en')}")


async def _after(
    conv: Conversation,
    query: CallbackQuery | None,
    target: Message | None,
    who: int,
    done: Done | None,
    what: str,
) -> None:
    """Tell the operator, and show the profile as it is now."""
    if done is None:
        note = "Already done."
    else:
        note = f"{what}: done."
        log.info("operator %s: %s for %s", conv.id, what, who)
    if query is not None:
        await conv.answer(query, note)
    else:
        await conv.send_text(html.escape(note))
    screen = await profile_screen(conv, who)
    await (conv.show(target, screen) if query is not None else conv.show_new(screen))


# -- refunds ------------------------------------------------------------------------------


async def show_payment(
    conv: Conversation, query: CallbackQuery, target: Message | None, args: list[str]
) -> None:
    payment = await conv.app.store.run_statement(payments.load, args[0])
    if payment is None:
        raise NotFound(args[0])
    text = (
        f"Refund <b>{html.escape(payment.title)}</b>, {_amount(payment)} paid with"
        f" {payment.provider} by <code>{payment.telegram_id}</code>"
        f" (<code>{payment.id}</code>)?\nThe money goes back where it came from; the days"
        " or credit it gave are taken back."
    )
    rows = [
        [button("↩️ Yes, refund", f"adm:rf:{payment.id}:{nonce()}")],
        [button("⬅️", f"adm:u:{payment.telegram_id}")],
    ]
    await conv.show(target, Screen("adm:refund", text, keyboard(*rows)))


async def refund(
    conv: Conversation, query: CallbackQuery, target: Message | None, args: list[str]
) -> None:
    payment_id, key = args[0], args[1]
    payment = await conv.app.store.run_statement(payments.load, payment_id)
    if payment is None:
        raise NotFound(payment_id)
    root = payment.parent_id or payment.id  # a renewal's actor is its subscription's
    outcome: Refunded = await conv.app.actors.ask(PAYMENT, root, OperatorRefund(payment.id))
    await conv.app.store.run(
        audit.record,
        act(conv, key),
        "refund",
        payment.id,
        {"status": payment.status, "amount": payment.amount, "currency": payment.currency},
        {"done": outcome.done, "message": outcome.message},
    )
    await conv.answer(query, outcome.message[:200], alert=True)
    await conv.show(target, await profile_screen(conv, payment.telegram_id))
