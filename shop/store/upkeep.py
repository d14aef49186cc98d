"""Set-based housekeeping for the hourly sweep and the nightly cleanups."""

from __future__ import annotations

import datetime as dt

from .pool import Connection

#: Conversation state (the screen a customer was on) older than this is forgotten.
STATE_TTL = dt.timedelta(days=30)
#: Journaled updates this old were never finished (a crash); they are not replayed.
JOURNAL_TTL = dt.timedelta(days=7)


def expire_stale_payments(conn: Connection, now: dt.datetime) -> int:
    """Pending Stars and balance payments past their time: expired (nothing to ask)."""
    return conn.execute(
        "UPDATE payments SET status = 'expired', updated_at = %s, next_check_at = NULL"
        " WHERE status = 'pending' AND provider IN ('stars', 'balance') AND expires_at <= %s",
        (now, now),
    ).rowcount


def recheck_overdue(conn: Connection, now: dt.datetime) -> int:
    """Pending provider payments past their time with no check booked: check them now
    (the reconciler's last look closes them, or honours a late success)."""
    return conn.execute(
        "UPDATE payments SET next_check_at = %s WHERE status = 'pending'"
        " AND provider NOT IN ('stars', 'balance') AND expires_at <= %s"
        " AND provider_payment_id IS NOT NULL AND next_check_at IS NULL",
        (now, now),
    ).rowcount


def forget_old_state(conn: Connection, now: dt.datetime) -> int:
    forgotten = conn.execute(
        "UPDATE customers SET screen = 'main', state_updated_at = NULL WHERE state_updated_at < %s",
        (now - STATE_TTL,),
    ).rowcount
    conn.execute("DELETE FROM telegram_updates WHERE received_at < %s", (now - JOURNAL_TTL,))
    return forgotten


def delete_old_events(conn: Connection, before: dt.datetime) -> int:
    return conn.execute("DELETE FROM provider_events WHERE received_at < %s", (before,)).rowcount
