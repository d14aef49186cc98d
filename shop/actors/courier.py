"""The courier: delivers notices and marks each sent only once Telegram has accepted it.

A notice (``store.notices``) is owed in the transaction that decides it and leased to
whoever delivers it. The courier renders it, hands it to the outbox counted in its own
:class:`~shop.telegram.outbox.Receipts`, and when Telegram has settled it (accepted, or
refused for good: 400, 403) writes ``sent_at``, many notices per statement. A notice
whose delivery failed otherwise stays unsent; its lease runs out and it is tried again
(``wake`` is poked so the deliverer looks then). A crash before acceptance leaves the
notice unsent under a dead instance's lease, which the next deliverer takes at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NoReturn

import trio

from ..clock import WallClock
from ..errors import StoreUnavailable
from ..store import Store, notices
from ..store.notices import Notice
from ..telegram.outbox import Lane, Outbox, Receipts, current_receipts
from ..wakeup import Wakeup

log = logging.getLogger(__name__)

#: Renders a notice into ``sendMessage`` parameters; None: nothing to say.
Render = Callable[[Notice], dict[str, Any] | None]


def _say_nothing(notice: Notice) -> dict[str, Any] | None:
    return None


class Courier:
    def __init__(self, store: Store, outbox: Outbox, clock: WallClock, wake: Wakeup) -> None:
        self._store = store
        self._outbox = outbox
        self._clock = clock
        self._wake = wake  # the deliverer of leftover notices
        self.render: Render = _say_nothing  # set once the texts and catalog are known
        self._settled: list[Notice] = []
        self._settled_added = trio.Event()
        self._open = 0  # handed to the outbox, not yet settled or not yet marked
        self._quiet = trio.Event()
        self._quiet.set()

    async def deliver(self, batch: Sequence[Notice], lane: Lane = Lane.BULK) -> int:
        """Hand each notice to the outbox (or mark it sent if there is nothing to send:
        blocked customer, stale reminder); returns how many were handed over."""
        handed = 0
        for notice in batch:
            params = None if notice.blocked or notice.stale else self.render(notice)
            self._begin()
            if params is None:
                self._done(notice, True)
                continue
            receipts = Receipts(partial(self._done, notice))
            token = current_receipts.set(receipts)
            try:
                await self._outbox.send("sendMessage", params, lane=lane)
            finally:
                current_receipts.reset(token)
            receipts.close()
            handed += 1
        return handed

    async def quiet(self) -> None:
        """Wait until everything handed over is settled and written down."""
        while self._open:
            await self._quiet.wait()

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Write down accepted notices, many per statement, for as long as the shop runs."""
        task_status.started()
        while True:
            await self._settled_added.wait()
            self._settled_added = trio.Event()
            await self._mark()

    def _begin(self) -> None:
        if self._open == 0:
            self._quiet = trio.Event()
        self._open += 1

    def _done(self, notice: Notice, delivered: bool) -> None:
        if delivered:
            self._settled.append(notice)
            self._settled_added.set()
            return
        log.warning(
            "notice %s for %s not delivered; retried later", notice.kind, notice.telegram_id
        )
        self._wake.poke()
        self._end(1)

    async def _mark(self) -> None:
        batch, self._settled = self._settled, []
        if not batch:
            return
        try:
            await self._store.run_statement(notices.mark_sent, batch, self._clock.now())
        except StoreUnavailable as exc:
            # Unmarked means sent again after the lease: at least once, never lost.
            log.warning("cannot mark %d notices sent (%s)", len(batch), exc)
        finally:
            self._end(len(batch))

    def _end(self, count: int) -> None:
        self._open -= count
        if self._open == 0:
            self._quiet.set()
