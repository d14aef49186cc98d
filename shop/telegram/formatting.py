"""Dates and amounts as customers read them: their language, the shop's time zone."""

from __future__ import annotations

import datetime as dt
import html
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time

from ..money import format_money

if TYPE_CHECKING:  # a type only: the telegram layer does not import the store
    from ..store.subscriptions import SubscriptionRow


def when(moment: dt.datetime, zone: ZoneInfo, language: str) -> str:
    """``Dec 1, 2026 12:00 PM (Europe/Berlin)``, in the customer's language."""
    local = moment.astimezone(zone)
    day = format_date(local, format="medium", locale=language)
    time = format_time(local, format="short", tzinfo=zone, locale=language)
    return f"{day} {time} ({zone.key})"


def money(minor: int, currency: str, language: str) -> str:
    return format_money(minor, currency, language)


def minute(moment: dt.datetime, zone: dt.tzinfo) -> str:
    """``2026-12-01 12:00`` in ``zone``: for operators, who read many at a glance."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def subscription_summary(sub: SubscriptionRow | None, now: dt.datetime, zone: dt.tzinfo) -> str:
    """A subscription for operators (HTML): ``active until … (plan)``, ``expired …``."""
    if sub is None:
        return "none"
    plan = f" ({html.escape(sub.plan_id)})" if sub.plan_id else ""
    if sub.lifetime:
        return f"♾ lifetime{plan}"
    if sub.expires_at is not None and sub.active(now):
        return f"active until {minute(sub.expires_at, zone)}{plan}"
    return f"expired {minute(sub.expires_at, zone) if sub.expires_at else '—'}{plan}"
