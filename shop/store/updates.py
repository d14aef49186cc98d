"""The journal of Telegram updates received and not yet fully handled.

The poller writes a batch here before it confirms the batch to Telegram (the webhook
route one update before it answers 200), and an update is removed once its handling has
finished; a restart replays what is left. So killing the process never loses an update
(at-least-once), and a slow customer never holds back the offset for everyone else.

With several instances, each row names its customer (``telegram_id``) and a customer's
rows are handled by whoever holds the customer's lease (``customer_leases``, fenced by
``store.instance``): see ``actors.dispatcher``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import orjson

from .instance import LIVE_INSTANCES
from .pool import Connection


def journal(
    conn: Connection,
    bot_id: int,
    updates: Sequence[dict[str, Any]],
    next_offset: int,
    now: dt.datetime,
) -> None:
    """Store a batch and the offset that confirms it, in one transaction."""
    store(conn, bot_id, updates, now)
    conn.execute(
        "INSERT INTO telegram_offset (bot_id, next_offset) VALUES (%s, %s)"
        " ON CONFLICT (bot_id) DO UPDATE SET next_offset ="
        " GREATEST(telegram_offset.next_offset, EXCLUDED.next_offset)",
        (bot_id, next_offset),
    )


def store(
    conn: Connection, bot_id: int, updates: Sequence[dict[str, Any]], now: dt.datetime
) -> list[int]:
    """Journal updates (one statement); returns the ids that were new (not duplicates).

    The batch travels as one JSON document: as arrays (``unnest(%s::jsonb[])``) psycopg
    quoted every body as an array element with regular expressions, the poller's largest
    cost after parsing (issue #15).
    """
    batch = [{"id": u["update_id"], "who": sender_of(u), "body": u} for u in updates]
    rows = conn.execute(
        "INSERT INTO telegram_updates (bot_id, update_id, body, received_at, telegram_id)"
        " SELECT %s, id, body, %s, who FROM jsonb_to_recordset(%s::jsonb)"
        " AS batch(id bigint, body jsonb, who bigint)"
        " ON CONFLICT (bot_id, update_id) DO NOTHING RETURNING update_id",
        (bot_id, now, _storable_json(batch)),
    ).fetchall()
    return [int(row[0]) for row in rows]


def store_each(
    conn: Connection, requests: Sequence[tuple[int, dict[str, Any], dt.datetime]]
) -> list[bool]:
    """:func:`store` for many webhook deliveries at once (``store.batch.Batcher``): for
    each ``(bot_id, update, now)``, whether it was new."""
    bot_id, _, now = requests[0]
    new = set(store(conn, bot_id, [update for _, update, _ in requests], now))
    return [int(update["update_id"]) in new for _, update, _ in requests]


#: The parts of an update that carry its sender (``from``), as ``types.Update.sender``.
_SENT_BY = (
    "message",
    "edited_message",
    "callback_query",
    "pre_checkout_query",
    "my_chat_member",
    "chat_join_request",
)


def sender_of(update: dict[str, Any]) -> int | None:
    """Whose update this is (the actor that handles it), from the raw JSON."""
    for part in _SENT_BY:
        found = update.get(part)
        if isinstance(found, dict):
            sender = found.get("from")
            if isinstance(sender, dict) and isinstance(sender.get("id"), int):
                return int(sender["id"])
            return None
    return None


def _storable_json(value: Any) -> str:
    """``value`` as JSON text that jsonb can hold: without NUL characters or lone surrogates.

    orjson writes a NUL as ``\\u0000`` and refuses a lone surrogate (which a webhook's
    ``json.loads`` lets through); only then (rarely) is the value walked to clean it.
    """
    try:
        text = orjson.dumps(value)
        if b"\\u0000" not in text:
            return text.decode()
    except orjson.JSONEncodeError:
        pass
    return orjson.dumps(_storable(value)).decode()


def _storable(value: Any) -> Any:
    """The update without what PostgreSQL's jsonb cannot hold: NUL, lone surrogates (as ?)."""
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode()
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def forget(conn: Connection, bot_id: int, update_ids: Sequence[int]) -> None:
    conn.execute(
        "DELETE FROM telegram_updates WHERE bot_id = %s AND update_id = ANY(%s)",
        (bot_id, list(update_ids)),
    )


def unfinished(conn: Connection, bot_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT body FROM telegram_updates WHERE bot_id = %s ORDER BY update_id", (bot_id,)
    ).fetchall()
    return [row[0] for row in rows]


def next_offset(conn: Connection, bot_id: int) -> int | None:
    row = conn.execute(
        "SELECT next_offset FROM telegram_offset WHERE bot_id = %s", (bot_id,)
    ).fetchone()
    return None if row is None else int(row[0])


# -- several instances: customers' leases ------------------------------------------------


def take_customers(
    conn: Connection, customers: Sequence[int], holder: int, now: dt.datetime
) -> list[int]:
    """Take the leases of these customers that are free, ours, or held by a dead
    instance; returns the customers this instance now holds."""
    rows = conn.execute(
        f"WITH live AS ({LIVE_INSTANCES})"
        " INSERT INTO customer_leases (telegram_id, holder, taken_at)"
        " SELECT DISTINCT c, %(me)s, %(now)s FROM unnest(%(who)s::bigint[]) AS c"
        " ON CONFLICT (telegram_id) DO UPDATE SET holder = %(me)s, taken_at = %(now)s"
        " WHERE customer_leases.holder = %(me)s"
        "  OR customer_leases.holder NOT IN (SELECT objid FROM live)"
        " RETURNING telegram_id",
        {"who": list(customers), "me": holder, "now": now},
    ).fetchall()
    return [int(row[0]) for row in rows]


def pending_of(
    conn: Connection, bot_id: int, customer: int, seen: Sequence[int]
) -> list[dict[str, Any]]:
    """A customer's journaled updates not in ``seen`` (taken already), oldest first."""
    rows = conn.execute(
        "SELECT body FROM telegram_updates WHERE bot_id = %s AND telegram_id = %s"
        " AND NOT (update_id = ANY(%s)) ORDER BY update_id",
        (bot_id, customer, list(seen)),
    ).fetchall()
    return [row[0] for row in rows]


def pending_of_many(
    conn: Connection, bot_id: int, customers: Sequence[int], seen: Sequence[int]
) -> list[dict[str, Any]]:
    """The journaled updates of these customers not in ``seen``, oldest first."""
    rows = conn.execute(
        "SELECT body FROM telegram_updates WHERE bot_id = %s AND telegram_id = ANY(%s)"
        " AND NOT (update_id = ANY(%s)) ORDER BY update_id",
        (bot_id, list(customers), list(seen)),
    ).fetchall()
    return [row[0] for row in rows]


def release_customers(
    conn: Connection, bot_id: int, customers: Sequence[int], holder: int
) -> list[dict[str, Any]]:
    """Give these customers' leases up, except those for whom updates came meanwhile
    (another instance journaled them while this one held the lease): keep those, and
    return their updates, oldest first.

    One transaction, the lease rows locked first: a receiver taking one of them now waits
    for this decision, so an update journaled before it is returned here and one
    journaled after finds the lease free and is taken by its receiver."""
    conn.execute(
        "SELECT 1 FROM customer_leases WHERE telegram_id = ANY(%s) AND holder = %s"
        " ORDER BY telegram_id FOR UPDATE",
        (list(customers), holder),
    )
    more = pending_of_many(conn, bot_id, customers, [])
    still = sorted({who for raw in more if (who := sender_of(raw)) is not None})
    conn.execute(
        "DELETE FROM customer_leases WHERE holder = %s AND telegram_id = ANY(%s)"
        " AND NOT (telegram_id = ANY(%s))",
        (holder, list(customers), still),
    )
    return more


def orphans(conn: Connection, bot_id: int, limit: int = 500) -> list[int]:
    """Customers with journaled updates and no live lease (their holder died)."""
    rows = conn.execute(
        f"WITH live AS ({LIVE_INSTANCES})"
        " SELECT DISTINCT u.telegram_id FROM telegram_updates u"
        " LEFT JOIN customer_leases l ON l.telegram_id = u.telegram_id"
        " WHERE u.bot_id = %s AND u.telegram_id IS NOT NULL"
        " AND (l.holder IS NULL OR l.holder NOT IN (SELECT objid FROM live)) LIMIT %s",
        (bot_id, limit),
    ).fetchall()
    return [int(row[0]) for row in rows]


def take_role(conn: Connection, role: str, holder: int, now: dt.datetime) -> bool:
    """Lead ``role`` (the poller, the timer) if nobody alive does; True when we do."""
    row = conn.execute(
        f"WITH live AS ({LIVE_INSTANCES})"
        " INSERT INTO leader_leases (role, holder, taken_at) VALUES (%(role)s, %(me)s, %(now)s)"
        " ON CONFLICT (role) DO UPDATE SET holder = %(me)s, taken_at = %(now)s"
        " WHERE leader_leases.holder = %(me)s"
        "  OR leader_leases.holder NOT IN (SELECT objid FROM live)"
        " RETURNING holder",
        {"role": role, "me": holder, "now": now},
    ).fetchone()
    return row is not None
