"""Benchmark: provider webhooks, from arrival to the customer's confirmation being queued.

The shop runs in this process against a real PostgreSQL, with Stripe enabled (webhooks
are signed as Stripe signs them, so nothing is asked of a Stripe API). A load generator
in its own process posts over real HTTP:

1. at a steady 200 webhooks/s for ``--seconds``: latency p50/p99, measured inside the
   shop from the request's arrival to the confirmation handed to the outbox;
2. as fast as it can (``--burst`` webhooks, 32 at a time): webhooks/s sustained, until
   the last payment is fulfilled.

    python bench/webhooks.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import secrets
import sys
import time
from pathlib import Path

import httpx
import psycopg
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import bench_database, fake_bot_api, free_port, percentile  # noqa: E402
from shop.config import load_config  # noqa: E402
from shop.main import serve_shop, tune_garbage_collector  # noqa: E402
from tests.fakes.telegram import TOKEN  # noqa: E402

WEBHOOK_SECRET = "whsec_bench_0123456789abcdef"
CUSTOMERS = 1000


class Samples(list[float]):
    """Latencies as the shop reports them; ``reach(n)`` waits until there are ``n``."""

    def __init__(self) -> None:
        super().__init__()
        self._goal, self._reached = 0, trio.Event()

    def append(self, value: float) -> None:
        super().append(value)
        if len(self) >= self._goal:
            self._reached.set()

    async def reach(self, goal: int) -> None:
        self._goal, self._reached = goal, trio.Event()
        if len(self) < goal:
            await self._reached.wait()


def stripe_event(session: str, reference: str) -> bytes:
    event = {
        "id": f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "type": "checkout.session.completed",
        "data": {
            "object": {
                "id": session,
                "object": "checkout.session",
                "client_reference_id": reference,
                "metadata": {"reference": reference},
                "payment_status": "paid",
                "status": "complete",
                "amount_total": 349,
                "currency": "usd",
            }
        },
    }
    return json.dumps(event).encode()


def signed(body: bytes) -> dict[str, str]:
    t = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"stripe-signature": f"t={t},v1={mac}", "content-type": "application/json"}


def seed(database_url: str, count: int) -> list[tuple[str, str]]:
    """``count`` pending Stripe payments across CUSTOMERS customers: (reference, session)."""
    now = dt.datetime.now(dt.UTC)
    rows = [(f"bench{n:07d}", f"cs_bench_{n:07d}", 7_000_000 + n % CUSTOMERS) for n in range(count)]
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO customers (telegram_id, first_seen, last_seen)"
            " SELECT id, %s, %s FROM generate_series(7000000, %s) AS id",
            (now, now, 7_000_000 + CUSTOMERS - 1),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO payments (id, telegram_id, provider, product_kind, product_id,"
                " title, days, amount, currency, status, created_at, updated_at, expires_at,"
                " idempotency_key, provider_payment_id)"
                " VALUES (%s, %s, 'stripe', 'plan', 'm1', '1 month', 30, 349, 'USD',"
                " 'pending', %s, %s, %s, %s, %s)",
                [
                    (ref, customer, now, now, now + dt.timedelta(days=1), ref, session)
                    for ref, session, customer in rows
                ],
            )
    return [(ref, session) for ref, session, _ in rows]


LOADER = r"""
import json, sys, time, trio, httpx
url, rate, items = sys.argv[1], float(sys.argv[2]), json.load(sys.stdin)
async def main():
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        sem, codes = trio.Semaphore(32), {}
        async def post(body, headers):
            async with sem:
                r = await http.post(url, content=body.encode(), headers=headers)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
        start = time.perf_counter()
        async with trio.open_nursery() as n:
            for i, (body, headers) in enumerate(items):
                if rate:
                    wait = start + i / rate - time.perf_counter()
                    await trio.sleep(max(0, wait))
                else:
                    await sem.acquire(); sem.release()
                n.start_soon(post, body, headers)
        print(json.dumps({"codes": codes, "seconds": time.perf_counter() - start}))
trio.run(main)
"""


async def load(
    url: str, rate: float, items: list[tuple[bytes, dict[str, str]]]
) -> dict[str, object]:
    payload = json.dumps([(body.decode(), headers) for body, headers in items]).encode()
    done = await trio.run_process(
        [sys.executable, "-c", LOADER, url, str(rate)], stdin=payload, capture_stdout=True
    )
    return dict(json.loads(done.stdout))


async def run(args: argparse.Namespace, database_url: str, fake_url: str) -> list[str]:
    environ = {
        "DATABASE_URL": database_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(free_port()),
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": fake_url,
        "PUBLIC_URL": "https://shop.example",
        "STRIPE_SECRET_KEY": "sk_bench",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_URL": "http://127.0.0.1:9",
        "LOG_LEVEL": "warning",
    }
    config = load_config(environ)
    total = int(args.seconds * args.rate) + args.burst
    payments = seed(database_url, total)
    steady, burst = payments[: total - args.burst], payments[total - args.burst :]
    lines = []
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        tune_garbage_collector()  # as `shop run` does
        running = await nursery.start(
            lambda task_status: serve_shop(config, stop, task_status=task_status)
        )
        app, url = running.app, running.urls[0] + "/webhooks/stripe"
        samples = Samples()
        app.metrics.webhook_samples = samples
        items = [(body, signed(body)) for body in (stripe_event(s, r) for r, s in steady)]
        result = await load(url, args.rate, items)
        await samples.reach(len(steady))
        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        lines.append(
            f"steady {args.rate:.0f}/s for {args.seconds:.0f} s: {len(samples)} confirmed;"
            f" arrival -> confirmation queued p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms;"
            f" answers {result['codes']}"
        )
        print(lines[-1], flush=True)
        samples.clear()
        items = [(body, signed(body)) for body in (stripe_event(s, r) for r, s in burst)]
        started = time.perf_counter()
        result = await load(url, 0, items)
        answered = float(result["seconds"])  # type: ignore[arg-type]
        await samples.reach(len(burst))
        fulfilled = time.perf_counter() - started
        lines.append(
            f"burst of {len(burst)}: answered at {len(burst) / answered:.0f} webhooks/s,"
            f" all fulfilled at {len(burst) / fulfilled:.0f} webhooks/s;"
            f" p50 {percentile(samples, 0.5) * 1000:.1f} ms,"
            f" p99 {percentile(samples, 0.99) * 1000:.1f} ms"
        )
        print(lines[-1], flush=True)
        async with httpx.AsyncClient(base_url=fake_url) as fake:
            stats = (await fake.get("/_fake/stats")).json()
        lines.append(f"Bot API calls meanwhile: {stats['calls']}")
        stop.set()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--burst", type=int, default=3000)
    args = parser.parse_args()
    with bench_database() as database_url, fake_bot_api() as fake_url:
        lines = trio.run(run, args, database_url, fake_url)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
