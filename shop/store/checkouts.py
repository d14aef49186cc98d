"""Payments with an external provider: the checkout, and reconciliation's schedule.

A pending provider payment is asked about on a schedule kept in the database
(``payments.next_check_at``), so it survives restarts; a due check is claimed with
``SKIP LOCKED`` and a lease, so two instances do not both take it.
"""

from __future__ import annotations

import datetime as dt

from psycopg.rows import class_row

from .payments import _COLUMNS, PaymentRow
from .pool import Connection

#: When a pending payment is asked about, counted from its creation; then hourly until
#: it stops being payable.
CHECKS_AFTER = tuple(dt.timedelta(minutes=m) for m in (1, 2, 5, 15, 60))
#: A claimed check is not handed out again for this long (another instance, a retry).
CHECK_LEASE = dt.timedelta(minutes=5)


def check_times(created_at: dt.datetime, expires_at: dt.datetime) -> list[dt.datetime]:
    """When a pending payment is asked about: 1, 2, 5, 15, 60 minutes after creation, then
    hourly, then one last time when it stops being payable."""
    times = [created_at + after for after in CHECKS_AFTER]
    hourly = created_at + dt.timedelta(hours=2)
    while hourly < expires_at:
        times.append(hourly)
        hourly += dt.timedelta(hours=1)
    return [t for t in times if t < expires_at] + [expires_at]


def open_checkout(
    conn: Connection,
    payment_id: str,
    provider_payment_id: str,
    url: str,
    first_check: dt.datetime,
) -> None:
    conn.execute(
        "UPDATE payments SET provider_payment_id = %s, checkout_url = %s, next_check_at = %s"
        " WHERE id = %s AND status = 'pending'",
        (provider_payment_id, url, first_check, payment_id),
    )


def reusable(
    conn: Connection,
    telegram_id: int,
    provider: str,
    product_kind: str,
    product_id: str,
    currency: str,
    now: dt.datetime,
    gift: bool = False,
) -> PaymentRow | None:
    """A pending payment for the same thing by the same method: pressing "pay" again
    reuses it, and its idempotency key, rather than opening a second one. Not when a
    discount came since (the customer would pay the full price)."""
    with conn.cursor(row_factory=class_row(PaymentRow)) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM payments WHERE telegram_id = %s AND provider = %s"
            " AND product_kind = %s AND product_id = %s AND currency = %s AND gift = %s"
            " AND status = 'pending' AND expires_at > %s + interval '1 hour'"
            " AND NOT EXISTS (SELECT FROM discounts d WHERE d.telegram_id = payments.telegram_id"
            "  AND d.used_at IS NULL AND d.payment_id IS DISTINCT FROM payments.id)"
            " ORDER BY created_at DESC LIMIT 1",
            (telegram_id, provider, product_kind, product_id, currency, gift, now),
        )
        return cur.fetchone()


def schedule_check(conn: Connection, payment_id: str, checks: int, at: dt.datetime | None) -> None:
    conn.execute(
        "UPDATE payments SET checks = %s, next_check_at = %s WHERE id = %s",
        (checks, at, payment_id),
    )


def claim_due_checks(conn: Connection, now: dt.datetime, limit: int) -> list[str]:
    """Payments whose check is due, leased so no other instance takes them meanwhile."""
    rows = conn.execute(
        "UPDATE payments SET next_check_at = %s WHERE id IN ("
        " SELECT id FROM payments WHERE next_check_at <= %s AND status = 'pending'"
        " ORDER BY next_check_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id",
        (now + CHECK_LEASE, now, limit),
    ).fetchall()
    return [str(row[0]) for row in rows]


def next_check(conn: Connection) -> dt.datetime | None:
    row = conn.execute(
        "SELECT min(next_check_at) FROM payments WHERE status = 'pending'"
    ).fetchone()
    return row[0] if row else None
