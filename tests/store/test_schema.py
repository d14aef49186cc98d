"""The schema applies idempotently; /readyz follows the database's availability."""

from __future__ import annotations

import httpx
import psycopg
import trio
import trio.testing

from shop.store import Store, apply_schema, open_store
from tests.conftest import server_address, via_proxy
from tests.fakes.tcp_proxy import TcpProxy


async def test_schema_applies_twice(store: Store) -> None:
    await apply_schema(store)
    await apply_schema(store)

    def tables(conn: psycopg.Connection) -> set[str]:  # type: ignore[type-arg]
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in rows}

    assert "customers" in await store.run(tables)


async def test_two_processes_applying_at_once_do_not_conflict(clean_database: str) -> None:
    async with (
        open_store(clean_database, size=2) as one,
        open_store(clean_database, size=2) as two,
        trio.open_nursery() as nursery,
    ):
        for store in (one, two, one, two):
            nursery.start_soon(apply_schema, store)


async def test_readyz_is_503_while_the_database_is_down(
    clean_database: str, nursery: trio.Nursery
) -> None:
    from tests.harness import running_shop

    proxy = TcpProxy(server_address(clean_database))
    port = await nursery.start(proxy.serve)
    url = via_proxy(clean_database, port)
    with trio.fail_after(20):
        async with running_shop(url) as shop, httpx.AsyncClient(base_url=shop.url) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            while not shop.telegram.calls_to("getUpdates"):  # polling: the DB is left alone
                await trio.testing.wait_all_tasks_blocked(cushion=0.01)
            assert ready.json()["status"] == "ready"

            proxy.down()
            down = await http.get("/readyz")
            assert down.status_code == 503
            assert down.json()["status"] == "unavailable"
            assert down.json()["reason"] == "database"  # which one, never the driver's text
            assert (await http.get("/healthz")).status_code == 200  # the process is alive

            proxy.up()
            back = await http.get("/readyz")
            assert back.status_code == 200
