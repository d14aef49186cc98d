"""Stripe: hosted Checkout Sessions over the form-encoded v1 API (EXTERNAL-APIS.md §B.1).

Our ``provider_payment_id`` is the Checkout Session id (``cs_…``). The session holds
the PaymentIntent once the customer paid; refunds go through it.

Webhooks are signed: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`` is
HMAC-SHA256 of ``"{t}.{raw body}"`` with the endpoint secret (``whsec_…``), as in the
official SDK's ``_webhook.py`` (see :meth:`Stripe.verify` for the timestamp rule).
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

import httpx

from ..clock import WallClock
from ..money import EXPONENTS
from ._http import Fields, call_api, load_webhook
from .base import (
    Checkout,
    Headers,
    PaymentRequest,
    ProviderEvent,
    ProviderRefused,
    ProviderState,
    ProviderStatus,
    WebhookRejected,
)

SIGNATURE_HEADER = "stripe-signature"

# Checkout Session events: the state follows from the event type (and payment_status).
_SESSION_EVENTS = {
    "checkout.session.async_payment_succeeded": ProviderState.PAID,
    "checkout.session.async_payment_failed": ProviderState.FAILED,
    "checkout.session.expired": ProviderState.EXPIRED,
}


class Stripe:
    """The Stripe provider. ``idempotent_create``: the ``Idempotency-Key`` makes a
    repeated create the same session, so it may be retried with :func:`retrying`."""

    name = "stripe"
    idempotent_create = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        secret_key: str,
        webhook_secret: str,
        clock: WallClock,
        api_url: str = "https://api.stripe.com",
        tolerance: int = 300,
    ) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {secret_key}"}
        self._webhook_secret = webhook_secret.encode()
        self._clock = clock
        self._api_url = api_url.rstrip("/")
        self.tolerance = tolerance

    async def create(self, request: PaymentRequest) -> Checkout:
        form = {
            "mode": "payment",
            "line_items[0][price_data][currency]": request.currency.lower(),
            "line_items[0][price_data][unit_amount]": str(request.amount),
            "line_items[0][price_data][product_data][name]": request.description,
            "line_items[0][quantity]": "1",
            "success_url": request.return_url,
            "cancel_url": request.return_url,
            "client_reference_id": request.reference,
            "metadata[reference]": request.reference,
            # Copied onto the charge, so that charge.refunded names our payment too.
            "payment_intent_data[metadata][reference]": request.reference,
        }
        session = await self._call("POST", "/v1/checkout/sessions", form, request.idempotency_key)
        return Checkout(session.text("id"), session.text("url"))

    async def status(self, provider_payment_id: str) -> ProviderStatus:
        """The session's state. A refund does not show on the session: a refunded
        payment still reads PAID here (``charge.refunded`` reports refunds)."""
        session = await self._session(provider_payment_id)
        if session.optional_text("payment_status") == "paid":
            state = ProviderState.PAID
        elif session.optional_text("status") == "expired":
            state = ProviderState.EXPIRED
        else:
            state = ProviderState.PENDING
        amount, currency = _session_amount(session)
        return ProviderStatus(
            provider_payment_id=session.text("id"),
            state=state,
            reference=_reference(session),
            amount=amount,
            currency=currency,
        )

    async def refund(
        self, provider_payment_id: str, amount: int, currency: str, idempotency_key: str
    ) -> None:
        session = await self._session(provider_payment_id)
        payment_intent = session.optional_text("payment_intent")
        if payment_intent is None:
            raise ProviderRefused(self.name, "nothing to refund: the session has no payment")
        if session.optional_text("currency") not in (None, currency.lower()):
            raise ProviderRefused(self.name, f"the session was not paid in {currency}")
        form = {"payment_intent": payment_intent, "amount": str(amount)}
        if (reference := _reference(session)) is not None:
            form["metadata[reference]"] = reference
        await self._call("POST", "/v1/refunds", form, idempotency_key)

    def verify(self, headers: Headers, body: bytes, peer: str) -> None:
        """Check ``stripe-signature``; raises :class:`WebhookRejected` (401)."""
        header = headers.get(SIGNATURE_HEADER)
        if not header:
            raise WebhookRejected("stripe: no signature header")
        timestamp, signatures = _parse_signature(header)
        if not signatures:
            raise WebhookRejected("stripe: no v1 signature in the header")
        signed = b"%d." % timestamp + body
        expected = hmac.new(self._webhook_secret, signed, hashlib.sha256).hexdigest()
        # Every v1 is compared (secrets roll over with two signatures at once).
        matches = [hmac.compare_digest(expected.encode(), given) for given in signatures]
        if not any(matches):
            raise WebhookRejected("stripe: no signature matches")
        # As stripe-python's WebhookSignature.verify_header (stripe/_webhook.py, read at
        # commit 016aa9f02f53201066cb188437fd00605724b365): after the signature matched,
        # "if tolerance and timestamp < (the current time) - tolerance: raise". Only a delivery
        # signed too long ago is refused (a replay); a timestamp ahead of our clock (the
        # sender's clock runs fast, or ours slow) is accepted.
        if self.tolerance and timestamp < self._clock.now().timestamp() - self.tolerance:
            raise WebhookRejected("stripe: the signature timestamp is older than the tolerance")

    def parse(self, body: bytes) -> ProviderEvent:
        """A Stripe event; its ``id`` is the event id. Types the shop does not act on
        come back as PENDING, with our reference when the object carries one."""
        event = load_webhook(self.name, body)
        kind = event.text("type")
        if kind == "charge.refunded":
            return _refund_event(event.text("id"), event.section("data").section("object"))
        if not kind.startswith("checkout.session."):
            # Any other event (the endpoint may be subscribed to more, or be a thin "v2"
            # event without data): stored and answered 200, so it needs no more than this.
            thing = event.optional_section("data").optional_section("object")
            return ProviderEvent(
                event_id=event.text("id"),
                reference=thing.optional_section("metadata").optional_text("reference"),
                provider_payment_id=None,
                state=ProviderState.PENDING,
                amount=None,
                currency=None,
            )
        thing = event.section("data").section("object")
        if kind == "checkout.session.completed":
            # "unpaid": an async method (bank debit) still settling. "no_payment_required"
            # cannot happen for our sessions (no coupons), so it grants nothing either.
            paid = thing.optional_text("payment_status") == "paid"
            state = ProviderState.PAID if paid else ProviderState.PENDING
        else:
            state = _SESSION_EVENTS.get(kind, ProviderState.PENDING)
        amount, currency = _session_amount(thing, event=True)
        return ProviderEvent(
            event_id=event.text("id"),
            reference=_reference(thing),
            provider_payment_id=thing.text("id"),
            state=state,
            amount=amount,
            currency=currency,
        )

    async def _session(self, session_id: str) -> Fields:
        return await self._call("GET", f"/v1/checkout/sessions/{quote(session_id, safe='')}")

    async def _call(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Fields:
        headers = dict(self._headers)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return await call_api(
            self._http, self.name, method, self._api_url + path, headers=headers, form=form
        )


def _parse_signature(header: str) -> tuple[int, list[bytes]]:
    """``t=…,v1=…,v1=…`` -> (t, [v1, …]); other schemes (v0) are ignored."""
    timestamp: int | None = None
    signatures: list[bytes] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise WebhookRejected("stripe: the signature header is garbled")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookRejected("stripe: the signature timestamp is garbled") from None
        elif key == "v1":
            signatures.append(value.encode("utf-8", "replace"))
    if timestamp is None:
        raise WebhookRejected("stripe: no timestamp in the signature header")
    return timestamp, signatures


def _refund_event(event_id: str, charge: Fields) -> ProviderEvent:
    """``charge.refunded``: the charge has our reference (copied from the PaymentIntent)."""
    currency = charge.currency_code("currency")
    refunded = charge.integer("amount_refunded")
    return ProviderEvent(
        event_id=event_id,
        reference=charge.optional_section("metadata").optional_text("reference"),
        provider_payment_id=None,  # a charge does not name the Checkout Session
        # Partial refunds send charge.refunded too; only a full one is REFUNDED.
        state=ProviderState.REFUNDED if charge.flag("refunded") else ProviderState.PENDING,
        amount=refunded if _known(currency) else None,
        currency=currency,
    )


def _reference(thing: Fields) -> str | None:
    reference = thing.optional_text("client_reference_id")
    return reference or thing.optional_section("metadata").optional_text("reference")


def _session_amount(session: Fields, *, event: bool = False) -> tuple[int | None, str | None]:
    """``amount_total`` is already in minor units; the currency is lower-case.

    From an ``event``, a currency the shop does not know is kept with no amount (Stripe's
    minor unit for it may not be ours); from the API it is an answer the shop cannot use.
    """
    if not session.has("amount_total"):
        return None, None
    total = session.integer("amount_total")
    if not event:
        return total, session.currency("currency")
    currency = session.currency_code("currency")
    return (total if _known(currency) else None), currency


def _known(currency: str) -> bool:
    return currency in EXPONENTS
