"""Per-customer limits for each kind of action: messages, button presses, payments created.

Each kind has its own rule, "at most N in any window of S seconds" (``RATE_LIMIT_MESSAGES``,
``RATE_LIMIT_CALLBACKS``, ``RATE_LIMIT_PAYMENTS``), kept as a sliding window of the times
of the attempts let through. An attempt over the limit is refused and not counted; the
first refusal of a spell says ``tell``, so that the customer hears once, and only once,
when they may try again (``retry_after``: when the oldest attempt leaves the window).

Two implementations of one :class:`Limits` interface: :class:`LocalLimits` keeps the
windows in this process; :class:`RedisLimits` keeps them in Redis, shared by every
instance, one Lua script and one round trip per check, and falls back to its
:class:`LocalLimits` while Redis is down (:mod:`shop.limits.link`).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

import attrs
import trio

from ..config import Config
from .link import RedisLink


class Action(enum.Enum):
    MESSAGE = "message"  # a message to the bot (RATE_LIMIT_MESSAGES)
    CALLBACK = "callback"  # a button pressed (RATE_LIMIT_CALLBACKS)
    PAYMENT = "payment"  # a payment created (RATE_LIMIT_PAYMENTS)


#: At most this many attempts in any window of this many seconds (as ``config.rate_limit``).
Rule = tuple[int, float]


def rules_from(config: Config) -> dict[Action, Rule]:
    return {
        Action.MESSAGE: config.rate_limit_messages,
        Action.CALLBACK: config.rate_limit_callbacks,
        Action.PAYMENT: config.rate_limit_payments,
    }


@attrs.frozen
class Verdict:
    allowed: bool
    #: seconds until an attempt would be let through (0 when this one was)
    retry_after: float = 0.0
    #: the first refusal of this spell: tell the customer when to try again
    tell: bool = False

    @property
    def seconds(self) -> int:
        """``retry_after`` in whole seconds, for a customer to read."""
        return max(1, math.ceil(self.retry_after))


ALLOWED = Verdict(True)


class Limits(Protocol):
    async def check(self, action: Action, customer: int) -> Verdict:
        """Let ``customer``'s attempt at ``action`` through (and count it), or refuse it."""
        ...


@attrs.define
class _Window:
    times: deque[float] = attrs.Factory(deque)
    told_until: float = -math.inf


class LocalLimits:
    """The windows in this process's memory (one instance, or Redis down)."""

    def __init__(
        self, rules: Mapping[Action, Rule], clock: Callable[[], float] = trio.current_time
    ) -> None:
        self._rules = dict(rules)
        self._clock = clock
        self._windows: dict[tuple[Action, int], _Window] = {}
        self._sweep_at = 1024

    async def check(self, action: Action, customer: int) -> Verdict:
        return self.check_nowait(action, customer)

    def check_nowait(self, action: Action, customer: int) -> Verdict:
        limit, span = self._rules[action]
        now = self._clock()
        window = self._windows.get((action, customer))
        if window is None:
            window = self._windows[action, customer] = _Window()
            if len(self._windows) > self._sweep_at:
                self._sweep(now)
        times = window.times
        while times and times[0] <= now - span:
            times.popleft()
        if len(times) < limit:
            times.append(now)
            return ALLOWED
        retry_after = times[0] + span - now
        tell = now >= window.told_until
        if tell:
            window.told_until = now + retry_after
        return Verdict(False, retry_after, tell)

    def _sweep(self, now: float) -> None:
        """Forget the windows nobody has used for longer than they last."""
        longest = max(span for _, span in self._rules.values())
        self._windows = {
            key: window
            for key, window in self._windows.items()
            if (window.times and window.times[-1] > now - longest) or window.told_until > now
        }
        self._sweep_at = max(1024, 2 * len(self._windows))


#: KEYS[1]: a list of the times (ms) of the attempts let through, oldest first;
#: KEYS[2]: until when (ms) the customer has been told.
#: ARGV: the limit, the window (ms), now (ms; empty: Redis's clock).
#: Returns {allowed, wait (ms), tell}. The keys expire a minute after they last matter.
SLIDING_WINDOW = """
local limit, span = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
while true do
  local oldest = redis.call('LINDEX', KEYS[1], 0)
  if not oldest or tonumber(oldest) > now - span then break end
  redis.call('LPOP', KEYS[1])
end
if redis.call('LLEN', KEYS[1]) < limit then
  redis.call('RPUSH', KEYS[1], string.format('%d', now))
  redis.call('PEXPIRE', KEYS[1], string.format('%d', span + 60000))
  return {1, 0, 0}
end
local wait = tonumber(redis.call('LINDEX', KEYS[1], 0)) + span - now
local told = tonumber(redis.call('GET', KEYS[2]) or '-1')
if now < told then return {0, wait, 0} end
redis.call('SET', KEYS[2], string.format('%d', now + wait), 'PX', string.format('%d', wait + 60000))
return {0, wait, 1}
"""


class RedisLimits:
    """The windows in Redis, shared by every instance; local while Redis is down.

    ``clock`` gives the time the script goes by (seconds); None means Redis's own clock,
    the same for every instance. Tests pass trio's, to drive it.
    """

    def __init__(
        self,
        link: RedisLink,
        rules: Mapping[Action, Rule],
        *,
        prefix: str,
        fallback: LocalLimits | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._link = link
        self._rules = dict(rules)
        self._prefix = prefix
        self._fallback = fallback or LocalLimits(rules)
        self._clock = clock

    async def check(self, action: Action, customer: int) -> Verdict:
        limit, span = self._rules[action]
        key = f"{self._prefix}limit:{{{action.value}:{customer}}}"  # {…}: one cluster slot
        now = "" if self._clock is None else int(self._clock() * 1000)
        reply = await self._link.run_script(
            SLIDING_WINDOW, [key, key + ":told"], [limit, math.ceil(span * 1000), now]
        )
        if reply is None:
            return await self._fallback.check(action, customer)
        allowed, wait, tell = reply
        return ALLOWED if allowed else Verdict(False, wait / 1000, bool(tell))
