"""Platega (platega.io): payment links over a JSON API (EXTERNAL-APIS.md §B.5).

Every call carries the headers ``X-MerchantId`` and ``X-Secret``. A payment is made with
``POST /v2/transaction/process`` (the payer picks the method on Platega's page) and read
back with ``GET /transaction/{id}``. Our reference travels as ``payload``.

Callbacks carry the *same* two headers and no signature: whoever knows the secret can
forge one. So :meth:`Platega.verify` compares both headers in constant time, and every
event is marked ``needs_confirmation``: the shop re-reads the transaction before acting.
A request with no credentials and an empty body is Platega checking the callback URL:
:class:`VerificationPing`, answered 200 and not stored.

Platega has no idempotency key (``idempotent_create`` is False: a repeated create makes
a second transaction). Amounts are JSON numbers in roubles; they are read as decimals
(``parse_float=Decimal``) and written from our minor units, never through a float.

Sources: the BEDOLAGA production bot (``app/services/platega_service.py``,
``app/webserver/payments.py``, ``app/services/payment/platega.py``) and the unofficial
summary of docs.platega.io in ``shastitko1970-netizen/platega-skill``.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from urllib.parse import quote

import httpx

from ..money import MoneyError, exponent, to_minor
from ._http import RETRYABLE_4XX, Fields, decimal_text, error_text
from .base import (
    Checkout,
    Headers,
    MalformedWebhook,
    PaymentRequest,
    ProviderEvent,
    ProviderRefused,
    ProviderState,
    ProviderStatus,
    ProviderUnavailable,
    VerificationPing,
    WebhookRejected,
)

#: Longest description Platega takes, in UTF-8 bytes (BEDOLAGA trims to this).
MAX_DESCRIPTION_BYTES = 64

_STATES = {
    "CONFIRMED": ProviderState.PAID,
    "CANCELED": ProviderState.CANCELED,
    # FAILED is "the payment could not be made" (legacy docs): no money was taken.
    "FAILED": ProviderState.CANCELED,
    "EXPIRED": ProviderState.EXPIRED,
    "CHARGEBACKED": ProviderState.REFUNDED,  # the money went back to the payer
    # PENDING, INPROGRESS, and any status Platega adds later: wait for the next one.
}

#: ``paymentDetails`` as the create answer writes it: ``"100 RUB"``.
_AMOUNT_TEXT = re.compile(r"\s*(\d+(?:\.\d+)?)\s+([A-Za-z]{3})\s*")


class Platega:
    """The Platega provider. ``idempotent_create`` is False: see the module docstring."""

    name = "platega"
    idempotent_create = False

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        merchant_id: str,
        secret: str,
        api_url: str = "https://app.platega.io",
    ) -> None:
        self._http = http
        self._merchant_id = merchant_id
        self._secret = secret
        self._api_url = api_url.rstrip("/")

    async def create(self, request: PaymentRequest) -> Checkout:
        rest = {
            "description": _cut(request.description, MAX_DESCRIPTION_BYTES),
            "return": request.return_url,
            "failedUrl": request.return_url,
            "payload": request.reference,
        }
        amount = decimal_text(request.amount, request.currency, trim=True)
        content = _json_with_amount(rest, amount, request.currency)
        created = await self._call("POST", "/v2/transaction/process", content)
        # v2 answers "url"; v1 (and some accounts) "redirect".
        url = _optional(created, "url") or created.text("redirect")
        return Checkout(created.text("transactionid"), url)  # keys are lower-cased

    async def status(self, provider_payment_id: str) -> ProviderStatus:
        transaction = await self._call("GET", f"/transaction/{quote(provider_payment_id, safe='')}")
        amount, currency = _payment_details(transaction)
        return ProviderStatus(
            provider_payment_id=_optional(transaction, "id") or provider_payment_id,
            state=_STATES.get(transaction.text("status").upper(), ProviderState.PENDING),
            reference=_optional(transaction, "payload"),
            amount=amount,
            currency=currency,
        )

    async def refund(
        self, provider_payment_id: str, amount: int, currency: str, idempotency_key: str
    ) -> None:
        """``POST /transaction/{id}/cancel``: the whole transaction goes back.

        Platega may answer that it needs a person (``manualControlRequired``); that is a
        refusal here, so the operator finishes it in the Platega cabinet.
        """
        path = f"/transaction/{quote(provider_payment_id, safe='')}/cancel"
        answer = await self._call("POST", path)
        if answer.data.get("accepted") is not True:
            message = _optional(answer, "message") or "no reason given"
            raise ProviderRefused(self.name, f"refund not accepted: {message}")

    def verify(self, headers: Headers, body: bytes, peer: str) -> None:
        """Compare ``X-MerchantId`` and ``X-Secret`` with ours in constant time (401).

        Raises :class:`VerificationPing` for an empty body that is either unsigned (the
        URL check) or authentic: there is nothing in it to store.
        """
        merchant_id = headers.get("x-merchantid", "")
        secret = headers.get("x-secret", "")
        if not merchant_id and not secret and not body.strip():
            raise VerificationPing("platega: callback URL check")
        # Both compared every time, so the time taken says nothing about either.
        same_merchant = _same(merchant_id, self._merchant_id)
        same_secret = _same(secret, self._secret)
        if not (same_merchant and same_secret):
            raise WebhookRejected("platega: X-MerchantId or X-Secret does not match")
        if not body.strip():
            raise VerificationPing("platega: empty callback")

    def parse(self, body: bytes) -> ProviderEvent:
        """A transaction callback: ``{id, amount, currency, status, paymentMethod, payload?}``.

        Keys are read case-insensitively (subscription callbacks come in PascalCase).
        The event id is ``"{id}:{status}"``: Platega repeats a callback it got no 200 for.
        """
        callback = _fields(body, _malformed)
        transaction_id = callback.text("id")
        status = callback.text("status").upper()
        currency = callback.currency_code("currency") if callback.has("currency") else None
        amount = None
        if currency is not None and callback.has("amount"):
            amount = _minor_if_known(callback, "amount", currency)
        return ProviderEvent(
            event_id=f"{transaction_id}:{status}",
            reference=_optional(callback, "payload"),  # often absent: then found by id
            provider_payment_id=transaction_id,
            state=_STATES.get(status, ProviderState.PENDING),
            amount=amount,
            currency=currency,
            needs_confirmation=True,  # a static secret proves little: ask the API
        )

    async def _call(self, method: str, path: str, content: bytes | None = None) -> Fields:
        headers = {
            "X-MerchantId": self._merchant_id,
            "X-Secret": self._secret,
            "Accept": "application/json",
        }
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._http.request(
                method, self._api_url + path, headers=headers, content=content
            )
        except httpx.HTTPError as error:
            # The exception text can name the request: only its class is kept.
            raise ProviderUnavailable(self.name, f"no answer ({type(error).__name__})") from None
        status = response.status_code
        if 200 <= status < 300:
            return _fields(response.content, self._unavailable)
        message = f"HTTP {status}: {error_text(response.content) or response.reason_phrase}"
        if 400 <= status < 500 and status not in RETRYABLE_4XX:
            raise ProviderRefused(self.name, message)
        raise ProviderUnavailable(self.name, message)

    def _unavailable(self, message: str) -> Exception:
        return ProviderUnavailable(self.name, message)


def _malformed(message: str) -> Exception:
    return MalformedWebhook(f"platega: {message}")


def _fields(body: bytes, fail: Callable[[str], Exception]) -> Fields:
    """A JSON object with lower-cased keys and exact decimals, as :class:`Fields`."""
    try:
        data = json.loads(body, parse_float=Decimal)
    except (ValueError, RecursionError):
        raise fail("the body is not JSON") from None
    if not isinstance(data, dict):
        raise fail("the body is not a JSON object")
    return Fields(_lower_keys(data), fail)


def _lower_keys(data: Mapping[str, object]) -> dict[str, object]:
    """One level of keys, lower-cased (deeper objects are lowered where they are read)."""
    lowered: dict[str, object] = {}
    for key, value in data.items():
        # "Id" and "id" both present: the one with a value wins (as BEDOLAGA reads them).
        if lowered.get(key.lower()) in (None, ""):
            lowered[key.lower()] = value
    return lowered


def _optional(fields: Fields, key: str) -> str | None:
    """A text field that may be absent, null or empty (subscription callbacks send
    ``"Payload": ""``)."""
    value = fields.data.get(key)
    return fields.text(key) if value not in (None, "") else None


def _payment_details(transaction: Fields) -> tuple[int | None, str | None]:
    """``paymentDetails`` as ``{amount, currency}`` or as the text ``"100 RUB"``."""
    details = transaction.data.get("paymentdetails")
    if isinstance(details, str):
        match = _AMOUNT_TEXT.fullmatch(details)
        if match is None:
            raise transaction.error("paymentDetails is not an amount")
        details = {"amount": match[1], "currency": match[2]}
    if not isinstance(details, Mapping):
        raise transaction.error("paymentDetails is missing")
    payment = Fields(_lower_keys(details), transaction.error, "paymentDetails.")
    currency = payment.currency_code("currency")
    return _minor_if_known(payment, "amount", currency), currency


def _minor_if_known(fields: Fields, key: str, currency: str) -> int | None:
    """A JSON number (read as a Decimal) in minor units; None for a currency the shop
    does not know, which has no minor unit here."""
    value = fields.data.get(key)
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise fields.error(f"{key} is missing or not a number")
    try:
        exponent(currency)
    except MoneyError:
        return None
    try:
        return to_minor(value, currency)
    except MoneyError as error:
        raise fields.error(f"{key}: {error}") from None


def _json_with_amount(rest: Mapping[str, str], amount: str, currency: str) -> bytes:
    """The create body, ``paymentDetails.amount`` written as a JSON number from its
    decimal text (``json`` writes numbers only from floats)."""
    details = f'{{"amount":{amount},"currency":{json.dumps(currency)}}}'
    others = json.dumps(rest, ensure_ascii=False, separators=(",", ":"))
    return f'{{"paymentDetails":{details},{others[1:]}'.encode()


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes without splitting a character."""
    return text.encode()[:limit].decode(errors="ignore")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())
