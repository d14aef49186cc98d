"""The support desk: where a ticket's messages go, and what the operators see there.

Tickets go to ``SUPPORT_CHAT_ID``: in a group each ticket starts with a header (who the
customer is, their subscription, balance and last payment, and a close button) and the
customer's messages are copied as replies to it; in a forum each ticket gets its own topic
(createForumTopic), closed with the ticket. Without ``SUPPORT_CHAT_ID`` the same goes to every
operator's chat in ``ADMIN_IDS``. Every relay is claimed in ``store.tickets`` before it is sent
and recorded once Telegram accepted it, so a replayed update sends nothing twice.

The operators' side is in English, like the admin screens.
"""

from __future__ import annotations

import html
import logging
from typing import Any

import attrs

from ..app import App
from ..errors import BadRequest, Forbidden
from ..money import format_money
from ..store import tickets
from ..store.operators import Profile
from ..store.tickets import Closed, Ticket
from ..telegram.formatting import minute, subscription_summary
from ..telegram.keyboards import button, keyboard
from ..telegram.outbox import Lane
from ..telegram.types import InlineKeyboardMarkup, Message, User, to_json

log = logging.getLogger(__name__)

#: The operators' close button under a header: ``tkc:<ticket id>``.
CLOSE = "tkc"


def destinations(app: App) -> tuple[int, ...]:
    """Where a new ticket goes: the support chat, else every operator; () when nowhere."""
    chat = app.config.support_chat_id
    return (chat,) if chat is not None else tuple(sorted(app.config.admin_ids))


def chats_of(ticket: Ticket, headers: dict[int, int]) -> tuple[int, ...]:
    """Where an existing ticket is: its support chat, or the operators who got its header."""
    return (ticket.chat_id,) if ticket.chat_id is not None else tuple(sorted(headers))


def name_of(user: User | None) -> str:
    """``Ann Lee (@ann)``, escaped for HTML."""
    if user is None:
        return "someone"
    name = " ".join(part for part in (user.first_name, user.last_name) if part) or str(user.id)
    handle = f" (@{user.username})" if user.username else ""
    return html.escape(name + handle)


async def call(app: App, method: str, params: dict[str, Any]) -> Any:
    return await app.outbox.request(method, params, lane=Lane.INTERACTIVE)


async def open_topic(app: App, ticket: Ticket, customer: User | None) -> Ticket:
    """A new ticket in a forum gets its topic, once (a replay keeps the one it has)."""
    if ticket.chat_id is None or ticket.thread_id is not None:
        return ticket
    chat = await call(app, "getChat", {"chat_id": ticket.chat_id})
    if not chat.get("is_forum"):
        return ticket
    name = f"#{ticket.id} {html.unescape(name_of(customer))}"[:128]
    topic = await call(app, "createForumTopic", {"chat_id": ticket.chat_id, "name": name})
    thread = await app.store.run(tickets.set_topic, ticket.id, int(topic["message_thread_id"]))
    return attrs.evolve(ticket, thread_id=thread)


def under(ticket: Ticket, chat_id: int, headers: dict[int, int]) -> dict[str, Any]:
    """Where a message about the ticket goes in ``chat_id``: its topic, or under its header."""
    if ticket.thread_id is not None and chat_id == ticket.chat_id:
        return {"chat_id": chat_id, "message_thread_id": ticket.thread_id}
    if chat_id in headers:
        reply = {"message_id": headers[chat_id], "allow_sending_without_reply": True}
        return {"chat_id": chat_id, "reply_parameters": reply}
    return {"chat_id": chat_id}


async def send_header(
    app: App, ticket: Ticket, chat_id: int, opener: Message, profile: Profile | None
) -> int:
    """The ticket's header in ``chat_id``, keyed by the message that opened the ticket;
    recorded, so replies to it find the ticket."""
    text, markup = header(app, ticket, profile, opener.from_user)
    params = under(ticket, chat_id, {}) | {"text": text, "parse_mode": "HTML"}
    sent = await call(app, "sendMessage", params | {"reply_markup": to_json(markup)})
    source = (opener.chat.id, opener.message_id)
    await app.store.run(tickets.delivered, "header", source, chat_id, int(sent["message_id"]))
    return int(sent["message_id"])


async def copy_in(
    app: App, ticket: Ticket, chat_id: int, headers: dict[int, int], message: Message
) -> None:
    """Copy a customer's message to ``chat_id``, under the ticket, as they sent it."""
    params = under(ticket, chat_id, headers)
    params |= {"from_chat_id": message.chat.id, "message_id": message.message_id}
    copied = await call(app, "copyMessage", params)
    source = (message.chat.id, message.message_id)
    await app.store.run(tickets.delivered, "copy", source, chat_id, int(copied["message_id"]))


def header(
    app: App, ticket: Ticket, profile: Profile | None, customer: User | None
) -> tuple[str, InlineKeyboardMarkup]:
    zone = app.config.timezone
    who = customer or User(
        ticket.telegram_id, first_name=ticket.first_name, username=ticket.username
    )
    lines = [
        f"🆘 <b>Ticket #{ticket.id}</b>",
        f"👤 {name_of(who)} · id <code>{ticket.telegram_id}</code>",
        f"🌐 Language: {ticket.language}",
    ]
    if profile is not None:
        lines.append(
            f"📅 Subscription: {subscription_summary(profile.subscription, app.clock.now(), zone)}"
        )
        balance = ", ".join(format_money(a, c, "en") for c, a in profile.balances.items() if a)
        lines.append(f"💰 Balance: {balance or 'empty'}")
        last = profile.payments[0] if profile.payments else None
        paid = (
            f"{format_money(last.amount, last.currency, 'en')} · {last.status}"
            f" · {minute(last.created_at, zone)} · <code>{last.id}</code>"
            if last is not None
            else "none"
        )
        lines.append(f"💳 Last payment: {paid}")
    lines.append(
        "💬 Write in this topic to answer."
        if ticket.thread_id is not None
        else "↩️ Reply to this message or to the customer's messages to answer."
    )
    return "\n".join(lines), keyboard([button("🔒 Close ticket", f"{CLOSE}:{ticket.id}")])


async def tell(app: App, ticket: Ticket, headers: dict[int, int], text: str) -> None:
    """A line for the operators under the ticket, wherever it is (before its topic closes)."""
    for chat_id in chats_of(ticket, headers):
        params = under(ticket, chat_id, headers) | {"text": text, "parse_mode": "HTML"}
        try:
            await call(app, "sendMessage", params)
        except (BadRequest, Forbidden) as exc:
            log.warning("ticket %s: chat %s refused a notice: %s", ticket.id, chat_id, exc)


async def wind_up(app: App, closed: Closed, text: str) -> None:
    """The operators' side of a closed ticket: told, the close buttons gone, the topic closed."""
    ticket = closed.ticket
    await tell(app, ticket, closed.headers, text)
    for chat_id, message_id in closed.headers.items():
        params = {
            "chat_id": chat_id,
            "message_id": message_id,
            "reply_markup": {"inline_keyboard": []},
        }
        await app.outbox.send("editMessageReplyMarkup", params)
    if ticket.chat_id is not None and ticket.thread_id is not None:
        params = {"chat_id": ticket.chat_id, "message_thread_id": ticket.thread_id}
        try:
            await call(app, "closeForumTopic", params)
        except (BadRequest, Forbidden) as exc:  # closed by hand already, or no rights left
            log.warning("could not close the topic of ticket %s: %s", ticket.id, exc.description)
