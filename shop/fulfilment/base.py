"""What a subscription grants, behind one small interface.

The database is the record of who has access until when; a backend makes the outside
world match it (a VPN panel account, membership of a private channel) and says how the
customer reaches their access. ``apply`` is given an absolute state ("active until T
with these limits", or "no access"), never a change ("+30 days"), so applying it twice is
harmless; the fulfilment actor (``shop/actors/fulfilment.py``) calls it from a durable
queue, retrying until it succeeds.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import attrs

from ..catalog import Limits
from ..errors import FulfilmentFailed as FulfilmentFailed


@attrs.frozen
class Access:
    """What one customer should have, as an absolute state."""

    telegram_id: int
    active: bool
    expires_at: dt.datetime | None
    lifetime: bool
    limits: Limits | None  # None: the plan is unknown, leave the panel's limits alone
    #: how many grants (purchases, renewals, the trial) the subscription has had: each
    #: adds the plan's traffic once (``TRAFFIC_ON_RENEWAL=carry``)
    grants: int


@attrs.frozen
class Adoptable:
    """A panel account another bot made, as ``shop panel import`` reads it."""

    telegram_id: int | None  # None: not tied to a Telegram user, so not importable
    account: str  # what the panel keys it by (a username, a uuid): stored to find it again
    label: str  # how an operator recognises it in the report
    expires_at: dt.datetime | None
    usable: bool  # the panel lets it in (apart from its expiry)


class Fulfilment(Protocol):
    name: str

    async def apply(self, access: Access) -> None:
        """Make the outside world match ``access``; raise FulfilmentFailed if it cannot."""
        ...

    async def access_text(self, telegram_id: int, language: str) -> str | None:
        """How the customer uses their access (HTML), or None when there is nothing to say."""
        ...

    async def drift(self, access: Access) -> list[str]:
        """How the outside world differs from ``access``, for people; [] when it matches."""
        ...
