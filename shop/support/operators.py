"""The operators' side of support: the support chat, replies in an admin's own chat, closing,
and ``/tickets``.

Messages in ``SUPPORT_CHAT_ID`` reach the shop as ordinary updates from the operator who wrote
them; the UserActor hands them here before anything a customer's update goes through (the
rate limit, a ban, even being greeted as a customer). A message in a ticket's topic, or a
reply to its header or to a customer's message, goes back to the customer (copyMessage, with
the customer's close button); anything else there is the operators talking among themselves.
Without ``SUPPORT_CHAT_ID`` an admin answers by replying to the relayed message in their chat.
"""

from __future__ import annotations

import html
import logging

from ..actors.conversation import Conversation
from ..actors.screens import Screen
from ..app import App
from ..errors import BadRequest, Forbidden
from ..store import tickets
from ..store.tickets import Ticket
from ..telegram.keyboards import button, keyboard
from ..telegram.outbox import Lane
from ..telegram.types import CallbackQuery, Message, Update, to_json
from . import desk
from .customers import CLOSE, has_content

log = logging.getLogger(__name__)


def in_support_chat(app: App, update: Update) -> bool:
    """Whether the update happened in the support chat (so: an operator at work there)."""
    chat_id = app.config.support_chat_id
    if chat_id is None:
        return False
    message = update.message
    if message is None and update.callback_query is not None:
        message = update.callback_query.message
    if message is not None:
        return message.chat.id == chat_id
    return update.my_chat_member is not None and update.my_chat_member.chat.id == chat_id


async def on_support_chat(conv: Conversation, update: Update) -> None:
    app = conv.app
    if update.callback_query is not None:
        query = update.callback_query
        verb, _, ticket_id = (query.data or "").partition(":")
        if verb == desk.CLOSE and ticket_id.isdigit():
            await close_ticket(conv, query, int(ticket_id))
        else:
            await conv.answer(query)
        return
    if update.my_chat_member is not None:
        status = update.my_chat_member.new_chat_member.status
        log.info("the bot is now %s in the support chat", status)
        return
    message = update.message
    if message is None:
        return
    ticket = None
    if message.is_topic_message and message.message_thread_id is not None:
        ticket = await app.store.run(tickets.by_topic, message.chat.id, message.message_thread_id)
    if ticket is None and message.reply_to_message is not None:
        replied = message.reply_to_message.message_id
        ticket = await app.store.run(tickets.by_copy, message.chat.id, replied)
    if ticket is not None:
        await answer_customer(app, ticket, message)


async def on_admin_reply(conv: Conversation, message: Message) -> bool:
    """An admin replying, in their own chat, to a ticket relayed there (no SUPPORT_CHAT_ID)."""
    if conv.id not in conv.app.config.admin_ids or message.reply_to_message is None:
        return False
    replied = message.reply_to_message.message_id
    ticket = await conv.app.store.run(tickets.by_copy, conv.id, replied)
    if ticket is None:
        return False
    await answer_customer(conv.app, ticket, message)
    return True


async def answer_customer(app: App, ticket: Ticket, message: Message) -> None:
    """Copy an operator's message to the customer, once; the operator hears what went wrong."""
    if not has_content(message):
        return  # a service message in the topic (pinned, closed by hand...)
    source = (message.chat.id, message.message_id)
    relay = await app.store.run(tickets.claim_reply, ticket.id, source, app.clock.now())
    if relay is None:
        await _note(
            app, message, f"🔒 Ticket #{ticket.id} is closed: the customer did not get this."
        )
        return
    if relay.message_id is not None:
        return  # a replayed update: delivered already
    close = button(app.texts(ticket.language, "btn.close_ticket"), f"{CLOSE}:{ticket.id}")
    params = {"chat_id": ticket.telegram_id, "from_chat_id": source[0], "message_id": source[1]}
    try:
        copied = await desk.call(
            app, "copyMessage", params | {"reply_markup": to_json(keyboard([close]))}
        )
    except Forbidden:
        await _note(app, message, "⚠️ The customer has blocked the bot: they did not get this.")
        return
    except BadRequest as exc:
        await _note(app, message, f"⚠️ Telegram refused it: {html.escape(exc.description)}")
        return
    await app.store.run(
        tickets.delivered, "reply", source, ticket.telegram_id, int(copied["message_id"])
    )


async def _note(app: App, message: Message, text: str) -> None:
    """A word to the operator, as a reply to what they wrote (in its topic, if any)."""
    params = {"chat_id": message.chat.id, "text": text, "parse_mode": "HTML"}
    params["reply_parameters"] = {
        "message_id": message.message_id,
        "allow_sending_without_reply": True,
    }
    if message.is_topic_message and message.message_thread_id is not None:
        params["message_thread_id"] = message.message_thread_id
    await app.outbox.send("sendMessage", params, lane=Lane.INTERACTIVE)


async def close_button(
    conv: Conversation, query: CallbackQuery, target: Message | None, args: list[str]
) -> bool:
    """The close button under a header in an admin's own chat (no SUPPORT_CHAT_ID)."""
    if conv.id not in conv.app.config.admin_ids or len(args) != 1 or not args[0].isdigit():
        await conv.answer(query, conv.t("stale.button"))
        return True
    await close_ticket(conv, query, int(args[0]))
    return True


async def close_ticket(conv: Conversation, query: CallbackQuery, ticket_id: int) -> None:
    """An operator closes a ticket (once): the customer and the operators are told."""
    app = conv.app
    closed = await app.store.run(tickets.close, ticket_id, conv.id, app.clock.now())
    if closed is None:
        await conv.answer(query, "Already closed.")
        return
    ticket = closed.ticket
    await conv.answer(query, f"Ticket #{ticket.id} closed.")
    text = app.texts(ticket.language, "support.closed_by_support", id=ticket.id)
    params = {"chat_id": ticket.telegram_id, "text": text, "parse_mode": "HTML"}
    await app.outbox.send("sendMessage", params, lane=Lane.INTERACTIVE)
    who = desk.name_of(query.from_user)
    await desk.wind_up(app, closed, f"🔒 Ticket #{ticket.id} was closed by {who}.")


async def tickets_screen(conv: Conversation) -> Screen:
    """``/tickets``: the open tickets, longest waiting first, each a button to the customer."""
    count, waiting = await conv.app.store.run(tickets.open_tickets)
    if not count:
        return Screen("adm:tickets", "No open tickets.", keyboard([button("⬅️ Admin", "adm")]))
    zone = conv.app.config.timezone
    lines = [f"<b>Open tickets: {count}</b>"]
    rows = []
    for t in waiting:
        handle = f" @{html.escape(t.username)}" if t.username else ""
        opened = t.opened_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        lines.append(
            f"#{t.id} · {html.escape(t.first_name or '—')}{handle} · <code>{t.telegram_id}</code>"
            f" · since {opened} · {t.messages} from them, {t.replies} answers"
        )
        rows.append(
            [button(f"#{t.id} {t.first_name or t.telegram_id}"[:40], f"adm:u:{t.telegram_id}")]
        )
    if count > len(waiting):
        lines.append(f"… and {count - len(waiting)} more")
    rows.append([button("⬅️ Admin", "adm")])
    return Screen("adm:tickets", "\n".join(lines), keyboard(*rows))
