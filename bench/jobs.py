"""Benchmark: the daily jobs' database work on many subscriptions, a tenth of them ending.

Seeds a fresh database with ``--subscriptions`` active subscriptions: ``--ending`` have
ended (the expiry job's work), as many end within three days (the reminder job's), the
rest later. Then times, on a real PostgreSQL, what the expiry and reminder jobs ask of
the database: the set-based statements that decide, and claiming and marking the
notices they owe (handing messages to the outbox is left out: that is Telegram's pace).

    python bench/jobs.py [--subscriptions 1000000 --ending 100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import bench_database  # noqa: E402
from shop.store import notices  # noqa: E402

NOW = dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.UTC)


def seed(conn: psycopg.Connection, total: int, ending: int) -> None:  # type: ignore[type-arg]
    conn.execute(
        "INSERT INTO customers (telegram_id, first_seen, last_seen, auto_renew)"
        " SELECT id, %s, %s, id %% 50 = 0 FROM generate_series(1, %s) AS id",
        (NOW, NOW, total),
    )
    conn.execute(
        "INSERT INTO subscriptions (telegram_id, status, expires_at, plan_id, started_at,"
        " updated_at)"
        " SELECT id, 'active', CASE"
        "   WHEN id <= %(ending)s THEN %(now)s - make_interval(mins => (id %% 600)::int)"
        "   WHEN id <= 2 * %(ending)s THEN %(now)s + make_interval(hours => (id %% 72)::int)"
        "   ELSE %(now)s + make_interval(days => 10 + (id %% 300)::int) END,"
        " 'm1', %(now)s - interval '30 days', %(now)s FROM generate_series(1, %(total)s) AS id",
        {"ending": ending, "now": NOW, "total": total},
    )
    conn.execute("ANALYZE")


def timed(label: str, work: object, results: list[str]) -> float:
    started = time.perf_counter()
    outcome = work() if callable(work) else work
    seconds = time.perf_counter() - started
    results.append(f"{label:44} {seconds * 1000:8.0f} ms  ({outcome})")
    print(results[-1], flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--ending", type=int, default=10_000)
    args = parser.parse_args()
    results: list[str] = []
    with bench_database() as url, psycopg.connect(url, autocommit=True) as conn:
        seed(conn, args.subscriptions, args.ending)

        def deliver_all() -> int:
            # As the shop does it (shop.actors.jobs, courier): each claim and each mark is
            # a transaction of its own, so a batch's rows are gone from the unsent index
            # for the next claim (in one long transaction every claim would step over
            # every row marked before it).
            delivered = 0
            while True:
                with conn.transaction():
                    batch = notices.claim_unsent(conn, NOW, 200, 0)
                if not batch:
                    return delivered
                with conn.transaction():
                    notices.mark_sent(conn, batch, NOW)
                delivered += len(batch)

        later = NOW + dt.timedelta(hours=3)
        steps = [
            ("expiry: mark ended, owe notices", lambda: notices.expire_ended(conn, NOW)),
            ("expiry: claim and mark every notice", deliver_all),
            ("reminders: claim auto-renewals", lambda: len(notices.claim_renewals(conn, later))),
            (
                "reminders: owe 3-day/1-day/same-day",
                lambda: notices.owe_reminders(conn, later, "UTC"),
            ),
            ("reminders: claim and mark every notice", deliver_all),
        ]
        total = 0.0
        for label, step in steps:
            if step is deliver_all:
                total += timed(label, step, results)
                continue
            with conn.transaction():
                total += timed(label, step, results)
        results.append(f"{'all of it':44} {total * 1000:8.0f} ms")
    print("\n".join(results))


if __name__ == "__main__":
    main()
