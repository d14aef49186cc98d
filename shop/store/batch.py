"""Coalescing many small units of work into one statement while the database is busy.

When a thousand customers write to the shop in the same second, a thousand one-row
statements cost a thousand round trips and thread hops. A :class:`Batcher` sends the
first request at once; requests that arrive while it runs wait and then go together,
in one statement. Under light load nothing is delayed; under heavy load the batch size
grows with the load.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

import attrs
import outcome
import trio

from .pool import Connection, Store

Request = TypeVar("Request")
Result = TypeVar("Result")


@attrs.define(eq=False)
class _Waiter(Generic[Request, Result]):
    request: Request
    done: trio.Event = attrs.Factory(trio.Event)
    lead: bool = False  # set when this waiter must run the next batch itself
    result: outcome.Outcome[Result] | None = None


class Batcher(Generic[Request, Result]):
    """Runs ``run_many(conn, requests) -> results`` (same order) for concurrent callers.

    There is no background task: the caller that finds nobody running a batch runs one,
    and when it is done it wakes the first of those who queued meanwhile to run theirs.
    """

    def __init__(
        self,
        store: Store,
        run_many: Callable[[Connection, Sequence[Request]], Sequence[Result]],
        *,
        key: Callable[[Request], Hashable] | None = None,
        max_batch: int = 200,
    ) -> None:
        self._store = store
        self._run_many = run_many
        self._key = key
        self._max_batch = max_batch
        self._queue: list[_Waiter[Request, Result]] = []
        self._busy = False

    async def submit(self, request: Request) -> Result:
        waiter: _Waiter[Request, Result] = _Waiter(request)
        if self._busy:
            self._queue.append(waiter)
            try:
                await waiter.done.wait()
            except BaseException:  # cancelled while queued: leave no hole behind
                if waiter in self._queue:
                    self._queue.remove(waiter)
                elif waiter.lead:
                    self._hand_over()  # it was to run the next batch: someone else will
                raise
            if not waiter.lead:
                assert waiter.result is not None
                return waiter.result.unwrap()
            waiter.done = trio.Event()
        else:
            self._busy = True
        await self._lead(waiter)
        assert waiter.result is not None
        return waiter.result.unwrap()

    async def _lead(self, waiter: _Waiter[Request, Result]) -> None:
        batch = [waiter, *self._take(waiter)]
        try:
            results = await self._store.run_statement(self._run_many, [w.request for w in batch])
            outcomes: list[outcome.Outcome[Result]] = [outcome.Value(r) for r in results]
        except Exception as exc:
            # One outcome each: an outcome unwraps once (the others would raise
            # AlreadyUsedError instead of the failure, StoreUnavailable say).
            outcomes = [outcome.Error(exc) for _ in batch]
        finally:
            self._hand_over()
        for member, result in zip(batch, outcomes, strict=True):
            member.result = result
            member.done.set()

    def _take(self, leader: _Waiter[Request, Result]) -> list[_Waiter[Request, Result]]:
        room = self._max_batch - 1
        taken, self._queue = self._queue[:room], self._queue[room:]
        if self._key is None:
            return taken
        # One request per key per batch (a statement cannot upsert one row twice):
        # later duplicates go back to the queue for the next batch.
        seen = {self._key(leader.request)}
        kept: list[_Waiter[Request, Result]] = []
        again: list[_Waiter[Request, Result]] = []
        for member in taken:
            k = self._key(member.request)
            (again if k in seen else kept).append(member)
            seen.add(k)
        self._queue[:0] = again
        return kept

    def _hand_over(self) -> None:
        if self._queue:
            successor = self._queue.pop(0)
            successor.lead = True
            successor.done.set()
        else:
            self._busy = False
