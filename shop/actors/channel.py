"""Join requests to the private channel (``FULFILMENT=channel``, see ``fulfilment.channel``).

The UserActor hands :func:`on_join_request` each ``chat_join_request`` update (the
requester's own actor, so their requests are handled one at a time). A request to the
shop's channel from a customer whose subscription is active at that moment is approved;
anyone else is told why (in their private chat: ``user_chat_id`` works only until the
request is processed, so the message goes first) and declined. Requests to other chats
are left to their administrators. The calls go through the outbox within the update's
handling, so the update stays journaled until Telegram has taken them.
"""

from __future__ import annotations

import logging
from typing import Any

from ..app import App
from ..errors import BadRequest, TelegramError
from ..fulfilment.channel import ChannelAccess, say
from ..store import channel as members
from ..telegram.keyboards import button, keyboard
from ..telegram.outbox import Lane
from ..telegram.types import ChatJoinRequest, to_json

log = logging.getLogger(__name__)


async def on_join_request(app: App, request: ChatJoinRequest) -> None:
    backend = app.fulfilment
    if not isinstance(backend, ChannelAccess) or request.chat.id != backend.channel_id:
        return  # not the shop's channel: its administrators decide
    who = request.from_user.id
    paying, language = await app.store.run(members.standing, who, app.clock.now())
    if not paying:
        text = say(app.texts, language, "channel.declined")
        buy = button(app.texts(language, "btn.buy"), "buy")
        params = {"chat_id": request.user_chat_id, "text": text, "parse_mode": "HTML"}
        params["reply_markup"] = to_json(keyboard([buy]))
        try:
            await app.outbox.request("sendMessage", params)
        except TelegramError as exc:
            log.info("channel: could not tell %s why they are declined: %s", who, exc)
    await _decide(app, backend, request, approve=paying)


async def _decide(
    app: App, backend: ChannelAccess, request: ChatJoinRequest, *, approve: bool
) -> None:
    params: dict[str, Any]
    if request.query_id is not None:  # a bot assigned to process join requests answers
        method = "answerChatJoinRequestQuery"
        result = "approve" if approve else "decline"
        params = {"chat_join_request_query_id": request.query_id, "result": result}
    else:
        method = "approveChatJoinRequest" if approve else "declineChatJoinRequest"
        params = {"chat_id": backend.channel_id, "user_id": request.from_user.id}
    try:
        await app.outbox.request(method, params, lane=Lane.ANSWER)
    except BadRequest as exc:
        # HIDE_REQUESTER_MISSING: decided already (by an administrator, or by this very
        # call before a restart replayed the update); USER_ALREADY_PARTICIPANT: in already.
        log.info("channel: %s for %s: %s", method, request.from_user.id, exc.description)
        return
    except TelegramError as exc:
        # Not settled: the update stays journaled and is handled again after a restart.
        log.warning("channel: %s for %s failed: %s", method, request.from_user.id, exc)
        return
    outcome = "approved" if approve else "declined"
    log.info("channel: join request of %s %s", request.from_user.id, outcome)
