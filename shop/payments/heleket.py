"""Heleket: crypto invoices over a signed JSON API (EXTERNAL-APIS.md §B.4).

Every request is a POST with headers ``merchant`` and
``sign = md5(base64(json_body) + api_key)`` over the exact bytes sent. Answers are
``{"state": 0, "result": …}``.

Webhooks carry ``sign`` inside the JSON body, computed over the body *without* it as
PHP's ``json_encode(…, JSON_UNESCAPED_UNICODE)`` writes it: keys in order, no spaces,
non-ASCII kept, ``/`` written ``\\/``. :func:`php_json` re-creates those bytes.

``order_id`` (our reference) names one invoice per merchant, so creates may be retried.
Whether Heleket answers a repeated ``order_id`` with the existing invoice (as its
Cryptomus-style docs suggest) or refuses it is not confirmed; :meth:`Heleket.create`
handles both by looking the invoice up by ``order_id`` when a create is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from urllib.parse import urljoin

import httpx

from ._http import Fields, call_api, decimal_text, equal_digests, load_json, load_webhook
from .base import (
    Checkout,
    Headers,
    MalformedWebhook,
    PaymentRequest,
    ProviderEvent,
    ProviderRefused,
    ProviderState,
    ProviderStatus,
    WebhookRejected,
)

#: Currencies Heleket is told in crypto notation; amounts lose trailing zeros there.
ASSETS = frozenset({"USDT", "TON"})

_STATES = {
    "paid": ProviderState.PAID,
    "paid_over": ProviderState.PAID,  # more than asked: still paid
    "cancel": ProviderState.CANCELED,  # the customer did not pay
    "fail": ProviderState.FAILED,
    "system_fail": ProviderState.FAILED,
    "wrong_amount": ProviderState.FAILED,  # less than asked arrived: the operator decides
    "locked": ProviderState.FAILED,  # held for AML checks
    "refund_fail": ProviderState.FAILED,
    "refund_paid": ProviderState.REFUNDED,
    # check, process, confirm_check, wrong_amount_waiting, refund_process, and any status
    # Heleket adds later: PENDING, the shop waits for the next one.
}


class Heleket:
    """The Heleket provider (payments API key; refunds are not offered, see refund)."""

    name = "heleket"
    idempotent_create = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        merchant: str,
        api_key: str,
        api_url: str = "https://api.heleket.com",
    ) -> None:
        self._http = http
        self._merchant = merchant
        self._api_key = api_key
        self._api_url = api_url.rstrip("/") + "/"

    async def create(self, request: PaymentRequest) -> Checkout:
        body = {
            "amount": decimal_text(
                request.amount, request.currency, trim=request.currency in ASSETS
            ),
            "currency": request.currency,
            "order_id": request.reference,
            "url_callback": request.callback_url,
            "url_return": request.return_url,
            # Echoed in webhooks and shown to the operator, never to the customer.
            "additional_data": request.description,
        }
        try:
            invoice = await self._call("v1/payment", body)
        except ProviderRefused as refused:
            invoice = await self._made_before(request, refused)
        return Checkout(invoice.text("uuid"), invoice.text("url"))

    async def _made_before(self, request: PaymentRequest, refused: ProviderRefused) -> Fields:
        """The invoice an earlier try of this create made (its answer lost), or ``refused``."""
        try:
            invoice = await self._call("v1/payment/info", {"order_id": request.reference})
        except ProviderRefused:
            raise refused from None
        currency = invoice.currency("currency")
        if (currency, invoice.minor("amount", currency)) != (request.currency, request.amount):
            raise refused
        return invoice

    async def status(self, provider_payment_id: str) -> ProviderStatus:
        invoice = await self._call("v1/payment/info", {"uuid": provider_payment_id})
        # The info answer has both; "payment_status" is the older name.
        status = invoice.optional_text("status") or invoice.text("payment_status")
        currency = invoice.currency("currency")
        return ProviderStatus(
            provider_payment_id=invoice.text("uuid"),
            state=_STATES.get(status, ProviderState.PENDING),
            reference=invoice.optional_text("order_id"),
            amount=invoice.minor("amount", currency),
            currency=currency,
        )

    async def refund(
        self, provider_payment_id: str, amount: int, currency: str, idempotency_key: str
    ) -> None:
        """Always refused: ``POST /v1/payment/refund`` needs the payer's wallet
        ``address``, which the shop does not know, and (per Heleket's PHP SDK 2.2) is
        signed with the *payout* API key. Refund from the Heleket dashboard."""
        raise ProviderRefused(
            self.name,
            "refunds need the payer's wallet address and the payout API key: "
            "refund this payment from the Heleket dashboard",
        )

    def verify(self, headers: Headers, body: bytes, peer: str) -> None:
        """Check the ``sign`` field in the body (401 when missing or wrong).

        The sign is inside the body, so a body that is not a JSON object cannot be
        checked at all: that raises :class:`MalformedWebhook` (400), as it would from
        :meth:`parse` at the other providers.
        """
        try:
            data = load_json(body)
        except ValueError:
            raise MalformedWebhook("heleket: the body is not JSON") from None
        if not isinstance(data, dict):
            raise MalformedWebhook("heleket: the body is not a JSON object")
        given = data.pop("sign", None)
        if not isinstance(given, str) or not given:
            raise WebhookRejected("heleket: no sign in the body")
        try:
            signed = php_json(data)
        except RecursionError:  # read back, but one level too deep to write again
            raise MalformedWebhook("heleket: the JSON is nested too deeply") from None
        if not equal_digests(self._sign(signed), given):
            raise WebhookRejected("heleket: the sign does not match")

    def parse(self, body: bytes) -> ProviderEvent:
        """A payment webhook; the event id is ``"{uuid}:{status}"`` (Heleket resends)."""
        webhook = load_webhook(self.name, body)
        status = webhook.text("status")
        # Any currency: an invoice in one the shop does not use is still stored (amount
        # None: the shop has no minor unit for it).
        currency = webhook.currency_code("currency")
        return ProviderEvent(
            event_id=f"{webhook.text('uuid')}:{status}",
            reference=webhook.optional_text("order_id"),
            provider_payment_id=webhook.text("uuid"),
            state=_STATES.get(status, ProviderState.PENDING),
            amount=webhook.minor_if_known("amount", currency),
            currency=currency,
        )

    def _sign(self, body: bytes) -> str:
        return hashlib.md5(base64.b64encode(body) + self._api_key.encode()).hexdigest()

    async def _call(self, path: str, body: Mapping[str, object]) -> Fields:
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "merchant": self._merchant,
            "sign": self._sign(content),
            "content-type": "application/json",
        }
        answer = await call_api(
            self._http,
            self.name,
            "POST",
            urljoin(self._api_url, path),
            headers=headers,
            content=content,
        )
        if answer.data.get("state") != 0:
            message = answer.optional_text("message") or "no reason given"
            raise ProviderRefused(self.name, f"{path} failed: {message}")
        return answer.section("result")


def php_json(data: object) -> bytes:
    """``data`` as PHP's ``json_encode($data, JSON_UNESCAPED_UNICODE)`` writes it.

    The differences from ``json.dumps(…, ensure_ascii=False)`` that matter: ``/`` is
    escaped, and U+2028/U+2029 stay escaped (PHP keeps them escaped unless told
    ``JSON_UNESCAPED_LINE_TERMINATORS``). Numbers are written by Python's rules;
    Heleket sends amounts as strings, so none of its floats are re-encoded.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("/", "\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode()
