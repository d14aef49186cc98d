"""Shared fixtures: a private PostgreSQL database per test session, stores, clocks.

Rules (after trio-websocket's test suite): localhost only; servers on port 0; anything
timed runs under ``autojump_clock``; I/O tests carry a ``fail_after`` guard.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import trio
import trio.testing

from shop.clock import TrioClock
from shop.store import Store, open_store
from shop.store.schema import schema_text

ADMIN_URL = os.environ.get("SHOP_TEST_ADMIN_URL", "postgresql://127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server to create test databases in.

    The local server when it answers (CI makes sure it does); otherwise an embedded one
    from pgserver, so the suite also runs on a machine that has nothing but Python.
    """
    try:
        psycopg.connect(ADMIN_URL, connect_timeout=3).close()
        yield ADMIN_URL
        return
    except psycopg.OperationalError:
        if "SHOP_TEST_ADMIN_URL" in os.environ:
            raise
    import warnings

    import pgserver

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


def with_database(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def via_proxy(url: str, port: int) -> str:
    """The same database URL, reached through a proxy on 127.0.0.1:port."""
    parts = urlsplit(url)
    query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("host="))
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}"
    return parts._replace(netloc=netloc, query=query).geturl()


def server_address(url: str) -> tuple[str, int] | str:
    """Where the server listens: (host, port), or a Unix socket path."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    host, port = str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432)
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)


@pytest.fixture(scope="session")
def database_url(admin_url: str) -> Iterator[str]:
    """A uniquely named database with the schema applied, dropped after the session."""
    name = f"shop_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin_url, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(schema_text().encode())
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_all(url: str) -> None:
    """Empty every table. DELETE with foreign keys and triggers off, not TRUNCATE: with
    fsync on, TRUNCATE's new files cost about 150 ms a test, DELETE of a few rows 5 ms."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            for table in tables:
                conn.execute(f'DELETE FROM "{table}"'.encode())


@pytest.fixture
def clean_database(database_url: str) -> str:
    """The session database, emptied for this test."""
    truncate_all(database_url)
    return database_url


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def hold_clock_while_busy(clock: trio.testing.MockClock | None):  # type: ignore[no-untyped-def]
    """A Store ``on_busy`` hook that stops autojump while a DB thread is working.

    Under autojump a task waiting for a worker thread looks idle, and the clock would
    leap ahead mid-query (trio's MockClock docs warn of this).
    """
    if clock is None:
        return None
    busy_stores = 0  # several stores (shops) may share the hook and the clock

    def on_busy(busy: bool) -> None:
        nonlocal busy_stores
        busy_stores += 1 if busy else -1
        clock.autojump_threshold = math.inf if busy_stores else 0

    return on_busy


@pytest.fixture
def busy_hook(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The Store hook for this test: holds the mock clock if the test uses one."""
    if "autojump_clock" in request.fixturenames:
        return hold_clock_while_busy(request.getfixturevalue("autojump_clock"))
    return None


@pytest.fixture
async def store(clean_database: str, busy_hook) -> AsyncIterator[Store]:  # type: ignore[no-untyped-def]
    async with open_store(clean_database, size=4, on_busy=busy_hook) as store:
        yield store


START = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def shop_at(clean_database: str, busy_hook):  # type: ignore[no-untyped-def]
    """Start whole shops on mock time: ``async with shop_at(environ={...}) as shop``.

    The calendar starts at ``START`` and moves with trio's mock clock; the test function
    must request ``autojump_clock`` itself (pytest-trio only sees the test's own clock).
    """
    from tests.harness import running_shop

    @asynccontextmanager
    async def start(**kwargs: Any) -> AsyncIterator[Any]:
        clock = kwargs.pop("clock", None) or TrioClock.starting_at(START)
        with trio.fail_after(30 * 86_400):  # virtual seconds: a guard against hangs
            async with running_shop(
                clean_database, clock=clock, on_busy=busy_hook, **kwargs
            ) as shop:
                yield shop

    return start


@pytest.fixture(autouse=True)
def no_unexpected_actor_errors(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """Fail any test in which an actor's handler raised, unless the test expects it.

    A money guard rescued by a database constraint (a unique violation, a CHECK) shows
    only as a logged actor failure; it must not pass silently. Tests that make handlers
    fail on purpose say so with ``@pytest.mark.allows_actor_errors``.
    """
    yield
    if request.node.get_closest_marker("allows_actor_errors"):
        return
    failures = [
        record.getMessage()
        for record in caplog.get_records("call")
        if record.name == "shop.actors.runtime" and record.levelname == "ERROR"
    ]
    assert not failures, f"an actor failed unexpectedly: {failures}"
