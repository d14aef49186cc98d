"""Benchmark: updates/s in webhook mode with one and with two ``shop run`` processes.

The fake Bot API runs in its own process and, once the shops set the webhook, delivers
updates to them in turn (``--deliver-to``, a round-robin load balancer) over real HTTP,
one at a time per chat as Telegram does; each shop journals an update, answers 200, and
handles it (with two, each customer leased to one instance at a time). N distinct
customers send /start, then /help; the clock runs until every reply was accepted by the
fake. Same database server, same fake, same work for both rounds.

    python bench/scale.py --users 2000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import bench_database, free_port  # noqa: E402
from tests.fakes.telegram import TOKEN  # noqa: E402

SECRET = "bench-webhook-secret"


def wait_for(check: object, patience: float, what: str) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"not within {patience} s: {what}")


def round_(instances: int, users: int) -> float:
    ports = [free_port() for _ in range(instances)]
    fake_port = free_port()
    targets = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.telegram", "--port", str(fake_port),
         "--deliver-to", targets],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{fake_port}"
    shops: list[subprocess.Popen[bytes]] = []
    try:
        wait_for(lambda: httpx.get(f"{base}/_fake/stats").status_code == 200, 30, "fake up")
        with bench_database() as url:
            env = {
                "PATH": os.environ["PATH"],
                "DATABASE_URL": url,
                "TELEGRAM_TOKEN": TOKEN,
                "TELEGRAM_API_URL": base,
                "TELEGRAM_WEBHOOK_URL": "https://shop.example/telegram/webhook",
                "TELEGRAM_WEBHOOK_SECRET": SECRET,
                "TELEGRAM_WEBHOOK_MAX_CONNECTIONS": "100",
                "TELEGRAM_PAID_BROADCAST": "1",
                "TELEGRAM_GLOBAL_RATE": "1000",
                "INSTANCES": str(instances),
                "HTTP_HOST": "127.0.0.1",
                "LOG_LEVEL": "WARNING",
            }
            for port in ports:
                shops.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "shop", "run"],
                        env=env | {"HTTP_PORT": str(port), "SHUTDOWN_GRACE": "10"},
                        cwd=ROOT,
                        stdout=subprocess.DEVNULL,
                        stderr=open(f"/tmp/scale-{port}.log", "w"),  # noqa: SIM115
                    )
                )
            for port in ports:
                wait_for(
                    lambda p=port: (
                        httpx.get(f"http://127.0.0.1:{p}/readyz").json()["telegram"] == "ok"
                    ),
                    60,
                    "shop ready",
                )
            with httpx.Client(base_url=f"{base}/_fake", timeout=30) as control:
                started = time.monotonic()
                for text in ("/start", "/help"):
                    updates = [
                        {
                            "message": {
                                "message_id": 1,
                                "date": 1,
                                "chat": {"id": 10_000_000 + n, "type": "private"},
                                "from": {"id": 10_000_000 + n, "is_bot": False, "first_name": "A"},
                                "text": text,
                            }
                        }
                        for n in range(users)
                    ]
                    control.post("/updates", json=updates).raise_for_status()

                def all_replied() -> bool:
                    calls = control.get("/stats").json()["calls"]
                    return int(calls.get("sendMessage", 0)) >= 2 * users

                try:
                    wait_for(all_replied, 600, "every reply")
                    return 2 * users / (time.monotonic() - started)
                finally:
                    stop_all(shops)  # before the database goes
    finally:
        stop_all(shops)
        fake.terminate()
        fake.wait(timeout=10)


def stop_all(shops: list[subprocess.Popen[bytes]]) -> None:
    for proc in shops:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    args = parser.parse_args()
    one = round_(1, args.users)
    two = round_(2, args.users)
    print(f"webhook mode, {args.users} customers x 2 updates, every reply delivered")
    print(f"  one instance : {one:8.0f} updates/s")
    print(f"  two instances: {two:8.0f} updates/s")


if __name__ == "__main__":
    main()
