"""Support tickets: a customer's conversation with the operators, and each message relayed.

A customer has at most one open ticket: ``tickets_one_open`` (a partial unique index) makes
two messages at once, or two shops, open one. Every relay is a row of ``ticket_messages``
keyed by its source message and where it goes, claimed before it is sent and given the id
of its copy once Telegram accepted it (DESIGN.md, "Effects that must happen"):

- a replayed update finds its relays done, and sends nothing twice;
- a relay claimed but never accepted (a crash in between) is owed, and is sent on replay;
- a reply in the support chat finds its ticket by the message it answers (a header or a
  customer's message there), a message in a forum topic by the topic.

Kinds: ``header`` (the ticket's card for the operators), ``copy`` (a customer's message in
the support chat or an admin's chat), ``reply`` (an operator's message, to the customer).
Closing is one guarded ``UPDATE``: whoever closes first wins, the other is told it was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import attrs
from psycopg.rows import class_row

from .pool import Connection

_TICKET = (
    "t.id, t.telegram_id, t.status, t.chat_id, t.thread_id, c.language, c.first_name,"
    " c.username, t.opened_at"
)
_FROM = "FROM tickets t JOIN customers c ON c.telegram_id = t.telegram_id"


@attrs.frozen
class Ticket:
    id: int
    telegram_id: int
    status: str  # open | closed
    chat_id: int | None  # SUPPORT_CHAT_ID, or None: the ticket went to the ADMIN_IDS
    thread_id: int | None  # its forum topic, in a forum
    language: str  # the customer's
    first_name: str
    username: str | None
    opened_at: dt.datetime


@attrs.frozen
class Relay:
    """One message owed to one chat (``message_id`` None) or delivered there."""

    kind: str  # header | copy | reply
    chat_id: int
    message_id: int | None


@attrs.frozen
class Claim:
    """What a customer's message is for: its ticket, and what is still owed for it."""

    ticket: Ticket
    opened: bool  # this message opened the ticket
    owed: tuple[Relay, ...]  # headers first; empty: a replay of a message relayed already
    headers: dict[int, int]  # chat -> the header's message id there (copies reply to it)


@attrs.frozen
class Closed:
    ticket: Ticket
    headers: dict[int, int]  # chat -> header message id: where the close button was


@attrs.frozen
class OpenTicket:
    id: int
    telegram_id: int
    first_name: str
    username: str | None
    opened_at: dt.datetime
    messages: int  # from the customer
    replies: int  # from the operators


def claim_message(
    conn: Connection,
    telegram_id: int,
    message_id: int,
    targets: Sequence[int],
    support_chat: int | None,
    now: dt.datetime,
    may_open: bool,
) -> Claim | None:
    """Claim the relays of a customer's message (in their private chat) to ``targets``.

    It joins the open ticket, or opens one when ``may_open`` (the customer asked to write
    to support); None when there is no open ticket and it may not open one. A message
    claimed before (a replayed update) keeps the ticket it had, open or closed since.
    """
    before = conn.execute(
        "SELECT ticket_id FROM ticket_messages WHERE source_chat = %s AND source_message = %s"
        " AND kind IN ('header', 'copy') LIMIT 1",
        (telegram_id, message_id),
    ).fetchone()
    if before is not None:
        ticket = _load(conn, "t.id = %s", int(before[0]))
    else:
        ticket, opened = _open_ticket(conn, telegram_id, support_chat, now, may_open=may_open)
        if ticket is None:
            return None
        kinds = (["header"] * len(targets) if opened else []) + ["copy"] * len(targets)
        chats = (list(targets) if opened else []) + list(targets)
        conn.execute(
            "INSERT INTO ticket_messages (ticket_id, kind, source_chat, source_message, chat_id,"
            " created_at) SELECT %s, kind, %s, %s, chat, %s FROM unnest(%s::text[], %s::bigint[])"
            " AS r(kind, chat) ON CONFLICT DO NOTHING",
            (ticket.id, telegram_id, message_id, now, kinds, chats),
        )
    assert ticket is not None
    rows = conn.execute(
        "SELECT kind, chat_id, message_id FROM ticket_messages"
        " WHERE source_chat = %s AND source_message = %s AND kind IN ('header', 'copy')"
        " ORDER BY kind DESC, chat_id",
        (telegram_id, message_id),
    ).fetchall()
    relays = [Relay(str(kind), int(chat), message) for kind, chat, message in rows]
    return Claim(
        ticket,
        opened=any(r.kind == "header" for r in relays),
        owed=tuple(r for r in relays if r.message_id is None),
        headers=headers(conn, ticket.id),
    )


def _open_ticket(
    conn: Connection,
    telegram_id: int,
    support_chat: int | None,
    now: dt.datetime,
    *,
    may_open: bool,
) -> tuple[Ticket | None, bool]:
    """The customer's open ticket (locked), or a new one; True when it is new."""
    ticket = _load(conn, "t.telegram_id = %s AND t.status = 'open' FOR UPDATE OF t", telegram_id)
    if ticket is not None or not may_open:
        return ticket, False
    row = conn.execute(
        "INSERT INTO tickets (telegram_id, status, chat_id, opened_at) VALUES (%s, 'open', %s, %s)"
        " ON CONFLICT (telegram_id) WHERE status = 'open' DO NOTHING RETURNING id",
        (telegram_id, support_chat, now),
    ).fetchone()
    if row is None:  # another shop opened it a moment ago: join that one
        return _load(conn, "t.telegram_id = %s AND t.status = 'open'", telegram_id), False
    return _load(conn, "t.id = %s", int(row[0])), True


def headers(conn: Connection, ticket_id: int) -> dict[int, int]:
    rows = conn.execute(
        "SELECT chat_id, message_id FROM ticket_messages"
        " WHERE ticket_id = %s AND kind = 'header' AND message_id IS NOT NULL",
        (ticket_id,),
    ).fetchall()
    return {int(chat): int(message) for chat, message in rows}


def delivered(
    conn: Connection, kind: str, source: tuple[int, int], chat_id: int, message_id: int
) -> None:
    """Telegram accepted a relay: what it became there (so replies to it find the ticket)."""
    conn.execute(
        "UPDATE ticket_messages SET message_id = %s WHERE source_chat = %s"
        " AND source_message = %s AND chat_id = %s AND kind = %s AND message_id IS NULL",
        (message_id, *source, chat_id, kind),
    )


def set_topic(conn: Connection, ticket_id: int, thread_id: int) -> int:
    """The ticket's forum topic; one set before (by a replay) is kept and returned."""
    row = conn.execute(
        "UPDATE tickets SET thread_id = COALESCE(thread_id, %s) WHERE id = %s RETURNING thread_id",
        (thread_id, ticket_id),
    ).fetchone()
    assert row is not None
    return int(row[0])


def by_topic(conn: Connection, chat_id: int, thread_id: int) -> Ticket | None:
    return _load(conn, "t.chat_id = %s AND t.thread_id = %s", chat_id, thread_id)


def by_copy(conn: Connection, chat_id: int, message_id: int) -> Ticket | None:
    """The ticket of a header or a customer's message as the operators see it there."""
    return _load(
        conn,
        "t.id = (SELECT ticket_id FROM ticket_messages WHERE chat_id = %s AND message_id = %s"
        " AND kind IN ('header', 'copy'))",
        chat_id,
        message_id,
    )


def claim_reply(
    conn: Connection, ticket_id: int, source: tuple[int, int], now: dt.datetime
) -> Relay | None:
    """Claim an operator's message for the customer; None when the ticket is closed (and
    the message was never claimed before)."""
    conn.execute(
        "INSERT INTO ticket_messages (ticket_id, kind, source_chat, source_message, chat_id,"
        " created_at) SELECT id, 'reply', %s, %s, telegram_id, %s FROM tickets"
        " WHERE id = %s AND status = 'open' ON CONFLICT DO NOTHING",
        (*source, now, ticket_id),
    )
    row = conn.execute(
        "SELECT chat_id, message_id FROM ticket_messages WHERE source_chat = %s"
        " AND source_message = %s AND kind = 'reply'",
        source,
    ).fetchone()
    return None if row is None else Relay("reply", int(row[0]), row[1])


def close(
    conn: Connection, ticket_id: int, by: int, now: dt.datetime, customer: int | None = None
) -> Closed | None:
    """Close an open ticket (only the customer's own, when ``customer`` is given); None when
    it was closed already, or is not theirs."""
    row = conn.execute(
        "UPDATE tickets SET status = 'closed', closed_at = %s, closed_by = %s"
        " WHERE id = %s AND status = 'open' AND (%s::bigint IS NULL OR telegram_id = %s)"
        " RETURNING id",
        (now, by, ticket_id, customer, customer),
    ).fetchone()
    if row is None:
        return None
    ticket = _load(conn, "t.id = %s", ticket_id)
    assert ticket is not None
    return Closed(ticket, headers(conn, ticket_id))


def open_tickets(conn: Connection, limit: int = 20) -> tuple[int, list[OpenTicket]]:
    """How many tickets are open, and the oldest ``limit`` of them (waiting longest first)."""
    (count,) = conn.execute("SELECT count(*) FROM tickets WHERE status = 'open'").fetchone() or (0,)
    with conn.cursor(row_factory=class_row(OpenTicket)) as cur:
        cur.execute(
            "SELECT t.id, t.telegram_id, c.first_name, c.username, t.opened_at,"
            " (SELECT count(DISTINCT m.source_message) FROM ticket_messages m"
            "  WHERE m.ticket_id = t.id AND m.kind = 'copy') AS messages,"
            " (SELECT count(*) FROM ticket_messages m"
            "  WHERE m.ticket_id = t.id AND m.kind = 'reply') AS replies"
            f" {_FROM} WHERE t.status = 'open' ORDER BY t.opened_at, t.id LIMIT %s",
            (limit,),
        )
        return int(count), cur.fetchall()


def _load(conn: Connection, where: str, *params: object) -> Ticket | None:
    with conn.cursor(row_factory=class_row(Ticket)) as cur:
        cur.execute(f"SELECT {_TICKET} {_FROM} WHERE {where}", params)
        return cur.fetchone()
