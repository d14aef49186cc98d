"""What the benchmarks share: a throwaway database, a free port, the fake Bot API process."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://127.0.0.1/postgres")


@contextmanager
def bench_database(admin_url: str = ADMIN_URL, *, schema: bool = True) -> Iterator[str]:
    """A fresh database (with the schema) for the length of the block; dropped after."""
    name = f"shop_bench_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        if schema:
            from shop.store.schema import schema_text

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(schema_text().encode())
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fake_bot_api() -> Iterator[str]:
    """The fake Bot API server in its own process (Telegram is remote); yields its URL."""
    with fake_bot_api_process() as (base, _):
        yield base


@contextmanager
def fake_bot_api_process() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As :func:`fake_bot_api`, and the process too (to read its CPU time)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.telegram", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{base}/_fake/stats", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise SystemExit("the fake Bot API server did not start")
        yield base, proc
    finally:
        proc.terminate()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process (all its threads) has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(database: str) -> dict[int, float]:
    """CPU time so far of each PostgreSQL backend serving ``database`` (Linux), by pid.

    Other work on the same server (another database) is left out; subtract two of these
    per pid (:func:`cpu_spent`), as backends come and go.
    """
    seen: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                title = cmdline.read().decode(errors="replace")
            if title.startswith("postgres:") and f" {database} " in title:
                seen[int(entry.name)] = cpu_seconds(int(entry.name))
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended meanwhile
    return seen


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two :func:`postgres_cpu_seconds` by the processes alive at the end."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (Linux)."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    total = sum(ticks[:8])  # guest time is already counted in user
    hz = os.sysconf("SC_CLK_TCK")
    return (total - idle) / hz, total / hz


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
