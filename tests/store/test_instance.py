"""The instance lock: held for the shop's life, taken again if its connection is lost."""

from __future__ import annotations

import psycopg
import trio

from shop.store import Store
from shop.store.instance import LIVE_INSTANCES, open_instance


def live(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [row[0] for row in conn.execute(LIVE_INSTANCES).fetchall()]


async def test_a_lock_lost_with_its_connection_is_taken_again(
    store: Store, clean_database: str
) -> None:
    async with open_instance(store) as instance:
        assert live(clean_database) == [instance]
        # What a PostgreSQL restart does to every connection, done to the lock's alone.
        with psycopg.connect(clean_database, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks"
                " WHERE locktype = 'advisory' AND objid = %s",
                (instance,),
            )
        with trio.fail_after(10):  # real time: the server's goodbye arrives on a socket
            while True:
                await trio.sleep(0.05)
                if live(clean_database) == [instance]:
                    break
    assert live(clean_database) == []  # and given up when the block ends
