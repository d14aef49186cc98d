"""This process's identity in the database, alive exactly as long as the process is.

A lease that names only a time (``claimed_until``) makes a restarted shop wait for the
leases its dead predecessor held. So each running shop holds a session advisory lock
``(INSTANCE_LOCKS, id)`` on a connection of its own for its whole life, and stamps what
it leases with ``id``. PostgreSQL drops the lock the moment that connection ends, a
``kill -9`` included, so :data:`LIVE_INSTANCES` tells at once which holders are gone:
their leases may be taken over without waiting for the clock.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import trio

from ..errors import StoreUnavailable
from .pool import Store

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
    """Hold a fresh instance id for the lifetime of the block; yields it."""
    conn, instance = await store.in_thread(_lock, store.url)
    try:
        yield instance
    finally:
        with trio.CancelScope(shield=True):
            await store.in_thread(conn.close)


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
