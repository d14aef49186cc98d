"""The fulfilment backend ``FULFILMENT`` names, open for the lifetime of the shop."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from ..clock import WallClock
from ..config import Config
from ..errors import FulfilmentFailed, StartupFailed
from ..store import Store
from ..telegram.api import open_bot_client
from ..telegram.texts import Texts
from .base import Fulfilment
from .channel import ChannelAccess
from .hiddify import Hiddify
from .none import NoFulfilment
from .remnawave import Remnawave

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_fulfilment(
    config: Config, store: Store, clock: WallClock, texts: Texts | None = None
) -> AsyncIterator[Fulfilment]:
    """The configured backend. A panel that does not answer at start is waited for by the
    fulfilment queue; one that answers with an unsupported version stops the start."""
    if config.fulfilment == "none":
        yield NoFulfilment()
        return
    if config.fulfilment == "channel":
        async with _open_channel(config, store, clock, texts) as channel:
            yield channel
        return
    timeout = httpx.Timeout(15.0, connect=5.0)
    async with httpx.AsyncClient(timeout=timeout) as http:
        panel = _panel(config, http, store, clock, texts)
        try:
            log.info("fulfilment: %s %s", panel.name, await panel.check())
        except FulfilmentFailed as exc:
            log.warning("fulfilment: %s at start; access waits in the queue", exc)
        yield panel


def _panel(
    config: Config, http: httpx.AsyncClient, store: Store, clock: WallClock, texts: Texts | None
) -> Remnawave | Hiddify:
    if config.fulfilment == "hiddify":
        assert config.hiddify_url is not None
        assert config.hiddify_api_key is not None
        return Hiddify(
            http,
            url=config.hiddify_url,
            api_key=config.hiddify_api_key,
            store=store,
            clock=clock,
            traffic_on_renewal=config.traffic_on_renewal,
            client_url=config.hiddify_client_url,
        )
    assert config.remnawave_url is not None
    assert config.remnawave_token is not None
    return Remnawave(
        http,
        url=config.remnawave_url,
        token=config.remnawave_token,
        caddy_token=config.remnawave_caddy_token,
        traffic_on_renewal=config.traffic_on_renewal,
        texts=texts,
        store=store,
    )


@asynccontextmanager
async def _open_channel(
    config: Config, store: Store, clock: WallClock, texts: Texts | None
) -> AsyncIterator[ChannelAccess]:
    """The private channel, with a Bot API client of its own (``shop panel sync`` has none)."""
    assert config.channel_id is not None
    if config.telegram_token is None:
        raise StartupFailed("TELEGRAM_TOKEN is required with FULFILMENT=channel", code=2)
    async with open_bot_client(
        config.telegram_api_url, config.telegram_token, connections=4
    ) as bot:
        channel = ChannelAccess(
            bot,
            store,
            clock,
            channel_id=config.channel_id,
            grace=dt.timedelta(hours=config.channel_grace_hours),
            timezone=config.timezone,
            texts=texts,
        )
        try:
            log.info("fulfilment: %s", await channel.check())
        except FulfilmentFailed as exc:
            log.warning("fulfilment: %s at start; access waits in the queue", exc)
        yield channel
