"""Telegram Stars charges beyond the one a payment expects, and the transactions cursor.

Telegram can charge one invoice twice (two devices, rapid taps). The second charge is
stored as a payment of its own, ``duplicate`` (``parent_id`` = the payment it repeats,
its own ``telegram_payment_charge_id``, nothing to grant), so no charge id Telegram
reported is ever missing from the database. Its refund is tried at once and then by the
hourly sweep (``next_check_at``, ``checks``); it ends ``refunded``, or after
:data:`REFUND_TRIES` failed tries ``credited`` to the customer's balance.
"""

from __future__ import annotations

import datetime as dt
import uuid

from psycopg.rows import class_row

from . import ledger, notices
from .notices import Notice
from .payments import _COLUMNS, PaymentRow, new_reference
from .pool import Connection
from .refunds import note_problem

#: How many times a duplicate charge's refund is tried before it goes to the balance.
REFUND_TRIES = 5
#: How long after a failed try the next one is due (the hourly sweep takes it).
RETRY_AFTER = dt.timedelta(hours=1)


def record_duplicate(
    conn: Connection, original_id: str, charge_id: str, amount: int, now: dt.datetime
) -> PaymentRow | None:
    """Store a second charge for ``original_id``; None if this charge is known already."""
    row = _record_charge(conn, original_id, charge_id, amount, "duplicate", now + RETRY_AFTER, now)
    if row is not None:
        note_problem(conn, row.id, "duplicate charge", amount, row.currency, now)
    return row


def record_refunded_charge(
    conn: Connection, parent_id: str, charge_id: str, now: dt.datetime, holder: int
) -> Notice | None:
    """A refund of a charge of ``parent_id``'s invoice that we never heard of (a renewal,
    or a second charge, whose ``successful_payment`` has not arrived): stored refunded, so
    that its success, if it comes later, grants nothing. None if the charge is known."""
    with conn.cursor() as cur:
        cur.execute("SELECT amount FROM payments WHERE id = %s", (parent_id,))
        found = cur.fetchone()
    if found is None:
        return None
    row = _record_charge(conn, parent_id, charge_id, int(found[0]), "refunded", None, now)
    if row is None:
        return None
    detail = {"amount": row.amount, "currency": row.currency, "had_subscription": False}
    return notices.owe_about_payment(conn, row.telegram_id, "refunded", row.id, detail, now, holder)


def _record_charge(
    conn: Connection,
    parent_id: str,
    charge_id: str,
    amount: int,
    status: str,
    retry_at: dt.datetime | None,
    now: dt.datetime,
) -> PaymentRow | None:
    with conn.cursor(row_factory=class_row(PaymentRow)) as cur:
        cur.execute(
            "INSERT INTO payments (id, telegram_id, provider, product_kind, product_id, title,"
            " days, credit, amount, currency, recurring, parent_id, status, created_at,"
            " updated_at, expires_at, telegram_payment_charge_id, paid_amount, paid_currency,"
            " idempotency_key, next_check_at)"
            " SELECT %(id)s, telegram_id, provider, product_kind, product_id, title, 0, '{}',"
            " %(amount)s, currency, FALSE, id, %(status)s, %(now)s, %(now)s, %(now)s,"
            " %(charge)s, %(amount)s, currency, %(key)s, %(retry)s"
            " FROM payments WHERE id = %(parent)s"
            f" ON CONFLICT (telegram_payment_charge_id) DO NOTHING RETURNING {_COLUMNS}",
            {
                "id": new_reference(),
                "amount": amount,
                "status": status,
                "now": now,
                "charge": charge_id,
                "key": str(uuid.uuid4()),
                "retry": retry_at,
                "parent": parent_id,
            },
        )
        return cur.fetchone()


def due_refunds(conn: Connection, now: dt.datetime, limit: int) -> list[str]:
    """Duplicate charges whose refund should be tried again, leased for an hour."""
    rows = conn.execute(
        "UPDATE payments SET next_check_at = %s WHERE id IN ("
        " SELECT id FROM payments WHERE status = 'duplicate' AND next_check_at <= %s"
        " ORDER BY next_check_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id",
        (now + RETRY_AFTER, now, limit),
    ).fetchall()
    return [str(row[0]) for row in rows]


def refunded(conn: Connection, payment_id: str, now: dt.datetime, holder: int) -> Notice | None:
    """duplicate -> refunded, and the customer told; None if it was not a duplicate."""
    settled = _settle(conn, payment_id, "refunded", now)
    if settled is None:
        return None
    telegram_id, amount, currency, title = settled
    detail = {"title": title, "amount": amount, "currency": currency}
    return notices.owe_about_payment(
        conn, telegram_id, "duplicate_refunded", payment_id, detail, now, holder
    )


def refund_failed(conn: Connection, payment_id: str) -> int:
    """Count a failed try; returns the tries so far (0 if it is no longer a duplicate)."""
    row = conn.execute(
        "UPDATE payments SET checks = checks + 1 WHERE id = %s AND status = 'duplicate'"
        " RETURNING checks",
        (payment_id,),
    ).fetchone()
    return int(row[0]) if row else 0


def credit(conn: Connection, payment_id: str, now: dt.datetime, holder: int) -> Notice | None:
    """duplicate -> credited: the Stars go to the customer's balance, once."""
    settled = _settle(conn, payment_id, "credited", now)
    if settled is None:
        return None
    telegram_id, amount, currency, title = settled
    balance = ledger.credit(conn, telegram_id, currency, amount, "refund", payment_id, now)
    detail = {"title": title, "amount": amount, "currency": currency, "balance": balance}
    return notices.owe_about_payment(
        conn, telegram_id, "duplicate_credited", payment_id, detail, now, holder
    )


def _settle(
    conn: Connection, payment_id: str, status: str, now: dt.datetime
) -> tuple[int, int, str, str] | None:
    """duplicate -> ``status``: (customer, amount, currency, title), or None if it was not
    a duplicate any more (the other path settled it first)."""
    row = conn.execute(
        "UPDATE payments SET status = %s, updated_at = %s, next_check_at = NULL"
        " WHERE id = %s AND status = 'duplicate'"
        " RETURNING telegram_id, amount, currency, title",
        (status, now, payment_id),
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]), str(row[2]), str(row[3]))


def transactions_seen(conn: Connection, bot_id: int) -> int:
    """How many of the bot's Stars transactions the sweep has looked at."""
    row = conn.execute(
        "SELECT seen FROM star_transactions_cursor WHERE bot_id = %s", (bot_id,)
    ).fetchone()
    return int(row[0]) if row else 0


def saw_transactions(conn: Connection, bot_id: int, seen: int) -> None:
    conn.execute(
        "INSERT INTO star_transactions_cursor (bot_id, seen) VALUES (%s, %s)"
        " ON CONFLICT (bot_id) DO UPDATE"
        " SET seen = GREATEST(star_transactions_cursor.seen, EXCLUDED.seen)",
        (bot_id, seen),
    )
