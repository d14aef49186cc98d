"""Benchmark: the shop's memory (RSS) after many distinct customers have used it.

The fake Bot API runs in its own process; the shop runs in this one against a real
PostgreSQL. ``--customers`` distinct customers (default 100,000) send /start, in waves of
``--wave``; after each wave the script waits until every reply was delivered, then prints
the RSS, the live actors and the outbox's remembered chats. With ``--trace N`` it also
prints the N places that hold the most memory (tracemalloc: slow, so use fewer customers).

    python bench/memory.py [--customers 100000 --wave 10000] [--trace 15]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import bench_database, fake_bot_api  # noqa: E402
from shop.config import load_config  # noqa: E402
from shop.main import serve_shop, tune_garbage_collector  # noqa: E402
from tests.fakes.telegram import TOKEN  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def run(args: argparse.Namespace, database_url: str, fake_url: str) -> list[str]:
    environ = {
        "DATABASE_URL": database_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": fake_url,
        "TELEGRAM_PAID_BROADCAST": "1",
        "TELEGRAM_GLOBAL_RATE": "1000",
        "LOG_LEVEL": "warning",
    }
    config = load_config(environ)
    stop = trio.Event()
    lines: list[str] = []
    async with trio.open_nursery() as nursery, httpx.AsyncClient(base_url=fake_url) as fake:
        tune_garbage_collector()  # as `shop run` does
        running = await nursery.start(
            lambda task_status: serve_shop(config, stop, task_status=task_status)
        )
        app = running.app
        gc.collect()
        lines.append(f"{'started':>28}: RSS {rss_mb():6.1f} MB")
        print(lines[-1], flush=True)
        if args.trace:
            tracemalloc.start(8)
        sent, started = 0, trio.current_time()
        while sent < args.customers:
            wave = min(args.wave, args.customers - sent)
            storm = {"start_storm": {"users": wave, "first_id": 9_000_000 + sent}}
            await fake.post("/_fake/updates", json=storm)
            sent += wave
            while True:  # the fake is another process: ask until every reply is in
                stats = (await fake.get("/_fake/stats")).json()
                if stats["calls"].get("sendMessage", 0) >= sent:
                    break
                await trio.sleep(0.5)
            gc.collect()
            live = app.actors.stats()["user"].live
            chats = len(app.outbox._chats)
            lines.append(
                f"{sent:>8} customers, {trio.current_time() - started:5.0f} s: RSS"
                f" {rss_mb():6.1f} MB; live user actors {live}, outbox chats {chats}"
            )
            print(lines[-1], flush=True)
        if args.trace:
            snapshot = tracemalloc.take_snapshot()
            for stat in snapshot.statistics("lineno")[: args.trace]:
                lines.append(f"  {stat.size / 1024 / 1024:7.1f} MB {stat.count:8} {stat.traceback}")
            per = sum(s.size for s in snapshot.statistics("filename")) / args.customers
            lines.append(f"  traced: {per:.0f} bytes per customer")
        stop.set()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--wave", type=int, default=10_000)
    parser.add_argument("--trace", type=int, default=0)
    args = parser.parse_args()
    with bench_database(schema=False) as database_url, fake_bot_api() as fake_url:
        lines = trio.run(run, args, database_url, fake_url)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
