"""tdlib's HTML parse mode, for the fake Telegram Bot API server (``shop.sandbox.botapi``).

A port of tdlib's ``parse_html`` (td/telegram/MessageEntity.cpp), which the Bot API runs for
parse_mode=HTML: the same scanning rules over the UTF-8 bytes, the same byte offsets and the
same error texts, so that whatever the real server refuses is refused here too.
``parse_html`` gives the visible text; ``parse_html_entities`` also the MessageEntity list a
Telegram client would get (what the sandbox's web chat draws). Scanning stops at a NUL byte
as in C (``is_space`` counts it), hence the NUL appended to the bytes.
"""

from __future__ import annotations

import re

import attrs

_HTML_TAGS = frozenset(
    {"a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler"}
    | {"tg-emoji", "tg-time", "span", "pre", "code", "blockquote"}
)
_SPACE = b" \t\r\n\v\0"  # tdlib's is_space
_DIGITS = b"0123456789"
_HEX_DIGITS = _DIGITS + b"abcdefABCDEF"
_LETTERS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NAME_TOKEN = _LETTERS + _DIGITS + b".-"
_NAMED_ENTITIES = {b"lt": ord("<"), b"gt": ord(">"), b"amp": ord("&"), b"quot": ord('"')}
_DATE_FORMAT = re.compile("[rR]|[tTdDwW]*")  # FormattedDate::get_date_flags


class HtmlError(ValueError):
    """Raised when tdlib's parse_html would refuse a text; ``str(error)`` is tdlib's message."""


def parse_html(text: str) -> str:
    """The visible text of ``text`` in parse_mode HTML, as tdlib parses it.

    Raises ``HtmlError`` where tdlib fails: an unsupported, unclosed or mismatched tag, a bad
    attribute, an invalid custom emoji id or date format, or a surrogate from an entity. Bare
    ``&`` and unknown entities such as ``&foo;`` stay as they are, as in tdlib.
    """
    return _HtmlParser(text).run()


#: The Bot API's MessageEntity type for each tag (``tg-emoji`` and ``tg-time`` are left out:
#: a client without the emoji or the clock shows their text as it is).
_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "blockquote": "blockquote",
}


def parse_html_entities(text: str) -> tuple[str, list[dict[str, object]]]:
    """The visible text and its MessageEntity list (offsets in UTF-16 code units, outer
    entities before the inner ones they contain), as a Telegram client receives them.

    Raises ``HtmlError`` as :func:`parse_html` does.
    """
    parser = _HtmlParser(text)
    visible = parser.run()
    out = bytes(parser.out)
    entities: list[dict[str, object]] = []
    for _, begin, end, tag in sorted(parser.closed, key=lambda c: (c[1], -c[2], c[0])):
        kind = _ENTITY_TYPES.get(tag.name)
        if kind is None:
            continue
        offset = _utf16_units(out[:begin])
        entity: dict[str, object] = {"type": kind, "offset": offset}
        entity["length"] = _utf16_units(out[:end]) - offset
        outer = entities[-1] if entities else {}
        if kind == "code" and outer.get("type") == "pre" and _same_span(outer, entity):
            # <pre><code class="language-x">: one pre entity in language x, as tdlib makes it
            if tag.argument:
                outer["language"] = tag.argument
            continue
        if kind == "text_link":
            entity["url"] = tag.argument or out[begin:end].decode("utf-8", "surrogatepass")
        elif kind == "pre" and tag.argument:
            entity["language"] = tag.argument
        elif kind == "blockquote" and tag.argument:
            entity["type"] = "expandable_blockquote"
        entities.append(entity)
    return visible, entities


def _same_span(one: dict[str, object], other: dict[str, object]) -> bool:
    return (one["offset"], one["length"]) == (other["offset"], other["length"])


def _utf16_units(data: bytes) -> int:
    return len(data.decode("utf-8", "surrogatepass").encode("utf-16-le", "surrogatepass")) // 2


@attrs.define
class _OpenTag:
    name: str
    argument: str
    start: int  # the length of the visible text (in bytes) where the tag opened
    order: int  # how many tags opened before this one


class _HtmlParser:
    def __init__(self, text: str) -> None:
        self.data = text.encode("utf-8", "surrogatepass") + b"\0"
        self.size = len(self.data) - 1
        self.i = 0
        self.out = bytearray()
        self.open: list[_OpenTag] = []
        # Entities that cover some text: (the order they opened in, start, end, tag).
        self.closed: list[tuple[int, int, int, _OpenTag]] = []
        self.opened = 0
        self.surrogates = False

    def run(self) -> str:
        data = self.data
        while self.i < self.size:
            c = data[self.i]
            if c == ord("&"):
                code, end = _html_entity(data, self.i)
                if code:
                    self.out += chr(code).encode("utf-8", "surrogatepass")
                    self.surrogates |= 0xD800 <= code <= 0xDFFF
                    self.i = end
                    continue
            if c != ord("<"):
                self.out.append(c)
                self.i += 1
            elif data[self.i + 1] == ord("/"):
                self._end_tag()
            else:
                self._start_tag()
        if self.open:
            name = self.open[-1].name
            raise HtmlError(f'Can\'t find end tag corresponding to start tag "{name}"')
        if self.surrogates:
            raise HtmlError(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            )
        return self.out.decode("utf-8", "surrogatepass")

    def _start_tag(self) -> None:
        data, begin = self.data, self.i
        self.i += 1
        while data[self.i] not in _SPACE and data[self.i] != ord(">"):
            self.i += 1
        if data[self.i] == 0:
            raise HtmlError(f"Unclosed start tag at byte offset {begin}")
        name = _ascii_lower(data[begin + 1 : self.i])
        if name not in _HTML_TAGS:
            raise HtmlError(f'Unsupported start tag "{name}" at byte offset {begin}')
        argument = self._attributes(name, begin)
        if name == "span" and argument != "spoiler":
            raise HtmlError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
        self.open.append(_OpenTag(name, argument, len(self.out), self.opened))
        self.opened += 1
        self.i += 1  # the ">"

    def _attributes(self, tag: str, begin: int) -> str:
        """Reads attributes up to the closing ``>``; returns the tag's argument (href...)."""
        data, argument = self.data, ""
        while data[self.i] != ord(">"):
            self._skip_spaces()
            if data[self.i] == ord(">"):
                break
            start = self.i
            while data[self.i] not in _SPACE and data[self.i] not in b"=>/\"'":
                self.i += 1
            name = data[start : self.i]
            if not name:
                raise HtmlError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
            self._skip_spaces()
            if data[self.i] != ord("="):
                if data[self.i] == 0:
                    raise HtmlError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                if tag == "blockquote" and name == b"expandable":
                    argument = "1"
                continue
            self.i += 1
            self._skip_spaces()
            if data[self.i] == 0:
                raise HtmlError(f'Unclosed start tag "{tag}" at byte offset {begin}')
            value = self._attribute_value()
            if data[self.i] == 0:
                raise HtmlError(f"Unclosed start tag at byte offset {begin}")
            argument = _tag_argument(tag, name, value, argument)
        return argument

    def _attribute_value(self) -> str:
        data, quote = self.data, self.data[self.i]
        if quote not in b"'\"":  # a name token: letters, digits, "." and "-", case-insensitive
            start = self.i
            while data[self.i] in _NAME_TOKEN:
                self.i += 1
            if data[self.i] not in _SPACE and data[self.i] != ord(">"):
                raise HtmlError(f"Unexpected end of name token at byte offset {start}")
            return _ascii_lower(data[start : self.i])
        self.i += 1
        value = bytearray()
        while data[self.i] != quote and data[self.i] != 0:
            if data[self.i] == ord("&"):
                code, end = _html_entity(data, self.i)
                if code:
                    value += chr(code).encode("utf-8", "surrogatepass")
                    self.i = end
                    continue
            value.append(data[self.i])
            self.i += 1
        if data[self.i] == quote:
            self.i += 1
        return value.decode("utf-8", "surrogatepass")

    def _end_tag(self) -> None:
        data, begin = self.data, self.i
        if not self.open:
            raise HtmlError(f"Unexpected end tag at byte offset {begin}")
        self.i += 1
        while data[self.i] not in _SPACE and data[self.i] != ord(">"):
            self.i += 1
        name = _ascii_lower(data[begin + 2 : self.i])
        while data[self.i] in _SPACE and data[self.i] != 0:
            self.i += 1
        if data[self.i] != ord(">"):
            raise HtmlError(f"Unclosed end tag at byte offset {begin}")
        tag = self.open.pop()
        if name and name != tag.name:
            raise HtmlError(
                f'Unmatched end tag at byte offset {begin}, expected "</{tag.name}>", '
                f'found "</{name}>"'
            )
        if len(self.out) > tag.start:  # tdlib checks only entities that cover some text
            _check_entity(tag)
            self.closed.append((tag.order, tag.start, len(self.out), tag))
        self.i += 1  # the ">"

    def _skip_spaces(self) -> None:
        while self.data[self.i] != 0 and self.data[self.i] in _SPACE:
            self.i += 1


def _html_entity(data: bytes, pos: int) -> tuple[int, int]:
    """tdlib's decode_html_entity: (code point, end) of the entity at ``pos``, or (0, pos)."""
    end = pos + 1
    if data[end] == ord("#"):
        end += 1
        base, digits = (16, _HEX_DIGITS) if data[end] == ord("x") else (10, _DIGITS)
        end += base == 16
        start = end
        while data[end] in digits:
            end += 1
        if end - pos >= 10 or end == start:
            return 0, pos
        code = int(data[start:end], base)
        if code == 0 or code >= 0x10FFFF:
            return 0, pos
    else:
        while data[end] in _LETTERS:
            end += 1
        code = _NAMED_ENTITIES.get(data[pos + 1 : end], 0)
        if not code:
            return 0, pos
    return code, end + (data[end] == ord(";"))


def _tag_argument(tag: str, name: bytes, value: str, argument: str) -> str:
    """The attributes tdlib keeps; attribute names are matched case-sensitively."""
    if (tag, name) in (("a", b"href"), ("tg-emoji", b"emoji-id"), ("tg-time", b"format")):
        return value
    if tag == "code" and name == b"class" and value.startswith("language-"):
        return value[len("language-") :]
    if tag == "span" and name == b"class" and value.startswith("tg-"):
        return value[len("tg-") :]
    if tag == "blockquote" and name == b"expandable":
        return "1"
    return argument  # unknown attributes are ignored


def _check_entity(tag: _OpenTag) -> None:
    if tag.name == "tg-emoji":
        # to_integer_safe<int64>: the canonical decimal form of a non-zero 64-bit integer
        number = re.fullmatch(r"-?[1-9][0-9]*", tag.argument)
        if number is None or not -(2**63) <= int(tag.argument) < 2**63:
            raise HtmlError("Invalid custom emoji identifier specified")
    elif tag.name == "tg-time" and not _DATE_FORMAT.fullmatch(tag.argument):
        raise HtmlError("Invalid date format used")


def _ascii_lower(data: bytes) -> str:
    return data.lower().decode("utf-8", "surrogatepass")  # bytes.lower() is ASCII-only, as tdlib
