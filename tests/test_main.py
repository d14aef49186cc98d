"""`shop run` as a process: serves health, shuts down on SIGTERM within the grace period."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_shop(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    full = {"PATH": os.environ["PATH"], "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port), **env}
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


def test_sigterm_exits_0_within_the_grace_period(clean_database: str) -> None:
    proc, base = start_shop({"DATABASE_URL": clean_database, "SHUTDOWN_GRACE": "5"})
    try:
        wait_ready(proc, base)
        assert httpx.get(base + "/healthz").json() == {"status": "ok"}
    finally:
        code, output = stop(proc, grace=5)
    assert code == 0
    assert "stopped" in output
    assert "Traceback" not in output


@pytest.mark.slow
def test_embedded_database_serves_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    env = {"SHOP_DATA_DIR": str(tmp_path), "SHUTDOWN_GRACE": "5"}
    embedded = f"postgresql://postgres@/postgres?host={tmp_path / 'postgres'}"
    proc, base = start_shop(env)
    try:
        assert wait_ready(proc, base).json() == {"status": "ready"}
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
