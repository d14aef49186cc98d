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
        yield base
    finally:
        proc.terminate()
        proc.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
