"""The fulfilment backend ``FULFILMENT`` names, open for the lifetime of the shop."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from ..config import Config
from ..errors import FulfilmentFailed
from ..telegram.texts import Texts
from .base import Fulfilment
from .none import NoFulfilment
from .remnawave import Remnawave

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_fulfilment(config: Config, texts: Texts | None = None) -> AsyncIterator[Fulfilment]:
    """The configured backend. A panel that does not answer at start is waited for by the
    fulfilment queue; one that answers with an unsupported version stops the start."""
    if config.fulfilment != "remnawave":
        yield NoFulfilment()
        return
    assert config.remnawave_url is not None
    assert config.remnawave_token is not None
    timeout = httpx.Timeout(15.0, connect=5.0)
    async with httpx.AsyncClient(timeout=timeout) as http:
        panel = Remnawave(
            http,
            url=config.remnawave_url,
            token=config.remnawave_token,
            caddy_token=config.remnawave_caddy_token,
            traffic_on_renewal=config.traffic_on_renewal,
            texts=texts,
        )
        try:
            log.info("fulfilment: Remnawave %s", await panel.check())
        except FulfilmentFailed as exc:
            log.warning("fulfilment: %s at start; access waits in the queue", exc)
        yield panel
