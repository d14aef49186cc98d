"""Running a whole shop inside a test's trio run: real PostgreSQL, real HTTP on loopback,
and a fake Telegram Bot API server speaking the real protocol."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import attrs
import psycopg
import trio

from shop.actors.timer import Job
from shop.app import App
from shop.clock import WallClock
from shop.config import load_config
from shop.fulfilment import Fulfilment
from shop.main import serve_shop
from shop.store.pool import BusyHook
from tests.fakes.telegram import TOKEN, FakeTelegram


@attrs.frozen
class Shop:
    app: App
    url: str  # the shop's HTTP base URL
    telegram: FakeTelegram
    database_url: str

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        """Read the database directly, as an operator would (synchronous, for assertions)."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(sql.encode(), params).fetchall()  # type: ignore[arg-type]


def shop_environ(database_url: str, telegram_url: str, **extra: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "SHUTDOWN_GRACE": "5",
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": telegram_url,
    }
    env.update(extra)
    return env


@asynccontextmanager
async def fake_telegram(
    clock: WallClock | None = None, *, bot_id: int = 777000111, long_poll_max: int = 50
) -> AsyncIterator[tuple[FakeTelegram, str]]:
    telegram = FakeTelegram(clock=clock, bot_id=bot_id, long_poll_max=long_poll_max)
    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(telegram.serve)
        try:
            yield telegram, base_url
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def running_shop(
    database_url: str,
    environ: Mapping[str, str] | None = None,
    *,
    telegram: tuple[FakeTelegram, str] | None = None,
    clock: WallClock | None = None,
    on_busy: BusyHook | None = None,
    seed: int = 1,
    store_timeout: float = 10.0,
    jobs: Sequence[Job] | None = None,
    fulfilment: Fulfilment | None = None,
    poll_timeout: int = 50,
) -> AsyncIterator[Shop]:
    """Start a shop (and a fake Telegram unless given one); stop it gracefully after."""
    async with trio.open_nursery() as outer:
        if telegram is None:
            fake = FakeTelegram(clock=clock, long_poll_max=max(50, poll_timeout))
            telegram = fake, await outer.start(fake.serve)
        fake, telegram_url = telegram
        config = load_config(shop_environ(database_url, telegram_url, **(environ or {})))
        stop = trio.Event()
        async with trio.open_nursery() as inner:
            running = await inner.start(
                lambda task_status: serve_shop(
                    config,
                    stop,
                    clock=clock,
                    rng=random.Random(seed),
                    on_busy=on_busy,
                    store_timeout=store_timeout,
                    jobs=jobs,
                    fulfilment=fulfilment,
                    poll_timeout=poll_timeout,
                    task_status=task_status,
                )
            )
            try:
                yield Shop(running.app, running.urls[0], fake, database_url)
            finally:
                stop.set()  # serve_shop drains and returns; the fake outlives it
        outer.cancel_scope.cancel()
