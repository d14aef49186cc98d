"""The ``none`` backend: the subscription is a record in the shop and nothing else."""

from __future__ import annotations

import datetime as dt


class NoFulfilment:
    name = "none"

    async def apply(self, telegram_id: int, expires_at: dt.datetime | None, lifetime: bool) -> None:
        return None

    async def revoke(self, telegram_id: int) -> None:
        return None

    async def access_text(self, telegram_id: int, language: str) -> str | None:
        return None
