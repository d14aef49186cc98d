"""The journal of Telegram updates received and not yet fully handled.

The poller writes a batch here before it confirms the batch to Telegram, and removes
an update once its handling has finished; a restart replays what is left. So killing
the process never loses an update (at-least-once), and a slow customer never holds
back the offset for everyone else.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from .pool import Connection


def journal(
    conn: Connection,
    bot_id: int,
    updates: Sequence[dict[str, Any]],
    next_offset: int,
    now: dt.datetime,
) -> None:
    """Store a batch and the offset that confirms it, in one transaction."""
    conn.execute(
        "INSERT INTO telegram_updates (bot_id, update_id, body, received_at)"
        " SELECT %s, id, body, %s FROM unnest(%s::bigint[], %s::jsonb[]) AS batch(id, body)"
        " ON CONFLICT (bot_id, update_id) DO NOTHING",
        (
            bot_id,
            now,
            [u["update_id"] for u in updates],
            [json.dumps(_storable(u)) for u in updates],
        ),
    )
    conn.execute(
        "INSERT INTO telegram_offset (bot_id, next_offset) VALUES (%s, %s)"
        " ON CONFLICT (bot_id) DO UPDATE SET next_offset ="
        " GREATEST(telegram_offset.next_offset, EXCLUDED.next_offset)",
        (bot_id, next_offset),
    )


def _storable(value: Any) -> Any:
    """The update without NUL characters, which PostgreSQL's jsonb cannot hold."""
    if isinstance(value, str):
        return value.replace("\x00", "")
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
