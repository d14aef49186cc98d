"""The ticket guards are in SQL: one open ticket per customer, each relay claimed once."""

from __future__ import annotations

import threading

import psycopg
import pytest

from shop.store import tickets
from tests.conftest import START

ANN, GROUP = 1001, -1001000000100


def customer(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO customers (telegram_id, first_seen, last_seen) VALUES (%s, %s, %s)",
            (ANN, START, START),
        )


def test_two_first_messages_at_once_open_one_ticket(clean_database: str) -> None:
    """Two shops (or a double send) open Ann's ticket at the same moment: the partial unique
    index makes the second wait for the first and join its ticket."""
    customer(clean_database)
    claims: list[tickets.Claim | None] = []
    with psycopg.connect(clean_database) as first:
        claims.append(tickets.claim_message(first, ANN, 10, (GROUP,), GROUP, START, True))

        def second() -> None:
            with psycopg.connect(clean_database) as conn, conn.transaction():
                claims.append(tickets.claim_message(conn, ANN, 11, (GROUP,), GROUP, START, True))

        racer = threading.Thread(target=second)
        racer.start()
        racer.join(0.5)
        assert racer.is_alive()  # waiting on the first transaction's ticket
        first.commit()
        racer.join(10)
    one, two = claims
    assert one is not None
    assert two is not None
    assert one.ticket.id == two.ticket.id
    assert (one.opened, two.opened) == (True, False)
    assert [r.kind for r in one.owed] == ["header", "copy"]
    assert [r.kind for r in two.owed] == ["copy"]
    with psycopg.connect(clean_database) as conn:
        assert conn.execute("SELECT count(*) FROM tickets").fetchone() == (1,)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO tickets (telegram_id, status, opened_at) VALUES (%s, 'open', %s)",
                (ANN, START),
            )


def test_a_claimed_message_is_owed_until_delivered_then_never_again(clean_database: str) -> None:
    customer(clean_database)
    with psycopg.connect(clean_database, autocommit=True) as conn:
        assert tickets.claim_message(conn, ANN, 10, (GROUP,), GROUP, START, False) is None
        claim = tickets.claim_message(conn, ANN, 10, (GROUP,), GROUP, START, True)
        assert claim is not None
        # Crashed before anything was accepted: the replay owes the same.
        again = tickets.claim_message(conn, ANN, 10, (GROUP,), GROUP, START, True)
        assert again is not None
        assert again.owed == claim.owed
        tickets.delivered(conn, "header", (ANN, 10), GROUP, 500)
        tickets.delivered(conn, "copy", (ANN, 10), GROUP, 501)
        done = tickets.claim_message(conn, ANN, 10, (GROUP,), GROUP, START, True)
        assert done is not None
        assert done.owed == ()
        assert done.headers == {GROUP: 500}
        assert tickets.by_copy(conn, GROUP, 501) == tickets.by_copy(conn, GROUP, 500)
        # Closed: the claimed message still knows its ticket; a new one may open another.
        assert tickets.close(conn, claim.ticket.id, ANN, START, ANN) is not None
        assert tickets.close(conn, claim.ticket.id, ANN, START, ANN) is None
        replay = tickets.claim_message(conn, ANN, 10, (GROUP,), GROUP, START, True)
        assert replay is not None
        assert replay.ticket.id == claim.ticket.id
        assert tickets.claim_reply(conn, claim.ticket.id, (GROUP, 600), START) is None
        fresh = tickets.claim_message(conn, ANN, 12, (GROUP,), GROUP, START, True)
        assert fresh is not None
        assert fresh.opened
        assert fresh.ticket.id != claim.ticket.id
