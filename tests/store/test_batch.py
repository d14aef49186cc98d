"""The batcher: concurrent requests share statements; a cancelled caller leaves no hole."""

from __future__ import annotations

from collections.abc import Sequence

import trio
import trio.testing

from shop.errors import StoreUnavailable
from shop.store import Store
from shop.store.batch import Batcher
from shop.store.pool import Connection

statements: list[int] = []


def echo_many(conn: Connection, numbers: Sequence[int]) -> list[int]:
    statements.append(len(numbers))
    rows = conn.execute("SELECT n * 2 FROM unnest(%s::int[]) AS n", (list(numbers),)).fetchall()
    return [row[0] for row in rows]


async def test_requests_arriving_together_share_a_statement(store: Store) -> None:
    statements.clear()
    batcher: Batcher[int, int] = Batcher(store, echo_many)
    results: dict[int, int] = {}

    async def ask(n: int) -> None:
        results[n] = await batcher.submit(n)

    async with trio.open_nursery() as nursery:
        for n in range(50):
            nursery.start_soon(ask, n)
    assert results == {n: 2 * n for n in range(50)}
    assert sum(statements) == 50
    assert len(statements) < 50  # they went together


async def test_a_cancelled_waiter_does_not_stall_the_rest(store: Store) -> None:
    statements.clear()
    batcher: Batcher[int, int] = Batcher(store, echo_many)
    results: dict[int, int] = {}

    async def ask(n: int) -> None:
        results[n] = await batcher.submit(n)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, 0)  # leads the first batch
        await trio.testing.wait_all_tasks_blocked()
        with trio.CancelScope() as doomed:
            nursery.start_soon(ask, 1)
            await trio.testing.wait_all_tasks_blocked()
        del doomed
        cancel = trio.CancelScope()

        async def cancelled_ask() -> None:
            with cancel:
                results[99] = await batcher.submit(99)

        nursery.start_soon(cancelled_ask)
        nursery.start_soon(ask, 2)
        await trio.testing.wait_all_tasks_blocked()
        cancel.cancel()
    assert 99 not in results
    assert results == {0: 0, 1: 2, 2: 4}
    assert await batcher.submit(3) == 6  # and the batcher still works


async def test_when_a_batch_fails_every_member_gets_the_failure(store: Store) -> None:
    def fail_many(conn: Connection, numbers: Sequence[int]) -> list[int]:
        raise StoreUnavailable("the database went away")

    batcher: Batcher[int, int] = Batcher(store, fail_many)
    failures: list[BaseException] = []

    async def ask(n: int) -> None:
        try:
            await batcher.submit(n)
        except Exception as exc:  # what each member got is the point
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(ask, n)
    assert len(failures) == 20
    # not outcome.AlreadyUsedError for all but one: callers retry a StoreUnavailable
    assert all(isinstance(failure, StoreUnavailable) for failure in failures)
