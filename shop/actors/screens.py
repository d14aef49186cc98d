"""The screens a customer sees: text plus inline keyboard, in the customer's language.

Callback data is short and positional (``verb`` or ``verb:arg``); whatever a button
names is checked again by the handler, because callback data is customer input.
"""

from __future__ import annotations

import html

import attrs

from ..telegram.keyboards import button, keyboard
from ..telegram.texts import LANGUAGES, Texts
from ..telegram.types import InlineKeyboardMarkup

LANGUAGE_NAMES = {"en": "English", "ru": "Русский", "uk": "Українська"}


@attrs.frozen
class Screen:
    name: str
    text: str
    keyboard: InlineKeyboardMarkup | None = None


def main_menu(t: Texts, lang: str, *, greet: str | None = None) -> Screen:
    text = t(lang, "menu.greeting", name=html.escape(greet)) if greet else t(lang, "menu.title")
    return Screen(
        "main",
        text,
        keyboard(
            [button(t(lang, "btn.buy"), "buy")],
            [button(t(lang, "btn.subscription"), "sub"), button(t(lang, "btn.balance"), "bal")],
            [button(t(lang, "btn.help"), "help"), button(t(lang, "btn.language"), "lang")],
        ),
    )


def back_to_menu(t: Texts, lang: str) -> InlineKeyboardMarkup:
    return keyboard([button(t(lang, "btn.back"), "menu")])


def help_screen(t: Texts, lang: str) -> Screen:
    return Screen("help", t(lang, "help.text"), back_to_menu(t, lang))


def language_screen(t: Texts, lang: str) -> Screen:
    choices = [
        button(("• " if code == lang else "") + LANGUAGE_NAMES[code], f"lang:{code}")
        for code in LANGUAGES
    ]
    return Screen(
        "lang", t(lang, "language.choose"), keyboard(choices, [button(t(lang, "btn.back"), "menu")])
    )


def soon_screen(t: Texts, lang: str, name: str) -> Screen:
    return Screen(name, t(lang, "soon.text"), back_to_menu(t, lang))
