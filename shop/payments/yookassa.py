"""YooKassa (ЮKassa): redirect payments over its v3 JSON API (EXTERNAL-APIS.md §B.2).

Notifications carry no signature. :meth:`YooKassa.verify` only checks that they come
from YooKassa's published addresses, and every event is marked ``needs_confirmation``:
the shop must re-read the payment with :meth:`YooKassa.status` before granting.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import quote

import httpx

from ._http import Fields, call_api, decimal_text, load_webhook
from .base import (
    Checkout,
    Headers,
    PaymentRequest,
    ProviderEvent,
    ProviderRefused,
    ProviderState,
    ProviderStatus,
    ProviderUnavailable,
    WebhookRejected,
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Where YooKassa sends notifications from: the IPv4 list of the official SDK
#: (``security_helper.py``) and the docs' IPv6 range. The SDK lists four ``/64`` blocks
#: inside ``2a02:5180::/32``; the docs page and most integrations use the whole ``/32``.
DEFAULT_ALLOWED_IPS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(network)
    for network in (
        "185.71.76.0/27",
        "185.71.77.0/27",
        "77.75.153.0/25",
        "77.75.154.128/25",
        "77.75.156.11/32",
        "77.75.156.35/32",
        "2a02:5180::/32",
    )
)

#: YooKassa refuses longer payment descriptions.
MAX_DESCRIPTION = 128

_STATES = {
    "pending": ProviderState.PENDING,
    "waiting_for_capture": ProviderState.PENDING,  # only with capture=false, which we never send
    "succeeded": ProviderState.PAID,
    "canceled": ProviderState.CANCELED,
}


class YooKassa:
    """The YooKassa provider. ``idempotent_create``: a repeated ``Idempotence-Key`` is
    the same payment, so a failed create may be retried with :func:`retrying`."""

    name = "yookassa"
    idempotent_create = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        shop_id: str,
        secret_key: str,
        api_url: str = "https://api.yookassa.ru/v3",
        allowed_ips: Sequence[Network] = DEFAULT_ALLOWED_IPS,
    ) -> None:
        self._http = http
        self._auth = httpx.BasicAuth(shop_id, secret_key)
        self._api_url = api_url.rstrip("/")
        self.allowed_ips = tuple(allowed_ips)

    async def create(self, request: PaymentRequest) -> Checkout:
        body = {
            "amount": _amount(request.amount, request.currency),
            "capture": True,
            "confirmation": {"type": "redirect", "return_url": request.return_url},
            "description": request.description[:MAX_DESCRIPTION],
            "metadata": {"reference": request.reference},
        }
        payment = await self._call("POST", "/payments", body, request.idempotency_key)
        confirmation = payment.section("confirmation")
        return Checkout(payment.text("id"), confirmation.text("confirmation_url"))

    async def status(self, provider_payment_id: str) -> ProviderStatus:
        payment = await self._call("GET", f"/payments/{quote(provider_payment_id, safe='')}")
        state = _payment_state(payment)
        if state is None:
            raise ProviderUnavailable(self.name, "unexpected payment status")
        amount = payment.section("amount")
        currency = amount.currency("currency")
        return ProviderStatus(
            provider_payment_id=payment.text("id"),
            state=state,
            reference=payment.optional_section("metadata").optional_text("reference"),
            amount=amount.minor("value", currency),
            currency=currency,
        )

    async def refund(
        self, provider_payment_id: str, amount: int, currency: str, idempotency_key: str
    ) -> None:
        body = {"payment_id": provider_payment_id, "amount": _amount(amount, currency)}
        refund = await self._call("POST", "/refunds", body, idempotency_key)
        if refund.text("status") == "canceled":
            reason = refund.optional_section("cancellation_details").optional_text("reason")
            raise ProviderRefused(self.name, f"refund canceled: {reason or 'no reason given'}")
        # "pending" or "succeeded": a refund.succeeded notification follows either way.

    def verify(self, headers: Headers, body: bytes, peer: str) -> None:
        """Accept only notifications from ``allowed_ips`` (403 otherwise)."""
        try:
            address = ipaddress.ip_address(peer.strip())
        except ValueError:
            raise WebhookRejected("yookassa: the sender address is not an IP", 403) from None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:185.71.76.1 from a dual-stack socket
        if not any(address in network for network in self.allowed_ips):
            raise WebhookRejected(f"yookassa: {address} is not a YooKassa address", 403)

    def parse(self, body: bytes) -> ProviderEvent:
        """``{"type": "notification", "event": ..., "object": {...}}``, for payments and refunds.

        The event id is ``"{object.id}:{event}"``: YooKassa sends no event id, and repeats
        a notification until it gets a 200.
        """
        notification = load_webhook(self.name, body)
        event = notification.text("event")
        thing = notification.section("object")
        amount, currency = None, None
        if event.startswith(("payment.", "refund.")):
            # Any currency: a payment in one the shop does not use is still stored.
            value = thing.section("amount")
            currency = value.currency_code("currency")
            amount = value.minor_if_known("value", currency)
        payment_id: str | None = None
        state: ProviderState | None = None
        if event.startswith("refund."):
            payment_id = thing.text("payment_id")
            state = ProviderState.REFUNDED if event == "refund.succeeded" else None
        elif event.startswith("payment."):
            payment_id = thing.text("id")
            state = _payment_state(thing)
        return ProviderEvent(
            event_id=f"{thing.text('id')}:{event}",
            reference=(
                thing.optional_section("metadata").optional_text("reference")
                if payment_id is not None
                else None  # payouts, deals: nothing of ours
            ),
            provider_payment_id=payment_id,
            state=state or ProviderState.PENDING,  # an event the shop does not act on
            amount=amount,
            currency=currency,
            needs_confirmation=True,
        )

    async def _call(
        self, method: str, path: str, body: object = None, idempotency_key: str | None = None
    ) -> Fields:
        headers = {} if idempotency_key is None else {"Idempotence-Key": idempotency_key}
        return await call_api(
            self._http,
            self.name,
            method,
            self._api_url + path,
            headers=headers,
            auth=self._auth,
            json_body=body,
        )


def _amount(minor: int, currency: str) -> dict[str, str]:
    return {"value": decimal_text(minor, currency), "currency": currency}


def _payment_state(payment: Fields) -> ProviderState | None:
    """A payment object's state; None for a status this module does not know."""
    status = payment.text("status")
    if status == "canceled":
        reason = payment.optional_section("cancellation_details").optional_text("reason")
        if reason == "expired_on_confirmation":  # the customer did not pay in time
            return ProviderState.EXPIRED
    if status == "succeeded" and payment.has("refunded_amount"):
        # Compared as decimals: this also reads payments in currencies the shop does not
        # know (from webhooks), which have no minor unit here.
        total = payment.section("amount").decimal("value")
        refunded = payment.section("refunded_amount").decimal("value")
        if refunded >= total:  # partly refunded is still paid
            return ProviderState.REFUNDED
    return _STATES.get(status)
