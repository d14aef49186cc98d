"""Two outboxes (two instances) sending through one budget in the real Redis, to one fake
Bot API: together they never go over the rate in any one-second window."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from shop.limits import RedisLink, SendBudget, bulk_headroom
from shop.telegram.outbox import Lane, Outbox
from tests.fakes.telegram import FakeTelegram
from tests.limits.test_budget import busiest_second
from tests.telegram.test_outbox import open_outbox, sends, text

RATE = 20


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.02)  # see tests/limits/test_budget.py


async def two_instances(
    nursery: trio.Nursery, link: RedisLink, prefix: str, headroom: int = 0
) -> tuple[FakeTelegram, list[Outbox]]:
    """One fake Bot API, and two outboxes taking from one budget in Redis."""
    fake = FakeTelegram()
    base = await nursery.start(fake.serve)
    outboxes = []
    for _ in range(2):
        budget = SendBudget(
            link, prefix + "sends", rate=RATE, share=RATE // 2, clock=trio.current_time
        )
        await nursery.start(budget.run)
        outbox, _ = await open_outbox(
            nursery, base, global_rate=RATE, budget=budget, bulk_headroom=headroom
        )
        outboxes.append(outbox)
    return fake, outboxes


@pytest.mark.slow
async def test_two_outboxes_sharing_the_budget_keep_to_the_global_rate(
    nursery: trio.Nursery, link: RedisLink, prefix: str, clock: trio.testing.MockClock
) -> None:
    fake, outboxes = await two_instances(nursery, link, prefix)
    for chat in range(1, 26):  # each instance alone could send all its own at the full rate
        for outbox, lane in zip(outboxes, (Lane.INTERACTIVE, Lane.BULK), strict=True):
            await outbox.send("sendMessage", text(chat if lane is Lane.BULK else -chat), lane=lane)
    started = trio.current_time()
    for outbox in outboxes:
        await outbox.drain()
    times = [call.at for call in sends(fake)]
    assert len(times) == 50
    assert busiest_second(times) <= RATE
    assert trio.current_time() - started < 50 / RATE * 1.25  # and close to the rate


@pytest.mark.slow
async def test_two_broadcasting_instances_together_leave_the_replies_their_tenth(
    nursery: trio.Nursery, link: RedisLink, prefix: str, clock: trio.testing.MockClock
) -> None:
    fake, outboxes = await two_instances(nursery, link, prefix, bulk_headroom(RATE, 2))
    for chat in range(1, 181):  # both broadcast as fast as they are let
        await outboxes[chat % 2].send("sendMessage", text(chat), lane=Lane.BULK)
    for outbox in outboxes:
        await outbox.drain()
    times = sorted(call.at for call in sends(fake))
    assert len(times) == 180
    assert busiest_second(times) <= RATE
    # Together at nine tenths of the rate (each alone would take all of it but its own
    # tenth, 18 of 20, and both at once all 20): a tenth stays free for replies.
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert 0.9 * 18 <= rate <= 18.2


def test_the_bulk_lanes_of_all_instances_add_up_to_nine_tenths() -> None:
    for rate in (1, 10, 25, 30, 1000):
        for sharing in (1, 2, 3):
            bulk = rate - bulk_headroom(rate, sharing)
            assert bulk >= 1
            assert bulk * sharing <= max(sharing, rate - max(1, rate // 10))
    assert 1000 - bulk_headroom(1000, 1) == 900
    assert 1000 - bulk_headroom(1000, 2) == 450
