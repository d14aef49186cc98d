"""Per-customer limits by kind of action, in memory and in the real Redis: the same rules,
the same answers. Time is trio's mock clock, moved by hand (``clock.jump``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from shop.limits import Action, Limits, LocalLimits, RedisLimits, RedisLink, Verdict

RULES = {Action.MESSAGE: (3, 60.0), Action.CALLBACK: (5, 30.0), Action.PAYMENT: (2, 60.0)}
ANN, BOB = 1001, 2002


@asynccontextmanager
async def limits_of(kind: str, link: RedisLink, prefix: str) -> AsyncIterator[Limits]:
    if kind == "local":
        yield LocalLimits(RULES)
    else:
        yield RedisLimits(link, RULES, prefix=prefix, clock=trio.current_time)


KINDS = pytest.mark.parametrize("kind", ["local", "redis"])


@KINDS
@pytest.mark.parametrize("action", list(Action))
async def test_each_kind_is_limited_and_told_once_when_to_try_again(
    kind: str, action: Action, link: RedisLink, prefix: str, mock_clock: trio.testing.MockClock
) -> None:
    limit, span = RULES[action]
    async with limits_of(kind, link, prefix) as limits:
        for _ in range(limit):
            assert (await limits.check(action, ANN)).allowed
            mock_clock.jump(1)
        # The oldest attempt leaves the window `span` seconds after it was let through.
        assert await limits.check(action, ANN) == Verdict(False, span - limit, tell=True)
        mock_clock.jump(5)
        refused = await limits.check(action, ANN)
        assert refused == Verdict(False, span - limit - 5, tell=False)  # told once
        assert refused.seconds == span - limit - 5
        assert (await limits.check(action, BOB)).allowed  # someone else's window
        mock_clock.jump(span - limit - 5)
        assert (await limits.check(action, ANN)).allowed  # the oldest one has left
        told_again = await limits.check(action, ANN)  # a new spell: told again
        assert (told_again.allowed, told_again.tell, told_again.retry_after) == (False, True, 1)


@KINDS
async def test_kinds_of_action_are_counted_apart(
    kind: str, link: RedisLink, prefix: str, mock_clock: trio.testing.MockClock
) -> None:
    async with limits_of(kind, link, prefix) as limits:
        for _ in range(3):
            assert (await limits.check(Action.MESSAGE, ANN)).allowed
        assert not (await limits.check(Action.MESSAGE, ANN)).allowed
        assert (await limits.check(Action.CALLBACK, ANN)).allowed
        assert (await limits.check(Action.PAYMENT, ANN)).allowed


async def test_instances_share_one_customer_window_in_redis(
    link: RedisLink, prefix: str, mock_clock: trio.testing.MockClock
) -> None:
    one = RedisLimits(link, RULES, prefix=prefix, clock=trio.current_time)
    other = RedisLimits(link, RULES, prefix=prefix, clock=trio.current_time)
    assert (await one.check(Action.PAYMENT, ANN)).allowed
    assert (await other.check(Action.PAYMENT, ANN)).allowed
    assert (await one.check(Action.PAYMENT, ANN)).tell  # the other's payment counted
    assert not (await other.check(Action.PAYMENT, ANN)).tell  # and the telling was shared


async def test_redis_clock_when_no_clock_is_given(link: RedisLink, prefix: str) -> None:
    limits = RedisLimits(link, RULES, prefix=prefix)  # production: Redis's own time
    assert [(await limits.check(Action.PAYMENT, ANN)).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]
    refused = await limits.check(Action.PAYMENT, ANN)
    assert 59 < refused.retry_after <= 60


async def test_local_windows_of_customers_gone_quiet_are_forgotten(
    mock_clock: trio.testing.MockClock,
) -> None:
    limits = LocalLimits(RULES)
    for customer in range(5000):
        limits.check_nowait(Action.MESSAGE, customer)
    mock_clock.jump(61)
    for customer in range(5000, 10000):
        limits.check_nowait(Action.MESSAGE, customer)
    assert len(limits._windows) <= 5000 + 1024
