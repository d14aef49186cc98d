"""Running a whole shop inside a test's trio run, with real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import trio

from shop.clock import WallClock
from shop.config import load_config
from shop.main import Running, serve_shop
from shop.store.pool import BusyHook


def shop_environ(database_url: str, **extra: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "SHUTDOWN_GRACE": "5",
    }
    env.update(extra)
    return env


@asynccontextmanager
async def running_shop(
    database_url: str,
    environ: Mapping[str, str] | None = None,
    *,
    clock: WallClock | None = None,
    on_busy: BusyHook | None = None,
) -> AsyncIterator[Running]:
    """Start ``serve_shop`` and stop it (gracefully) when the block ends."""
    config = load_config(shop_environ(database_url, **(environ or {})))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        running: Running = await nursery.start(
            lambda task_status: serve_shop(
                config, stop, clock=clock, on_busy=on_busy, task_status=task_status
            )
        )
        try:
            yield running
        finally:
            stop.set()
