"""`shop run` as a process: serves health, shuts down on SIGTERM within the grace period."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import with_database
from tests.fakes.telegram import TOKEN

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def telegram_url() -> Iterator[str]:
    """A fake Bot API server in its own process, as Telegram is to a real shop."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.telegram", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(f"{base}/bot{TOKEN}/getMe", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def start_shop(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    full = {
        "PATH": os.environ["PATH"],
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "TELEGRAM_TOKEN": TOKEN,
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "shop", "run"],
        env=full,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen[str], base: str, patience: float = 60) -> httpx.Response:
    # Waiting on another process's start-up is real time by nature; it is bounded, not timed.
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            answer = httpx.get(base + "/readyz", timeout=2)
            if answer.status_code == 200:
                return answer
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("shop did not become ready")


def stop(proc: subprocess.Popen[str], grace: float) -> tuple[int, str]:
    """SIGTERM, then the exit code and everything the process printed."""
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=grace + 5)
    return proc.returncode, output


def test_sigterm_exits_0_within_the_grace_period(clean_database: str, telegram_url: str) -> None:
    env = {"DATABASE_URL": clean_database, "SHUTDOWN_GRACE": "5", "TELEGRAM_API_URL": telegram_url}
    proc, base = start_shop(env)
    try:
        wait_ready(proc, base)
        assert httpx.get(base + "/healthz").json() == {"status": "ok"}
    finally:
        code, output = stop(proc, grace=5)
    assert code == 0
    assert "stopped" in output
    assert "Traceback" not in output


@pytest.mark.slow
def test_embedded_database_serves_and_keeps_data_across_restarts(
    tmp_path: Path, telegram_url: str
) -> None:
    env = {"SHOP_DATA_DIR": str(tmp_path), "SHUTDOWN_GRACE": "5", "TELEGRAM_API_URL": telegram_url}
    embedded = f"postgresql://postgres@/postgres?host={tmp_path / 'postgres'}"
    proc, base = start_shop(env)
    try:
        assert wait_ready(proc, base).json()["status"] == "ready"
        with psycopg.connect(embedded, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO customers (telegram_id, first_seen, last_seen)"
                " VALUES (42, now(), now())"
            )
    finally:
        assert stop(proc, grace=5)[0] == 0
    with pytest.raises(psycopg.OperationalError):  # stopped together with the shop
        psycopg.connect(embedded, connect_timeout=2).close()

    proc, base = start_shop(env)
    try:
        wait_ready(proc, base)
        with psycopg.connect(embedded) as conn:
            assert conn.execute("SELECT telegram_id FROM customers").fetchall() == [(42,)]
    finally:
        assert stop(proc, grace=5)[0] == 0


def test_no_token_exits_2_with_a_clear_message() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shop", "run"],
        env={"PATH": os.environ["PATH"]},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "TELEGRAM_TOKEN is required" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_rejected_token_exits_2(clean_database: str, telegram_url: str) -> None:
    wrong = "999999:WRONG-token-abcdefghijklmnopqrstuvwxyz"
    env = {"DATABASE_URL": clean_database, "TELEGRAM_API_URL": telegram_url}
    proc, _ = start_shop({**env, "TELEGRAM_TOKEN": wrong})
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "TELEGRAM_TOKEN was rejected by Telegram" in output
    assert "WRONG-token" not in output


def test_migrate_applies_the_schema_and_exits_0(admin_url: str) -> None:
    name = "shop_test_migrate_" + str(os.getpid())
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin_url, name)
    try:
        for _ in range(2):  # and again: the schema applies idempotently
            done = subprocess.run(
                [sys.executable, "-m", "shop", "migrate"],
                env={"PATH": os.environ["PATH"], "DATABASE_URL": url},
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            assert "schema applied" in done.stderr
        with psycopg.connect(url) as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
        assert {"customers", "payments", "ledger", "job_runs"} <= tables
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
