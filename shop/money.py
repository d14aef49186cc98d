"""Money: integer minor units per currency, never floats.

A price is ``(minor, currency)``: whole Stars for ``XTR``, cents for ``USD``, kopecks for
``RUB``. Decimal strings (``"299.00"``) are how operators write prices and how providers
and the operator API show amounts; :func:`to_minor` and :func:`to_decimal` convert
exactly, and refuse amounts finer than the currency allows.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency, format_decimal

#: Currencies the shop accepts, with their number of decimal places.
EXPONENTS: dict[str, int] = {
    "XTR": 0,  # Telegram Stars
    "RUB": 2,
    "USD": 2,
    "EUR": 2,
    "UAH": 2,
    "KZT": 2,
    "BYN": 2,
    "GBP": 2,
    "TRY": 2,
    "UZS": 2,
    "USDT": 6,
    "TON": 9,
}

STARS = "XTR"


class MoneyError(ValueError):
    """Raised for an unknown currency or an amount the currency cannot express."""


def exponent(currency: str) -> int:
    try:
        return EXPONENTS[currency]
    except KeyError:
        raise MoneyError(f"unknown currency {currency!r}") from None


def to_minor(amount: str | int | Decimal, currency: str) -> int:
    """``"299.00" RUB`` -> ``29900``; exact or an error, never rounded."""
    places = exponent(currency)
    if isinstance(amount, bool | float):
        raise MoneyError("amounts are written as strings or integers, never floats")
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise MoneyError(f"{amount!r} is not a number") from None
    if not value.is_finite():
        raise MoneyError(f"{amount!r} is not a number")
    minor = value.scaleb(places)
    if minor != minor.to_integral_value():
        raise MoneyError(f"{amount} {currency} has more than {places} decimal places")
    return int(minor)


def to_decimal(minor: int, currency: str) -> Decimal:
    """``29900 RUB`` -> ``Decimal("299.00")``."""
    places = exponent(currency)
    return Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def decimal_string(minor: int, currency: str) -> str:
    return str(to_decimal(minor, currency))


def format_money(minor: int, currency: str, language: str) -> str:
    """For people: ``250 ⭐``, ``299,00 ₽``, ``$3.49``, in the customer's language."""
    value = to_decimal(minor, currency)
    if currency == STARS:
        return f"{format_decimal(value, locale=language)} ⭐"
    if currency in ("USDT", "TON"):
        return f"{format_decimal(value.normalize(), locale=language)} {currency}"
    return str(format_currency(value, currency, locale=language))
