"""The audit trail: every operator action, who did it, to whom, what was before and after.

A row is written in the transaction that does the action, and first: its ``key`` is unique
per action as the operator asked for it (the nonce of the pressed button, or the message
that carried the input), so a double tap or a replayed update finds the key taken and
does nothing, even with two shops on one database (the second insert waits for the first
transaction and then conflicts).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import attrs
from psycopg.rows import class_row

from .pool import Connection


@attrs.frozen
class Act:
    """One operator action as asked: who asked, when, and its once-only key."""

    key: str
    admin_id: int
    now: dt.datetime


@attrs.frozen
class AuditRow:
    id: int
    admin_id: int
    action: str
    target: str
    before: Any
    after: Any
    at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "admin_id": self.admin_id,
            "action": self.action,
            "target": self.target,
            "before": self.before,
            "after": self.after,
            "at": self.at.isoformat(),
        }


def begin(conn: Connection, act: Act, action: str, target: str) -> int | None:
    """Claim ``act.key`` for this action; returns the row id, or None if it was done before
    (the caller then changes nothing)."""
    row = conn.execute(
        "INSERT INTO audit (key, admin_id, action, target, at) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (key) DO NOTHING RETURNING id",
        (act.key, act.admin_id, action, target, act.now),
    ).fetchone()
    return None if row is None else int(row[0])


def settle(conn: Connection, row_id: int, before: Any, after: Any) -> None:
    """Write what the action found and left."""
    conn.execute(
        "UPDATE audit SET before = %s::jsonb, after = %s::jsonb WHERE id = %s",
        (json.dumps(before, default=str), json.dumps(after, default=str), row_id),
    )


def record(conn: Connection, act: Act, action: str, target: str, before: Any, after: Any) -> bool:
    """An action done elsewhere (a refund, a broadcast): written once per key."""
    row_id = begin(conn, act, action, target)
    if row_id is None:
        return False
    settle(conn, row_id, before, after)
    return True


def latest(conn: Connection, limit: int, before_id: int | None = None) -> list[AuditRow]:
    """The newest rows first; ``before_id`` pages further back."""
    with conn.cursor(row_factory=class_row(AuditRow)) as cur:
        cur.execute(
            "SELECT id, admin_id, action, target, before, after, at FROM audit"
            " WHERE %(before)s::bigint IS NULL OR id < %(before)s"
            " ORDER BY id DESC LIMIT %(limit)s",
            {"before": before_id, "limit": limit},
        )
        return cur.fetchall()
