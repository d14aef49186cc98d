"""The dispatcher: hands journaled Telegram updates to customers' actors, each customer's
in order, and removes an update from the journal once it is fully handled.

Whoever receives updates (the poller, or the webhook route) journals them first and
then offers them here. An update leaves the journal only when its handler has finished
*and* every message its handling queued (through any actor it asked) was accepted by
Telegram or refused for good (the outbox's receipts); a restart replays what is left.
Updates from one customer are handled in order, one at a time (a small feeder task per
customer with work queued); customers never wait on each other, and at most
``max_in_flight`` updates are held before the poller pauses.

**Several instances** (``shared``): Telegram's webhook may deliver a customer's updates
to any instance, and every instance dispatches. A customer's updates are handled by the
one live instance holding the customer's lease (``customer_leases``; a dead instance's
leases are void at once, ``store.instance``), so they stay in order across instances:

- an offered update whose customer this instance holds, or can take, is handled here;
  otherwise it stays in the journal for the holder;
- a holder gives a customer up only once every update it took for them is out of the
  journal, and in the same transaction looks for updates another instance journaled for
  them meanwhile (``updates.release_customers``, many at once): it keeps the lease of
  those customers and handles what came;
- every :data:`SWEEP` seconds each instance takes the customers whose holder died
  (``updates.orphans``): within seconds, nothing is left behind.

With one instance (the default) none of this costs a statement: updates go straight to
the actors, as before.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import cattrs
import trio

from ..clock import WallClock
from ..errors import AskTimeout, ShuttingDown, StoreUnavailable
from ..store import Store
from ..store import updates as journal
from ..telegram.outbox import Receipts, current_receipts
from ..telegram.types import Update, parse_update
from .runtime import Registry

log = logging.getLogger(__name__)

#: How long one update may take in its actor before the dispatcher stops waiting for it.
HANDLING_PATIENCE = 120.0
#: Seconds between looks for customers whose holder died (several instances only).
SWEEP = 2.0
#: How many handled update ids are remembered after they left the journal.
FORGOTTEN_KEPT = 10_000

Queued = tuple[int, Update, float]  # update id, the update, trio time it arrived


class Dispatcher:
    def __init__(
        self,
        store: Store,
        actors: Registry,
        clock: WallClock,
        *,
        instance: int = 0,
        shared: bool = False,
        max_in_flight: int = 1000,
        on_handled: Callable[[float], None] | None = None,
        backoff: Callable[[], float] = lambda: 1.0,
    ) -> None:
        self._store = store
        self._actors = actors
        self._clock = clock
        self._instance = instance
        self.shared = shared
        self._max_in_flight = max_in_flight
        self._on_handled = on_handled  # told each update's seconds from receipt to handled
        self._backoff = backoff
        self.bot_id = 0  # set by start()
        self._feeders: trio.Nursery | None = None
        self._queues: dict[int, deque[Queued]] = {}
        self._taken: dict[int, set[int]] = {}  # customer -> update ids taken, still journaled
        self._owner: dict[int, int] = {}  # update id -> its customer, while taken
        self._in_flight = 0
        self._room = trio.Event()
        self._finished: list[int] = []
        # Updates lately removed from the journal: a read of the journal that began before
        # their removal (a sweep, another offer) must not hand them over a second time.
        self._forgotten: deque[int] = deque(maxlen=FORGOTTEN_KEPT)
        self._forgotten_ids: set[int] = set()
        self._forgetting_failed = False  # logged once until the journal can be cleared
        self._finished_added = trio.Event()
        self._all_fed = trio.Event()
        self._unsettled = 0  # updates handled whose replies Telegram has not settled yet
        self._all_settled = trio.Event()
        self._offers: trio.MemorySendChannel[tuple[list[dict[str, Any]], float]]
        self._offered: trio.MemoryReceiveChannel[tuple[list[dict[str, Any]], float]]
        self._offers, self._offered = trio.open_memory_channel(math.inf)

    async def run(
        self, bot_id: int, stop: trio.Event, *, task_status: trio.TaskStatus[None]
    ) -> None:
        """Dispatch until ``stop`` is set, then finish what was taken and return."""
        self.bot_id = bot_id
        async with trio.open_nursery() as feeders:
            self._feeders = feeders
            async with trio.open_nursery() as helpers:
                helpers.start_soon(self._forget_finished)
                if self.shared:
                    helpers.start_soon(self._take_offers)
                    helpers.start_soon(self._sweep)
                else:
                    for raw in await self._store.run_patiently(journal.unfinished, bot_id):
                        self._dispatch(raw, trio.current_time())
                task_status.started()
                await stop.wait()
                helpers.cancel_scope.cancel()
            # Stopped: wait for the feeders and for Telegram to take their replies, then
            # write down what they finished.
            if self._queues:
                self._all_fed = trio.Event()
                await self._all_fed.wait()
            if self._unsettled:
                self._all_settled = trio.Event()
                await self._all_settled.wait()
            await self._flush_finished()

    async def room(self) -> None:
        """Wait while ``max_in_flight`` updates are held (the poller's back pressure)."""
        while self._in_flight >= self._max_in_flight:
            self._room = trio.Event()
            await self._room.wait()

    def offer(self, raws: Sequence[dict[str, Any]], received: float) -> None:
        """Journaled updates, to be handled here or by their customer's holder."""
        if not self.shared:
            for raw in raws:
                self._dispatch(raw, received)
        elif raws:
            self._offers.send_nowait((list(raws), received))

    # -- several instances -------------------------------------------------------------

    async def _take_offers(self) -> None:
        """Offers in arrival order. The customers' leases are taken (those held here
        already, kept) in one statement, and what those customers have in the journal is
        read back from it, oldest first: the journal, not the offer, says what is still
        to do, and in what order (an earlier update of the customer may have reached
        another instance, and another instance may have handled an offered one)."""
        async for first in self._offered:
            offers = [first]
            while True:  # what queued meanwhile goes in the same statements
                try:
                    offers.append(self._offered.receive_nowait())
                except trio.WouldBlock:
                    break
            raws = [raw for batch, _ in offers for raw in batch]
            received = first[1]
            customers: set[int] = set()
            for raw in raws:
                who = journal.sender_of(raw)
                if who is None:
                    self._dispatch(raw, received)
                else:
                    customers.add(who)
            if not customers:
                continue
            held = {c for c in customers if c in self._taken}
            wanted = sorted(customers - held)
            if wanted:
                now = self._clock.now()
                held |= set(
                    await self._store.run_patiently(
                        journal.take_customers, wanted, self._instance, now
                    )
                )
            if held:
                await self._resume(sorted(held))

    async def _resume(self, customers: Sequence[int]) -> None:
        """Queue the journaled updates of customers just taken that are not taken yet."""
        seen = [i for c in customers for i in self._taken.get(c, ())]
        rows = await self._store.run_patiently(
            journal.pending_of_many, self.bot_id, customers, seen
        )
        for raw in rows:
            self._dispatch(raw, trio.current_time())

    async def _sweep(self) -> None:
        """Customers whose holder died (or whose receiver has not taken them yet): taken
        within :data:`SWEEP` seconds."""
        while True:
            await trio.sleep(SWEEP)
            try:
                lost = await self._store.run_statement(journal.orphans, self.bot_id)
                if not lost:
                    continue
                now = self._clock.now()
                got = await self._store.run(journal.take_customers, lost, self._instance, now)
                if got:
                    await self._resume(got)
            except StoreUnavailable as exc:
                log.warning("dispatcher: database unreachable (%s)", exc)

    async def _release(self, customers: Sequence[int]) -> None:
        """Every update taken for these customers is out of the journal: give their leases
        up, except those of customers another instance journaled more for meanwhile."""
        more = await self._store.run_patiently(
            journal.release_customers, self.bot_id, customers, self._instance
        )
        for raw in more:
            self._dispatch(raw, trio.current_time())

    # -- handing updates to actors -----------------------------------------------------

    def _dispatch(self, raw: dict[str, Any], received: float) -> None:
        update_id = int(raw["update_id"])
        try:
            update = parse_update(raw)
        except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
            log.warning("skipping malformed update %s: %s", update_id, _first_line(exc))
            self._finish(update_id)
            return
        sender = update.sender
        if sender is None:
            self._finish(update_id)
            return
        if update_id in self._forgotten_ids:
            return  # handled already: read from the journal just before it left
        taken = self._taken.setdefault(sender.id, set())
        if update_id in taken:
            return  # offered twice (a replayed journal row already queued)
        taken.add(update_id)
        self._owner[update_id] = sender.id
        self._in_flight += 1
        queue = self._queues.get(sender.id)
        if queue is None:
            assert self._feeders is not None
            queue = self._queues[sender.id] = deque()
            self._feeders.start_soon(self._feed, sender.id, queue)
        queue.append((update_id, update, received))

    async def _feed(self, customer: int, queue: deque[Queued]) -> None:
        """Hand one customer's updates to their actor, in order, one at a time.

        The next update does not wait for Telegram to take this one's replies (the outbox
        keeps a chat's messages in order); only leaving the journal does.
        """
        while queue:
            update_id, update, received = queue[0]
            receipts = Receipts(partial(self._settled, update_id))
            finished = await self._hand_over(customer, update_id, update, receipts)
            queue.popleft()
            self._in_flight -= 1
            self._room.set()
            if finished:
                self._unsettled += 1
                receipts.close()  # -> _settled once Telegram took every reply
                if self._on_handled is not None:
                    self._on_handled(trio.current_time() - received)
        del self._queues[customer]
        if not self._queues:
            self._all_fed.set()

    async def _hand_over(
        self, customer: int, update_id: int, update: Update, receipts: Receipts
    ) -> bool:
        """Ask the customer's actor to handle the update; False if it must stay journaled."""
        token = current_receipts.set(receipts)
        try:
            while True:
                try:
                    await self._actors.ask("user", customer, update, timeout=HANDLING_PATIENCE)
                except StoreUnavailable:
                    # Not the update's fault: hand it over again once the database is back.
                    await trio.sleep(self._backoff())
                    continue
                except (AskTimeout, ShuttingDown) as exc:
                    log.warning("update %s not confirmed as handled: %s", update_id, exc)
                    return False  # stays in the journal; replayed after a restart
                except Exception:
                    pass  # the runtime logged it; a failing update is not retried forever
                return True
        finally:
            current_receipts.reset(token)

    def _settled(self, update_id: int, delivered: bool) -> None:
        self._unsettled -= 1
        if delivered:
            self._finish(update_id)
        else:  # replayed at the next start, when Telegram may take the reply
            log.warning("update %s stays journaled: a reply to it was not delivered", update_id)
        if not self._unsettled:
            self._all_settled.set()

    def _finish(self, update_id: int) -> None:
        self._finished.append(update_id)
        self._finished_added.set()

    async def _forget_finished(self) -> None:
        """Remove handled updates from the journal, many per statement under load; while
        the database is unreachable, try again (else they would be handled again at the
        next start)."""
        while True:
            await self._finished_added.wait()
            self._finished_added = trio.Event()
            if not await self._flush_finished():
                await trio.sleep(self._backoff())
                self._finished_added.set()  # what failed is kept: look again

    async def _flush_finished(self) -> bool:
        """Remove what was finished from the journal; False if the database failed (then
        it is kept for the next try)."""
        done, self._finished = self._finished, []
        if not done:
            return True
        try:
            await self._store.run(journal.forget, self.bot_id, done)
        except StoreUnavailable as exc:
            if not self._forgetting_failed:
                log.warning("cannot clear handled updates yet (%s); trying again", exc)
            self._forgetting_failed = True
            self._finished[:0] = done
            return False
        self._forgetting_failed = False
        for update_id in done:
            if len(self._forgotten) == self._forgotten.maxlen:
                self._forgotten_ids.discard(self._forgotten[0])
            self._forgotten.append(update_id)
            self._forgotten_ids.add(update_id)
        free = []
        for update_id in done:
            customer = self._owner.pop(update_id, None)
            taken = self._taken.get(customer) if customer is not None else None
            if taken is not None:
                taken.discard(update_id)
                if not taken and customer not in self._queues:
                    del self._taken[customer]  # type: ignore[arg-type]
                    free.append(customer)
        if self.shared and free:
            await self._release([c for c in free if c is not None])
        return True


def _first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]
