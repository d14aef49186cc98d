"""The broadcasts API, under ``/admin/api/broadcasts``, behind the admin bearer token.

``POST /`` ``{"text", "audience", "language"?, "button": {"text", "url"}?, "photo_url"?}``
creates a running broadcast and answers ``201 {"id"}``; ``GET /<id>`` answers
``{"status", "total", "sent", "blocked", "failed"}``; ``POST /<id>/cancel`` stops it
(``{"status"}``; 409 when it is done already). Input is checked before anything is
written, each problem a 400 with a message that names it: ``text`` must be Telegram HTML
the Bot API accepts, at most 4096 visible characters (1024 as a photo's caption);
``audience`` one of ``all``, ``active``, ``expired``, ``never_paid``, ``trial``, narrowed
to one ``language`` if given; URLs http(s) only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from quart import Blueprint, request
from quart.typing import ResponseReturnValue

from ..app import App
from ..store import broadcasts
from ..telegram import compose
from ..telegram.compose import CAPTION_LIMIT, TEXT_LIMIT, Invalid
from .admin import admin_only

_ID = re.compile(r"[0-9]{1,18}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8})?")
_FIELDS = {"text", "audience", "language", "button", "photo_url"}


def broadcasts_api(app: App, poke: Callable[[], None] | None = None) -> Blueprint:
    """The blueprint; ``poke`` wakes the broadcaster when a broadcast is created."""
    api = Blueprint("broadcasts_api", __name__, url_prefix="/admin/api/broadcasts")

    api.before_request(admin_only(app))

    @api.post("")
    async def create() -> ResponseReturnValue:
        body = await request.get_json(force=True, silent=True)
        try:
            message, audience, language = checked(body)
        except Invalid as exc:
            return {"error": str(exc)}, 400
        created = await app.store.run(
            broadcasts.create, message, audience, language, app.clock.now()
        )
        if poke is not None:
            poke()
        return {"id": created}, 201

    @api.get("/<broadcast_id>")
    async def progress(broadcast_id: str) -> ResponseReturnValue:
        if not _ID.fullmatch(broadcast_id):
            return {"error": "no such broadcast"}, 404
        found = await app.store.run_statement(broadcasts.progress, int(broadcast_id))
        if found is None:
            return {"error": "no such broadcast"}, 404
        return {
            "status": found.status,
            "total": found.total,
            "sent": found.sent,
            "blocked": found.blocked,
            "failed": found.failed,
        }

    @api.post("/<broadcast_id>/cancel")
    async def cancel(broadcast_id: str) -> ResponseReturnValue:
        if not _ID.fullmatch(broadcast_id):
            return {"error": "no such broadcast"}, 404
        status = await app.store.run_statement(
            broadcasts.cancel, int(broadcast_id), app.clock.now()
        )
        if status is None:
            return {"error": "no such broadcast"}, 404
        if status == "done":
            return {"error": "the broadcast is done already", "status": status}, 409
        return {"status": status}

    return api


def checked(body: Any) -> tuple[dict[str, Any], str, str | None]:
    """``(message, audience, language)`` from a request body; raises :class:`Invalid`."""
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise Invalid(f"unknown fields: {', '.join(unknown)}")
    audience = body.get("audience")
    if audience not in broadcasts.AUDIENCES:
        raise Invalid(f"audience must be one of: {', '.join(broadcasts.AUDIENCES)}")
    language = body.get("language")
    if language is not None and not (isinstance(language, str) and _LANGUAGE.fullmatch(language)):
        raise Invalid("language must be a language code such as 'en' or 'pt-BR'")
    message: dict[str, Any] = {}
    photo = body.get("photo_url")
    if photo is not None:
        message["photo_url"] = compose.checked_url(photo, "photo_url")
    message["text"] = compose.checked_text(
        body.get("text"), CAPTION_LIMIT if photo is not None else TEXT_LIMIT
    )
    button = body.get("button")
    if button is not None:
        if not isinstance(button, dict) or set(button) != {"text", "url"}:
            raise Invalid('button must be {"text", "url"}')
        message["button"] = compose.button(button["text"], button["url"])
    return message, audience, language
