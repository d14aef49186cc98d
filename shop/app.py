"""The one object that holds the running shop's parts, built in :mod:`shop.main`."""

from __future__ import annotations

import attrs

from .actors.runtime import Registry
from .clock import WallClock
from .config import Config
from .metrics import Metrics
from .store.pool import Store


@attrs.frozen(kw_only=True)
class App:
    config: Config
    clock: WallClock
    store: Store
    actors: Registry
    metrics: Metrics
