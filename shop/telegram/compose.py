"""A broadcast's message as an operator composes it, checked as the Bot API would take it.

Used by the broadcasts API (``shop.http.broadcasts``) and by ``/broadcast`` in Telegram
(``shop.admin.broadcasts``): ``text`` must be Telegram HTML the Bot API accepts, at most
4096 visible characters (1024 as a photo's caption); URLs http(s) only; a button's text
1-64 characters. The message is ``{"text", "button"?: {"text", "url"}, "photo_url"?}``
(``photo_url`` may also be a Telegram ``file_id``, which ``sendPhoto`` takes the same way).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

TEXT_LIMIT, CAPTION_LIMIT, BUTTON_LIMIT = 4096, 1024, 64


class Invalid(ValueError):
    """Raised when a broadcast message is not one the shop can send; the text says why."""


def button(text: Any, url: Any) -> dict[str, str]:
    if not isinstance(text, str) or not text.strip() or len(text) > BUTTON_LIMIT:
        raise Invalid(f"button.text must be 1-{BUTTON_LIMIT} characters")
    return {"text": text, "url": checked_url(url, "button.url")}


def checked_text(text: Any, limit: int) -> str:
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


def checked_url(value: Any, name: str) -> str:
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
