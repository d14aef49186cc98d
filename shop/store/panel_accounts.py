"""Panel accounts: which account id a customer has at a VPN panel, per backend.

Some panels (Hiddify) key an account by an id the client must choose before creating it,
and that id is the customer's credential. It is stored here *before* the panel is asked
to create the account, so a create whose answer was lost is retried with the same id, and
two shop instances on one database agree on one id.
"""

from __future__ import annotations

import datetime as dt

from .pool import Connection


def account_for(
    conn: Connection, telegram_id: int, backend: str, new_id: str, now: dt.datetime
) -> str:
    """The customer's account id at ``backend``: the stored one, or ``new_id`` once stored.

    Two statements on purpose: under READ COMMITTED the SELECT takes a new snapshot, so it
    sees the row of a concurrent transaction that won the INSERT (a single statement with
    a CTE would not). Whoever inserts first wins; everyone gets the winner's id.
    """
    conn.execute(
        "INSERT INTO panel_accounts (telegram_id, backend, account_id, created_at)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (telegram_id, backend) DO NOTHING",
        (telegram_id, backend, new_id, now),
    )
    stored = find(conn, telegram_id, backend)
    if stored is None:  # pragma: no cover - the row was inserted or already there
        raise RuntimeError("panel_accounts: the row vanished between INSERT and SELECT")
    return stored


def find(conn: Connection, telegram_id: int, backend: str) -> str | None:
    """The customer's stored account id at ``backend``, or None if none was ever chosen."""
    row = conn.execute(
        "SELECT account_id FROM panel_accounts WHERE telegram_id = %s AND backend = %s",
        (telegram_id, backend),
    ).fetchone()
    return None if row is None else str(row[0])
