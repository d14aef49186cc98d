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
