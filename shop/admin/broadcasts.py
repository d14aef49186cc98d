"""``/broadcast`` in Telegram: compose → preview → audience with its size → confirm → send.

The operator sends the message as customers should see it: text formatted with their
app's tools (turned into Bot API HTML) or typed as HTML, or a photo with a caption. Then
an optional URL button (``Text | https://...``). The shop sends the result back to them
as the preview, exactly as it will go out, so Telegram itself checks it. Then they pick
the audience, each with how many customers it reaches now, and confirm; the confirm
button's nonce is the audit key, so a double tap makes one broadcast. From then on it is
an ordinary persisted broadcast (``actors.broadcast``), and its progress is shown and
summarised in this chat (``actors.broadcast_progress``).

The draft lives in the operator's conversation until it is sent or abandoned.
"""

from __future__ import annotations

import html
from typing import Any

import attrs

from ..actors.broadcast import render
from ..actors.conversation import Awaiting, Conversation, resumable
from ..actors.screens import Screen
from ..errors import BadRequest, TelegramError
from ..store import audit, broadcasts
from ..store.pool import Connection
from ..telegram import compose
from ..telegram.entities import to_html
from ..telegram.keyboards import button, keyboard
from ..telegram.texts import LANGUAGES
from ..telegram.types import CallbackQuery, Message
from .keys import act, nonce

AUDIENCE_NAMES = {
    "all": "Everyone",
    "active": "Active subscribers",
    "expired": "Expired subscribers",
    "never_paid": "Never paid",
    "trial": "On the trial",
}


@attrs.frozen
class Draft:
    message: dict[str, Any]
    previewed: bool = False


async def start(conv: Conversation) -> None:
    conv.awaiting = Awaiting(_message_typed)
    await conv.send_text(
        "📣 Send the message to broadcast: text (format it with your app, or type Telegram"
        " HTML), or a photo with a caption. /cancel to stop."
    )


@resumable()
async def _message_typed(conv: Conversation, message: Message, state: object) -> None:
    if message.photo:
        text = to_html(message.caption or "", message.caption_entities)
        draft = {"photo_url": message.photo[-1].file_id}
        limit = compose.CAPTION_LIMIT
    else:
        text = to_html(message.text or "", message.entities) if message.entities else ""
        text = text or (message.text or "")
        draft, limit = {}, compose.TEXT_LIMIT
    try:
        draft["text"] = compose.checked_text(text, limit)
    except compose.Invalid as exc:
        conv.awaiting = Awaiting(_message_typed)
        await conv.send_text(f"{html.escape(str(exc))}. Send it again, or /cancel.")
        return
    conv.awaiting = Awaiting(_button_typed, Draft(draft))
    rows = [[button("No button", "adm:bb")]]
    await conv.show_new(
        Screen(
            "adm:bc",
            "Add a link button? Send <code>Text | https://example.com</code>, or:",
            keyboard(*rows),
        )
    )


@resumable(Draft)
async def _button_typed(conv: Conversation, message: Message, state: object) -> None:
    assert isinstance(state, Draft)
    text, _, url = (message.text or "").partition("|")
    try:
        link = compose.button(text.strip(), url.strip())
    except compose.Invalid as exc:
        conv.awaiting = Awaiting(_button_typed, state)
        await conv.send_text(f"{html.escape(str(exc))}. Send <code>Text | URL</code> again.")
        return
    await _preview(conv, Draft(state.message | {"button": link}))


async def no_button(conv: Conversation, query: CallbackQuery, target: Message | None) -> None:
    draft = _draft(conv)
    if draft is None or draft.previewed:
        await conv.answer(query, "Nothing is being composed: /broadcast to start.")
        return
    await conv.answer(query)
    await _preview(conv, draft)


async def _preview(conv: Conversation, draft: Draft) -> None:
    method, params = render(draft.message, conv.id)
    try:
        await conv.app.outbox.request(method, params)
    except BadRequest as exc:
        conv.awaiting = Awaiting(_message_typed)
        await conv.send_text(
            f"Telegram refused it: {html.escape(exc.description)}. Send the message again."
        )
        return
    except TelegramError:
        conv.awaiting = Awaiting(_button_typed, draft)
        await conv.send_text("Telegram did not answer; press the button again in a moment.")
        return
    draft = attrs.evolve(draft, previewed=True)
    conv.awaiting = Awaiting(_press_a_button, draft)
    await conv.show_new(await _audiences(conv))


async def _audiences(conv: Conversation) -> Screen:
    rows = []
    for audience, name in AUDIENCE_NAMES.items():
        size = await conv.app.store.run_statement(broadcasts.audience_size, audience, None)
        rows.append([button(f"{name} · {size}", f"adm:ba:{audience}")])
    by_language = []
    for language in LANGUAGES:
        size = await conv.app.store.run_statement(broadcasts.audience_size, "all", language)
        by_language.append(button(f"{language} · {size}", f"adm:ba:all:{language}"))
    rows += [by_language, [button("✖️ Drop it", "adm:bx")]]
    return Screen("adm:bc", "⬆️ That is the preview. Who gets it?", keyboard(*rows))


@resumable(Draft)
async def _press_a_button(conv: Conversation, message: Message, state: object) -> None:
    conv.awaiting = Awaiting(_press_a_button, state)
    await conv.send_text("Pick the audience with the buttons above, or /cancel.")


async def choose(
    conv: Conversation, query: CallbackQuery, target: Message | None, args: list[str]
) -> None:
    draft = _draft(conv)
    if draft is None or not draft.previewed:
        await conv.answer(query, "Nothing is being composed: /broadcast to start.")
        return
    audience, language = args[0], (args[1] if len(args) > 1 else None)
    if audience not in broadcasts.AUDIENCES or (language and language not in LANGUAGES):
        raise ValueError(audience)
    size = await conv.app.store.run_statement(broadcasts.audience_size, audience, language)
    who = AUDIENCE_NAMES[audience] + (f" ({language})" if language else "")
    rows = [
        [button(f"✅ Send to {size}", f"adm:bgo:{audience}:{language or ''}:{nonce()}")],
        [button("⬅️ Audience", "adm:bz"), button("✖️ Drop it", "adm:bx")],
    ]
    await conv.answer(query)
    await conv.show(target, Screen("adm:bc", f"Send it to <b>{who}</b>: {size}?", keyboard(*rows)))


async def back_to_audiences(conv: Conversation, target: Message | None) -> None:
    await conv.show(target, await _audiences(conv))


async def send(
    conv: Conversation, query: CallbackQuery, target: Message | None, args: list[str]
) -> None:
    draft = _draft(conv)
    audience, language, key = args[0], args[1] or None, args[2]
    if audience not in broadcasts.AUDIENCES or (language and language not in LANGUAGES):
        raise ValueError(audience)
    if draft is None or not draft.previewed:
        await conv.answer(query, "Already sent, or nothing composed.")
        return
    created = await conv.app.store.run(
        _create, act(conv, key), draft.message, audience, language, conv.id
    )
    conv.awaiting = None
    if created is None:
        await conv.answer(query, "Already sent.")
        return
    await conv.answer(query, f"Broadcast #{created} started.")
    await conv.show(target, Screen("adm:bc", f"📣 Broadcast #{created} started."))
    conv.app.broadcaster.due.poke()
    conv.app.broadcast_progress.due.poke()


def _create(
    conn: Connection,
    act: audit.Act,
    message: dict[str, Any],
    audience: str,
    language: str | None,
    by: int,
) -> int | None:
    """The broadcast and its audit row, in one transaction: once per confirm."""
    row_id = audit.begin(conn, act, "broadcast", audience + (f":{language}" if language else ""))
    if row_id is None:
        return None
    created = broadcasts.create(conn, message, audience, language, act.now, created_by=by)
    audit.settle(conn, row_id, None, {"broadcast": created, "message": message})
    return created


async def drop(conv: Conversation, query: CallbackQuery, target: Message | None) -> None:
    conv.awaiting = None
    await conv.answer(query, "Dropped.")
    await conv.show(target, Screen("adm:bc", "Broadcast dropped."))


async def cancel(
    conv: Conversation, query: CallbackQuery, target: Message | None, args: list[str]
) -> None:
    broadcast_id = int(args[0])
    status = await conv.app.store.run(_cancel, act(conv, f"cancel:{broadcast_id}"), broadcast_id)
    await conv.answer(query, f"Broadcast #{broadcast_id}: {status or 'not found'}.")
    conv.app.broadcast_progress.due.poke()


def _cancel(conn: Connection, act: audit.Act, broadcast_id: int) -> str | None:
    status = broadcasts.cancel(conn, broadcast_id, act.now)
    if status == "canceled":
        audit.record(conn, act, "broadcast_cancel", str(broadcast_id), "running", "canceled")
    return status


def _draft(conv: Conversation) -> Draft | None:
    state = conv.awaiting.state if conv.awaiting is not None else None
    return state if isinstance(state, Draft) else None
