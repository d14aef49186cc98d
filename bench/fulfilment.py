"""Benchmark: activations queued during a panel outage, applied once the panel is back.

Seeds a fresh database with ``--customers`` new subscriptions (each one marks its
customer due in the fulfilment queue, as a purchase does), runs the fulfilment actor's
drain against the fake Remnawave panel (3.3.2) while the panel answers 502 (every
activation fails and waits), then ends the outage and times the drain that applies them
all: real PostgreSQL, real HTTP on loopback, the shop's own client and queue.

    python bench/fulfilment.py --customers 1000
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import bench_database  # noqa: E402
from shop.actors.fulfilment import apply_due  # noqa: E402
from shop.catalog import Limits  # noqa: E402
from shop.clock import SystemClock  # noqa: E402
from shop.fulfilment.remnawave import Remnawave  # noqa: E402
from shop.sandbox.panels.remnawave import DEFAULT_SQUAD, TOKEN, FakeRemnawave  # noqa: E402
from shop.store import open_store  # noqa: E402
from shop.store.instance import open_instance  # noqa: E402


class Catalog:
    """Every plan allows 50 GB, 3 devices, one squad (what the panel has to be told)."""

    def limits(self, plan_id: str | None) -> Limits:
        return Limits(50, 3, (DEFAULT_SQUAD[0],))


class Stand:
    """The parts of the running shop the drain uses."""

    def __init__(self, store: Any, fulfilment: Remnawave, instance: int) -> None:
        self.store = store
        self.fulfilment = fulfilment
        self.instance = instance
        self.catalog = Catalog()
        self.clock = SystemClock()


def seed(url: str, customers: int) -> None:
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO customers (telegram_id, first_seen, last_seen)"
            " SELECT id, %s, %s FROM generate_series(1, %s) AS id",
            (now, now, customers),
        )
        conn.execute(
            "INSERT INTO subscriptions (telegram_id, status, expires_at, plan_id, started_at,"
            " updated_at) SELECT id, 'active', %s, 'm1', %s, %s FROM generate_series(1, %s) id",
            (now + dt.timedelta(days=30), now, now, customers),
        )


async def run(url: str, customers: int) -> None:
    panel = FakeRemnawave(version="3.3.2")
    async with trio.open_nursery() as nursery:
        await nursery.start(panel.serve)
        limits = httpx.Limits(max_connections=16)
        async with (
            open_store(url) as store,
            open_instance(store) as instance,
            httpx.AsyncClient(limits=limits, timeout=15) as http,
        ):
            stand = Stand(store, Remnawave(http, url=panel.base_url, token=TOKEN), instance)
            panel.outage(502)
            started = time.perf_counter()
            tried = await apply_due(stand)  # type: ignore[arg-type]
            print(f"outage: {tried} activations tried and queued in {_since(started)}")
            panel.end_outage()
            await store.run(_due_now)  # the backoff has passed
            calls_before = len(panel.calls)
            started = time.perf_counter()
            applied = await apply_due(stand)  # type: ignore[arg-type]
            seconds = time.perf_counter() - started
            calls = len(panel.calls) - calls_before
            active = sum(1 for user in panel.users.values() if user["status"] == "ACTIVE")
            print(
                f"recovered: {applied} applied in {seconds:.2f} s ({applied / seconds:.0f}/s);"
                f" {active} accounts active; {calls / applied:.2f} panel calls per activation"
            )
        nursery.cancel_scope.cancel()


def _due_now(conn: Any) -> None:
    conn.execute("UPDATE fulfilment_queue SET next_attempt_at = now() - interval '1 second'")


def _since(started: float) -> str:
    return f"{time.perf_counter() - started:.2f} s"


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # a thousand "not applied yet" lines otherwise
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    args = parser.parse_args()
    with bench_database() as url:
        seed(url, args.customers)
        trio.run(run, url, args.customers)


if __name__ == "__main__":
    main()
