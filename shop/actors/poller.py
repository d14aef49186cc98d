"""The poller: long-polls ``getUpdates`` and hands each update to its customer's actor.

Delivery is at-least-once. A batch is written to the update journal (with the offset
that confirms it) before the next ``getUpdates`` confirms it to Telegram; an update
leaves the journal only when its handler has finished *and* every message its handling
queued (through any actor it asked) was accepted by Telegram or refused for good (the
outbox's receipts); on start the journal is replayed. So a crash at any moment loses no
answer: at most the messages in flight at that moment are sent again. Updates from
one customer are handled in order, one at a time (a small feeder task per customer with
work queued); customers never wait on each other, and at most ``max_in_flight`` updates
are held before polling pauses.

Errors: network errors and 5xx back off exponentially with jitter; 409 means another
instance polls this token (or a webhook is set) and is logged as such; 401 stops the
shop with exit code 2.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import attrs
import cattrs
import trio

from ..clock import WallClock
from ..errors import (
    AskTimeout,
    Conflict,
    RetryAfter,
    ShuttingDown,
    StartupFailed,
    StoreUnavailable,
    TelegramError,
    Unauthorized,
    UnstorableData,
)
from ..store import Store
from ..store import updates as journal
from ..telegram.api import BotClient
from ..telegram.identity import BotIdentity
from ..telegram.outbox import Receipts, current_receipts
from ..telegram.types import ALLOWED_UPDATES, Update, parse_update
from .runtime import Registry

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How long one update may take in its actor before the poller stops waiting for it.
HANDLING_PATIENCE = 120.0


@attrs.frozen
class Bot:
    """The bot's own identity, from getMe."""

    id: int
    username: str


class Poller:
    def __init__(
        self,
        bot: BotClient,
        store: Store,
        actors: Registry,
        clock: WallClock,
        *,
        rng: random.Random | None = None,
        poll_timeout: int = 50,
        max_in_flight: int = 1000,
        on_handled: Callable[[float], None] | None = None,
        identity: BotIdentity | None = None,
    ) -> None:
        self._bot = bot
        self._identity = identity  # filled in from getMe, for the links the shop gives out
        self._store = store
        self._actors = actors
        self._clock = clock
        self._rng = rng or random.Random()
        self._poll_timeout = poll_timeout
        self._max_in_flight = max_in_flight
        self._on_handled = on_handled  # told each update's seconds from receipt to handled
        self._queues: dict[int, deque[tuple[int, Update, float]]] = {}
        self._in_flight = 0
        self._room = trio.Event()
        self._finished: list[int] = []
        self._finished_added = trio.Event()
        self._failures = 0
        self._all_fed = trio.Event()
        self._unsettled = 0  # updates handled whose replies Telegram has not settled yet
        self._all_settled = trio.Event()
        self._bot_id = 0  # known after getMe

    async def run(
        self, stop: trio.Event, *, task_status: trio.TaskStatus[Bot] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Poll until ``stop`` is set, then finish the updates already taken and return."""
        me: Bot | None = None
        async with _until(stop):
            me = await self._introduce()
        if me is None:
            return  # stopped before Telegram answered
        self._bot_id = me.id
        if self._identity is not None:
            self._identity.id, self._identity.username = me.id, me.username
        task_status.started(me)
        async with trio.open_nursery() as feeders:
            async with trio.open_nursery() as forgetting:
                forgetting.start_soon(self._forget_finished)
                replay = await self._patiently(journal.unfinished, me.id)
                for raw in replay:
                    self._dispatch(feeders, raw, trio.current_time())
                async with _until(stop):
                    await self._poll(feeders, me)
                # Stopped: wait for the feeders and for Telegram to take their replies,
                # then write down what they finished.
                if self._queues:
                    self._all_fed = trio.Event()
                    await self._all_fed.wait()
                if self._unsettled:
                    self._all_settled = trio.Event()
                    await self._all_settled.wait()
                await self._flush_finished()
                forgetting.cancel_scope.cancel()
            feeders.cancel_scope.cancel()

    # -- start -------------------------------------------------------------------------

    async def _introduce(self) -> Bot:
        """getMe, then deleteWebhook (keeping pending updates); retried until Telegram answers."""
        while True:
            try:
                me = await self._bot.call("getMe")
                await self._bot.call("deleteWebhook", {"drop_pending_updates": False})
                log.info("polling as @%s", me.get("username"))
                return Bot(id=int(me["id"]), username=str(me.get("username") or ""))
            except Unauthorized:
                raise StartupFailed("TELEGRAM_TOKEN was rejected by Telegram", code=2) from None
            except TelegramError as exc:
                await self._back_off("getMe", exc)

    # -- polling -----------------------------------------------------------------------

    async def _poll(self, feeders: trio.Nursery, me: Bot) -> None:
        offset = await self._patiently(journal.next_offset, me.id)
        while True:
            while self._in_flight >= self._max_in_flight:
                self._room = trio.Event()
                await self._room.wait()
            batch = await self._get_updates(offset)
            if not batch:
                continue
            offset = max(int(u["update_id"]) for u in batch) + 1
            received = trio.current_time()
            for raw in await self._journal(me.id, batch, offset):
                self._dispatch(feeders, raw, received)

    async def _get_updates(self, offset: int | None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {
            "timeout": self._poll_timeout,
            "allowed_updates": list(ALLOWED_UPDATES),
            "limit": 100,
        }
        if offset is not None:
            params["offset"] = offset
        try:
            batch = await self._bot.call("getUpdates", params, read_timeout=self._poll_timeout + 15)
        except Unauthorized:
            raise StartupFailed("TELEGRAM_TOKEN was rejected by Telegram", code=2) from None
        except TelegramError as exc:
            await self._back_off("getUpdates", exc)
            return []
        self._failures = 0
        return [u for u in batch if isinstance(u, dict) and isinstance(u.get("update_id"), int)]

    async def _journal(
        self, bot_id: int, batch: list[dict[str, Any]], offset: int
    ) -> list[dict[str, Any]]:
        """Store the batch before anything confirms it.

        An update the database refuses as data must not stop every customer behind it:
        the batch is then stored one update at a time, and the refused one is skipped.
        """
        now = self._clock.now()
        try:
            await self._patiently(journal.journal, bot_id, batch, offset, now)
            return batch
        except UnstorableData:
            pass
        stored = []
        for raw in batch:
            try:
                await self._patiently(journal.journal, bot_id, [raw], offset, now)
                stored.append(raw)
            except UnstorableData as exc:
                log.warning("skipping update %s the database refuses: %s", raw["update_id"], exc)
        return stored

    async def _patiently(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a unit of work, retrying with backoff while the database is unreachable."""
        delay = 0.5
        while True:
            try:
                return await self._store.run(fn, *args)
            except StoreUnavailable as exc:
                log.warning("database unreachable (%s); retrying in %.1f s", exc, delay)
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _back_off(self, method: str, exc: TelegramError) -> None:
        self._failures += 1
        if isinstance(exc, RetryAfter):
            delay = float(exc.retry_after)
        else:
            ceiling = min(60.0, 2.0 ** min(self._failures, 6))
            delay = ceiling / 2 + self._rng.random() * ceiling / 2
        if isinstance(exc, Conflict):
            log.error(
                "%s: Telegram says another instance is polling with this token, or a "
                "webhook is set (%s); retrying in %.1f s",
                method,
                exc.description,
                delay,
            )
        else:
            log.warning("%s failed (%s); retrying in %.1f s", method, exc, delay)
        await trio.sleep(delay)

    # -- handing updates to actors -----------------------------------------------------

    def _dispatch(self, feeders: trio.Nursery, raw: dict[str, Any], received: float) -> None:
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
        self._in_flight += 1
        queue = self._queues.get(sender.id)
        if queue is None:
            queue = self._queues[sender.id] = deque()
            feeders.start_soon(self._feed, sender.id, queue)
        queue.append((update_id, update, received))

    async def _feed(self, customer: int, queue: deque[tuple[int, Update, float]]) -> None:
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
                    await trio.sleep(self._store_backoff())
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

    def _store_backoff(self) -> float:
        return 1.0 + self._rng.random()

    def _finish(self, update_id: int) -> None:
        self._finished.append(update_id)
        self._finished_added.set()

    async def _forget_finished(self) -> None:
        """Remove handled updates from the journal, many per statement under load."""
        while True:
            await self._finished_added.wait()
            self._finished_added = trio.Event()
            await self._flush_finished()

    async def _flush_finished(self) -> None:
        done, self._finished = self._finished, []
        if not done:
            return
        try:
            await self._store.run(journal.forget, self._bot_id, done)
        except StoreUnavailable as exc:
            log.warning("cannot clear handled updates (%s); they may be replayed", exc)


@asynccontextmanager
async def _until(event: trio.Event) -> AsyncIterator[None]:
    """Run the block until it ends or ``event`` is set, whichever comes first."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_cancel_when, event, nursery.cancel_scope)
        yield
        nursery.cancel_scope.cancel()


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]
