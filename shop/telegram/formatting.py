"""Dates and amounts as customers read them: their language, the shop's time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time

from ..money import format_money


def when(moment: dt.datetime, zone: ZoneInfo, language: str) -> str:
    """``Dec 1, 2026 12:00 PM (Europe/Berlin)``, in the customer's language."""
    local = moment.astimezone(zone)
    day = format_date(local, format="medium", locale=language)
    time = format_time(local, format="short", tzinfo=zone, locale=language)
    return f"{day} {time} ({zone.key})"


def money(minor: int, currency: str, language: str) -> str:
    return format_money(minor, currency, language)
