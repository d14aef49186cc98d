"""Benchmark: a broadcast to 10,000 customers at the free rate (30/s) and a paid one (1000/s).

Seeds a fresh database with ``--recipients`` customers, creates a broadcast to all of
them and times the broadcaster sending it through the shop's own outbox and Bot API
client to the fake Bot API in its own process (real HTTP on loopback, real PostgreSQL).
Reports the throughput against the bulk budget (the rate minus the headroom kept for
replies) and the busiest one-second window of calls started, which must not exceed the
rate.

    python bench/broadcast.py --rate 30 --recipients 10000
    python bench/broadcast.py --rate 1000 --paid --recipients 10000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import psycopg
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import bench_database, fake_bot_api  # noqa: E402
from shop.actors.broadcast import Broadcaster  # noqa: E402
from shop.clock import SystemClock  # noqa: E402
from shop.store import broadcasts as store  # noqa: E402
from shop.store import open_store  # noqa: E402
from shop.store.instance import open_instance  # noqa: E402
from shop.telegram.api import BotClient, open_bot_client  # noqa: E402
from shop.telegram.outbox import Outbox  # noqa: E402
from shop.wakeup import Wakeup  # noqa: E402
from tests.fakes.telegram import TOKEN  # noqa: E402


class Timed:
    """The Bot API client, noting when each call starts (what the rate limit is about)."""

    def __init__(self, bot: BotClient) -> None:
        self.bot = bot
        self.started: list[float] = []

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        self.started.append(trio.current_time())
        return await self.bot.call(method, params)


def busiest_second(times: list[float]) -> int:
    most, low = 0, 0
    for high, at in enumerate(times):
        while times[low] <= at - 1.0:
            low += 1
        most = max(most, high - low + 1)
    return most


async def run(url: str, api: str, args: argparse.Namespace) -> None:
    clock = SystemClock()
    async with (
        open_store(url) as shop_store,
        open_bot_client(api, TOKEN, connections=args.concurrency) as bot,
        open_instance(shop_store) as instance,
        trio.open_nursery() as nursery,
    ):
        timed = Timed(bot)
        outbox = Outbox(
            cast(BotClient, timed),
            global_rate=args.rate,
            paid_broadcast=args.paid,
            concurrency=args.concurrency,
            bulk_headroom=max(1, args.rate // 10),  # as shop.main sets it
        )
        await nursery.start(outbox.run)
        broadcaster = Broadcaster(shop_store, outbox, clock, instance, Wakeup())
        message = {"text": "<b>News</b>: the bench"}
        broadcast_id = await shop_store.run(store.create, message, "all", None, clock.now())
        started = time.perf_counter()
        handed = await broadcaster.send_owed()
        seconds = time.perf_counter() - started
        progress = await shop_store.run_statement(store.progress, broadcast_id)
        nursery.cancel_scope.cancel()
    assert progress is not None
    times = sorted(timed.started)
    spread = times[-1] - times[0] if len(times) > 1 else 0.0
    rate = (len(times) - 1) / spread if spread else float("nan")
    print(
        f"rate {args.rate}{' paid' if args.paid else ''}, concurrency {args.concurrency}:"
        f" {handed} handed, {progress.sent} sent ({progress.status}) in {seconds:.1f} s;"
        f" {rate:.1f} msg/s against a bulk budget of {outbox.bulk_rate}/s"
        f" ({100 * rate / outbox.bulk_rate:.1f} %); busiest second {busiest_second(times)}"
        f" (limit {args.rate})",
        flush=True,
    )


def seed(url: str, count: int) -> None:
    now = SystemClock().now()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO customers (telegram_id, first_seen, last_seen)"
            " SELECT id, %s, %s FROM generate_series(1000001, 1000000 + %s) AS id",
            (now, now, count),
        )
        conn.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=30)
    parser.add_argument("--paid", action="store_true", help="TELEGRAM_PAID_BROADCAST=1")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight at once")
    args = parser.parse_args()
    with bench_database() as url, fake_bot_api() as api:
        seed(url, args.recipients)
        trio.run(run, url, api, args)


if __name__ == "__main__":
    main()
