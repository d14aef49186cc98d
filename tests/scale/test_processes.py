"""Two real ``shop run`` processes in webhook mode behind a fake Bot API (its own process)
that delivers updates to them in turn: one is killed with SIGKILL mid-storm, and every
customer is still answered, by the survivor, with nothing left in the journal.

Waiting on other processes is real time by nature: each wait is bounded and polls for a
condition, none is a timing assumption.
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import psycopg
import pytest

from tests.fakes.telegram import TOKEN
from tests.test_crash import until
from tests.test_main import ROOT, free_port, start_shop, stop, wait_ready

SECRET = "two-instances-webhook-secret"
CUSTOMERS = range(6000, 6060)


@pytest.mark.slow
def test_two_instances_one_killed_mid_storm_answer_everyone(clean_database: str) -> None:
    ports = [free_port(), free_port()]
    fake_port = free_port()
    targets = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.telegram", "--port", str(fake_port),
         "--deliver-to", targets],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{fake_port}"
    shops: list[subprocess.Popen[str]] = []
    try:
        until(lambda: _answers(f"{base}/bot{TOKEN}/getMe"), 30, "the fake Bot API up")
        env = {
            "DATABASE_URL": clean_database,
            "TELEGRAM_API_URL": base,
            "TELEGRAM_WEBHOOK_URL": "https://shop.example/telegram/webhook",
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "INSTANCES": "2",
            "SHUTDOWN_GRACE": "5",
        }
        for port in ports:
            proc, _ = start_shop(env | {"HTTP_PORT": str(port)})
            shops.append(proc)
            wait_ready(proc, f"http://127.0.0.1:{port}")
        forged = httpx.post(
            f"http://127.0.0.1:{ports[0]}/telegram/webhook",
            json={"update_id": 1},
            headers={"X-Telegram-Bot-Api-Secret-Token": "not-it"},
        )
        assert forged.status_code == 401
        with httpx.Client(base_url=f"{base}/_fake", timeout=5) as control:
            control.post("/delay", json={"method": "sendMessage", "seconds": 1}).raise_for_status()
            storm = {"start_storm": {"users": len(CUSTOMERS), "first_id": CUSTOMERS[0]}}
            control.post("/updates", json=storm).raise_for_status()

            def some_answered() -> bool:
                return int(control.get("/stats").json()["calls"].get("sendMessage", 0)) >= 5

            until(some_answered, 30, "the storm being answered")
            shops[1].kill()  # kill -9 of one instance mid-storm
            shops[1].communicate(timeout=10)
            control.post("/delay", json={"method": "sendMessage", "seconds": 0}).raise_for_status()

            def everyone_answered() -> bool:
                return all(
                    control.get("/messages", params={"chat_id": c}).json() for c in CUSTOMERS
                )

            until(everyone_answered, 90, "every customer answered by the survivor")
            counts = [
                len(control.get("/messages", params={"chat_id": c}).json()) for c in CUSTOMERS
            ]
        code, output = stop(shops[0], grace=5)
        assert code == 0, output
        with psycopg.connect(clean_database, autocommit=True) as conn:
            left = conn.execute("SELECT count(*) FROM telegram_updates").fetchone()
        assert left == (0,)
        assert max(counts) <= 2  # only a reply in flight at the kill can come twice
    finally:
        for proc in shops:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
        fake.terminate()
        fake.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.post(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False
