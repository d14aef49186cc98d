"""The poller: long-polls ``getUpdates``, journals each batch, and offers it to the
dispatcher (``actors.dispatcher``), which hands each update to its customer's actor.

Delivery is at-least-once. A batch is written to the update journal (with the offset
that confirms it) before the next ``getUpdates`` confirms it to Telegram; an update
leaves the journal only once fully handled (see the dispatcher); on start the journal is
replayed. So a crash at any moment loses no answer: at most the messages in flight at
that moment are sent again. At most ``max_in_flight`` updates are held before polling
pauses. With several instances, one polls (the ``poller`` role, see ``main``) and every
instance dispatches.

Errors: network errors and 5xx back off exponentially with jitter; 409 means another
instance polls this token (or a webhook is set) and is logged as such; 401 stops the
shop with exit code 2.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from ..clock import WallClock
from ..errors import (
    Conflict,
    RetryAfter,
    StartupFailed,
    TelegramError,
    Unauthorized,
    UnstorableData,
)
from ..store import Store
from ..store import updates as journal
from ..telegram.api import BotClient
from ..telegram.identity import BotIdentity
from ..telegram.types import ALLOWED_UPDATES
from .dispatcher import Dispatcher
from .runtime import Registry

log = logging.getLogger(__name__)

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
        dispatcher: Dispatcher | None = None,
    ) -> None:
        """``dispatcher``: one shared with the webhook route and run by the caller;
        without it the poller makes its own and runs it."""
        self._bot = bot
        self._identity = identity  # filled in from getMe, for the links the shop gives out
        self._store = store
        self._clock = clock
        self._rng = rng or random.Random()
        self._poll_timeout = poll_timeout
        self._failures = 0
        self._bot_id = 0  # known after getMe
        self._own_dispatcher = dispatcher is None
        self._dispatcher = dispatcher or Dispatcher(
            store,
            actors,
            clock,
            max_in_flight=max_in_flight,
            on_handled=on_handled,
            backoff=lambda: 1.0 + self._rng.random(),
        )

    async def run(
        self, stop: trio.Event, *, task_status: trio.TaskStatus[Bot] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Poll until ``stop`` is set, then finish the updates already taken and return."""
        me: Bot | None = None
        async with _until(stop):
            me = await self._introduce()
        if me is None:
            return  # stopped before Telegram answered
        if self._identity is not None:
            self._identity.id, self._identity.username = me.id, me.username
        self._bot_id = me.id
        task_status.started(me)
        polled = trio.Event()
        async with trio.open_nursery() as dispatching:
            if self._own_dispatcher:
                await dispatching.start(self._dispatcher.run, me.id, polled)
            async with _until(stop):
                await self._poll(me)
            polled.set()  # the dispatcher finishes what was taken, then returns

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

    async def _poll(self, me: Bot) -> None:
        offset = await self._store.run_patiently(journal.next_offset, me.id)
        while True:
            await self._dispatcher.room()
            batch = await self._get_updates(offset)
            if not batch:
                continue
            offset = max(int(u["update_id"]) for u in batch) + 1
            received = trio.current_time()
            self._dispatcher.offer(await self._journal(me.id, batch, offset), received)

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
            await self._store.run_patiently(journal.journal, bot_id, batch, offset, now)
            return batch
        except UnstorableData:
            pass
        stored = []
        for raw in batch:
            try:
                await self._store.run_patiently(journal.journal, bot_id, [raw], offset, now)
                stored.append(raw)
            except UnstorableData as exc:
                log.warning("skipping update %s the database refuses: %s", raw["update_id"], exc)
        return stored

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
