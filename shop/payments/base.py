"""The one small interface every external payment provider implements.

A provider module (``yookassa.py``, ``stripe.py``, ``cryptopay.py``, ``heleket.py``)
knows its own HTTP API and webhook format and nothing about the shop's actors or
database. What it gives the shop:

- :meth:`Provider.create`: open a payment for our reference; returns where the customer
  pays. Sends the provider's idempotency key, so a retried create is the same payment.
- :meth:`Provider.status`: the provider's current view of a payment, normalised.
- :meth:`Provider.refund`: give the money back.
- :meth:`Provider.verify`: check a webhook is authentic (signature, or source address);
  raises :class:`WebhookRejected`, or :class:`MalformedWebhook` when the signature is
  inside a body that cannot be read (Heleket).
- :meth:`Provider.parse`: a verified webhook body as a :class:`ProviderEvent`; raises
  :class:`MalformedWebhook`. An authentic event the shop did not create (another
  payment, or a currency the shop does not use) still parses: the shop stores it and
  answers 200, where anything else would have the provider retry it for days.

Errors::

    * ProviderError            - a provider call failed
      - ProviderUnavailable    - network error, timeout or 5xx: worth retrying later
      - ProviderRefused        - 4xx: the request itself was refused
    * WebhookRejected          - not authentic (401), or from a source not allowed (403)
    * MalformedWebhook         - unreadable (400): authentic but not understood, or too
                                 broken to check (Heleket signs inside the body)
    * VerificationPing         - a provider checking the callback URL (200, nothing stored)
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Protocol

import attrs

from ..errors import ShopError


class ProviderError(ShopError):
    """Raised when a call to a payment provider fails."""

    def __init__(self, provider: str, message: str) -> None:
        self.provider = provider
        super().__init__(f"{provider}: {message}")


class ProviderUnavailable(ProviderError):
    """Raised on network errors, timeouts and 5xx answers: the call may be retried."""


class ProviderRefused(ProviderError):
    """Raised on 4xx answers: the provider refused the request as made."""


class WebhookRejected(ShopError):
    """Raised when a webhook is not authentic; ``status`` is 401, or 403 for the source."""

    def __init__(self, reason: str, status: int = 401) -> None:
        self.reason, self.status = reason, status
        super().__init__(reason)


class MalformedWebhook(ShopError):
    """Raised when an authentic webhook body cannot be read."""


class VerificationPing(ShopError):
    """Raised by ``verify`` for a request that only checks the callback URL (Platega's
    empty one): the webhook answers 200 and stores nothing."""


class ProviderState(enum.Enum):
    PENDING = "pending"  # created, not paid yet (or paid and still settling)
    PAID = "paid"  # the money is taken: fulfil
    CANCELED = "canceled"  # the customer or the provider gave up; no money taken
    EXPIRED = "expired"  # not paid in time; no money taken
    REFUNDED = "refunded"  # the money went back
    FAILED = "failed"  # a problem the operator should look at (wrong amount, system error)


@attrs.frozen
class PaymentRequest:
    """What the shop asks a provider to charge."""

    reference: str  # our payment id: comes back in webhooks and status
    amount: int  # minor units
    currency: str
    description: str
    idempotency_key: str
    return_url: str  # where the customer lands after paying
    callback_url: str  # where the provider sends webhooks (for those that take it per call)
    customer_id: int
    #: when the payment stops being payable; providers that take an invoice lifetime
    #: (Crypto Pay's ``expires_in``) end the invoice then
    expires_at: dt.datetime | None = None


@attrs.frozen
class Checkout:
    """A payment opened at the provider."""

    provider_payment_id: str
    url: str  # where the customer pays


@attrs.frozen
class ProviderStatus:
    """The provider's view of one payment."""

    provider_payment_id: str
    state: ProviderState
    reference: str | None
    amount: int | None  # minor units, as the provider reports it
    currency: str | None


@attrs.frozen
class ProviderEvent:
    """One verified webhook, normalised."""

    event_id: str  # unique per event at this provider: the duplicate key
    reference: str | None  # our payment id, when the event carries it
    provider_payment_id: str | None
    state: ProviderState
    amount: int | None  # None when not reported, or in a currency the shop does not know
    currency: str | None  # upper case; may be one the shop does not know (shop.money)
    #: the provider's event must be confirmed with ``status()`` before granting
    #: (YooKassa has no signature: only the API is trusted)
    needs_confirmation: bool = False


Headers = Mapping[str, str]  # lower-case names


class Provider(Protocol):
    name: str

    async def create(self, request: PaymentRequest) -> Checkout: ...

    async def status(self, provider_payment_id: str) -> ProviderStatus: ...

    async def refund(
        self, provider_payment_id: str, amount: int, currency: str, idempotency_key: str
    ) -> None: ...

    def verify(self, headers: Headers, body: bytes, peer: str) -> None: ...

    def parse(self, body: bytes) -> ProviderEvent: ...
