"""Subscriptions: one per customer; every change of expiry is one SQL statement.

A renewal sets ``expires_at = GREATEST(expires_at, now) + duration`` in the database;
nothing reads an expiry into Python, adds to it and writes it back. A lifetime
subscription (set by an operator) is never changed by arithmetic.
"""

from __future__ import annotations

import datetime as dt

import attrs
from psycopg.rows import class_row

from .pool import Connection


@attrs.frozen
class SubscriptionRow:
    status: str
    expires_at: dt.datetime | None
    lifetime: bool
    plan_id: str | None
    period: int

    def active(self, now: dt.datetime) -> bool:
        return self.lifetime or (self.expires_at is not None and self.expires_at > now)


_COLUMNS = "status, expires_at, lifetime, plan_id, period"


def load(conn: Connection, telegram_id: int, *, lock: bool = False) -> SubscriptionRow | None:
    """``lock``: FOR UPDATE, for a change that reads what it is about to change."""
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM subscriptions WHERE telegram_id = %s"
            + (" FOR UPDATE" if lock else ""),
            (telegram_id,),
        )
        return cur.fetchone()


def load_with_auto_renew(conn: Connection, telegram_id: int) -> tuple[SubscriptionRow | None, bool]:
    """What My subscription shows: the subscription, and whether auto-renew is on."""
    auto_renew = conn.execute(
        "SELECT auto_renew FROM customers WHERE telegram_id = %s", (telegram_id,)
    ).fetchone()
    return load(conn, telegram_id), bool(auto_renew and auto_renew[0])


def extend(
    conn: Connection, telegram_id: int, days: int, plan_id: str, now: dt.datetime
) -> SubscriptionRow:
    """Add ``days`` from the later of now and the current expiry; a new period begins."""
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        cur.execute(
            "INSERT INTO subscriptions (telegram_id, status, expires_at, plan_id, started_at,"
            " updated_at) VALUES (%(id)s, 'active', %(now)s + make_interval(days => %(days)s),"
            " %(plan)s, %(now)s, %(now)s)"
            " ON CONFLICT (telegram_id) DO UPDATE SET"
            " expires_at = CASE WHEN subscriptions.lifetime THEN subscriptions.expires_at"
            "   ELSE GREATEST(subscriptions.expires_at, %(now)s)"
            "        + make_interval(days => %(days)s) END,"
            " status = 'active', plan_id = EXCLUDED.plan_id,"
            " period = subscriptions.period + 1, updated_at = %(now)s"
            f" RETURNING {_COLUMNS}",
            {"id": telegram_id, "days": days, "plan": plan_id, "now": now},
        )
        row = cur.fetchone()
    assert row is not None
    return row


def add_days(
    conn: Connection, telegram_id: int, days: int, plan_id: str | None, now: dt.datetime
) -> SubscriptionRow:
    """Days that are not a purchase (an operator's grant, a code, a referral reward): from
    the later of now and the current end, a lifetime left alone, and no new period (so a
    panel adds no traffic for them); ``plan_id`` only for a customer who had none."""
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        cur.execute(
            "INSERT INTO subscriptions (telegram_id, status, expires_at, plan_id, started_at,"
            " updated_at) VALUES (%(id)s, 'active', %(now)s + make_interval(days => %(days)s),"
            " %(plan)s, %(now)s, %(now)s) ON CONFLICT (telegram_id) DO UPDATE SET"
            " expires_at = CASE WHEN subscriptions.lifetime THEN subscriptions.expires_at"
            "   ELSE GREATEST(subscriptions.expires_at, %(now)s)"
            "        + make_interval(days => %(days)s) END,"
            " plan_id = COALESCE(subscriptions.plan_id, EXCLUDED.plan_id),"
            f" status = 'active', updated_at = %(now)s RETURNING {_COLUMNS}",
            {"id": telegram_id, "days": days, "plan": plan_id, "now": now},
        )
        row = cur.fetchone()
    assert row is not None
    return row


def shorten(
    conn: Connection, telegram_id: int, days: int, now: dt.datetime
) -> SubscriptionRow | None:
    """Take back ``days`` (a refund), never below now; a lifetime one is left alone."""
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        cur.execute(
            "UPDATE subscriptions SET"
            " expires_at = GREATEST(expires_at - make_interval(days => %(days)s), %(now)s),"
            " status = CASE WHEN expires_at - make_interval(days => %(days)s) > %(now)s"
            "   THEN status ELSE 'expired' END,"
            " updated_at = %(now)s"
            " WHERE telegram_id = %(id)s AND NOT lifetime AND expires_at IS NOT NULL"
            f" RETURNING {_COLUMNS}",
            {"id": telegram_id, "days": days, "now": now},
        )
        return cur.fetchone()


def take_trial(
    conn: Connection, telegram_id: int, days: int, now: dt.datetime
) -> SubscriptionRow | None:
    """Grant the trial once per customer, ever, and only to one who never had access."""
    claimed = conn.execute(
        "UPDATE customers SET trial_used = TRUE WHERE telegram_id = %s AND NOT trial_used"
        " AND NOT EXISTS (SELECT 1 FROM subscriptions WHERE telegram_id = %s) RETURNING 1",
        (telegram_id, telegram_id),
    ).fetchone()
    if claimed is None:
        return None
    return extend(conn, telegram_id, days, "trial", now)
