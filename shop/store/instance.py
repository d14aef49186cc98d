"""This process's identity in the database, alive exactly as long as the process is.

A lease that names only a time (``claimed_until``) makes a restarted shop wait for the
leases its dead predecessor held. So each running shop holds a session advisory lock
``(INSTANCE_LOCKS, id)`` on a connection of its own for its whole life, and stamps what
it leases with ``id``. PostgreSQL drops the lock the moment that connection ends, a
``kill -9`` included, so :data:`LIVE_INSTANCES` tells at once which holders are gone:
their leases may be taken over without waiting for the clock.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import trio

from ..errors import StoreUnavailable
from .pool import Store

log = logging.getLogger(__name__)

#: The first key of every instance lock (any constant, the same in every process).
INSTANCE_LOCKS = 727_002

#: A subquery of the ids of the shops alive now (on this database).
LIVE_INSTANCES = (
    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted"
    f" AND classid = {INSTANCE_LOCKS} AND objsubid = 2"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@asynccontextmanager
async def open_instance(store: Store) -> AsyncIterator[int]:
    """Hold a fresh instance id for the lifetime of the block; yields it.

    If PostgreSQL restarts, the lock goes with its connection, and the shop would no
    longer count as alive: other instances would take over its customers and roles for
    good. So a task watches the connection (without a statement: it waits for the socket
    to be readable, which it becomes only when the server closes it) and takes the same
    id's lock again as soon as the database answers.
    """
    conn, instance = await store.in_thread(_lock, store.url)
    holder = [conn]
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_keep, store, holder, instance)
            yield instance
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await store.in_thread(holder[0].close)


async def _keep(store: Store, holder: list[psycopg.Connection[Any]], instance: int) -> None:
    while True:
        await trio.lowlevel.wait_readable(holder[0].fileno())
        if await store.in_thread(_alive, holder[0]):
            continue  # something the server said, not a goodbye
        log.warning("the instance lock was lost with its connection; taking it again")
        delay = 0.25
        while (again := await store.in_thread(_relock, store.url, instance)) is None:
            await trio.sleep(delay)
            delay = min(delay * 2, 2.0)
        holder[0].close()
        holder[0] = again
        log.warning("the instance lock is held again")


def _alive(conn: psycopg.Connection[Any]) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _relock(url: str, instance: int) -> psycopg.Connection[Any] | None:
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (INSTANCE_LOCKS, instance)
        ).fetchone()
    except psycopg.Error:
        return None
    if row is not None and row[0]:
        return conn
    conn.close()  # held by another process: only while the old session is not yet gone
    return None


def _lock(url: str) -> tuple[psycopg.Connection[Any], int]:
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(str(exc).strip().splitlines()[0]) from exc
    while True:
        instance = secrets.randbelow(2**31 - 1) + 1
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (INSTANCE_LOCKS, instance)
        ).fetchone()
        if row is not None and row[0]:
            return conn, instance
