"""Fake VPN panel APIs on loopback, one per panel the shop supports (the tests' fakes,
and the stand-in panels of ``shop sandbox``).

Each fake serves the panel's real HTTP API with hypercorn on ``127.0.0.1:0`` (built on
``shop.sandbox.providers._base.FakeProvider``) and keeps its users in memory::

    panel = FakeRemnawave(version="3.3.2")
    base_url = await nursery.start(panel.serve)
"""

from __future__ import annotations

from .remnawave import TOKEN as REMNAWAVE_TOKEN
from .remnawave import FakeRemnawave as FakeRemnawave
from .remnawave import PanelCall as PanelCall

__all__ = ["REMNAWAVE_TOKEN", "FakeRemnawave", "PanelCall"]
