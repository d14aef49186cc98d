"""What a subscription grants, behind one small interface.

The database is the record of who has access until when; a backend makes the outside
world match it (a VPN panel account, membership of a private channel) and says how the
customer reaches their access. Calls are idempotent: ``apply`` sets an absolute state
("active until T"), never a relative one ("+30 days"), so repeating it is harmless.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Fulfilment(Protocol):
    name: str

    async def apply(self, telegram_id: int, expires_at: dt.datetime | None, lifetime: bool) -> None:
        """Make access match: active until ``expires_at`` (or forever when ``lifetime``)."""
        ...

    async def revoke(self, telegram_id: int) -> None:
        """Take access away (idempotent)."""
        ...

    async def access_text(self, telegram_id: int, language: str) -> str | None:
        """How the customer uses their access (HTML), or None when there is nothing to say."""
        ...
