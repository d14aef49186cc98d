"""Crypto Pay (@CryptoBot): invoices in crypto or priced in fiat (EXTERNAL-APIS.md §B.3).

Every method is ``POST {api_url}/<method>`` with a JSON body and the
``Crypto-Pay-API-Token`` header; answers are ``{"ok": true, "result": …}``.

Crypto Pay has no idempotency key, so ``idempotent_create`` is False: a create that
timed out may have made an invoice, and repeating it makes a second one. Both carry our
reference in ``payload``, so whichever is paid is credited, but do not retry creates
blindly. It has no refund method either.

An invoice lives as long as its payment: ``createInvoice`` gets ``expires_in``, the whole
seconds from now until ``PaymentRequest.expires_at``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import httpx

from ..clock import SystemClock, WallClock
from ._http import Fields, call_api, decimal_text, equal_digests, load_webhook
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

SIGNATURE_HEADER = "crypto-pay-api-signature"

#: Currencies charged as a crypto ``asset``; everything else is priced in ``fiat``.
ASSETS = frozenset({"USDT", "TON"})
#: Crypto Pay's limit on invoice descriptions.
MAX_DESCRIPTION = 1024
#: ``expires_in`` must be whole seconds from 1 to 2678400 (31 days). The API docs
#: (https://help.crypt.bot/crypto-pay-api, createInvoice, as quoted by the SDKs that
#: cite them): "You can set a payment time limit for the invoice in seconds. Values
#: between 1-2678400 are accepted." The fake in tests/fakes/providers refuses the rest.
EXPIRES_IN_RANGE = (1, 2_678_400)

_STATES = {
    "active": ProviderState.PENDING,
    "paid": ProviderState.PAID,
    "expired": ProviderState.EXPIRED,
}


class CryptoPay:
    """The Crypto Pay provider. See the module docstring on retrying creates."""

    name = "cryptopay"
    idempotent_create = False

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        token: str,
        api_url: str = "https://pay.crypt.bot/api",
        clock: WallClock | None = None,
    ) -> None:
        self._http = http
        self._headers = {"Crypto-Pay-API-Token": token}
        # The webhook key is SHA256(token), raw bytes.
        self._webhook_key = hashlib.sha256(token.encode()).digest()
        self._api_url = api_url.rstrip("/")
        # For ``expires_in``: give it the shop's clock; without one, the system's.
        self._clock = clock or SystemClock()

    async def create(self, request: PaymentRequest) -> Checkout:
        currency = request.currency
        trim = currency in ASSETS  # "3.5" USDT, but "299.00" RUB
        body: dict[str, str | int] = {"amount": decimal_text(request.amount, currency, trim=trim)}
        if currency in ASSETS:
            body |= {"currency_type": "crypto", "asset": currency}
        else:
            body |= {"currency_type": "fiat", "fiat": currency}
        body |= {
            "payload": request.reference,
            "description": request.description[:MAX_DESCRIPTION],
            "paid_btn_name": "callback",
            "paid_btn_url": request.return_url,
        }
        if request.expires_at is not None:
            body["expires_in"] = expires_in(request.expires_at, self._clock.now())
        invoice = await self._call("createInvoice", body)
        url = invoice.optional_text("bot_invoice_url") or invoice.text("pay_url")
        return Checkout(invoice.text("invoice_id"), url)

    async def status(self, provider_payment_id: str) -> ProviderStatus:
        result = await self._call("getInvoices", {"invoice_ids": provider_payment_id})
        for invoice in result.items("items"):
            if invoice.text("invoice_id") == provider_payment_id:
                state = _STATES.get(invoice.text("status"))
                if state is None:
                    raise ProviderUnavailable(self.name, "unexpected invoice status")
                amount, currency = _invoice_amount(invoice)
                return ProviderStatus(
                    provider_payment_id=provider_payment_id,
                    state=state,
                    reference=invoice.optional_text("payload"),
                    amount=amount,
                    currency=currency,
                )
        raise ProviderRefused(self.name, f"no invoice {provider_payment_id}")

    async def refund(
        self, provider_payment_id: str, amount: int, currency: str, idempotency_key: str
    ) -> None:
        raise ProviderRefused(
            self.name, "Crypto Pay has no refund method: send the money back with @CryptoBot"
        )

    def verify(self, headers: Headers, body: bytes, peer: str) -> None:
        """Check ``crypto-pay-api-signature``: hex HMAC-SHA256 of the raw body (401)."""
        given = headers.get(SIGNATURE_HEADER)
        if not given:
            raise WebhookRejected("cryptopay: no signature header")
        expected = hmac.new(self._webhook_key, body, hashlib.sha256).hexdigest()
        if not equal_digests(expected, given):
            raise WebhookRejected("cryptopay: the signature does not match")

    def parse(self, body: bytes) -> ProviderEvent:
        """An ``invoice_paid`` update. ``update_id`` is not unique, so the event id is
        ``"{invoice_id}:{status}"``."""
        update = load_webhook(self.name, body)
        invoice = update.section("payload")
        status = invoice.text("status")
        if update.text("update_type") == "invoice_paid":
            state = ProviderState.PAID
        else:  # no other update type is documented
            state = _STATES.get(status, ProviderState.PENDING)
        amount, currency = _event_amount(invoice)
        return ProviderEvent(
            event_id=f"{invoice.text('invoice_id')}:{status}",
            reference=invoice.optional_text("payload"),
            provider_payment_id=invoice.text("invoice_id"),
            state=state,
            amount=amount,
            currency=currency,
        )

    async def _call(self, method: str, body: dict[str, str | int]) -> Fields:
        answer = await call_api(
            self._http,
            self.name,
            "POST",
            f"{self._api_url}/{method}",
            headers=self._headers,
            json_body=body,
        )
        if answer.data.get("ok") is not True:  # errors normally come with a 4xx status
            error = answer.optional_section("error").optional_text("name")
            raise ProviderRefused(self.name, f"{method} failed: {error or 'no reason given'}")
        return answer.section("result")


def expires_in(expires_at: dt.datetime, now: dt.datetime) -> int:
    """Whole seconds from ``now`` until ``expires_at``, within :data:`EXPIRES_IN_RANGE`.

    Rounded down, so the invoice never outlives the payment. A payment that is already
    due gets 1 s (the least Crypto Pay takes); one longer than 31 days gets 31 days, and
    the shop's own expiry and reconciliation cover the rest.
    """
    low, high = EXPIRES_IN_RANGE
    return max(low, min(high, int((expires_at - now).total_seconds())))


def _invoice_amount(invoice: Fields) -> tuple[int, str]:
    """The invoice's price: in its fiat for fiat invoices, else in its asset."""
    key = "fiat" if invoice.optional_text("currency_type") == "fiat" else "asset"
    currency = invoice.currency(key)
    return invoice.minor("amount", currency), currency


def _event_amount(invoice: Fields) -> tuple[int | None, str]:
    """Like :func:`_invoice_amount`, for an update: an invoice in a currency the shop does
    not use (not ours, or not made by the shop) is still stored, with no amount."""
    key = "fiat" if invoice.optional_text("currency_type") == "fiat" else "asset"
    currency = invoice.currency_code(key)
    return invoice.minor_if_known("amount", currency), currency
