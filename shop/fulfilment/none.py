"""The ``none`` backend: the subscription is a record in the shop and nothing else."""

from __future__ import annotations

from .base import Access


class NoFulfilment:
    name = "none"

    async def apply(self, access: Access) -> None:
        return None

    async def access_text(self, telegram_id: int, language: str) -> str | None:
        return None

    async def drift(self, access: Access) -> list[str]:
        return []
