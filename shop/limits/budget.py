"""The global Telegram send budget, shared by every instance through Redis.

Telegram counts a bot's messages across all its connections, so with several instances
the outbox of each asks a :class:`SendBudget` before each send. The budget is a token
bucket in Redis, taken from atomically by a Lua script; an instance takes up to
``batch`` tokens per round trip (a fiftieth of a second's worth at full rate) and keeps
them for at most ``lease`` seconds, so 1000 messages a second cost 50 round trips, not
1000.

Why the bucket is smaller than the rate: a bucket of capacity C refilled at r tokens a
second grants fewer than C + r·w tokens in any w seconds, and a token granted at g is
used by g + ``lease``; so the sends started in any one second were granted within
1 + ``lease`` seconds, fewer than C + r·(1 + lease). With r = (rate + 1 - C) / (1 + lease)
that is fewer than rate + 1: at most ``rate`` sends in any one-second window, whichever
instances made them.

While Redis is down each instance takes from a local bucket of its share,
``TELEGRAM_GLOBAL_RATE / INSTANCES`` (:mod:`shop.limits.link`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NoReturn, Protocol

import trio

from .link import RedisLink

#: Seconds a batch of tokens may be kept before they are used (then they are dropped).
LEASE = 0.05


class Budget(Protocol):
    """What the outbox asks before each send (:class:`SendBudget`)."""

    def take_nowait(self, wake: Callable[[], None]) -> bool:
        """Take one send now if there is one; if not, ``wake()`` is called once there
        may be (the outbox's dispatcher looks again)."""
        ...

    async def acquire(self) -> None:
        """Wait for one send and take it."""
        ...


def bucket_for(rate: int, batch: int, lease: float = LEASE) -> tuple[int, float]:
    """The capacity and refill (tokens a second) that keep sends to ``rate`` in any one
    second when tokens are taken ``batch`` at a time and kept up to ``lease`` seconds."""
    capacity = max(1, min(batch, rate))
    refill = (rate + 1 - capacity) / (1 + lease) * (1 - 1e-9)  # strictly below: see above
    return capacity, refill


class TokenBucket:
    """The bucket of :data:`TOKEN_BUCKET`, in memory (a share of the rate, Redis down)."""

    def __init__(
        self, capacity: int, refill: float, clock: Callable[[], float] = trio.current_time
    ) -> None:
        self.capacity = capacity
        self.refill = refill
        self._clock = clock
        self._tokens = float(capacity)
        self._at = clock()

    def take(self, wanted: int) -> tuple[int, float]:
        """Up to ``wanted`` tokens now; when none, the seconds until ``wanted`` (at most
        ``capacity``): a saturated bucket is then asked once a batch, not once a token."""
        now = self._clock()
        if now > self._at:
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.refill)
            self._at = now
        granted = min(wanted, math.floor(self._tokens))
        self._tokens -= granted
        if granted:
            return granted, 0.0
        return 0, (min(wanted, self.capacity) - self._tokens) / self.refill


#: KEYS[1]: the bucket, a hash of level (millionths of a token) and at (µs).
#: ARGV: capacity (tokens), refill (tokens a second), wanted, now (µs; empty: Redis's clock).
#: Returns {granted, 0}, or when none could be granted {0, the µs until ``wanted`` can be}.
TOKEN_BUCKET = """
local capacity, refill, wanted = tonumber(ARGV[1]) * 1e6, tonumber(ARGV[2]), tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1e6 + tonumber(t[2])
end
local state = redis.call('HMGET', KEYS[1], 'level', 'at')
local level, at = tonumber(state[1]), tonumber(state[2])
if not level then level, at = capacity, now end
if now > at then
  level = math.min(capacity, level + math.floor((now - at) * refill))
  at = now
end
local granted = math.min(wanted, math.floor(level / 1e6))
level = level - granted * 1e6
redis.call('HSET', KEYS[1], 'level', string.format('%d', level), 'at', string.format('%d', at))
redis.call('PEXPIRE', KEYS[1], 60000)
if granted > 0 then return {granted, 0} end
return {0, math.ceil((math.min(wanted * 1e6, capacity) - level) / refill)}
"""


class SendBudget:
    """Sends for one outbox from the bucket in Redis, ``batch`` at a time.

    ``take_nowait`` spends the tokens at hand; when there are none it notes the demand,
    and :meth:`run` (a task) fetches the next batch and wakes whoever asked. ``clock``
    is the time (seconds) the script goes by, None for Redis's own; the lease always
    runs on trio's clock.
    """

    def __init__(
        self,
        link: RedisLink | None,
        key: str,
        *,
        rate: int,
        share: int,
        batch: int | None = None,
        lease: float = LEASE,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._link = link
        self._key = key
        self.capacity, self.refill = bucket_for(rate, batch or max(1, rate // 50), lease)
        self.fallback = TokenBucket(*bucket_for(share, batch or max(1, share // 50), lease))
        self._lease = lease
        self._clock = clock
        self._tokens = 0
        self._tokens_until = -math.inf
        self._wanted = trio.Event()
        self._waiting: set[Callable[[], None]] = set()

    def take_nowait(self, wake: Callable[[], None]) -> bool:
        if self._tokens and trio.current_time() <= self._tokens_until:
            self._tokens -= 1
            return True
        self._tokens = 0
        self._waiting.add(wake)
        self._wanted.set()
        return False

    async def acquire(self) -> None:
        while True:
            given = trio.Event()
            if self.take_nowait(given.set):
                return
            await given.wait()

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Fetch a batch whenever one is wanted, and wake those who wanted it."""
        task_status.started()
        while True:
            await self._wanted.wait()
            asked_at = trio.current_time()
            granted, wait = await self._grant(self.capacity)
            if not granted:
                # The demand stands: ask again then (not sooner than a millisecond, so a
                # wait lost to rounding cannot turn this into a spin).
                await trio.sleep(max(wait, 0.001))
                continue
            self._tokens, self._tokens_until = granted, asked_at + self._lease
            self._wanted = trio.Event()
            waiting, self._waiting = self._waiting, set()
            for wake in waiting:
                wake()

    async def _grant(self, wanted: int) -> tuple[int, float]:
        if self._link is not None:
            now = "" if self._clock is None else int(self._clock() * 1e6)
            args: list[str | int | float] = [self.capacity, repr(self.refill), wanted, now]
            reply = await self._link.run_script(TOKEN_BUCKET, [self._key], args)
            if reply is not None:
                granted, wait = reply
                return granted, wait / 1e6
        return self.fallback.take(min(wanted, self.fallback.capacity))
