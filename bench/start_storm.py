"""Benchmark: N distinct customers send /start at once.

The fake Bot API server runs in its own process (as Telegram would be remote); the shop
runs in this process against a real PostgreSQL over real HTTP. Two rounds: first every
customer is new (one upsert each), then the same customers again (their actors are live,
so no database work). Reports updates/s and the latency from receiving an update to the
end of its handling (reply handed to the outbox).

    python bench/start_storm.py --users 5000

The outbox sends the replies meanwhile, at ``--send-rate`` messages a second (default
1000, Telegram's paid-broadcast ceiling), competing for the same CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import bench_database, fake_bot_api, percentile  # noqa: E402
from shop.config import load_config  # noqa: E402
from shop.main import serve_shop, tune_garbage_collector  # noqa: E402
from tests.fakes.telegram import TOKEN  # noqa: E402


async def run(args: argparse.Namespace, database_url: str, fake_url: str) -> list[str]:
    latencies: list[float] = []
    done = trio.Event()
    target = 0

    def handled(seconds: float) -> None:
        latencies.append(seconds)
        if len(latencies) >= target:
            done.set()

    environ = {
        "DATABASE_URL": database_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": fake_url,
        "TELEGRAM_PAID_BROADCAST": "1",
        "TELEGRAM_GLOBAL_RATE": str(args.send_rate),
        "RATE_LIMIT": "1000/60",
        "LOG_LEVEL": "warning",
    }
    config = load_config(environ)
    stop = trio.Event()
    lines = []
    async with trio.open_nursery() as nursery, httpx.AsyncClient(base_url=fake_url) as fake:
        tune_garbage_collector()  # as `shop run` does
        await nursery.start(
            lambda task_status: serve_shop(
                config, stop, on_update_handled=handled, task_status=task_status
            )
        )
        for label in ("new customers", "known customers"):
            latencies.clear()
            target = args.users
            done = trio.Event()
            started = trio.current_time()
            storm = {"start_storm": {"users": args.users, "first_id": 5_000_000}}
            await fake.post("/_fake/updates", json=storm)
            await done.wait()
            elapsed = trio.current_time() - started
            rate = args.users / elapsed
            p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            lines.append(
                f"{label:16} {args.users} updates in {elapsed:5.2f} s = {rate:6.0f} updates/s;"
                f" latency p50 {p50 * 1000:6.1f} ms, p99 {p99 * 1000:6.1f} ms,"
                f" mean {statistics.fmean(latencies) * 1000:6.1f} ms"
            )
            print(lines[-1], flush=True)
        stats = (await fake.get("/_fake/stats")).json()
        lines.append(
            f"sendMessage calls answered by the fake so far: {stats['calls'].get('sendMessage', 0)}"
        )
        stop.set()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--send-rate", type=int, default=1000)
    args = parser.parse_args()
    with bench_database(schema=False) as database_url, fake_bot_api() as fake_url:
        lines = trio.run(run, args, database_url, fake_url)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
