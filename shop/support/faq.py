"""Help → FAQ: the catalog's questions as buttons, each answer on its own screen, in the
customer's language (English when an entry has no text in theirs)."""

from __future__ import annotations

import html

from ..actors.conversation import Conversation
from ..actors.screens import Screen, back
from ..errors import NotFound
from ..telegram.keyboards import button, keyboard
from ..telegram.types import CallbackQuery, Message
from .desk import destinations


async def show(
    conv: Conversation, query: CallbackQuery, target: Message | None, args: list[str]
) -> None:
    """``faq``: the questions; ``faq:<n>``: the n-th answer."""
    entries = conv.app.catalog.faq
    if not args:
        await conv.show(target, questions_screen(conv))
        return
    if len(args) != 1 or not args[0].isdigit() or int(args[0]) >= len(entries):
        raise NotFound(":".join(args))
    await conv.show(target, answer_screen(conv, int(args[0])))


def questions_screen(conv: Conversation) -> Screen:
    texts, lang = conv.app.texts, conv.lang
    entries = conv.app.catalog.faq
    rows = [[button(entry.question(lang), f"faq:{n}")] for n, entry in enumerate(entries)]
    text = conv.t("faq.title" if entries else "faq.empty")
    return Screen("faq", text, keyboard(*rows, back(texts, lang, "help")))


def answer_screen(conv: Conversation, n: int) -> Screen:
    entry, lang = conv.app.catalog.faq[n], conv.lang
    text = f"<b>{html.escape(entry.question(lang))}</b>\n\n{html.escape(entry.answer(lang))}"
    write = [button(conv.t("btn.write_support"), "sup")] if destinations(conv.app) else []
    return Screen("faq", text, keyboard(write, back(conv.app.texts, lang, "faq")))
