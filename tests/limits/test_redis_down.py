"""Redis going away and coming back: limits and the send budget fall back to this
instance's own at once, say so once, and are shared again once Redis answers."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from shop.limits import Action, RedisLimits, SendBudget, Verdict, open_redis
from shop.limits.link import RETRY_EVERY
from tests.fakes.tcp_proxy import TcpProxy
from tests.limits.conftest import PATIENCE, free_port
from tests.limits.test_budget import busiest_second, run_instances

RULES = {Action.MESSAGE: (3, 60.0), Action.CALLBACK: (20, 60.0), Action.PAYMENT: (2, 60.0)}
ANN = 1001


def said(caplog: pytest.LogCaptureFixture, words: str) -> int:
    return sum(words in r.getMessage() for r in caplog.records if r.name == "shop.limits.link")


async def test_cut_mid_way_limits_go_local_logged_once_then_shared_again(
    nursery: trio.Nursery,
    prefix: str,
    mock_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = TcpProxy(("127.0.0.1", 6379))
    port = await nursery.start(proxy.serve)
    async with open_redis(f"redis://127.0.0.1:{port}/0", patience=PATIENCE) as link:
        limits = RedisLimits(link, RULES, prefix=prefix, clock=trio.current_time)
        assert (await limits.check(Action.MESSAGE, ANN)).allowed  # counted in Redis
        assert (await limits.check(Action.MESSAGE, ANN)).allowed
        proxy.down()
        await trio.testing.wait_all_tasks_blocked()  # the proxy has dropped the line

        # Every check is still answered, by this instance's own window (empty so far).
        verdicts = [await limits.check(Action.MESSAGE, ANN) for _ in range(5)]
        assert [v.allowed for v in verdicts] == [True, True, True, False, False]
        assert [v.tell for v in verdicts[3:]] == [True, False]
        assert not link.up
        assert not await link.ping()
        assert said(caplog, "unreachable") == 1  # once, not once per check

        changed = link.changed
        proxy.up()
        mock_clock.jump(RETRY_EVERY)  # the probe's next ping
        await changed.wait()
        assert link.up
        assert said(caplog, "Redis answers again") == 1

        # Shared again: Redis still holds the two let through before the cut.
        assert (await limits.check(Action.MESSAGE, ANN)).allowed
        assert await limits.check(Action.MESSAGE, ANN) == Verdict(
            False, 60 - RETRY_EVERY, tell=True
        )
    assert said(caplog, "unreachable") == 1


async def test_a_redis_that_never_answered_is_no_failure(
    prefix: str, mock_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_redis(f"redis://127.0.0.1:{free_port()}/0", patience=PATIENCE) as link:
        limits = RedisLimits(link, RULES, prefix=prefix, clock=trio.current_time)
        verdicts = [await limits.check(Action.PAYMENT, ANN) for _ in range(3)]
        assert [v.allowed for v in verdicts] == [True, True, False]
        assert not await link.ping()
        mock_clock.jump(10 * RETRY_EVERY)  # the probe tries and fails: no new log lines
        await trio.testing.wait_all_tasks_blocked()
    assert said(caplog, "unreachable") == 1


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.02)  # see tests/limits/test_budget.py


async def test_the_send_budget_falls_back_to_this_instances_share(
    prefix: str, clock: trio.testing.MockClock
) -> None:
    async with open_redis(f"redis://127.0.0.1:{free_port()}/0", patience=PATIENCE) as link:
        budget = SendBudget(link, prefix + "sends", rate=20, share=10, clock=trio.current_time)
        (sent,) = await run_instances([budget], seconds=3)
    assert busiest_second(sent) <= 10
    assert len(sent) >= 0.8 * 10 * 3
