"""Provider webhooks as received: stored before they are answered, marked when handled."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import attrs

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
    """Store an event once: (its row id to handle, or None; our payment reference).

    The row is the new one, or for an event delivered again that of its first delivery
    while that is still not processed (its handling failed, with the database down say:
    the provider's retry is what brings it back); None for an event already processed.
    The reference is the event's own, or that of the payment with ``provider_payment_id``;
    None when no payment of ours matches. One statement.
    """
    row = conn.execute(
        "WITH target AS (SELECT id FROM payments WHERE provider = %(provider)s"
        "   AND (id = %(reference)s OR (%(reference)s::text IS NULL"
        "        AND provider_payment_id = %(remote)s)) LIMIT 1),"
        " stored AS (INSERT INTO provider_events"
        "   (provider, event_id, payment_id, body, received_at)"
        "   VALUES (%(provider)s, %(event)s, (SELECT id FROM target), %(body)s, %(now)s)"
        "   ON CONFLICT (provider, event_id) DO NOTHING RETURNING id)"
        " SELECT COALESCE((SELECT id FROM stored), (SELECT id FROM provider_events"
        "   WHERE provider = %(provider)s AND event_id = %(event)s AND processed_at IS NULL)),"
        " (SELECT id FROM target)",
        {
            "provider": provider,
            "reference": reference,
            "remote": provider_payment_id,
            "event": event_id,
            "body": body,
            "now": now,
        },
    ).fetchone()
    assert row is not None
    return (int(row[0]) if row[0] is not None else None), row[1]


@attrs.frozen
class Handled:
    event_row: int
    outcome: str
    at: dt.datetime


def mark_handled(conn: Connection, handled: Sequence[Handled]) -> list[None]:
    """Mark many events handled in one statement (see ``store.batch``)."""
    conn.execute(
        "UPDATE provider_events e SET processed_at = h.at, outcome = h.outcome"
        " FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS h(id, outcome, at)"
        " WHERE e.id = h.id",
        (
            [h.event_row for h in handled],
            [h.outcome for h in handled],
            [h.at for h in handled],
        ),
    )
    return [None] * len(handled)


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
