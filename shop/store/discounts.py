"""Discounts from promo codes: held for a customer's next purchase, applied when it is created.

A customer has at most one discount waiting (``discounts``, one row per customer). The
payment created next carries it (``payments.discount_percent``, its amount already
reduced) and reserves it; it is spent when that payment completes
(``rewards.spend_discount``), so a payment never paid leaves it for the next one.
"""

from __future__ import annotations

import datetime as dt

import attrs

from . import ledger, payments
from .payments import NewPayment, PaymentRow
from .pool import Connection


def discount_for(conn: Connection, telegram_id: int) -> int | None:
    """The percent a customer's next purchase is discounted by, if any."""
    row = conn.execute(
        "SELECT percent FROM discounts WHERE telegram_id = %s AND used_at IS NULL",
        (telegram_id,),
    ).fetchone()
    return None if row is None else int(row[0])


def create_payment(
    conn: Connection, new: NewPayment, now: dt.datetime, payable_for: dt.timedelta
) -> PaymentRow:
    """Store a pending payment with the customer's discount applied, if they have one
    (not to a Telegram Stars subscription, which would repeat it every month). The
    discount is reserved by this payment and spent when it completes; a payment created
    later takes the reservation over."""
    percent = None if new.recurring else discount_for(conn, new.telegram_id)
    if percent:
        # Rounded in the customer's favour, never below one minor unit.
        amount = max(1, new.amount * (100 - percent) // 100)
        new = attrs.evolve(new, amount=amount, discount_percent=percent)
    payment = payments.create(conn, new, now, payable_for)
    if percent:
        conn.execute(
            "UPDATE discounts SET payment_id = %s WHERE telegram_id = %s AND used_at IS NULL",
            (payment.id, new.telegram_id),
        )
    return payment


def balances_and_discount(conn: Connection, telegram_id: int) -> tuple[dict[str, int], int | None]:
    """What a plan's screen needs of the customer, in one unit of work."""
    return ledger.balances(conn, telegram_id), discount_for(conn, telegram_id)
