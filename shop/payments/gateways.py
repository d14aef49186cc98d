"""The enabled payment providers, each behind its circuit breaker, as the shop uses them.

A provider is enabled by its credentials alone (see ``Config.payment_providers``).
Every call passes the provider's :class:`~shop.payments.breaker.CircuitBreaker`; calls
that are safe to repeat (status, and a create that carries an idempotency key) are
retried with backoff, each attempt counting for the breaker. A refund, and a create
without an idempotency key (Crypto Pay), are never repeated.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import TypeVar

import httpx

from ..clock import WallClock
from ..config import Config
from ._http import retrying
from .base import Checkout, PaymentRequest, Provider, ProviderStatus
from .breaker import CircuitBreaker
from .cryptopay import CryptoPay
from .heleket import Heleket
from .platega import Platega
from .stripe import Stripe
from .yookassa import DEFAULT_ALLOWED_IPS, YooKassa
from .yoomoney import YooMoney

T = TypeVar("T")
A = TypeVar("A")

#: What each provider can charge, in the order the shop prefers when a price exists in
#: several currencies.
CURRENCIES: dict[str, tuple[str, ...]] = {
    "yookassa": ("RUB",),
    "stripe": ("USD", "EUR", "GBP"),
    "cryptopay": ("USDT", "TON", "USD", "EUR", "RUB", "UAH", "KZT", "BYN", "GBP"),
    "heleket": ("USDT", "USD", "EUR", "RUB"),
    "platega": ("RUB",),
    "yoomoney": ("RUB",),
}


class Gateway:
    """One provider as the shop calls it: breaker, retries, and what it can charge."""

    def __init__(self, provider: Provider, *, idempotent_create: bool, rng: random.Random) -> None:
        self.provider = provider
        self.name = provider.name
        self.breaker = CircuitBreaker(provider.name)
        self.currencies = CURRENCIES[provider.name]
        self._idempotent_create = idempotent_create
        self._rng = rng

    @property
    def available(self) -> bool:
        """False while the breaker is open: the customer is offered other methods."""
        return not self.breaker.is_open

    def currency_for(self, prices: dict[str, int] | None) -> str | None:
        return next((c for c in self.currencies if prices and c in prices), None)

    async def create(self, request: PaymentRequest) -> Checkout:
        if self._idempotent_create:
            return await self._repeatable(self.provider.create, request)
        return await self.breaker.call(self.provider.create, request)

    async def status(self, provider_payment_id: str) -> ProviderStatus:
        return await self._repeatable(self.provider.status, provider_payment_id)

    async def refund(
        self, provider_payment_id: str, amount: int, currency: str, idempotency_key: str
    ) -> None:
        await self.breaker.call(
            self.provider.refund, provider_payment_id, amount, currency, idempotency_key
        )

    async def _repeatable(self, fn: Callable[[A], Awaitable[T]], argument: A) -> T:
        return await retrying(lambda: self.breaker.call(fn, argument), rng=self._rng)


class Gateways:
    """The enabled gateways by name, in a stable order for the payment screen."""

    def __init__(self, gateways: list[Gateway]) -> None:
        self._by_name = {g.name: g for g in gateways}

    def __iter__(self) -> Iterator[Gateway]:
        return iter(self._by_name.values())

    def get(self, name: str) -> Gateway | None:
        return self._by_name.get(name)

    def __bool__(self) -> bool:
        return bool(self._by_name)


def build_gateways(
    config: Config, http: httpx.AsyncClient, clock: WallClock, rng: random.Random
) -> Gateways:
    gateways = []
    enabled = config.payment_providers
    if "yookassa" in enabled:
        assert config.yookassa_shop_id
        assert config.yookassa_secret_key
        yookassa = YooKassa(
            http,
            shop_id=config.yookassa_shop_id,
            secret_key=config.yookassa_secret_key,
            api_url=config.yookassa_api_url,
            allowed_ips=config.yookassa_allowed_ips or DEFAULT_ALLOWED_IPS,
        )
        gateways.append(Gateway(yookassa, idempotent_create=True, rng=rng))
    if "stripe" in enabled:
        assert config.stripe_secret_key
        assert config.stripe_webhook_secret
        stripe = Stripe(
            http,
            secret_key=config.stripe_secret_key,
            webhook_secret=config.stripe_webhook_secret,
            clock=clock,
            api_url=config.stripe_api_url,
        )
        gateways.append(Gateway(stripe, idempotent_create=True, rng=rng))
    if "cryptopay" in enabled:
        assert config.cryptopay_token
        cryptopay = CryptoPay(
            http, token=config.cryptopay_token, api_url=config.cryptopay_api_url, clock=clock
        )
        gateways.append(Gateway(cryptopay, idempotent_create=False, rng=rng))
    if "heleket" in enabled:
        assert config.heleket_merchant
        assert config.heleket_api_key
        heleket = Heleket(
            http,
            merchant=config.heleket_merchant,
            api_key=config.heleket_api_key,
            api_url=config.heleket_api_url,
        )
        gateways.append(Gateway(heleket, idempotent_create=True, rng=rng))
    if "platega" in enabled:
        assert config.platega_merchant_id
        assert config.platega_secret
        platega = Platega(
            http,
            merchant_id=config.platega_merchant_id,
            secret=config.platega_secret,
            api_url=config.platega_api_url,
        )
        # No idempotency key at Platega: a repeated create would be a second transaction.
        gateways.append(Gateway(platega, idempotent_create=False, rng=rng))
    if "yoomoney" in enabled:
        assert config.yoomoney_wallet
        assert config.yoomoney_notification_secret
        yoomoney = YooMoney(
            http,
            wallet=config.yoomoney_wallet,
            notification_secret=config.yoomoney_notification_secret,
            token=config.yoomoney_token,
            api_url=config.yoomoney_api_url,
        )
        gateways.append(Gateway(yoomoney, idempotent_create=True, rng=rng))
    return Gateways(gateways)


@asynccontextmanager
async def open_gateways(
    config: Config, clock: WallClock, rng: random.Random
) -> AsyncIterator[Gateways]:
    """The enabled gateways, sharing one HTTP client for the lifetime of the block."""
    timeout = httpx.Timeout(15.0, connect=5.0)
    async with httpx.AsyncClient(timeout=timeout) as http:
        yield build_gateways(config, http, clock, rng)
