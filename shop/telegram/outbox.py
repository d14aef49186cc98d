"""The outbox: every call that sends to a chat goes through here, within Telegram's limits.

Limits (EXTERNAL-APIS.md §A.5): at most ``global_rate`` messages in any one-second
window across all chats; per chat one message a second on average (one every three
seconds in groups, i.e. 20 a minute), with a burst of ``chat_burst`` (a bucket refilled
one message per interval, so a press that sends an invoice and then a screen is not held
back a second; 429 with ``retry_after`` stays the backstop and empties the bucket); one
call in flight per chat, so a chat sees its messages in order. Calls that answer a query
(``answerCallbackQuery``, ``answerPreCheckoutQuery``) and calls not aimed at a chat are
not rate-limited and go first: a customer must never wait on a broadcast to see a button
respond.

Three lanes, served in this order: ``ANSWER``, ``INTERACTIVE`` (replies to a
customer), ``BULK`` (broadcasts, reminders). Up to ``concurrency`` calls run at once.
``BULK`` starts a call only while fewer than :attr:`Outbox.bulk_rate` (the global rate
minus ``bulk_headroom``, which ``shop.main`` sets) were started in the last second: the
rest of every second is kept for replies, so a customer who presses a button during a
broadcast is answered at once rather than behind a second's worth of broadcast.

Failures: 429 waits exactly ``retry_after`` and repeats the call; 403 reports the chat
as blocked through ``on_blocked``; "message is not modified" counts as success; a group
upgraded to a supergroup is retried with the new chat id; 5xx and network errors are
retried a bounded number of times with exponential backoff and jitter.

Receipts: work whose effects must survive a crash (a journaled update, a notice) sets
:data:`current_receipts` while it runs; every call queued meanwhile is counted there, and
the work is told once all of them are *settled*: accepted by Telegram, or refused for
good (400, 403). Only then may it be marked done (DESIGN.md, "Effects that must happen").
"""

from __future__ import annotations

import contextvars
import enum
import heapq
import itertools
import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import attrs
import outcome
import trio

from ..errors import (
    BadRequest,
    Forbidden,
    MigrateToChat,
    RetryAfter,
    TelegramError,
    TelegramNetworkError,
    TelegramServerError,
)
from ..limits import Budget
from .api import BotClient

log = logging.getLogger(__name__)


class Lane(enum.IntEnum):
    ANSWER = 0  # answers to callback and pre-checkout queries: never rate-limited
    INTERACTIVE = 1  # a reply to something the customer just did
    BULK = 2  # broadcasts, reminders, expiry notices


#: Methods that put something in a chat, and so count against the chat and global limits.
def is_limited(method: str) -> bool:
    return method.startswith(("send", "edit", "copy", "forward"))


class Receipts:
    """The calls queued on behalf of one piece of work, until Telegram has settled them.

    ``on_settled(delivered)`` is called once, after :meth:`close` and the last call's end;
    ``delivered`` is False when some call failed in a way a retry might fix (the network,
    Telegram's 5xx after every attempt): the work should then stay undone, to be repeated.
    """

    def __init__(self, on_settled: Callable[[bool], None]) -> None:
        self._on_settled = on_settled
        self._open = 0
        self._closed = False
        self._delivered = True

    def add(self) -> None:
        self._open += 1

    def settle(self, result: outcome.Outcome[Any] | None) -> None:
        self._open -= 1
        if result is None or (
            isinstance(result, outcome.Error)
            and not isinstance(result.error, BadRequest | Forbidden)
        ):
            self._delivered = False
        self._fire()

    def close(self) -> None:
        """No more calls will be added: report as soon as the queued ones are settled."""
        self._closed = True
        self._fire()

    def _fire(self) -> None:
        if self._closed and self._open == 0:
            self._closed = False  # report once
            self._on_settled(self._delivered)


#: The receipts that calls queued by the running task are counted in (None: not counted).
current_receipts: contextvars.ContextVar[Receipts | None] = contextvars.ContextVar(
    "current_receipts", default=None
)


@attrs.define(eq=False)
class _Call:
    method: str
    params: dict[str, Any]
    lane: Lane
    result: outcome.Outcome[Any] | None = None
    done: trio.Event | None = None
    receipts: Receipts | None = None


@attrs.define(eq=False)
class _Chat:
    chat_id: int
    lanes: tuple[deque[_Call], deque[_Call], deque[_Call]] = attrs.Factory(
        lambda: (deque(), deque(), deque())
    )
    next_at: float = -float("inf")  # the next send may start then
    full_at: float = -float("inf")  # the burst allowance is whole again then
    busy: bool = False
    scheduled: bool = False  # in a ready queue or in the timer heap
    parked: bool = False  # in the timer heap only to be forgotten at ``full_at``
    timer: int = -1  # the sequence number of its live timer entry (others are stale)

    def head_lane(self) -> Lane | None:
        for lane, calls in zip(Lane, self.lanes, strict=True):
            if calls:
                return lane
        return None

    def pop(self) -> _Call:
        for calls in self.lanes:
            if calls:
                return calls.popleft()
        raise IndexError("no calls queued")


BlockedHook = Callable[[int], Awaitable[None]]
#: Told ``(lane, result)`` for each try: sent, 429, 403, 400, failed (a metric).
EventHook = Callable[[str, str], None]


async def _ignore_blocked(chat_id: int) -> None:
    return None


class Outbox:
    def __init__(
        self,
        bot: BotClient,
        *,
        global_rate: int = 25,
        paid_broadcast: bool = False,
        on_blocked: BlockedHook = _ignore_blocked,
        on_event: EventHook | None = None,
        rng: random.Random | None = None,
        concurrency: int = 16,
        max_queued: int = 10_000,
        chat_interval: float = 1.0,
        group_interval: float = 3.0,
        chat_burst: int = 1,
        max_attempts: int = 5,
        bulk_headroom: int = 0,
        budget: Budget | None = None,
    ) -> None:
        self._bot = bot
        self._rate = global_rate
        #: Calls a second kept from the bulk lane for replies (``shop.main`` sets a tenth).
        self.bulk_headroom = bulk_headroom
        #: the send budget shared with other instances (``shop.limits``), asked before each
        #: limited send; None: this outbox's own ``global_rate`` is the only limit
        self.budget = budget
        self._paid_broadcast = paid_broadcast
        self._on_blocked = on_blocked
        self._on_event = on_event
        self._rng = rng or random.Random()
        self._concurrency = concurrency
        self._chat_interval = chat_interval
        self._group_interval = group_interval
        self._chat_burst = max(1, chat_burst)
        self._max_attempts = max_attempts
        self._room = trio.Semaphore(max_queued)  # back-pressure on senders
        self._unlimited: deque[_Call] = deque()
        self._chats: dict[int, _Chat] = {}
        self._ready: tuple[deque[_Chat], deque[_Chat], deque[_Chat]] = (deque(), deque(), deque())
        self._timers: list[tuple[float, int, _Chat]] = []
        self._seq = itertools.count()
        # When each limited call of the last second started: a one-item list, inf until its
        # task runs (under load that is later than its dispatch, and the limit is about
        # the calls Telegram sees, so a call counts from when it really starts).
        self._window: deque[list[float]] = deque()
        self._in_flight = 0
        self._queued = 0
        self._changed = trio.Event()
        self._idle = trio.Event()
        self._idle.set()

    # -- the public side -------------------------------------------------------------

    @property
    def bulk_rate(self) -> int:
        """At most this many bulk calls start in any one second (the broadcast budget)."""
        return max(1, self._rate - self.bulk_headroom)

    async def send(
        self, method: str, params: dict[str, Any], *, lane: Lane = Lane.INTERACTIVE
    ) -> None:
        """Queue a call and return at once (waits only while the outbox is full)."""
        await self._put(_Call(method, params, lane))

    async def request(
        self, method: str, params: dict[str, Any], *, lane: Lane = Lane.INTERACTIVE
    ) -> Any:
        """Queue a call and wait for its result; raises the TelegramError it ended with."""
        call = _Call(method, params, lane, done=trio.Event())
        await self._put(call)
        assert call.done is not None
        await call.done.wait()
        assert call.result is not None
        return call.result.unwrap()

    async def drain(self) -> None:
        """Wait until nothing is queued or in flight."""
        await self._idle.wait()

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Dispatch queued calls for as long as the shop runs."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                self._dispatch(nursery)
                wake_at = self._next_wake()
                self._changed = trio.Event()
                with trio.move_on_at(wake_at):
                    await self._changed.wait()

    # -- queueing ----------------------------------------------------------------------

    async def _put(self, call: _Call) -> None:
        await self._room.acquire()
        call.receipts = current_receipts.get()
        if call.receipts is not None:
            call.receipts.add()
        if self._queued == 0 and self._in_flight == 0:
            self._idle = trio.Event()
        self._queued += 1
        chat_id = call.params.get("chat_id")
        if call.lane is Lane.ANSWER or not is_limited(call.method) or not isinstance(chat_id, int):
            self._unlimited.append(call)
        else:
            if call.lane is Lane.BULK and self._paid_broadcast:
                call.params.setdefault("allow_paid_broadcast", True)
            chat = self._chats.get(chat_id)
            if chat is None:
                chat = self._chats[chat_id] = _Chat(chat_id)
            chat.lanes[call.lane].append(call)
            self._schedule(chat)
        self._changed.set()

    def _schedule(self, chat: _Chat) -> None:
        """Put a chat with queued calls where the dispatcher will find it."""
        lane = chat.head_lane()
        if chat.busy or (chat.scheduled and not chat.parked) or lane is None:
            return
        chat.scheduled, chat.parked, chat.timer = True, False, -1  # a parked entry goes stale
        if chat.next_at <= trio.current_time():
            self._ready[lane].append(chat)
        else:
            self._push_timer(chat, chat.next_at)

    def _push_timer(self, chat: _Chat, at: float) -> None:
        chat.timer = next(self._seq)
        heapq.heappush(self._timers, (at, chat.timer, chat))

    # -- dispatching -------------------------------------------------------------------

    def _dispatch(self, nursery: trio.Nursery) -> None:
        now = trio.current_time()
        while self._timers and self._timers[0][0] <= now:
            _, seq, chat = heapq.heappop(self._timers)
            if seq != chat.timer:
                continue  # superseded: the chat was given calls while parked
            chat.scheduled, chat.parked, chat.timer = False, False, -1
            if chat.head_lane() is None and not chat.busy:
                self._chats.pop(chat.chat_id, None)  # allowance is whole: forget the chat
            else:
                self._schedule(chat)
        while self._unlimited and self._in_flight < self._concurrency:
            self._start(nursery, self._unlimited.popleft(), None, None)
        for lane, ready in zip(Lane, self._ready, strict=True):
            limit = self.bulk_rate if lane is Lane.BULK else self._rate
            while ready and self._in_flight < self._concurrency and self._window_open(now, limit):
                if self.budget is not None and not self.budget.take_nowait(self._poke):
                    break  # the budget wakes the dispatcher when it has sends again
                chat = ready.popleft()
                chat.scheduled = False
                stamp = [math.inf]
                self._window.append(stamp)
                chat.busy = True
                self._spend(chat, now)
                self._start(nursery, chat.pop(), chat, stamp)

    def _poke(self) -> None:
        self._changed.set()

    def _window_open(self, now: float, limit: int | None = None) -> bool:
        # As `_next_wake` computes it: `s <= now - 1.0` can miss by a rounding error at
        # now == s + 1.0, and the dispatcher would spin at that instant (a mock clock's).
        while self._window and self._window[0][0] + 1.0 <= now:
            self._window.popleft()
        return len(self._window) < (self._rate if limit is None else limit)

    def _next_wake(self) -> float:
        wake = float("inf")
        if self._timers:
            wake = self._timers[0][0]
        waiting = any(self._ready) and self._in_flight < self._concurrency
        if waiting and self._window:
            wake = min(wake, self._window[0][0] + 1.0)
        return wake

    def _interval(self, chat_id: int) -> float:
        return self._group_interval if chat_id < 0 else self._chat_interval

    def _spend(self, chat: _Chat, now: float, *, empty: bool = False) -> None:
        """Take one send from the chat's allowance (a GCRA bucket of ``chat_burst`` sends,
        refilled one per interval); ``empty``: after a 429, none is left until the refill."""
        interval = self._interval(chat.chat_id)
        slack = (self._chat_burst - 1) * interval
        chat.full_at = max(chat.full_at, now + slack if empty else now) + interval
        chat.next_at = chat.full_at - slack

    def _start(
        self, nursery: trio.Nursery, call: _Call, chat: _Chat | None, stamp: list[float] | None
    ) -> None:
        self._in_flight += 1
        self._queued -= 1
        self._room.release()
        nursery.start_soon(self._deliver, call, chat, stamp)

    async def _deliver(self, call: _Call, chat: _Chat | None, stamp: list[float] | None) -> None:
        if stamp is not None:
            stamp[0] = trio.current_time()
            self._changed.set()  # the dispatcher may wait on this stamp
        try:
            call.result = await outcome.acapture(self._call_with_retries, call, chat)
        finally:
            self._in_flight -= 1
            if chat is not None:
                chat.busy = False
                if chat.head_lane() is not None:
                    self._schedule(chat)
                else:  # remember the allowance until it is whole, then forget the chat
                    chat.scheduled = chat.parked = True
                    self._push_timer(chat, chat.full_at)
            if call.done is not None:
                call.done.set()
            if call.receipts is not None:
                call.receipts.settle(call.result)  # None: stopped before an answer
            if self._in_flight == 0 and self._queued == 0:
                self._idle.set()
            self._changed.set()

    def _tell(self, call: _Call, result: str) -> None:
        if self._on_event is not None:
            self._on_event(call.lane.name.lower(), result)

    async def _call_with_retries(self, call: _Call, chat: _Chat | None) -> Any:
        try:
            result = await self._try_until_done(call, chat)
        except Forbidden:
            self._tell(call, "403")
            raise
        except BadRequest:
            self._tell(call, "400")
            raise
        except TelegramError:
            self._tell(call, "failed")
            raise
        self._tell(call, "sent")
        return result

    async def _try_until_done(self, call: _Call, chat: _Chat | None) -> Any:
        failures = 0
        while True:
            try:
                return await self._bot.call(call.method, call.params)
            except RetryAfter as exc:
                self._tell(call, "429")
                log.warning("%s: flood control, retrying in %s s", call.method, exc.retry_after)
                await self._pause(chat, exc.retry_after)
            except MigrateToChat as exc:
                call.params["chat_id"] = exc.migrate_to_chat_id
            except BadRequest as exc:
                if exc.not_modified:
                    return None
                log.warning("%s refused: %s", call.method, exc.description)
                raise
            except Forbidden:
                if chat is not None:
                    await self._on_blocked(chat.chat_id)
                raise
            except (TelegramServerError, TelegramNetworkError) as exc:
                failures += 1
                if failures >= self._max_attempts:
                    log.error("%s failed %d times, giving up: %s", call.method, failures, exc)
                    raise
                await self._pause(chat, self._backoff(failures))
            except TelegramError as exc:
                log.error("%s failed: %s", call.method, exc)
                raise

    async def _pause(self, chat: _Chat | None, seconds: float) -> None:
        """Wait before repeating a call; the repeat is a send like any other."""
        if chat is None:
            await trio.sleep(seconds)
            return
        await trio.sleep_until(max(trio.current_time() + seconds, chat.next_at))
        if self.budget is not None:
            await self.budget.acquire()
        while not self._window_open(now := trio.current_time()):  # noqa: ASYNC110 - waits on time
            await trio.sleep(self._window[0][0] + 1.0 - now)
        self._window.append([now])
        self._spend(chat, now, empty=True)

    def _backoff(self, failures: int) -> float:
        ceiling = min(30.0, 2.0 ** (failures - 1))
        return ceiling / 2 + self._rng.random() * ceiling / 2
