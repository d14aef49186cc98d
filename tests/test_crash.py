"""``kill -9`` of a real ``shop run`` process while Telegram answers slowly: after a
restart every journaled update is answered and every notice under delivery arrives.

Waiting on other processes is real time by nature: each wait here is bounded and polls
for a condition, none is a timing assumption.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable

import httpx
import psycopg
import pytest

from tests.test_main import start_shop, stop, telegram_url, wait_ready  # noqa: F401

CUSTOMERS = range(5000, 5040)
WAITING = 6000  # owed a payment confirmation before the shop starts


def until(condition: Callable[[], bool], patience: float, what: str) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {patience} s: {what}")


def owe_a_confirmation(database_url: str) -> None:
    now = dt.datetime.now(dt.UTC)
    detail = {"title": "1 month", "expires_at": (now + dt.timedelta(days=30)).isoformat()}
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO customers (telegram_id, first_seen, last_seen) VALUES (%s, %s, %s)",
            (WAITING, now, now),
        )
        conn.execute(
            "INSERT INTO notices (telegram_id, kind, period, ref, created_at, detail)"
            " VALUES (%s, 'paid', 0, 'pay-1', %s, %s::jsonb)",
            (WAITING, now, json.dumps(detail)),
        )


@pytest.mark.slow
def test_kill_9_mid_handling_loses_no_answer(
    clean_database: str,
    telegram_url: str,  # noqa: F811 - the fixture, imported above
) -> None:
    owe_a_confirmation(clean_database)
    with httpx.Client(base_url=f"{telegram_url}/_fake", timeout=5) as fake:
        play(clean_database, telegram_url, fake)


def play(database_url: str, base_url: str, fake: httpx.Client) -> None:
    fake.post("/delay", json={"method": "sendMessage", "seconds": 3}).raise_for_status()
    env = {"DATABASE_URL": database_url, "TELEGRAM_API_URL": base_url}
    proc, base = start_shop(env)
    try:
        wait_ready(proc, base)
        storm = {"start_storm": {"users": len(CUSTOMERS), "first_id": CUSTOMERS[0]}}
        fake.post("/updates", json=storm).raise_for_status()

        def sending() -> bool:
            return int(fake.get("/stats").json()["calls"].get("sendMessage", 0)) >= 10

        until(sending, 30, "replies being sent")
    finally:
        proc.kill()  # kill -9: no graceful stop, replies still in flight
        proc.communicate(timeout=10)
    answered_before = [c for c in CUSTOMERS if fake.get("/messages", params={"chat_id": c}).json()]
    assert len(answered_before) < len(CUSTOMERS)  # the kill did cut the work short

    fake.post("/delay", json={"method": "sendMessage", "seconds": 0}).raise_for_status()
    proc, base = start_shop(env)
    try:
        wait_ready(proc, base)

        def everyone_answered() -> bool:
            chats = [*CUSTOMERS, WAITING]
            return all(fake.get("/messages", params={"chat_id": c}).json() for c in chats)

        until(everyone_answered, 60, "every customer answered after the restart")
    finally:
        code, output = stop(proc, grace=5)
    assert code == 0, output
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM telegram_updates").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM notices WHERE sent_at IS NULL").fetchone() == (0,)
    confirmation = fake.get("/messages", params={"chat_id": WAITING}).json()
    assert "Payment received" in confirmation[0]["text"]


RECIPIENTS = range(7000, 7150)
TOKEN = "op-secret-token-1234"


def seed_recipients(database_url: str) -> None:
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO customers (telegram_id, first_seen, last_seen)"
            " SELECT id, %s, %s FROM generate_series(%s::bigint, %s::bigint) AS id",
            (now, now, RECIPIENTS[0], RECIPIENTS[-1]),
        )


@pytest.mark.slow
def test_kill_9_mid_broadcast_resumes_with_no_gap(
    clean_database: str,
    telegram_url: str,  # noqa: F811 - the fixture, imported above
) -> None:
    """A real ``shop run`` killed with SIGKILL while a broadcast is a third through: the
    restarted shop finishes it; every recipient has it, and only what was in flight at the
    kill (Telegram accepted it, the shop had not written it down) can arrive twice."""
    seed_recipients(clean_database)
    env = {
        "DATABASE_URL": clean_database,
        "TELEGRAM_API_URL": telegram_url,
        "ADMIN_TOKEN": TOKEN,
        "TELEGRAM_GLOBAL_RATE": "30",
    }
    auth = {"Authorization": f"Bearer {TOKEN}"}
    text = "<b>Big news</b>"
    with httpx.Client(base_url=f"{telegram_url}/_fake", timeout=5) as fake:
        proc, base = start_shop(env)
        try:
            wait_ready(proc, base)
            body = {"text": text, "audience": "all"}
            created = httpx.post(f"{base}/admin/api/broadcasts", json=body, headers=auth)
            assert created.status_code == 201, created.text
            broadcast = created.json()["id"]

            def a_third_sent() -> bool:
                calls = fake.get("/stats").json()["calls"]
                return int(calls.get("sendMessage", 0)) >= len(RECIPIENTS) // 3

            until(a_third_sent, 60, "a third of the broadcast sent")
        finally:
            proc.kill()  # kill -9 mid-broadcast
            proc.communicate(timeout=10)
        before = int(fake.get("/stats").json()["calls"]["sendMessage"])
        assert before < len(RECIPIENTS)  # the kill did cut it short

        proc, base = start_shop(env)
        try:
            wait_ready(proc, base)

            def done() -> bool:
                found = httpx.get(f"{base}/admin/api/broadcasts/{broadcast}", headers=auth)
                return bool(found.json()["status"] == "done")

            until(done, 60, "the broadcast done after the restart")
            progress = httpx.get(f"{base}/admin/api/broadcasts/{broadcast}", headers=auth).json()
        finally:
            code, output = stop(proc, grace=5)
        assert code == 0, output
        received = {
            chat: sum(
                m.get("text") == text
                for m in fake.get("/messages", params={"chat_id": chat}).json()
            )
            for chat in RECIPIENTS
        }
    assert progress == {"status": "done", "total": 150, "sent": 150, "blocked": 0, "failed": 0}
    assert min(received.values()) == 1  # no gap
    twice = sum(n - 1 for n in received.values())
    assert twice <= 30, twice  # at most the second's worth in flight at the kill (bulk rate 27/s)
