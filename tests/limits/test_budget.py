"""The global send budget: instances sharing one token bucket in the real Redis never start
more than the rate's sends in any one-second window, and still send close to the rate."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from shop.limits import RedisLink, SendBudget, TokenBucket
from shop.limits.budget import LEASE, bucket_for


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # Jumps only after 20 ms of real idleness, never while a Redis reply is on its way (a
    # round trip takes well under a millisecond here); a jump during one would only waste
    # a lease, not break the limit.
    return trio.testing.MockClock(autojump_threshold=0.02)


def busiest_second(times: list[float]) -> int:
    """The most sends started in any one-second window (left-open, as the outbox counts)."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


async def send_flat_out(budget: SendBudget, sent: list[float], until: float) -> None:
    """An outbox with more to send than the budget allows."""
    while trio.current_time() < until:
        await budget.acquire()
        sent.append(trio.current_time())


async def run_instances(budgets: list[SendBudget], seconds: float) -> list[list[float]]:
    sent: list[list[float]] = [[] for _ in budgets]
    async with trio.open_nursery() as nursery:
        for budget in budgets:
            await nursery.start(budget.run)
        async with trio.open_nursery() as senders:
            for budget, times in zip(budgets, sent, strict=True):
                senders.start_soon(send_flat_out, budget, times, trio.current_time() + seconds)
        nursery.cancel_scope.cancel()
    return sent


@pytest.mark.parametrize(("rate", "batch"), [(20, 1), (100, 10)])
async def test_two_instances_on_one_bucket_never_exceed_the_rate_in_any_second(
    rate: int, batch: int, link: RedisLink, prefix: str, clock: trio.testing.MockClock
) -> None:
    budgets = [
        SendBudget(
            link, prefix + "sends", rate=rate, share=rate // 2, batch=batch, clock=trio.current_time
        )
        for _ in range(2)
    ]
    one, other = await run_instances(budgets, seconds=3)
    assert busiest_second(one + other) <= rate
    assert one  # both sent: the bucket is shared, not taken by the first
    assert other
    capacity, refill = bucket_for(rate, batch)
    assert len(one + other) >= 0.9 * (capacity + refill * 3)  # close to what the bucket gives
    assert len(one + other) >= 0.8 * rate * 3


async def test_a_lease_not_used_in_time_is_dropped(
    link: RedisLink, prefix: str, mock_clock: trio.testing.MockClock
) -> None:
    budget = SendBudget(
        link, prefix + "sends", rate=100, share=50, batch=10, clock=trio.current_time
    )
    fetched = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(budget.run)
        assert not budget.take_nowait(fetched.set)  # nothing at hand: a batch is fetched
        await fetched.wait()  # real I/O; the mock clock stands still meanwhile
        assert budget.take_nowait(fetched.set)
        mock_clock.jump(LEASE + 0.001)
        assert not budget.take_nowait(fetched.set)  # the other nine were kept too long
        nursery.cancel_scope.cancel()


async def test_the_local_bucket_keeps_to_its_share(mock_clock: trio.testing.MockClock) -> None:
    bucket = TokenBucket(*bucket_for(10, 2))
    sent: list[float] = []
    while trio.current_time() < 10:
        granted, wait = bucket.take(2)
        sent += [trio.current_time()] * granted
        if not granted:
            assert wait > 0
            mock_clock.jump(wait)
    assert busiest_second(sent) <= 10
    assert len(sent) >= 85
