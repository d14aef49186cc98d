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
from urllib.parse import urlsplit

from quart import Blueprint, request
from quart.typing import ResponseReturnValue

from ..app import App
from ..store import broadcasts
from .admin import admin_only

_ID = re.compile(r"[0-9]{1,18}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8})?")
_FIELDS = {"text", "audience", "language", "button", "photo_url"}
TEXT_LIMIT, CAPTION_LIMIT, BUTTON_LIMIT = 4096, 1024, 64


class Invalid(ValueError):
    """Raised when a broadcast request is not one the shop can send; the text says why."""


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
        message["photo_url"] = _url(photo, "photo_url")
    message["text"] = _text(body.get("text"), CAPTION_LIMIT if photo is not None else TEXT_LIMIT)
    button = body.get("button")
    if button is not None:
        if not isinstance(button, dict) or set(button) != {"text", "url"}:
            raise Invalid('button must be {"text", "url"}')
        text = button["text"]
        if not isinstance(text, str) or not text.strip() or len(text) > BUTTON_LIMIT:
            raise Invalid(f"button.text must be 1-{BUTTON_LIMIT} characters")
        message["button"] = {"text": text, "url": _url(button["url"], "button.url")}
    return message, audience, language


def _text(text: Any, limit: int) -> str:
    if not isinstance(text, str):
        raise Invalid("text is required (Telegram HTML)")
    try:
        visible = visible_text(text)
    except ValueError as exc:
        raise Invalid(f"text is not valid Telegram HTML: {exc}") from None
    if not visible.strip():
        raise Invalid("text must not be empty")
    length = len(visible.encode("utf-16-le", "surrogatepass")) // 2
    if length > limit:
        what = "a photo's caption" if limit == CAPTION_LIMIT else "a message"
        raise Invalid(f"text is {length} characters; {what} may have at most {limit}")
    return text


def _url(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > 2048:
        raise Invalid(f"{name} must be an http(s) URL")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise Invalid(f"{name} must be an http(s) URL") from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(ch.isspace() or ord(ch) < 32 for ch in value)
    ):
        raise Invalid(f"{name} must be an http(s) URL")
    return value


# -- Telegram HTML (the Bot API's parse_mode=HTML, after tdlib's parse_html) --------------

_TAGS = frozenset(
    {"a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler"}
    | {"tg-emoji", "tg-time", "span", "pre", "code", "blockquote"}
)
_TOKEN = re.compile(
    r"<(/?)([^\s>]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)(>?)|&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);?"
)
_ATTRIBUTE = re.compile(r"\s*([^\s=>/\"']+)\s*(?:=\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9.\-]+))?")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def visible_text(text: str) -> str:
    """The text a reader sees; raises ValueError where the Bot API would refuse the HTML
    (an unsupported, unclosed or mismatched tag, a ``span`` that is not a spoiler)."""
    out: list[str] = []
    open_tags: list[str] = []
    at = 0
    for token in _TOKEN.finditer(text):
        out.append(text[at : token.start()])
        at = token.end()
        closing, name, attributes, end, entity = token.groups()
        if entity is not None:
            out.append(_entity(entity) or token.group(0))
            continue
        name = name.lower()
        if not end:
            raise ValueError(f"unclosed tag at character {token.start()}")
        if closing:
            if not open_tags:
                raise ValueError(f"unexpected end tag at character {token.start()}")
            expected = open_tags.pop()
            if name and name != expected:
                raise ValueError(f'expected "</{expected}>", found "</{name}>"')
            continue
        if name not in _TAGS:
            raise ValueError(f'unsupported tag "<{name}>"; use b, i, u, s, a, code, pre…')
        found = dict(_attribute(match) for match in _ATTRIBUTE.finditer(attributes))
        if name == "span" and found.get("class") != "tg-spoiler":
            raise ValueError('a "span" must have class "tg-spoiler"')
        open_tags.append(name)
    out.append(text[at:])
    if open_tags:
        raise ValueError(f'"<{open_tags[-1]}>" is never closed')
    return "".join(out)


def _entity(entity: str) -> str | None:
    if not entity.startswith("#"):
        return _NAMED.get(entity)
    code = int(entity[2:], 16) if entity[1:2] in ("x", "X") else int(entity[1:])
    if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        raise ValueError(f"invalid character reference &{entity};")
    return chr(code)


def _attribute(match: re.Match[str]) -> tuple[str, str]:
    value = match.group(2) or ""
    if value[:1] in ("'", '"'):
        value = value[1:-1]
    return match.group(1), value
