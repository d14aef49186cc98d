"""Balances and their ledger.

The ledger is append-only (a trigger refuses UPDATE and DELETE). ``balances`` holds its
sum per customer and currency, changed in the same transaction as the ledger row; a
CHECK constraint keeps it from going below zero, and a debit is a conditional UPDATE,
so an overdraft is refused by the database, not by an ``if``.
"""

from __future__ import annotations

import datetime as dt

from ..errors import InsufficientBalance
from .pool import Connection


def credit(
    conn: Connection,
    telegram_id: int,
    currency: str,
    amount: int,
    reason: str,
    payment_id: str | None,
    now: dt.datetime,
    *,
    note: str | None = None,
) -> int:
    """Add ``amount`` (minor units, > 0); returns the new balance. ``note``: an operator's
    reason for an ``adjustment``."""
    conn.execute(
        "INSERT INTO ledger (telegram_id, currency, delta, reason, payment_id, created_at, note)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (telegram_id, currency, amount, reason, payment_id, now, note),
    )
    row = conn.execute(
        "INSERT INTO balances (telegram_id, currency, amount) VALUES (%s, %s, %s)"
        " ON CONFLICT (telegram_id, currency) DO UPDATE"
        " SET amount = balances.amount + EXCLUDED.amount RETURNING amount",
        (telegram_id, currency, amount),
    ).fetchone()
    assert row is not None
    return int(row[0])


def debit(
    conn: Connection,
    telegram_id: int,
    currency: str,
    amount: int,
    reason: str,
    payment_id: str | None,
    now: dt.datetime,
    *,
    note: str | None = None,
) -> int:
    """Take ``amount`` or raise InsufficientBalance (and change nothing); returns the rest."""
    row = conn.execute(
        "UPDATE balances SET amount = amount - %s"
        " WHERE telegram_id = %s AND currency = %s AND amount >= %s RETURNING amount",
        (amount, telegram_id, currency, amount),
    ).fetchone()
    if row is None:
        have = balance(conn, telegram_id, currency)
        raise InsufficientBalance(currency, amount, have)
    conn.execute(
        "INSERT INTO ledger (telegram_id, currency, delta, reason, payment_id, created_at, note)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (telegram_id, currency, -amount, reason, payment_id, now, note),
    )
    return int(row[0])


def take_back(
    conn: Connection,
    telegram_id: int,
    currency: str,
    amount: int,
    payment_id: str,
    now: dt.datetime,
) -> int:
    """Reverse a credit as far as the balance allows (never below zero); returns the taken."""
    row = conn.execute(
        "SELECT amount FROM balances WHERE telegram_id = %s AND currency = %s FOR UPDATE",
        (telegram_id, currency),
    ).fetchone()
    taken = min(int(row[0]), amount) if row is not None else 0
    if taken:
        conn.execute(
            "UPDATE balances SET amount = amount - %s WHERE telegram_id = %s AND currency = %s",
            (taken, telegram_id, currency),
        )
        conn.execute(
            "INSERT INTO ledger (telegram_id, currency, delta, reason, payment_id, created_at)"
            " VALUES (%s, %s, %s, 'reversal', %s, %s)",
            (telegram_id, currency, -taken, payment_id, now),
        )
    return taken


def balance(conn: Connection, telegram_id: int, currency: str) -> int:
    row = conn.execute(
        "SELECT amount FROM balances WHERE telegram_id = %s AND currency = %s",
        (telegram_id, currency),
    ).fetchone()
    return int(row[0]) if row is not None else 0


def balances(conn: Connection, telegram_id: int) -> dict[str, int]:
    rows = conn.execute(
        "SELECT currency, amount FROM balances WHERE telegram_id = %s ORDER BY currency",
        (telegram_id,),
    ).fetchall()
    return {currency: int(amount) for currency, amount in rows}
