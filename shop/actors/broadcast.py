"""The broadcaster: sends every running broadcast to its recipients, resuming from the rows.

A broadcast (``store.broadcasts``) is one row per recipient. The broadcaster leases a
second's worth of owed recipients at a time, hands each message to the outbox's bulk lane
(so it never takes the seconds' share kept for replies, see ``telegram.outbox``) and waits
for Telegram's answer; only then is the recipient's outcome written, many per statement:
``sent``, ``blocked`` (403: the customer is marked blocked too) or ``failed`` (400, with
the reason). A send that failed otherwise (network, 5xx after the outbox's retries) stays
owed and is tried again a minute later, up to ``broadcasts.MAX_ATTEMPTS`` times. A crash
leaves at most the messages in flight unmarked, under a dead instance's lease that the
next start takes over at once: they are repeated; nobody is skipped.

It runs at start (a restart resumes), whenever poked through ``due`` (a new broadcast, the
hourly sweep) and when a lease it waits for runs out; it sleeps without a statement while
nothing is owed. A canceled broadcast stops within the second: only running broadcasts'
recipients are leased.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from typing import Any

import trio

from ..clock import WallClock
from ..errors import BadRequest, Forbidden, StoreUnavailable, TelegramError
from ..store import Store, broadcasts
from ..store.broadcasts import Outcome, Recipient
from ..telegram.outbox import Lane, Outbox
from ..wakeup import Wakeup

log = logging.getLogger(__name__)

#: How long a recipient whose send failed for now waits before it is tried again.
RETRY_AFTER = dt.timedelta(minutes=1)


def render(message: dict[str, Any], chat_id: int) -> tuple[str, dict[str, Any]]:
    """The Bot API call that delivers a broadcast message (as the HTTP API checked it)."""
    params: dict[str, Any] = {"chat_id": chat_id, "parse_mode": "HTML"}
    button = message.get("button")
    if button:
        params["reply_markup"] = {
            "inline_keyboard": [[{"text": button["text"], "url": button["url"]}]]
        }
    if message.get("photo_url"):
        return "sendPhoto", params | {"photo": message["photo_url"], "caption": message["text"]}
    return "sendMessage", params | {"text": message["text"]}


class Broadcaster:
    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        clock: WallClock,
        instance: int,
        due: Wakeup,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._clock = clock
        self._instance = instance
        self.due = due
        self._on_outcome = on_outcome or (lambda result: None)  # metrics: sent, blocked...
        # A second's worth handed over at once: enough to fill every window, few enough
        # that a cancel (or a crash) catches little in flight.
        self._batch = max(10, outbox.bulk_rate)
        self._slots = trio.Semaphore(self._batch)
        self._messages: dict[int, dict[str, Any]] = {}
        self._outcomes: list[Outcome] = []
        self._failed: list[Recipient] = []
        self._answered = trio.Event()
        self._sending = False
        self._stopping = False
        self._claiming: trio.CancelScope | None = None  # the leasing under way, if any

    async def run(
        self,
        stop: trio.Event | None = None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Send what is owed until ``stop`` is set; then lease nothing more, wait for the
        answers to what is in hand and write them down (so a graceful stop repeats
        nothing), and return."""
        if stop is None:
            stop = trio.Event()  # runs until cancelled (bench/)
        task_status.started()
        async with trio.open_nursery() as watching:
            watching.start_soon(self._stop_when, stop)
            while not stop.is_set():
                try:
                    await self.send_owed()
                    free_at = await self._store.run_statement(
                        broadcasts.next_free, self._clock.now()
                    )
                except StoreUnavailable as exc:
                    log.warning("broadcasts: database unreachable (%s); retrying in 30 s", exc)
                    free_at = self._clock.now() + dt.timedelta(seconds=30)
                if stop.is_set():
                    break
                now = self._clock.now()
                delay = math.inf if free_at is None else (free_at - now).total_seconds()
                await self.due.sleep(max(delay, 1.0))
            watching.cancel_scope.cancel()

    async def _stop_when(self, stop: trio.Event) -> None:
        await stop.wait()
        self._stopping = True
        if self._claiming is not None:
            self._claiming.cancel()  # no new leases; the sends in hand finish
        self.due.poke()

    async def send_owed(self) -> int:
        """Send to every owed, free recipient of the running broadcasts; returns how many
        were handed to the outbox."""
        handed = 0
        self._sending = True
        async with trio.open_nursery() as marking:
            marking.start_soon(self._mark_answers)
            try:
                async with trio.open_nursery() as sending:
                    with trio.CancelScope() as self._claiming:
                        if self._stopping:  # cancelled by a stop: what was handed over stays
                            self._claiming.cancel()
                        while batch := await self._claim():
                            for recipient in batch:
                                message = await self._message(recipient.broadcast_id)
                                sending.start_soon(self._send, recipient, message)
                                handed += 1
                    self._claiming = None
            finally:
                self._sending = False
                self._answered.set()
        await self._store.run_statement(broadcasts.finish, self._clock.now())
        self._messages.clear()
        return handed

    async def _claim(self) -> list[Recipient]:
        """Lease as many recipients as there are free slots, once at least half are free:
        nothing is leased that could not be handed over at once (so a cancel or a crash
        catches at most a second's worth), and there are few statements per second."""
        free = 0
        for _ in range(self._batch // 2):
            await self._slots.acquire()
            free += 1
        while free < self._batch:
            try:
                self._slots.acquire_nowait()
            except trio.WouldBlock:
                break
            free += 1
        batch: list[Recipient] = []
        try:
            batch = await self._store.run_statement(
                broadcasts.claim, self._clock.now(), free, self._instance
            )
        finally:
            for _ in range(free - len(batch)):
                self._slots.release()
        return batch

    async def _message(self, broadcast_id: int) -> dict[str, Any]:
        found = self._messages.get(broadcast_id)
        if found is None:
            found = await self._store.run_statement(broadcasts.message, broadcast_id)
            assert found is not None  # a recipient's broadcast exists (foreign key)
            self._messages[broadcast_id] = found
        return found

    async def _send(self, recipient: Recipient, message: dict[str, Any]) -> None:
        method, params = render(message, recipient.telegram_id)
        try:
            await self._outbox.request(method, params, lane=Lane.BULK)
            outcome: Outcome | None = Outcome(recipient, "sent")
        except Forbidden:
            outcome = Outcome(recipient, "blocked")
        except BadRequest as exc:
            outcome = Outcome(recipient, "failed", exc.description)
        except TelegramError as exc:
            log.warning("broadcast to %s not delivered (%s); retried later", recipient, exc)
            outcome = None
        finally:
            self._slots.release()
        if outcome is None:
            self._failed.append(recipient)
        else:
            self._outcomes.append(outcome)
        self._on_outcome("retry" if outcome is None else outcome.result)
        self._answered.set()

    async def _mark_answers(self) -> None:
        """Write down answers as they come, many per statement, until sending is over."""
        while True:
            await self._answered.wait()
            self._answered = trio.Event()
            outcomes, self._outcomes = self._outcomes, []
            failed, self._failed = self._failed, []
            now = self._clock.now()
            if outcomes:
                await self._store.run(broadcasts.record, outcomes, now)
            if failed:
                await self._store.run_statement(
                    broadcasts.retry_later, failed, now + RETRY_AFTER, self._instance
                )
            if not self._sending and not self._outcomes and not self._failed:
                return
