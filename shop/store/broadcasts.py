"""Broadcasts: one row per recipient, leased while sent, marked only once Telegram answered.

A broadcast is created with all its recipients in one transaction (the audience as it is
at that moment, never a customer who blocked the bot). A recipient is leased to one
sender (``claimed_until``, ``claimed_by``: a dead instance's lease is void at once, see
``store.instance``), then gets its ``outcome``: ``sent`` (Telegram accepted it),
``blocked`` (403; the customer is marked blocked in the same statement) or ``failed``
(400, with Telegram's ``error``). A row without an outcome is still owed, so a restart
takes it again: nobody is skipped, and only the messages in flight at a crash repeat.
The message itself is opaque here (``message`` JSON): the store knows nothing of Telegram.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, Literal

import attrs
from psycopg.rows import class_row

from .instance import LIVE_INSTANCES
from .pool import Connection

#: Who may be chosen, by name; each a condition on ``c`` (customers) and ``s`` (their
#: subscription, if any). Customers who blocked the bot, or are banned, are never chosen.
_PAID_EVER = (
    "EXISTS (SELECT FROM payments p WHERE p.telegram_id = c.telegram_id"
    " AND p.status IN ('paid', 'completed', 'refunded'))"
)
AUDIENCES: dict[str, str] = {
    "all": "TRUE",
    "active": "s.status = 'active'",
    "expired": "s.status = 'expired'",
    "never_paid": f"NOT {_PAID_EVER}",
    "trial": f"s.status = 'active' AND c.trial_used AND NOT {_PAID_EVER}",
}

#: How many sends that failed for now (network, 5xx) a recipient gets before it is given up.
MAX_ATTEMPTS = 10

#: How long a sender holds the recipients it took, when it is alive (a dead instance's
#: leases are void at once).
CLAIM_LEASE = dt.timedelta(minutes=10)

Status = Literal["running", "done", "canceled"]
Result = Literal["sent", "blocked", "failed"]


@attrs.frozen
class Recipient:
    broadcast_id: int
    telegram_id: int


@attrs.frozen
class Outcome:
    recipient: Recipient
    result: Result
    error: str | None = None


@attrs.frozen
class Progress:
    status: Status
    total: int
    sent: int
    blocked: int
    failed: int


def create(
    conn: Connection,
    message: dict[str, Any],
    audience: str,
    language: str | None,
    now: dt.datetime,
    created_by: int | None = None,
) -> int:
    """Create a running broadcast with a row for every recipient; returns its id.
    ``created_by``: the operator who composed it in Telegram, who is sent its progress."""
    row = conn.execute(
        "INSERT INTO broadcasts (status, audience, language, message, created_at, created_by,"
        " progress_chat_id) VALUES ('running', %s, %s, %s::jsonb, %s, %s, %s) RETURNING id",
        (audience, language, json.dumps(message), now, created_by, created_by),
    ).fetchone()
    assert row is not None
    broadcast_id: int = row[0]
    conn.execute(
        "INSERT INTO broadcast_recipients (broadcast_id, telegram_id)"
        " SELECT %s, c.telegram_id FROM customers c"
        " LEFT JOIN subscriptions s ON s.telegram_id = c.telegram_id"
        f" WHERE NOT c.blocked AND NOT c.banned AND ({AUDIENCES[audience]})"
        " AND (%s::text IS NULL OR c.language = %s::text)",
        (broadcast_id, language, language),
    )
    return broadcast_id


def audience_size(conn: Connection, audience: str, language: str | None) -> int:
    """How many customers a broadcast to this audience would reach now."""
    row = conn.execute(
        "SELECT count(*) FROM customers c LEFT JOIN subscriptions s"
        " ON s.telegram_id = c.telegram_id"
        f" WHERE NOT c.blocked AND NOT c.banned AND ({AUDIENCES[audience]})"
        " AND (%s::text IS NULL OR c.language = %s::text)",
        (language, language),
    ).fetchone()
    return int(row[0]) if row else 0


def message(conn: Connection, broadcast_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT message FROM broadcasts WHERE id = %s", (broadcast_id,)).fetchone()
    return None if row is None else dict(row[0])


def claim(conn: Connection, now: dt.datetime, limit: int, holder: int) -> list[Recipient]:
    """Take up to ``limit`` owed recipients of running broadcasts, oldest broadcast first,
    leased to ``holder``; two senders never take the same recipient at once."""
    with conn.cursor(row_factory=class_row(Recipient)) as cur:
        cur.execute(
            f"WITH live AS ({LIVE_INSTANCES})"
            " UPDATE broadcast_recipients SET claimed_until = %(lease)s, claimed_by = %(holder)s"
            " WHERE (broadcast_id, telegram_id) IN ("
            "  SELECT r.broadcast_id, r.telegram_id FROM broadcast_recipients r"
            "  JOIN broadcasts b ON b.id = r.broadcast_id AND b.status = 'running'"
            "  WHERE r.outcome IS NULL"
            "  AND (r.claimed_until IS NULL OR r.claimed_until < %(now)s OR r.claimed_by IS NULL"
            "   OR r.claimed_by NOT IN (SELECT objid FROM live))"
            "  ORDER BY r.broadcast_id, r.telegram_id LIMIT %(limit)s"
            "  FOR UPDATE OF r SKIP LOCKED)"
            " RETURNING broadcast_id, telegram_id",
            {"lease": now + CLAIM_LEASE, "now": now, "limit": limit, "holder": holder},
        )
        return sorted(cur.fetchall(), key=lambda r: (r.broadcast_id, r.telegram_id))


def record(conn: Connection, outcomes: Sequence[Outcome], now: dt.datetime) -> None:
    """Write down what Telegram answered; a 403 also marks the customer blocked."""
    conn.execute(
        "UPDATE broadcast_recipients r SET outcome = o.result, error = o.error, done_at = %s"
        " FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[])"
        "  AS o(broadcast_id, telegram_id, result, error)"
        " WHERE (r.broadcast_id, r.telegram_id) = (o.broadcast_id, o.telegram_id)",
        (
            now,
            [o.recipient.broadcast_id for o in outcomes],
            [o.recipient.telegram_id for o in outcomes],
            [o.result for o in outcomes],
            [o.error for o in outcomes],
        ),
    )
    blocked = [o.recipient.telegram_id for o in outcomes if o.result == "blocked"]
    if blocked:
        conn.execute(
            "UPDATE customers SET blocked = TRUE WHERE telegram_id = ANY(%s) AND NOT blocked",
            (blocked,),
        )


def retry_later(
    conn: Connection, recipients: Sequence[Recipient], at: dt.datetime, holder: int
) -> None:
    """Keep recipients whose send failed for now (network, 5xx) owed, free again at ``at``;
    after ``MAX_ATTEMPTS`` such failures a recipient is given up as ``failed``, so a chat
    Telegram keeps failing on cannot hold a broadcast open for ever."""
    conn.execute(
        "UPDATE broadcast_recipients r SET attempts = r.attempts + 1,"
        " claimed_until = %(at)s,"
        " outcome = CASE WHEN r.attempts + 1 >= %(max)s THEN 'failed' END,"
        " error = CASE WHEN r.attempts + 1 >= %(max)s THEN %(why)s END,"
        " done_at = CASE WHEN r.attempts + 1 >= %(max)s THEN %(at)s END"
        " FROM unnest(%(broadcasts)s::bigint[], %(chats)s::bigint[])"
        "  AS o(broadcast_id, telegram_id)"
        " WHERE (r.broadcast_id, r.telegram_id) = (o.broadcast_id, o.telegram_id)"
        " AND r.claimed_by = %(holder)s AND r.outcome IS NULL",
        {
            "at": at,
            "max": MAX_ATTEMPTS,
            "why": f"not delivered after {MAX_ATTEMPTS} tries (network or Telegram errors)",
            "broadcasts": [r.broadcast_id for r in recipients],
            "chats": [r.telegram_id for r in recipients],
            "holder": holder,
        },
    )


def finish(conn: Connection, now: dt.datetime) -> int:
    """Mark ``done`` every running broadcast that owes nobody anything any more."""
    return conn.execute(
        "UPDATE broadcasts b SET status = 'done', finished_at = %s WHERE status = 'running'"
        " AND NOT EXISTS (SELECT FROM broadcast_recipients r"
        "  WHERE r.broadcast_id = b.id AND r.outcome IS NULL)",
        (now,),
    ).rowcount


def cancel(conn: Connection, broadcast_id: int, now: dt.datetime) -> Status | None:
    """Cancel a running broadcast; returns its status after (None: no such broadcast)."""
    row = conn.execute(
        "WITH canceled AS (UPDATE broadcasts SET status = 'canceled', finished_at = %(now)s"
        " WHERE id = %(id)s AND status = 'running' RETURNING status)"
        " SELECT status FROM canceled UNION ALL"
        " SELECT status FROM broadcasts WHERE id = %(id)s AND NOT EXISTS (SELECT FROM canceled)",
        {"id": broadcast_id, "now": now},
    ).fetchone()
    return None if row is None else row[0]


def progress(conn: Connection, broadcast_id: int) -> Progress | None:
    with conn.cursor(row_factory=class_row(Progress)) as cur:
        cur.execute(
            "SELECT b.status, count(r.telegram_id) AS total,"
            " count(*) FILTER (WHERE r.outcome = 'sent') AS sent,"
            " count(*) FILTER (WHERE r.outcome = 'blocked') AS blocked,"
            " count(*) FILTER (WHERE r.outcome = 'failed') AS failed"
            " FROM broadcasts b LEFT JOIN broadcast_recipients r ON r.broadcast_id = b.id"
            " WHERE b.id = %s GROUP BY b.id",
            (broadcast_id,),
        )
        return cur.fetchone()


def next_free(conn: Connection, now: dt.datetime) -> dt.datetime | None:
    """When the next owed recipient can be taken (now, if one can); None if none is owed."""
    row = conn.execute(
        f"WITH live AS ({LIVE_INSTANCES}) SELECT min(CASE"
        " WHEN r.claimed_until IS NULL OR r.claimed_by IS NULL"
        "  OR r.claimed_by NOT IN (SELECT objid FROM live) THEN %(now)s"
        " ELSE GREATEST(r.claimed_until, %(now)s) END)"
        " FROM broadcast_recipients r JOIN broadcasts b ON b.id = r.broadcast_id"
        " WHERE b.status = 'running' AND r.outcome IS NULL",
        {"now": now},
    ).fetchone()
    return None if row is None else row[0]


@attrs.frozen
class Report:
    """A broadcast composed in Telegram, as its operator's progress message shows it."""

    id: int
    chat_id: int
    message_id: int | None
    progress: Progress


def set_progress_message(conn: Connection, broadcast_id: int, message_id: int) -> None:
    conn.execute(
        "UPDATE broadcasts SET progress_message_id = %s WHERE id = %s",
        (message_id, broadcast_id),
    )


def reports_due(conn: Connection) -> list[Report]:
    """Broadcasts whose operator has not had the summary yet (running, or just ended)."""
    rows = conn.execute(
        "SELECT id, progress_chat_id, progress_message_id FROM broadcasts"
        " WHERE progress_chat_id IS NOT NULL AND summary_sent_at IS NULL ORDER BY id"
    ).fetchall()
    reports = []
    for broadcast_id, chat_id, message_id in rows:
        found = progress(conn, broadcast_id)
        assert found is not None
        reports.append(Report(broadcast_id, chat_id, message_id, found))
    return reports


def take_summary(conn: Connection, broadcast_id: int, now: dt.datetime) -> bool:
    """Whether the summary of this ended broadcast is ours to send (once, across shops)."""
    row = conn.execute(
        "UPDATE broadcasts SET summary_sent_at = %s WHERE id = %s AND summary_sent_at IS NULL"
        " AND status <> 'running' RETURNING 1",
        (now, broadcast_id),
    ).fetchone()
    return row is not None
