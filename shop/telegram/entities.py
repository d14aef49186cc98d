"""A message's text and formatting entities, as the HTML the Bot API takes back.

An operator composes a broadcast in their Telegram app with its formatting tools; the
message reaches the shop as plain text plus entities (offsets in UTF-16 code units).
:func:`to_html` turns that into Bot API HTML, escaping the text, so it can be sent again
with ``parse_mode=HTML``. Entities may overlap without nesting; a tag that must close
while others are open inside it closes them and opens them again after.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence

from .types import MessageEntity

_SIMPLE = {
    "bold": "b",
    "italic": "i",
    "underline": "u",
    "strikethrough": "s",
    "spoiler": "tg-spoiler",
    "code": "code",
    "blockquote": "blockquote",
}
#: Entities that are only how Telegram shows plain text (mentions, links, hashtags...):
#: they come back by themselves.
FORMATTING = frozenset({*_SIMPLE, "pre", "text_link", "expandable_blockquote"})


def _tags(entity: MessageEntity) -> tuple[str, str]:
    if entity.type in _SIMPLE:
        tag = _SIMPLE[entity.type]
        return f"<{tag}>", f"</{tag}>"
    if entity.type == "pre":
        if entity.language:
            language = html.escape(entity.language)
            return f'<pre><code class="language-{language}">', "</code></pre>"
        return "<pre>", "</pre>"
    if entity.type == "expandable_blockquote":
        return "<blockquote expandable>", "</blockquote>"
    assert entity.type == "text_link"
    return f'<a href="{html.escape(entity.url or "")}">', "</a>"


def to_html(text: str, entities: Sequence[MessageEntity]) -> str:
    units = text.encode("utf-16-le")
    formatting = sorted(
        (e for e in entities if e.type in FORMATTING and e.length > 0),
        key=lambda e: (e.offset, -e.length),
    )
    ends = {e.offset + e.length for e in formatting}
    boundaries = sorted({0, len(units) // 2, *ends, *(e.offset for e in formatting)})
    out: list[str] = []
    open_: list[MessageEntity] = []
    pending = list(reversed(formatting))
    for start, end in itertools.pairwise(boundaries):
        closing = [e for e in open_ if e.offset + e.length <= start]
        if closing:
            # close down to the deepest entity that ends here, reopen the ones that go on
            depth = min(open_.index(e) for e in closing)
            for entity in reversed(open_[depth:]):
                out.append(_tags(entity)[1])
            open_ = open_[:depth] + [e for e in open_[depth:] if e.offset + e.length > start]
            for entity in open_[depth:]:
                out.append(_tags(entity)[0])
        while pending and pending[-1].offset == start:
            entity = pending.pop()
            out.append(_tags(entity)[0])
            open_.append(entity)
        out.append(html.escape(units[start * 2 : end * 2].decode("utf-16-le"), quote=False))
    for entity in reversed(open_):
        out.append(_tags(entity)[1])
    return "".join(out)
