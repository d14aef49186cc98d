"""The database handle: a psycopg connection pool driven from worker threads.

psycopg's async API needs an asyncio loop, so under trio we use its synchronous API in
worker threads. One thread hop carries one whole unit of work: a plain function
``fn(conn, *args)`` that runs inside one transaction. A ``CapacityLimiter`` the size of
the pool keeps threads from queueing on the pool instead of on the limiter.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
import psycopg_pool
import trio

from ..errors import StoreUnavailable, UnstorableData

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
Connection = psycopg.Connection[Any]
BusyHook = Callable[[bool], None]


class Store:
    """Runs units of work against PostgreSQL.

    ``on_busy`` is told ``True`` when the first unit of work starts and ``False`` when
    the last one ends. Tests use it to hold a ``MockClock`` still while a worker thread
    talks to the database (autojump would otherwise treat the wait as idleness).
    """

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool[Any],
        url: str,
        *,
        on_busy: BusyHook | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.pool = pool
        self.url = url
        self.limiter = trio.CapacityLimiter(pool.max_size)
        self._on_busy = on_busy
        self._timeout = timeout
        self._in_flight = 0
        self.units = 0  # units of work run so far (what an idle shop must not add to)

    async def run(self, fn: Callable[Concatenate[Connection, P], T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in one transaction on a worker thread."""
        return await self.in_thread(self._unit, fn, args)

    async def run_statement(self, fn: Callable[Concatenate[Connection, P], T], *args: Any) -> T:
        """Run ``fn(conn, *args)``, which issues exactly one statement, without BEGIN/COMMIT.

        A single statement is atomic on its own; skipping the transaction block saves
        two round trips on hot paths.
        """
        return await self.in_thread(self._single, fn, args)

    async def run_patiently(self, fn: Callable[Concatenate[Connection, P], T], *args: Any) -> T:
        """:meth:`run`, retried with backoff (0.5 s doubling to 30 s) for as long as the
        database is unreachable: for work that must happen, such as journaling updates."""
        delay = 0.5
        while True:
            try:
                return await self.run(fn, *args)
            except StoreUnavailable as exc:
                log.warning("database unreachable (%s); retrying in %.1f s", exc, delay)
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _single(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            with self.pool.connection(timeout=self._timeout) as conn:
                return fn(conn, *args)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise StoreUnavailable(_reason(exc)) from exc
        except psycopg.DataError as exc:
            raise UnstorableData(_reason(exc)) from exc

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking database work on a worker thread (one hop; tells ``on_busy``)."""
        self.units += 1
        self._enter()
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        finally:
            self._leave()

    def _unit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            with self.pool.connection(timeout=self._timeout) as conn, conn.transaction():
                return fn(conn, *args)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise StoreUnavailable(_reason(exc)) from exc
        except psycopg.DataError as exc:
            raise UnstorableData(_reason(exc)) from exc

    async def ping(self, connect_timeout: int = 3) -> None:
        """Check that the database answers, on a fresh connection (not the pool's).

        A fresh connection fails fast and says why (refused, unknown host...), where
        the pool would wait for its own reconnect loop.
        """
        await self.in_thread(self._ping, connect_timeout)

    def _ping(self, connect_timeout: int) -> None:
        try:
            with psycopg.connect(self.url, connect_timeout=connect_timeout) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise StoreUnavailable(str(exc).strip().splitlines()[-1]) from exc

    def _enter(self) -> None:
        self._in_flight += 1
        if self._in_flight == 1 and self._on_busy is not None:
            self._on_busy(True)

    def _leave(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0 and self._on_busy is not None:
            self._on_busy(False)


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@asynccontextmanager
async def open_store(
    url: str, *, size: int = 10, on_busy: BusyHook | None = None, patience: float = 10.0
) -> AsyncIterator[Store]:
    """Open a pool of ``size`` connections for the lifetime of the block.

    ``patience``: how long a unit of work waits for a connection before the database
    counts as unreachable.
    """
    pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
        url,
        min_size=min(2, size),
        max_size=size,
        open=False,
        kwargs={"autocommit": True},
        name="shop",
        timeout=patience,
    )
    store = Store(pool, url, on_busy=on_busy, timeout=patience)
    # Opening does not wait for connections: a database that is down at start is
    # reported by the first unit of work (and by /readyz), not by a hang here.
    await store.in_thread(pool.open)
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store.in_thread(pool.close)
