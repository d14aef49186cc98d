"""Who the bot is (from ``getMe`` at start), for the links it gives out."""

from __future__ import annotations

import attrs


@attrs.define
class BotIdentity:
    """Filled in once Telegram answered ``getMe``; empty until then."""

    id: int = 0
    username: str = ""

    def link(self, payload: str) -> str:
        """``https://t.me/<bot>?start=<payload>``: opens the bot with ``/start <payload>``."""
        return f"https://t.me/{self.username}?start={payload}"
