"""Provider webhooks as received: stored before they are answered, marked when handled."""

from __future__ import annotations

import datetime as dt

from .pool import Connection


def record(
    conn: Connection,
    provider: str,
    event_id: str,
    reference: str | None,
    provider_payment_id: str | None,
    body: bytes,
    now: dt.datetime,
) -> tuple[int | None, str | None]:
    """Store an event once: (its row id, or None for a duplicate; our payment reference).

    The reference is the event's own, or that of the payment with ``provider_payment_id``;
    None when no payment of ours matches.
    """
    row = conn.execute(
        "SELECT id FROM payments WHERE provider = %s"
        " AND (id = %s OR (%s::text IS NULL AND provider_payment_id = %s))",
        (provider, reference, reference, provider_payment_id),
    ).fetchone()
    reference = str(row[0]) if row else None
    inserted = conn.execute(
        "INSERT INTO provider_events (provider, event_id, payment_id, body, received_at)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (provider, event_id) DO NOTHING RETURNING id",
        (provider, event_id, reference, body, now),
    ).fetchone()
    return (int(inserted[0]) if inserted else None), reference


def processed(conn: Connection, event_row: int, outcome: str, now: dt.datetime) -> None:
    conn.execute(
        "UPDATE provider_events SET processed_at = %s, outcome = %s WHERE id = %s",
        (now, outcome, event_row),
    )


def unprocessed(
    conn: Connection, since: dt.datetime, limit: int = 500
) -> list[tuple[int, str, str | None, bytes]]:
    """Events stored but never handled (the process stopped in between), oldest first."""
    rows = conn.execute(
        "SELECT id, provider, payment_id, body FROM provider_events"
        " WHERE processed_at IS NULL AND received_at >= %s ORDER BY id LIMIT %s",
        (since, limit),
    ).fetchall()
    return [(int(r[0]), str(r[1]), r[2], bytes(r[3])) for r in rows]
