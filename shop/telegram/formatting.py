"""Dates and amounts as customers read them: their language, the shop's time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from ..money import format_money


def when(moment: dt.datetime, zone: ZoneInfo, language: str) -> str:
    """``1 Dec 2026, 12:00 (Europe/Berlin)`` in the customer's language."""
    local = moment.astimezone(zone)
    text = format_datetime(local, format="medium", tzinfo=zone, locale=language)
    return f"{text} ({zone.key})"


def money(minor: int, currency: str, language: str) -> str:
    return format_money(minor, currency, language)
