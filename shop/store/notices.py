"""What the shop owes customers to hear about their subscription, decided set-based in SQL.

Each notice is (customer, kind, subscription period): unique, so a job that runs again
or on two instances decides nothing twice. A notice is written by the statement that
decides it and marked sent once handed to the outbox; :func:`unsent` re-checks it
against the subscription as it is now, so a renewal in between cancels a reminder.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import attrs
from psycopg.rows import class_row

from .pool import Connection

REMINDER_DAYS = 3


def expire_ended(conn: Connection, now: dt.datetime) -> int:
    """Mark every ended subscription expired and owe its customer an 'expired' notice."""
    rows = conn.execute(
        "WITH ended AS ("
        " UPDATE subscriptions SET status = 'expired', updated_at = %(now)s"
        " WHERE status = 'active' AND NOT lifetime AND expires_at <= %(now)s"
        " RETURNING telegram_id, period, expires_at)"
        " INSERT INTO notices (telegram_id, kind, period, created_at, detail)"
        " SELECT telegram_id, 'expired', period, %(now)s,"
        "  jsonb_build_object('expires_at', expires_at) FROM ended"
        " ON CONFLICT DO NOTHING",
        {"now": now},
    )
    return rows.rowcount


def owe_reminders(conn: Connection, now: dt.datetime, zone: str) -> int:
    """Owe a reminder to every active subscription ending within three local days.

    Days count in the shop's time zone: ``remind_3d`` when 3 (or, after downtime, 2)
    days are left, ``remind_1d`` the day before, ``remind_0d`` on the day. Customers who
    blocked the bot are skipped.
    """
    rows = conn.execute(
        "INSERT INTO notices (telegram_id, kind, period, created_at, detail)"
        " SELECT s.telegram_id,"
        "  CASE WHEN d.left = 0 THEN 'remind_0d' WHEN d.left = 1 THEN 'remind_1d'"
        "   ELSE 'remind_3d' END,"
        "  s.period, %(now)s, jsonb_build_object('expires_at', s.expires_at)"
        " FROM subscriptions s JOIN customers c ON c.telegram_id = s.telegram_id,"
        " LATERAL (SELECT (s.expires_at AT TIME ZONE %(zone)s)::date"
        "   - (%(now)s::timestamptz AT TIME ZONE %(zone)s)::date AS left) d"
        " WHERE s.status = 'active' AND NOT s.lifetime AND s.expires_at > %(now)s"
        " AND s.expires_at <= %(now)s + make_interval(days => %(days)s + 1)"
        " AND d.left <= %(days)s AND NOT c.blocked"
        " ON CONFLICT DO NOTHING",
        {"now": now, "zone": zone, "days": REMINDER_DAYS},
    )
    return rows.rowcount


@attrs.frozen
class RenewalDue:
    telegram_id: int
    plan_id: str | None
    period: int


def claim_renewals(conn: Connection, now: dt.datetime) -> list[RenewalDue]:
    """Subscriptions with auto-renew on ending within 24 h, each claimed once per period."""
    with conn.cursor(row_factory=class_row(RenewalDue)) as cur:
        cur.execute(
            "WITH due AS ("
            " SELECT s.telegram_id, s.plan_id, s.period FROM subscriptions s"
            " JOIN customers c ON c.telegram_id = s.telegram_id"
            " WHERE c.auto_renew AND s.status = 'active' AND NOT s.lifetime"
            " AND s.expires_at > %(now)s AND s.expires_at <= %(now)s + interval '24 hours'),"
            " claimed AS (INSERT INTO notices (telegram_id, kind, period, created_at, sent_at)"
            " SELECT telegram_id, 'renew_attempt', period, %(now)s, %(now)s FROM due"
            " ON CONFLICT DO NOTHING RETURNING telegram_id, period)"
            " SELECT due.telegram_id, due.plan_id, due.period FROM due"
            " JOIN claimed USING (telegram_id, period)",
            {"now": now},
        )
        return cur.fetchall()


def owe(
    conn: Connection,
    telegram_id: int,
    kind: str,
    period: int,
    now: dt.datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO notices (telegram_id, kind, period, created_at, detail)"
        " VALUES (%s, %s, %s, %s, %s::jsonb) ON CONFLICT DO NOTHING",
        (telegram_id, kind, period, now, _json(detail or {})),
    )


@attrs.frozen
class Notice:
    telegram_id: int
    kind: str
    period: int
    detail: dict[str, Any]
    language: str
    blocked: bool
    current_period: int | None
    status: str | None
    expires_at: dt.datetime | None

    @property
    def stale(self) -> bool:
        """The subscription moved on (renewed, or expired after all) since it was decided."""
        if self.current_period != self.period:
            return True
        if self.kind == "expired":
            return self.status != "expired"
        return self.status != "active"


#: How long a deliverer holds the notices it took before another may retry them.
CLAIM_LEASE = dt.timedelta(minutes=10)


def claim_unsent(conn: Connection, now: dt.datetime, limit: int) -> list[Notice]:
    """Take up to ``limit`` notices to deliver, oldest first.

    Each is leased to this caller, so two deliverers (two jobs at once, two instances)
    never hand the same notice over twice; one that crashed leaves it to the next after
    the lease.
    """
    with conn.cursor(row_factory=class_row(Notice)) as cur:
        cur.execute(
            "WITH taken AS ("
            " UPDATE notices SET claimed_until = %(lease)s"
            " WHERE (telegram_id, kind, period) IN ("
            "  SELECT telegram_id, kind, period FROM notices WHERE sent_at IS NULL"
            "  AND (claimed_until IS NULL OR claimed_until < %(now)s)"
            "  ORDER BY created_at, telegram_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
            " RETURNING telegram_id, kind, period, detail, created_at)"
            " SELECT n.telegram_id, n.kind, n.period, n.detail, c.language, c.blocked,"
            " s.period AS current_period, s.status, s.expires_at"
            " FROM taken n JOIN customers c ON c.telegram_id = n.telegram_id"
            " LEFT JOIN subscriptions s ON s.telegram_id = n.telegram_id"
            " ORDER BY n.created_at, n.telegram_id",
            {"lease": now + CLAIM_LEASE, "now": now, "limit": limit},
        )
        return cur.fetchall()


def mark_sent(conn: Connection, notices: Sequence[Notice], now: dt.datetime) -> None:
    conn.execute(
        "UPDATE notices n SET sent_at = %s FROM unnest(%s::bigint[], %s::text[], %s::int[])"
        " AS done(telegram_id, kind, period)"
        " WHERE (n.telegram_id, n.kind, n.period) = (done.telegram_id, done.kind, done.period)",
        (
            now,
            [n.telegram_id for n in notices],
            [n.kind for n in notices],
            [n.period for n in notices],
        ),
    )


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value, default=str)
