"""Benchmark: the shop against an aiogram 3 + asyncpg bot, end to end, like for like.

Each contestant runs in its own process against its own fake Bot API server (the same
emulator, in a process of its own: Telegram is remote) and its own fresh PostgreSQL
database. ``--users`` distinct customers send ``/start`` at once; each bot upserts the
customer and replies with the main menu (an inline keyboard). The clock runs from the
moment the updates are queued at the fake until the fake has answered one ``sendMessage``
per customer: every reply delivered. The shop's outbox may send as fast as the reference
does (paid broadcasts: ``TELEGRAM_PAID_BROADCAST=1``, ``TELEGRAM_GLOBAL_RATE=1000``).

    python bench/vs_aiogram.py                       # 3,000 customers, one round each
    python bench/vs_aiogram.py --rounds 3            # alternate, report every round
    python bench/vs_aiogram.py --profile /tmp/prof   # py-spy each bot during its storm

Prints, per round and contestant, updates/s, the CPU seconds the bot's process used (and
per update), the fake's and PostgreSQL's CPU and how busy the whole machine was; then both
rates, the ratio shop / aiogram (of the medians, and round by round), and each side's CPU
per update. On a machine shared with other work the rates move with that work; the CPU
per update moves much less, so it says where a difference comes from.

``--profile DIR`` samples each bot with py-spy (``--gil``: only the thread holding the
GIL, i.e. what costs CPU) while its storm runs, and writes the stacks in collapsed form
to ``DIR/shop.txt`` and ``DIR/aiogram.txt`` (flamegraph.pl and speedscope read them).

The reference bot is ``bench/aiogram_bot.py``; it needs the ``bench`` extra
(``pip install -e '.[bench]'``), as does ``--profile`` (py-spy, which needs ptrace: root).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import (  # noqa: E402
    bench_database,
    cpu_seconds,
    cpu_spent,
    fake_bot_api_process,
    machine_busy_seconds,
    postgres_cpu_seconds,
)
from tests.fakes.telegram import TOKEN  # noqa: E402

FIRST_ID = 5_000_000


@attrs.frozen
class Result:
    name: str
    users: int
    seconds: float
    cpu: float  # the bot's process
    fake_cpu: float
    postgres_cpu: float
    machine_busy: float  # of all cores, 0..1
    stored: int  # customers in the bot's database afterwards

    @property
    def rate(self) -> float:
        return self.users / self.seconds

    def line(self) -> str:
        return (
            f"{self.name:8} {self.users} replies in {self.seconds:5.2f} s = {self.rate:6.0f}"
            f" updates/s; bot CPU {self.cpu:5.2f} s ({self.cpu / self.users * 1000:.2f} ms"
            f"/update), fake {self.fake_cpu:5.2f} s, PostgreSQL {self.postgres_cpu:5.2f} s;"
            f" machine {self.machine_busy:4.0%} busy,"
            f" {self.stored} customers stored"
        )


def shop_command(database_url: str, fake_url: str) -> tuple[list[str], dict[str, str]]:
    environ = {
        "DATABASE_URL": database_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": fake_url,
        "TELEGRAM_PAID_BROADCAST": "1",
        "TELEGRAM_GLOBAL_RATE": "1000",
        "RATE_LIMIT": "1000/60",
        "LOG_LEVEL": "warning",
    }
    return [sys.executable, "-m", "shop", "run"], environ


def aiogram_command(database_url: str, fake_url: str) -> tuple[list[str], dict[str, str]]:
    environ = {"DATABASE_URL": database_url, "BOT_API_URL": fake_url, "BOT_TOKEN": TOKEN}
    return [sys.executable, str(ROOT / "bench" / "aiogram_bot.py")], environ


CONTESTANTS: dict[str, Callable[[str, str], tuple[list[str], dict[str, str]]]] = {
    "shop": shop_command,
    "aiogram": aiogram_command,
}


def sent(fake: httpx.Client) -> tuple[int, int]:
    """(sendMessage, getUpdates) calls the fake has answered so far."""
    calls = fake.get("/_fake/stats").json()["calls"]
    return calls.get("sendMessage", 0), calls.get("getUpdates", 0)


def wait_until_polling(fake: httpx.Client, bot: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while sent(fake)[1] == 0:
        if bot.poll() is not None:
            raise SystemExit(f"the bot exited with {bot.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit("the bot did not start polling within 60 s")
        time.sleep(0.05)
    time.sleep(1.5)  # start-up work (the shop's jobs that run on start) settles


def run_one(name: str, args: argparse.Namespace) -> Result:
    with (
        bench_database(schema=False) as database_url,
        fake_bot_api_process() as (fake_url, fake_proc),
        tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log") as log,
        httpx.Client(base_url=fake_url, timeout=30) as fake,
    ):
        command, environ = CONTESTANTS[name](database_url, fake_url)
        bot = subprocess.Popen(
            command,
            cwd=ROOT,
            env=os.environ | environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_polling(fake, bot, Path(log.name))
            profiler = start_profiler(args.profile, name, bot.pid)
            before = sent(fake)[0]
            cpu, fake_cpu = cpu_seconds(bot.pid), cpu_seconds(fake_proc.pid)
            database = database_url.rsplit("/", 1)[1]
            postgres_cpu = postgres_cpu_seconds(database)
            busy, total = machine_busy_seconds()
            started = time.monotonic()
            storm = {"start_storm": {"users": args.users, "first_id": FIRST_ID}}
            fake.post("/_fake/updates", json=storm).raise_for_status()
            deadline = started + args.timeout
            while (count := sent(fake)[0] - before) < args.users:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name}: only {count} of {args.users} replies delivered")
                time.sleep(0.02)
            seconds = time.monotonic() - started
            busy2, total2 = machine_busy_seconds()
            result = Result(
                name=name,
                users=args.users,
                seconds=seconds,
                cpu=cpu_seconds(bot.pid) - cpu,
                fake_cpu=cpu_seconds(fake_proc.pid) - fake_cpu,
                postgres_cpu=cpu_spent(postgres_cpu, postgres_cpu_seconds(database)),
                machine_busy=(busy2 - busy) / (total2 - total),
                stored=0,
            )
            stop_profiler(profiler)
        finally:
            bot.send_signal(signal.SIGTERM)
            try:
                bot.wait(30)
            except subprocess.TimeoutExpired:
                bot.kill()
                bot.wait()
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT count(*) FROM customers").fetchone()
        return attrs.evolve(result, stored=row[0] if row else 0)


def start_profiler(where: Path | None, name: str, pid: int) -> subprocess.Popen[bytes] | None:
    if where is None:
        return None
    where.mkdir(parents=True, exist_ok=True)
    out = where / f"{name}.txt"
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
    profiler = subprocess.Popen(
        [*command, "--gil", "--threads", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches
    return profiler


def stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=1, help="each contestant this many times")
    parser.add_argument("--only", choices=sorted(CONTESTANTS), help="run one contestant")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds for one storm")
    parser.add_argument("--profile", type=Path, help="write py-spy raw stacks here")
    args = parser.parse_args()
    names = [args.only] if args.only else list(CONTESTANTS)
    results: dict[str, list[Result]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            result = run_one(name, args)
            results[name].append(result)
            print(result.line(), flush=True)
    summarize(results)


def summarize(results: dict[str, list[Result]]) -> None:
    """Both rates and the ratio; then what each update cost in CPU, which a busy shared
    machine disturbs far less than it disturbs the rates."""
    rates = {name: [r.rate for r in runs] for name, runs in results.items()}
    for name, values in rates.items():
        print(f"{name:8} updates/s: " + ", ".join(f"{v:.0f}" for v in values), end="")
        print(f" (median {statistics.median(values):.0f})" if len(values) > 1 else "")
    if set(results) != set(CONTESTANTS):
        return
    shop, aiogram = results["shop"], results["aiogram"]
    ratio = statistics.median(rates["shop"]) / statistics.median(rates["aiogram"])
    rounds = ", ".join(f"{s.rate / a.rate:.2f}" for s, a in zip(shop, aiogram, strict=True))
    print(f"ratio shop / aiogram: {ratio:.2f} (round by round: {rounds})")
    for name, runs in results.items():
        own = statistics.median(r.cpu / r.users * 1000 for r in runs)
        everything = statistics.median(
            (r.cpu + r.fake_cpu + r.postgres_cpu) / r.users * 1000 for r in runs
        )
        print(
            f"{name:8} CPU per update: {own:.2f} ms in the bot,"
            f" {everything:.2f} ms with the fake Bot API and PostgreSQL (medians)"
        )


if __name__ == "__main__":
    main()
