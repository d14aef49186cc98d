"""The fulfilment queue: which customers' access the outside world does not match yet.

A trigger on ``subscriptions`` bumps ``fulfilment_queue.version`` in the transaction of
every grant, renewal, refund and expiry (schema.sql), so a change can never be left
unapplied. A deliverer claims due customers (leased to its shop instance, like notices),
applies each one's subscription *as it is now* and records the version it applied; a
failure is retried with backoff. Nothing is lost while a panel is down for days: the
row simply stays due.
"""

from __future__ import annotations

import datetime as dt

import attrs
from psycopg.rows import class_row

from .instance import LIVE_INSTANCES
from .pool import Connection

#: Who should have access: an active subscription, unless an operator banned the customer.
_ACTIVE = "NOT c.banned AND s.status = 'active' AND (s.lifetime OR s.expires_at > %(now)s)"

#: How long a claimed customer is left to its deliverer before another may take it.
CLAIM_LEASE = dt.timedelta(minutes=5)
#: Waits after the 1st, 2nd, ... failed attempt; the last one repeats.
BACKOFF = tuple(dt.timedelta(seconds=s) for s in (10, 30, 60, 300, 900, 1800, 3600))


@attrs.frozen
class Wanted:
    """What a customer should have, read from their subscription when it is applied."""

    telegram_id: int
    version: int
    active: bool
    expires_at: dt.datetime | None
    lifetime: bool
    plan_id: str | None
    period: int  # grants so far: each adds the plan's traffic once (see TRAFFIC_ON_RENEWAL)
    attempts: int
    failing_since: dt.datetime | None
    alerted: bool


def claim_due(conn: Connection, now: dt.datetime, limit: int, holder: int) -> list[Wanted]:
    """Take up to ``limit`` customers whose access is due to be applied, oldest first."""
    with conn.cursor(row_factory=class_row(Wanted)) as cur:
        cur.execute(
            f"WITH live AS ({LIVE_INSTANCES}), taken AS ("
            " UPDATE fulfilment_queue SET claimed_until = %(lease)s, claimed_by = %(holder)s"
            " WHERE telegram_id IN ("
            "  SELECT telegram_id FROM fulfilment_queue WHERE next_attempt_at <= %(now)s"
            "  AND (claimed_until IS NULL OR claimed_until < %(now)s OR claimed_by IS NULL"
            "   OR claimed_by NOT IN (SELECT objid FROM live))"
            "  ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
            " RETURNING *)"
            " SELECT q.telegram_id, q.version,"
            f"  {_ACTIVE} AS active,"
            "  s.expires_at, COALESCE(s.lifetime, FALSE) AS lifetime, s.plan_id,"
            "  COALESCE(s.period, 0) AS period, q.attempts, q.failing_since, q.alerted"
            " FROM taken q LEFT JOIN subscriptions s ON s.telegram_id = q.telegram_id"
            " JOIN customers c ON c.telegram_id = q.telegram_id"
            " ORDER BY q.next_attempt_at",
            {"lease": now + CLAIM_LEASE, "now": now, "limit": limit, "holder": holder},
        )
        rows = cur.fetchall()
    # A customer with no subscription row at all has nothing: revoked.
    return [attrs.evolve(w, active=bool(w.active)) for w in rows]


def applied(conn: Connection, wanted: Wanted, now: dt.datetime) -> None:
    """The backend matches ``wanted``: done, unless the subscription changed meanwhile."""
    conn.execute(
        "UPDATE fulfilment_queue SET applied_version = GREATEST(applied_version, %(v)s),"
        " next_attempt_at = CASE WHEN version > %(v)s THEN %(now)s END,"
        " attempts = 0, failing_since = NULL, last_error = NULL, alerted = FALSE,"
        " claimed_until = NULL, claimed_by = NULL WHERE telegram_id = %(id)s",
        {"v": wanted.version, "now": now, "id": wanted.telegram_id},
    )


def failed(conn: Connection, wanted: Wanted, error: str, now: dt.datetime, alerted: bool) -> None:
    """Try again later, further apart each time; the first failure's time is kept."""
    wait = BACKOFF[min(wanted.attempts, len(BACKOFF) - 1)]
    conn.execute(
        "UPDATE fulfilment_queue SET attempts = attempts + 1, next_attempt_at = %(at)s,"
        " failing_since = COALESCE(failing_since, %(now)s), last_error = %(error)s,"
        " alerted = alerted OR %(alerted)s, claimed_until = NULL, claimed_by = NULL"
        " WHERE telegram_id = %(id)s",
        {
            "at": now + wait,
            "now": now,
            "error": error[:500],
            "alerted": alerted,
            "id": wanted.telegram_id,
        },
    )


def next_due(conn: Connection) -> dt.datetime | None:
    """When the next customer is due (None: everyone's access matches)."""
    row = conn.execute(
        "SELECT min(next_attempt_at) FROM fulfilment_queue WHERE next_attempt_at IS NOT NULL"
    ).fetchone()
    return None if row is None else row[0]


def pending(conn: Connection, telegram_id: int) -> bool:
    """Whether this customer's latest change is not applied yet ("being set up")."""
    row = conn.execute(
        "SELECT version > applied_version FROM fulfilment_queue WHERE telegram_id = %s",
        (telegram_id,),
    ).fetchone()
    return bool(row and row[0])


def backlog(conn: Connection) -> int:
    """How many customers wait for their access to be applied (a metric)."""
    row = conn.execute(
        "SELECT count(*) FROM fulfilment_queue WHERE version > applied_version"
    ).fetchone()
    return int(row[0]) if row else 0


def mark_due(conn: Connection, telegram_id: int, now: dt.datetime) -> None:
    """Apply this customer's access again now (the panel was changed by hand)."""
    conn.execute(
        "INSERT INTO fulfilment_queue (telegram_id, version, next_attempt_at, changed_at)"
        " SELECT telegram_id, 1, %(now)s, %(now)s FROM customers WHERE telegram_id = %(id)s"
        " ON CONFLICT (telegram_id) DO UPDATE SET version = fulfilment_queue.version + 1,"
        " next_attempt_at = %(now)s, attempts = 0, changed_at = %(now)s",
        {"id": telegram_id, "now": now},
    )


def everyone(conn: Connection, now: dt.datetime, after: int, limit: int) -> list[Wanted]:
    """Every customer with a subscription, by id after ``after`` (for a full sync)."""
    with conn.cursor(row_factory=class_row(Wanted)) as cur:
        cur.execute(
            "SELECT s.telegram_id, COALESCE(q.version, 0) AS version,"
            f"  {_ACTIVE} AS active,"
            "  s.expires_at, s.lifetime, s.plan_id, s.period, 0 AS attempts,"
            "  NULL::timestamptz AS failing_since, FALSE AS alerted"
            " FROM subscriptions s LEFT JOIN fulfilment_queue q USING (telegram_id)"
            " JOIN customers c USING (telegram_id)"
            " WHERE s.telegram_id > %(after)s ORDER BY s.telegram_id LIMIT %(limit)s",
            {"now": now, "after": after, "limit": limit},
        )
        return cur.fetchall()


def adopt(
    conn: Connection,
    telegram_id: int,
    backend: str,
    account: str,
    expires_at: dt.datetime | None,
    active: bool,
    now: dt.datetime,
) -> bool:
    """Make a panel account another bot created a customer of ours (``shop panel import``).

    The customer gets a subscription ending when the account does, with no plan (so the
    account's limits stay as they are) and no grant counted (so no traffic is added), and
    the account's name is remembered so the shop finds it. False, and nothing changed,
    for a customer who already has a subscription here.
    """
    conn.execute(
        "INSERT INTO customers (telegram_id, first_seen, last_seen, trial_used)"
        " VALUES (%s, %s, %s, TRUE) ON CONFLICT (telegram_id) DO NOTHING",
        (telegram_id, now, now),
    )
    created = conn.execute(
        "INSERT INTO subscriptions (telegram_id, status, expires_at, plan_id, started_at,"
        " updated_at, period) VALUES (%s, %s, %s, NULL, %s, %s, 0)"
        " ON CONFLICT (telegram_id) DO NOTHING RETURNING 1",
        (telegram_id, "active" if active else "expired", expires_at, now, now),
    ).fetchone()
    if created is None:
        return False
    conn.execute(
        "INSERT INTO panel_accounts (telegram_id, backend, account_id, created_at)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (telegram_id, backend) DO NOTHING",
        (telegram_id, backend, account, now),
    )
    return True


def outlook(conn: Connection) -> tuple[dt.datetime | None, int]:
    """When the next customer is due, and how many wait: one unit of work for the actor."""
    return next_due(conn), backlog(conn)
