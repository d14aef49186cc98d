"""Refunds and problems: the end of a payment that went back, or went wrong.

A refund wins in every state money could be in (see :func:`refund`); a payment paid short
or in another currency ends ``problem`` and is listed for operators, never silently
expired: money was taken.
"""

from __future__ import annotations

import datetime as dt

import attrs
from psycopg.rows import class_row

from . import codes, ledger, notices, subscriptions
from .notices import Notice
from .payments import _COLUMNS, REFUNDABLE, PaymentRow, _iso
from .pool import Connection
from .subscriptions import SubscriptionRow


@attrs.frozen
class Refund:
    payment: PaymentRow
    reversed: bool  # it had been granted, and the grant was taken back
    subscription: SubscriptionRow | None
    taken_back: dict[str, int]
    shortfall: dict[str, int]  # credit already spent, so not taken back
    notice: Notice | None


def refund(
    conn: Connection,
    payment_id: str,
    now: dt.datetime,
    holder: int,
    charge_id: str | None = None,
) -> Refund | None:
    """Mark a payment refunded, reversing its grant if it had one; None if it cannot be.

    A refund wins in every state money could be in: reported before the success, the
    payment ends refunded and a success after it grants nothing (``PAYABLE`` excludes
    ``refunded``); ``charge_id`` records the Stars charge so that its late
    ``successful_payment`` is known. Access is shortened by the days paid for (never
    below now); a balance credit is taken back as far as the balance allows (never below
    zero), and what was already spent is recorded on the payment as a problem.
    """
    with conn.cursor(row_factory=class_row(PaymentRow)) as cur:
        cur.execute(
            "UPDATE payments SET status = 'refunded', updated_at = %s, next_check_at = NULL,"
            " telegram_payment_charge_id = COALESCE(telegram_payment_charge_id, %s)"
            f" WHERE id = %s AND status = ANY(%s) RETURNING {_COLUMNS}",
            (now, charge_id, payment_id, list(REFUNDABLE)),
        )
        payment = cur.fetchone()
    if payment is None:
        return None
    granted = conn.execute(
        "UPDATE grants SET reversed_at = %s WHERE payment_id = %s AND reversed_at IS NULL"
        " RETURNING 1",
        (now, payment_id),
    ).fetchone()
    subscription, taken, shortfall = None, {}, {}
    if granted is not None:
        if payment.gift:  # the days were never the buyer's: the unused code stops
            if not codes.revoke_gift(conn, payment.id, now):
                note_problem(conn, payment.id, "refunded gift already redeemed", None, None, now)
        elif payment.product_kind == "plan" and payment.days:
            subscription = subscriptions.shorten(conn, payment.telegram_id, payment.days, now)
        for currency, amount in payment.credit.items():
            taken[currency] = ledger.take_back(
                conn, payment.telegram_id, currency, amount, payment.id, now
            )
            if taken[currency] < amount:
                shortfall[currency] = amount - taken[currency]
        if payment.provider == "balance":  # the money goes back where it came from
            ledger.credit(
                conn, payment.telegram_id, payment.currency, payment.amount, "refund",
                payment.id, now,
            )  # fmt: skip
    for currency, missing in shortfall.items():
        note_problem(conn, payment.id, "refund shortfall", missing, currency, now)
    detail = {
        "amount": payment.amount,
        "currency": payment.currency,
        "had_subscription": subscription is not None,
        "expires_at": _iso(subscription.expires_at) if subscription else None,
    }
    notice = notices.owe_about_payment(
        conn, payment.telegram_id, "refunded", payment.id, detail, now, holder
    )
    return Refund(payment, granted is not None, subscription, taken, shortfall, notice)


def note_problem(
    conn: Connection,
    payment_id: str,
    problem: str,
    amount: int | None,
    currency: str | None,
    now: dt.datetime,
) -> None:
    """Record what an operator must look at (``GET /admin/api/problems`` lists it)."""
    conn.execute(
        "UPDATE payments SET problem = %s, problem_amount = %s, problem_currency = %s,"
        " problem_at = %s WHERE id = %s",
        (problem, amount, currency, now, payment_id),
    )


def mark_problem(
    conn: Connection,
    payment_id: str,
    problem: str,
    amount: int | None,
    currency: str,
    now: dt.datetime,
) -> bool:
    """pending -> problem: money arrived but short or in another currency; False if the
    payment was not pending (so the problem was already recorded, or it moved on)."""
    row = conn.execute(
        "UPDATE payments SET status = 'problem', updated_at = %s, next_check_at = NULL,"
        " paid_amount = %s, paid_currency = %s WHERE id = %s AND status = 'pending'"
        " RETURNING 1",
        (now, amount, currency, payment_id),
    ).fetchone()
    if row is None:
        return False
    note_problem(conn, payment_id, problem, amount, currency, now)
    return True
