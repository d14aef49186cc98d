"""coredis under trio, before anything relies on it: scripts and pings from many trio
tasks at once over one client, and connection attempts to a Redis that is not there
failing at once and leaving nothing open behind them."""

from __future__ import annotations

import gc

import trio

from shop.limits import RedisLink, open_redis
from tests.limits.conftest import free_port

COUNT = """
redis.call('INCRBY', KEYS[1], ARGV[1])
return {tonumber(redis.call('GET', KEYS[1])), tonumber(ARGV[1])}
"""


async def test_coredis_runs_natively_under_trio(link: RedisLink, prefix: str) -> None:
    replies: list[list[int]] = []

    async def add(amount: int) -> None:
        reply = await link.run_script(COUNT, [prefix + "n"], [amount])
        assert reply is not None
        replies.append(reply)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for amount in range(1, 101):
                nursery.start_soon(add, amount)
        assert await link.ping()
    assert sorted(reply[1] for reply in replies) == list(range(1, 101))
    assert max(reply[0] for reply in replies) == sum(range(1, 101))  # each added once
    assert link.up


async def test_connecting_to_no_redis_fails_at_once_and_leaves_nothing_open() -> None:
    with trio.fail_after(10):
        async with open_redis(f"redis://127.0.0.1:{free_port()}/0") as link:
            for _ in range(5):
                assert not await link.ping()
                assert await link.run_script(COUNT, ["k"], [1]) is None
    # coredis 6.9 would leave each failed connection's streams open, to be collected
    # with a ResourceWarning (an error here: filterwarnings = error); link.py closes them.
    gc.collect()
