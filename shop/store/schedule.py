"""Job runs: which scheduled slots ran. Claiming a slot is an INSERT only one instance wins."""

from __future__ import annotations

import datetime as dt

from .pool import Connection


def claim(conn: Connection, job: str, slot: dt.datetime, now: dt.datetime) -> bool:
    row = conn.execute(
        "INSERT INTO job_runs (job, slot, claimed_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (job, slot) DO NOTHING RETURNING 1",
        (job, slot, now),
    ).fetchone()
    return row is not None


def finish(conn: Connection, job: str, slot: dt.datetime, outcome: str, now: dt.datetime) -> None:
    conn.execute(
        "UPDATE job_runs SET finished_at = %s, outcome = %s WHERE job = %s AND slot = %s",
        (now, outcome[:500], job, slot),
    )


def last_slot(conn: Connection, job: str) -> dt.datetime | None:
    row = conn.execute("SELECT max(slot) FROM job_runs WHERE job = %s", (job,)).fetchone()
    return row[0] if row else None


def mark_seen(conn: Connection, job: str, slot: dt.datetime, now: dt.datetime) -> None:
    """A first start: remember the latest slot as seen, so it is not 'caught up'."""
    conn.execute(
        "INSERT INTO job_runs (job, slot, claimed_at, finished_at, outcome)"
        " VALUES (%s, %s, %s, %s, 'first start: not run') ON CONFLICT DO NOTHING",
        (job, slot, now, now),
    )
