"""The customer's side of support: Help → "Write to support", the messages that follow, and
closing the ticket.

The message the customer writes after "Write to support" (text, a photo, a document...)
opens a ticket, or joins the one open; after that, anything they send that is not a command
or an answer the bot asked for joins it too, until it is closed (their button, or an
operator's). Each message is copied to the desk as it was sent (copyMessage), so photos and
documents arrive whole.
"""

from __future__ import annotations

import logging

from ..actors.conversation import Awaiting, Conversation, resumable
from ..actors.screens import Screen, back
from ..errors import BadRequest, Forbidden, NotFound
from ..store import operators, tickets
from ..store.tickets import Claim
from ..telegram.keyboards import button, keyboard
from ..telegram.types import CallbackQuery, Message
from . import desk

log = logging.getLogger(__name__)

#: The customer's close button: ``tkx:<ticket id>``.
CLOSE = "tkx"


def has_content(message: Message) -> bool:
    """Something to relay: text or media (not a service message, not an empty one)."""
    media = (message.document, message.audio, message.voice, message.video, message.video_note)
    return bool(
        message.text
        or message.caption
        or message.photo
        or any(media)
        or message.animation
        or message.sticker
    )


async def ask(conv: Conversation, target: Message | None) -> None:
    """Help → Write to support: the next message goes to the operators."""
    rows = back(conv.app.texts, conv.lang, "help")
    if not desk.destinations(conv.app):
        await conv.show(target, Screen("support", conv.t("support.unavailable"), keyboard(rows)))
        return
    conv.awaiting = Awaiting(_typed)
    await conv.show(target, Screen("support", conv.t("support.ask"), keyboard(rows)))


@resumable()
async def _typed(conv: Conversation, message: Message, state: object) -> None:
    if not has_content(message):
        conv.awaiting = Awaiting(_typed)  # a location, a poll...: the same question again
        await conv.send_text(conv.t("support.ask"))
        return
    if not await relay(conv, message, may_open=True):
        await conv.send_text(conv.t("support.unavailable"))


async def add_to_ticket(conv: Conversation, message: Message) -> bool:
    """A message that is not a command nor an answer: it joins the open ticket, if any."""
    return has_content(message) and await relay(conv, message, may_open=False)


async def relay(conv: Conversation, message: Message, *, may_open: bool) -> bool:
    """Relay a customer's message to the desk; False when there is no ticket for it (none
    open, and ``may_open`` is False) or nowhere to send it. The customer is told it went
    when it opened the ticket or they asked to write (``may_open``); later messages of a
    ticket go quietly."""
    app = conv.app
    targets = desk.destinations(app)
    if not targets:
        return False
    claim = await app.store.run(
        tickets.claim_message,
        conv.id,
        message.message_id,
        targets,
        app.config.support_chat_id,
        app.clock.now(),
        may_open,
    )
    if claim is None:
        return False
    if not claim.owed:
        return True  # a replayed update: relayed already
    if await _deliver(conv, claim, message) and (claim.opened or may_open):
        await conv.show_new(sent_screen(conv, claim.ticket.id))  # asked for: answered
    return True


async def _deliver(conv: Conversation, claim: Claim, message: Message) -> bool:
    """Send what the claim owes (headers first); True when some chat got the message."""
    app, ticket = conv.app, claim.ticket
    headers, failed = dict(claim.headers), set[int]()
    try:
        if any(relay.kind == "header" for relay in claim.owed):
            ticket = await desk.open_topic(app, ticket, message.from_user)
    except (BadRequest, Forbidden) as exc:
        log.error("ALERT: support chat %s refused a new topic: %s", ticket.chat_id, exc.description)
    profile = None
    for relay in claim.owed:
        if relay.chat_id in failed:
            continue
        try:
            if relay.kind == "header":
                if profile is None:
                    profile = await app.store.run(operators.profile, conv.id, 1)
                headers[relay.chat_id] = await desk.send_header(
                    app, ticket, relay.chat_id, message, profile
                )
            else:
                await desk.copy_in(app, ticket, relay.chat_id, headers, message)
        except (BadRequest, Forbidden) as exc:
            failed.add(relay.chat_id)
            log.error(
                "ALERT: support message of ticket %s not delivered to chat %s: %s",
                ticket.id,
                relay.chat_id,
                exc.description,
            )
    if failed >= {relay.chat_id for relay in claim.owed}:
        await conv.send_text(conv.t("support.failed"))
        return False
    return True


def sent_screen(conv: Conversation, ticket_id: int) -> Screen:
    rows = [button(conv.t("btn.close_ticket"), f"{CLOSE}:{ticket_id}")]
    text = conv.t("support.sent", id=ticket_id)
    return Screen("support", text, keyboard(rows, back(conv.app.texts, conv.lang)))


async def close(
    conv: Conversation, query: CallbackQuery, target: Message | None, args: list[str]
) -> bool:
    """The customer's close button: the ticket closes (once), both sides are told."""
    if len(args) != 1 or not args[0].isdigit():
        raise NotFound(":".join(args))
    app = conv.app
    closed = await app.store.run(tickets.close, int(args[0]), conv.id, app.clock.now(), conv.id)
    if closed is None:
        await conv.answer(query, conv.t("support.already_closed"))
        return True
    await conv.answer(query)
    await conv.send_text(conv.t("support.closed_by_you", id=closed.ticket.id))
    await desk.wind_up(app, closed, f"🔒 Ticket #{closed.ticket.id} was closed by the customer.")
    return True
