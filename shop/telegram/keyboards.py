"""Building inline keyboards; callback data is checked against Telegram's 64-byte limit."""

from __future__ import annotations

from collections.abc import Sequence

from .types import InlineKeyboardButton, InlineKeyboardMarkup

MAX_CALLBACK_BYTES = 64


def button(text: str, data: str) -> InlineKeyboardButton:
    if not 1 <= len(data.encode()) <= MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data must be 1-64 bytes: {data!r}")
    return InlineKeyboardButton(text=text, callback_data=data)


def link(text: str, url: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, url=url)


def keyboard(*rows: Sequence[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(tuple(tuple(row) for row in rows if row))
