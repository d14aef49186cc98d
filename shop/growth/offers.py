"""What a code gives, as an operator writes it (the promos and vouchers APIs, and
``/newpromo`` in Telegram), checked before anything is stored.

``kind`` ``days`` (a whole number of days, 1-3650), ``balance`` (an amount as a decimal
string or whole Stars, in ``currency``, default XTR) or ``discount`` (a whole percent,
1-99: a purchase is never free by code).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import attrs

from ..money import STARS, MoneyError, to_minor

KINDS = ("days", "balance", "discount")
_CODE = re.compile(r"[A-Za-z0-9_-]{3,32}")


class Invalid(ValueError):
    """An offer the shop will not store; the text says why."""


@attrs.frozen
class Offer:
    kind: str
    value: int  # days, minor units or percent
    currency: str | None


def checked_offer(kind: Any, value: Any, currency: Any = None) -> Offer:
    if kind not in KINDS:
        raise Invalid(f"kind must be one of: {', '.join(KINDS)}")
    if kind == "balance":
        currency = STARS if currency is None else currency
        if not isinstance(currency, str) or isinstance(value, bool | float):
            raise Invalid('value must be an amount such as "100" with a currency')
        try:
            minor = to_minor(value, currency.upper())
        except MoneyError as exc:
            raise Invalid(f"value: {exc}") from None
        if not 0 < minor <= 10**12:
            raise Invalid("value must be above zero")
        return Offer(kind, minor, currency.upper())
    if currency is not None:
        raise Invalid("currency is only for kind balance")
    whole = _whole(value)
    limit = 3650 if kind == "days" else 99
    if whole is None or not 1 <= whole <= limit:
        raise Invalid(f"value must be a whole number from 1 to {limit}")
    return Offer(kind, whole, None)


def checked_code(code: Any) -> str:
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise Invalid("code must be 3-32 letters, digits, - or _")
    return code.upper()


def checked_moment(value: Any, name: str, now: dt.datetime) -> dt.datetime | None:
    """An ISO 8601 time with its offset, in the future; None when not given."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{name} must be an ISO 8601 time such as 2027-01-31T00:00:00Z") from None
    if moment.tzinfo is None:
        raise Invalid(f"{name} must carry its offset (Z or +03:00)")
    if moment <= now:
        raise Invalid(f"{name} is in the past")
    return moment


def whole_in(value: Any, name: str, low: int, high: int) -> int:
    whole = _whole(value)
    if whole is None or not low <= whole <= high:
        raise Invalid(f"{name} must be a whole number from {low} to {high}")
    return whole


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        return int(value)
    return None
