"""How updates come in, per mode, and who leads what when several instances run.

- **Polling** (the default): one poller (``actors.poller``). With several instances it
  runs only on the instance leading the ``poller`` role; every instance dispatches.
- **Webhook** (``TELEGRAM_WEBHOOK_URL``): every instance calls ``setWebhook`` at start
  (the same URL, secret, ``allowed_updates`` and ``max_connections``: idempotent), and
  ``POST /telegram/webhook`` journals each update before it answers 200
  (``http.telegram_webhook``); the dispatcher takes it from there.

A role (the poller, the timer) is led by one live instance (``updates.take_role``,
fenced by ``store.instance``): the others try again every :data:`LEAD_RETRY` seconds,
so a dead leader is replaced within seconds; a leader that finds it lost the role (its
database session ended) stops leading at once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..clock import WallClock
from ..config import Config
from ..errors import StartupFailed, StoreUnavailable, TelegramError, Unauthorized
from ..store import Store
from ..store import updates as journal
from ..telegram.api import BotClient
from ..telegram.identity import BotIdentity
from ..telegram.types import ALLOWED_UPDATES
from .dispatcher import Dispatcher

log = logging.getLogger(__name__)

#: Seconds between a follower's tries to take a role, and a leader's checks it still has it.
LEAD_RETRY = 2.0


async def introduce(bot: BotClient, identity: BotIdentity, rng: random.Random) -> int:
    """getMe, retried until Telegram answers; fills ``identity``; returns the bot's id."""
    me = await _call_until_answered(bot, "getMe", None, rng)
    identity.id, identity.username = int(me["id"]), str(me.get("username") or "")
    return identity.id


async def _call_until_answered(
    bot: BotClient, method: str, params: dict[str, Any] | None, rng: random.Random
) -> Any:
    """Call ``method`` until Telegram answers (backing off, with jitter); a rejected
    token ends the start-up instead (exit 2)."""
    failures = 0
    while True:
        try:
            return await bot.call(method, params)
        except Unauthorized:
            raise StartupFailed("TELEGRAM_TOKEN was rejected by Telegram", code=2) from None
        except TelegramError as exc:
            failures += 1
            delay = min(60.0, 2.0 ** min(failures, 6)) * (0.5 + rng.random() / 2)
            log.warning("%s failed (%s); retrying in %.1f s", method, exc, delay)
            await trio.sleep(delay)


async def set_webhook(bot: BotClient, config: Config, rng: random.Random) -> None:
    """Point Telegram at this shop's webhook; retried until it agrees."""
    assert config.telegram_webhook_url is not None
    params = {
        "url": config.telegram_webhook_url,
        "secret_token": config.telegram_webhook_secret,
        "allowed_updates": list(ALLOWED_UPDATES),
        "max_connections": config.telegram_webhook_max_connections,
        "drop_pending_updates": False,
    }
    await _call_until_answered(bot, "setWebhook", params, rng)
    log.info("webhook mode: Telegram posts updates to the configured URL")


async def run_webhook_intake(
    bot: BotClient,
    config: Config,
    dispatcher: Dispatcher,
    identity: BotIdentity,
    rng: random.Random,
    stop: trio.Event,
) -> None:
    """Webhook mode: getMe and setWebhook, then dispatch what the route journals."""
    bot_id = await introduce(bot, identity, rng)
    await set_webhook(bot, config, rng)
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run, bot_id, stop)


async def run_dispatcher(
    bot: BotClient, dispatcher: Dispatcher, identity: BotIdentity, rng: random.Random,
    stop: trio.Event,
) -> None:  # fmt: skip
    """Several instances polling: every instance dispatches (one of them also polls)."""
    bot_id = await introduce(bot, identity, rng)
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run, bot_id, stop)


async def lead(
    store: Store,
    clock: WallClock,
    instance: int,
    role: str,
    run: Callable[[trio.Event], Awaitable[object]],
    stop: trio.Event,
) -> None:
    """Run ``run(until)`` while this instance leads ``role`` (``until`` is set when
    ``stop`` is, or when the role is lost); wait for the role otherwise."""
    while not stop.is_set():
        if await _holds(store, clock, instance, role):
            log.info("this instance leads the %s", role)
            until = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch, store, clock, instance, role, stop, until)
                await run(until)
                nursery.cancel_scope.cancel()
        else:
            with trio.move_on_after(LEAD_RETRY):
                await stop.wait()


async def _watch(
    store: Store,
    clock: WallClock,
    instance: int,
    role: str,
    stop: trio.Event,
    until: trio.Event,
) -> None:
    """Set ``until`` when the shop stops, or at once when this instance lost the role."""
    while True:
        with trio.move_on_after(LEAD_RETRY):
            await stop.wait()
        if stop.is_set():
            break
        held = await _holds(store, clock, instance, role)
        if held is None:
            continue  # the database is unreachable: nobody can take the role meanwhile
        if not held:
            log.error("ALERT: this instance lost the %s role to another instance", role)
            break
    until.set()


async def _holds(store: Store, clock: WallClock, instance: int, role: str) -> bool | None:
    """Whether this instance leads ``role`` now; None while the database is unreachable."""
    try:
        return await store.run_statement(journal.take_role, role, instance, clock.now())
    except StoreUnavailable:
        return None
