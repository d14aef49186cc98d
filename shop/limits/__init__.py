"""Limits: per-customer rate limits by kind of action, and the global Telegram send budget.

Without ``REDIS_URL`` both live in each instance's memory: the per-customer windows are
the instance's own, and its outbox sends at most ``TELEGRAM_GLOBAL_RATE / INSTANCES``
messages a second. With ``REDIS_URL`` both are shared by every instance through Redis
(Lua scripts, one round trip per check), and an instance falls back to the local kind
while Redis is down (``link``). ``customers`` has the per-customer limits, ``budget``
the send budget; :func:`open_limits` builds what ``shop.main`` needs from the config.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from ..config import Config
from .budget import Budget as Budget
from .budget import SendBudget as SendBudget
from .budget import TokenBucket as TokenBucket
from .customers import Action as Action
from .customers import Limits as Limits
from .customers import LocalLimits as LocalLimits
from .customers import RedisLimits as RedisLimits
from .customers import Verdict as Verdict
from .customers import rules_from as rules_from
from .link import RedisLink as RedisLink
from .link import open_redis as open_redis


@attrs.frozen
class Limiting:
    """What :func:`open_limits` hands ``shop.main``."""

    limits: Limits
    #: the global rate the outbox keeps to by itself: this instance's share without Redis
    send_rate: int
    #: the budget shared through Redis, asked before each send (None without Redis)
    budget: SendBudget | None = None
    #: the Redis link (``/readyz`` reports it), None without ``REDIS_URL``
    redis: RedisLink | None = None


def bulk_headroom(rate: int, sharing: int) -> int:
    """Sends a second an outbox keeps from its bulk lane (broadcasts), for replies.

    ``rate`` is what the outbox may send in all; ``sharing`` is how many instances'
    broadcasters take from that same rate (the budget in Redis: every instance's
    broadcaster leases recipients at once), 1 when the rate is this instance's alone.
    A tenth of the rate is kept for replies, and the broadcasters share the rest, so
    that together they never leave customers waiting behind a broadcast.
    """
    reserved = max(1, rate // 10)
    return rate - max(1, (rate - reserved) // max(1, sharing))


def key_prefix(config: Config) -> str:
    """Keys are per bot (Telegram's limits are), so shops can share one Redis."""
    bot = (config.telegram_token or "").partition(":")[0] or "shop"
    return f"shop:{bot}:"


@asynccontextmanager
async def open_limits(config: Config) -> AsyncIterator[Limiting]:
    local = LocalLimits(rules_from(config))
    share = max(1, config.telegram_global_rate // config.instances)
    if config.redis_url is None:
        yield Limiting(local, send_rate=share)
        return
    prefix = key_prefix(config)
    async with open_redis(config.redis_url) as link, trio.open_nursery() as nursery:
        rate = config.telegram_global_rate
        budget = SendBudget(link, prefix + "sends", rate=rate, share=share)
        await nursery.start(budget.run)
        limits = RedisLimits(link, rules_from(config), prefix=prefix, fallback=local)
        yield Limiting(limits, send_rate=rate, budget=budget, redis=link)
        nursery.cancel_scope.cancel()
