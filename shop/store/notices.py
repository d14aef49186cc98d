"""What the shop owes customers to hear, decided in the same SQL that decides the event.

A subscription notice is (customer, kind, subscription period), decided set-based; a
payment notice is (customer, kind, 0, payment id), written in the transaction that moves
the money. Both are unique, so a job that runs again, a replayed event or a second
instance decides nothing twice. A notice is leased to one deliverer (``claimed_until``,
``claimed_by``: a lease of a dead instance is void at once, see ``store.instance``) and
marked sent only once Telegram accepted it. :func:`claim_unsent` re-checks a
subscription notice against the subscription as it is now, so a renewal in between
cancels a reminder decided before it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import attrs
from psycopg.rows import class_row

from .instance import LIVE_INSTANCES
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
    _analyze_after(conn, rows.rowcount)
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
    _analyze_after(conn, rows.rowcount)
    return rows.rowcount


def _analyze_after(conn: Connection, owed: int) -> None:
    """Refresh the planner's figures after many notices were owed at once.

    The deliverer claims them right away, before autovacuum has noticed the table grew;
    planned on figures from when it was nearly empty, each claim sorted every unsent
    notice instead of reading the first few from ``notices_unsent_order`` (issue #15).
    Sampling the table costs tens of milliseconds; a day's notices cost a few seconds.
    """
    if owed >= 1000:
        conn.execute("ANALYZE notices")


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
    ref: str  # the payment a payment notice is about; '' for subscription notices
    detail: dict[str, Any]
    language: str
    blocked: bool
    current_period: int | None
    status: str | None
    expires_at: dt.datetime | None

    @property
    def stale(self) -> bool:
        """The subscription moved on (renewed, or expired after all) since it was decided."""
        if self.ref:
            return False  # about a payment: true whatever happened since
        if self.current_period != self.period:
            return True
        if self.kind == "expired":
            return self.status != "expired"
        return self.status != "active"


#: How long a deliverer holds the notices it took before another may retry them (when
#: the deliverer itself is alive: a dead instance's leases are void at once).
CLAIM_LEASE = dt.timedelta(minutes=10)

_NOTICE_COLUMNS = (
    "n.telegram_id, n.kind, n.period, n.ref, n.detail, c.language, c.blocked,"
    " s.period AS current_period, s.status, s.expires_at"
)
_NOTICE_JOINS = (
    " JOIN customers c ON c.telegram_id = n.telegram_id"
    " LEFT JOIN subscriptions s ON s.telegram_id = n.telegram_id"
)


# The rows of a batch of keys, found through the primary key. Joined on the whole key,
# the planner hashed the batch and scanned every notice for it: 10 ms per claim or mark
# of 200 at 10,000 notices, growing with the table. ``telegram_id = ANY(...)`` lets it
# look each customer up in the key instead (issue #15).
_BY_KEY = (
    "telegram_id = ANY(ARRAY(SELECT telegram_id FROM {batch}))"
    " AND (telegram_id, kind, period, ref) IN (SELECT telegram_id, kind, period, ref FROM {batch})"
)


def claim_unsent(conn: Connection, now: dt.datetime, limit: int, holder: int) -> list[Notice]:
    """Take up to ``limit`` notices to deliver, oldest first, leased to ``holder``.

    Free are those never leased, whose lease ran out, or whose holder is no longer
    alive; two deliverers (two jobs, two instances) never take the same notice at once.
    """
    with conn.cursor(row_factory=class_row(Notice)) as cur:
        cur.execute(
            f"WITH live AS ({LIVE_INSTANCES}), picked AS ("
            " SELECT telegram_id, kind, period, ref FROM notices WHERE sent_at IS NULL"
            " AND (claimed_until IS NULL OR claimed_until < %(now)s OR claimed_by IS NULL"
            "  OR claimed_by NOT IN (SELECT objid FROM live))"
            " ORDER BY created_at, telegram_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED),"
            " taken AS (UPDATE notices SET claimed_until = %(lease)s, claimed_by = %(holder)s"
            f" WHERE {_BY_KEY.format(batch='picked')}"
            " RETURNING telegram_id, kind, period, ref, detail, created_at)"
            f" SELECT {_NOTICE_COLUMNS} FROM taken n {_NOTICE_JOINS}"
            " ORDER BY n.created_at, n.telegram_id",
            {"lease": now + CLAIM_LEASE, "now": now, "limit": limit, "holder": holder},
        )
        return cur.fetchall()


def owe_about_payment(
    conn: Connection,
    telegram_id: int,
    kind: str,
    payment_id: str,
    detail: dict[str, Any],
    now: dt.datetime,
    holder: int,
) -> Notice | None:
    """Owe a notice about a payment, leased to ``holder`` who delivers it next; None if
    it was owed already (a replayed event)."""
    return owe_once(conn, telegram_id, kind, payment_id, detail, now, holder)


def owe_once(
    conn: Connection,
    telegram_id: int,
    kind: str,
    ref: str,
    detail: dict[str, Any],
    now: dt.datetime,
    holder: int,
) -> Notice | None:
    """Owe a notice about one event (``ref`` names it), leased to ``holder``; None if it
    was owed already, or the customer is not one of ours."""
    with conn.cursor(row_factory=class_row(Notice)) as cur:
        cur.execute(
            "WITH owed AS (INSERT INTO notices (telegram_id, kind, period, ref, created_at,"
            " detail, claimed_until, claimed_by)"
            " SELECT %(who)s, %(kind)s, 0, %(ref)s, %(now)s, %(detail)s::jsonb, %(lease)s,"
            " %(holder)s WHERE EXISTS (SELECT FROM customers WHERE telegram_id = %(who)s)"
            " ON CONFLICT DO NOTHING RETURNING *)"
            f" SELECT {_NOTICE_COLUMNS} FROM owed n {_NOTICE_JOINS}",
            {
                "who": telegram_id,
                "kind": kind,
                "ref": ref,
                "now": now,
                "detail": _json(detail),
                "lease": now + CLAIM_LEASE,
                "holder": holder,
            },
        )
        return cur.fetchone()


def mark_sent(conn: Connection, notices: Sequence[Notice], now: dt.datetime) -> None:
    conn.execute(
        "WITH done AS (SELECT * FROM unnest(%s::bigint[], %s::text[], %s::int[], %s::text[])"
        " AS done(telegram_id, kind, period, ref))"
        f" UPDATE notices SET sent_at = %s WHERE {_BY_KEY.format(batch='done')}",
        (
            [n.telegram_id for n in notices],
            [n.kind for n in notices],
            [n.period for n in notices],
            [n.ref for n in notices],
            now,
        ),
    )


def next_free(conn: Connection, now: dt.datetime) -> dt.datetime | None:
    """When the next unsent notice can be taken (now, if one can); None if none is owed."""
    row = conn.execute(
        f"WITH live AS ({LIVE_INSTANCES}) SELECT min(CASE"
        " WHEN claimed_until IS NULL OR claimed_by IS NULL"
        "  OR claimed_by NOT IN (SELECT objid FROM live) THEN %(now)s"
        " ELSE GREATEST(claimed_until, %(now)s) END)"
        " FROM notices WHERE sent_at IS NULL",
        {"now": now},
    ).fetchone()
    return None if row is None else row[0]


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, default=str)
