"""Fixtures for the limits: the real Redis on 127.0.0.1:6379, a key prefix per test.

Timing runs on trio's mock clock; the Lua scripts take the time from the caller (trio's
clock here), so a test moves Redis's idea of "now" with ``clock.jump``. The links get an
hour of patience, so a mock clock that jumps while a reply is on its way cannot make
Redis look down: only a refused or cut connection does, at once.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

import coredis
import pytest
import trio

from shop.limits import RedisLink, open_redis

REDIS_URL = "redis://127.0.0.1:6379/0"
#: Long enough that a mock clock never times a call out (see the module's docstring).
PATIENCE = 3600.0


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def delete_keys(prefix: str) -> None:
    async with coredis.Redis.from_url(REDIS_URL) as client:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(keys)


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted after."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        with trio.CancelScope(shield=True):
            await delete_keys(prefix)


@pytest.fixture
async def link() -> AsyncIterator[RedisLink]:
    async with open_redis(REDIS_URL, patience=PATIENCE) as link:
        yield link
