"""How the fake Telegram Bot API server reads a call's parameters and checks them.

``_parse_params`` takes them from the query string and a JSON, form or multipart body (files
become :class:`Upload`), as the server does. The checks raise ``ApiError`` with the texts of
the Bot API (Client.cpp: ``get_input_message_text``, ``get_user_id``) and tdlib
(``fix_formatted_text``, ``to_integer<int32>``); text with parse_mode HTML is measured after
tdlib's ``parse_html`` (see ``html``).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
from urllib.parse import parse_qsl

import attrs

from .errors import ApiError, Json
from .html import HtmlError, parse_html

# Parameters that carry JSON; form and query-string callers send them as JSON text.
_JSON_PARAMS = frozenset(
    {"reply_markup", "allowed_updates", "prices", "entities", "link_preview_options"}
    | {"reply_parameters", "suggested_tip_amounts", "commands", "scope", "menu_button"}
)


def _parse_params(query: bytes, headers: dict[bytes, bytes], body: bytes) -> Json:
    """Query string, then a JSON or form body; JSON-typed fields sent as text are decoded.

    ``headers`` are keyed by lower-cased name.
    """
    params: Json = dict(parse_qsl(query.decode("latin-1")))
    if body:
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if content_type.startswith("application/json"):
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise ApiError(400, "Bad Request: can't parse JSON object")
            params.update(data)
        elif content_type.startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode()))
        elif content_type.startswith("multipart/form-data"):
            params.update(_multipart(content_type, body))
        else:
            raise ApiError(400, f"Bad Request: unsupported content type {content_type!r}")
    for name in _JSON_PARAMS & params.keys():
        if isinstance(params[name], str):
            try:
                params[name] = json.loads(params[name])
            except ValueError:
                raise ApiError(400, f"Bad Request: can't parse {name} JSON object") from None
    return params


@attrs.frozen
class Upload:
    """A file part of a multipart call (what ``InputFile`` becomes on the wire)."""

    filename: str
    content: bytes
    content_type: str


def _multipart(content_type: str, body: bytes) -> Json:
    """Form fields as text and file parts as :class:`Upload` (RFC 7578)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ApiError(400, "Bad Request: can't parse multipart/form-data")
    fields: Json = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True) or b""
        if not isinstance(data, bytes):  # decode=True gives bytes for a non-multipart part
            raise ApiError(400, "Bad Request: can't parse multipart/form-data")
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode("utf-8")
        else:
            fields[name] = Upload(filename, data, part.get_content_type())
    return fields


def _chat_of(params: Json) -> int | None:
    """The chat or user a call is about, for filters; None when it names none."""
    try:
        return int(params.get("chat_id", params.get("user_id")))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _required(params: Json, name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise ApiError(400, f"Bad Request: {name} is empty")
    return str(value)


def _int(params: Json, name: str, default: int | None = None) -> int:
    if params.get(name) in (None, "") and default is not None:
        return default
    try:
        return int(_required(params, name))
    except ValueError:
        raise ApiError(400, f"Bad Request: invalid {name} specified") from None


def _to_int32(value: object, default: int) -> int:
    """tdlib's ``to_integer<int32>``: optional "-", the leading digits, wrapping; no errors."""
    text = "" if value is None else str(value)
    if not text:
        return default
    digits = re.match(r"-?([0-9]*)", text)
    assert digits is not None
    number = int(digits[1] or 0) % 2**32
    if text.startswith("-"):
        number = -number % 2**32
    return number - 2**32 if number >= 2**31 else number


def _user_id(params: Json) -> int:
    """Client::get_user_id: a positive integer, else "invalid user_id specified"."""
    match = re.match(r"-?[0-9]*", str(params.get("user_id", "")))
    user_id = int(match[0]) if match and match[0] not in ("", "-") else 0
    if user_id <= 0:
        raise ApiError(400, "Bad Request: invalid user_id specified")
    return user_id


def _bool(params: Json, name: str) -> bool:
    return params.get(name) in (True, 1, "true", "True", "1")


def _chat_id(params: Json) -> int:
    try:
        return int(_required(params, "chat_id"))
    except ValueError:  # @username: no channels or groups here
        raise ApiError(400, "Bad Request: chat not found") from None


def _text(params: Json) -> str:
    """Checks ``text`` as the Bot API and tdlib do for sendMessage and editMessageText."""
    text = params.get("text")
    text = "" if text is None else str(text)
    if not text:  # Client::get_input_message_text, before any parsing
        raise ApiError(400, "Bad Request: message text is empty")
    visible = _visible(text, params.get("parse_mode"))
    if not visible.strip():  # tdlib's fix_formatted_text, after parsing
        raise ApiError(400, "Bad Request: text must be non-empty")
    if _utf16(visible) > 4096:
        raise ApiError(400, "Bad Request: message is too long")
    return text


def _visible(text: str, parse_mode: object) -> str:
    """The text a reader sees, after the parse mode (the Bot API's ``get_formatted_text``).

    Markdown is not parsed (the shop sends HTML only): its text is measured as sent.
    """
    if len(text.encode("utf-8", "surrogatepass")) > 1 << 15:
        raise ApiError(400, "Bad Request: text is too long")
    mode = "" if parse_mode is None else str(parse_mode).lower()
    if mode == "html":
        try:
            return parse_html(text)
        except HtmlError as error:
            raise ApiError(400, f"Bad Request: can't parse entities: {error}") from None
    if mode not in ("", "none", "markdown", "markdownv2"):
        raise ApiError(400, "Bad Request: unsupported parse_mode")
    return text


def _inline(params: Json) -> Json | None:
    markup = params.get("reply_markup")
    if isinstance(markup, dict) and markup.get("inline_keyboard"):
        return markup
    return None  # an empty inline keyboard is no keyboard


def _invoice(params: Json) -> Json:
    """Checks sendInvoice/createInvoiceLink fields; returns the Message's ``invoice``."""
    fields = {k: _required(params, k) for k in ("title", "description", "payload", "currency")}
    prices = params.get("prices")
    if not isinstance(prices, list) or not prices:
        raise ApiError(400, "Bad Request: prices is empty")
    if fields["currency"] == "XTR" and len(prices) != 1:
        raise ApiError(400, "Bad Request: STARS_INVOICE_INVALID")
    total = sum(int(price["amount"]) for price in prices)
    invoice = {"title": fields["title"], "description": fields["description"]}
    invoice["start_parameter"] = str(params.get("start_parameter", ""))
    return invoice | {"currency": fields["currency"], "total_amount": total}


def _utf16(text: str) -> int:
    """Telegram measures text in UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
