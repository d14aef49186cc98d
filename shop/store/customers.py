"""Customers: who they are, their language, and their conversation state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import attrs
from psycopg.rows import class_row

from .pool import Connection


@attrs.frozen
class CustomerRow:
    telegram_id: int
    first_name: str
    language: str
    blocked: bool
    banned: bool  # by an operator: one short notice, nothing else
    screen: str
    start_payload: str | None
    first_seen: dt.datetime
    trial_open: bool  # never took the trial, and never had a subscription
    created: bool = False  # by the greeting that loaded it: a customer new this moment


_COLUMNS = (
    "telegram_id, first_name, language, blocked, banned, screen, start_payload, first_seen,"
    " NOT trial_used AND NOT EXISTS (SELECT 1 FROM subscriptions s"
    " WHERE s.telegram_id = customers.telegram_id) AS trial_open"
)


@attrs.frozen
class Greeting:
    """A customer who just wrote to the shop, as Telegram describes them."""

    telegram_id: int
    first_name: str
    username: str | None
    language: str
    now: dt.datetime


def greet_many(conn: Connection, greetings: Sequence[Greeting]) -> list[CustomerRow]:
    """Load customers who wrote, creating those seen for the first time; one statement.

    A new customer gets ``language`` (from Telegram); a known one keeps their choice.
    Rows come back in the order asked.
    """
    with conn.cursor(row_factory=class_row(CustomerRow)) as cur:
        cur.execute(
            "INSERT INTO customers (telegram_id, first_name, username, language,"
            " first_seen, last_seen)"
            " SELECT g.id, g.first_name, g.username, g.language, g.now, g.now FROM unnest("
            "%s::bigint[], %s::text[], %s::text[], %s::text[], %s::timestamptz[])"
            " AS g(id, first_name, username, language, now)"
            " ON CONFLICT (telegram_id) DO UPDATE SET first_name = EXCLUDED.first_name,"
            " username = EXCLUDED.username, last_seen = EXCLUDED.last_seen"
            # xmax = 0 only for a row this statement inserted (PostgreSQL's upsert marker)
            f" RETURNING {_COLUMNS}, xmax = 0 AS created",
            (
                [g.telegram_id for g in greetings],
                [g.first_name for g in greetings],
                [g.username for g in greetings],
                [g.language for g in greetings],
                [g.now for g in greetings],
            ),
        )
        rows = {row.telegram_id: row for row in cur.fetchall()}
    return [rows[g.telegram_id] for g in greetings]


def load(conn: Connection, telegram_id: int) -> CustomerRow | None:
    with conn.cursor(row_factory=class_row(CustomerRow)) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM customers WHERE telegram_id = %s", (telegram_id,))
        return cur.fetchone()


def set_language(conn: Connection, telegram_id: int, language: str) -> None:
    conn.execute(
        "UPDATE customers SET language = %s WHERE telegram_id = %s", (language, telegram_id)
    )


def set_blocked(conn: Connection, telegram_id: int, blocked: bool) -> None:
    conn.execute("UPDATE customers SET blocked = %s WHERE telegram_id = %s", (blocked, telegram_id))


def remember_start_payload(conn: Connection, telegram_id: int, payload: str) -> None:
    """Keep the first deep-link payload (a referral must not be overwritten later)."""
    conn.execute(
        "UPDATE customers SET start_payload = %s WHERE telegram_id = %s AND start_payload IS NULL",
        (payload, telegram_id),
    )


def save_conversation(
    conn: Connection, telegram_id: int, screen: str, last_seen: dt.datetime
) -> None:
    conn.execute(
        "UPDATE customers SET screen = %s, last_seen = GREATEST(last_seen, %s),"
        " state_updated_at = %s WHERE telegram_id = %s",
        (screen, last_seen, last_seen, telegram_id),
    )


def set_auto_renew(conn: Connection, telegram_id: int, on: bool) -> None:
    conn.execute("UPDATE customers SET auto_renew = %s WHERE telegram_id = %s", (on, telegram_id))
