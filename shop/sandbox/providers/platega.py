"""A fake Platega API: payment links, transaction status, cancel (refund), callbacks.

Written from Platega's documented formats, not from the shop's code: the docs at
docs.platega.io as summarised by ``shastitko1970-netizen/platega-skill`` (payments.md,
callbacks.md, refunds.md, auth.md, legacy-gitbook.md) and the production integration in
``BEDOLAGA-DEV/remnawave-bedolaga-telegram-bot`` (``app/services/platega_service.py``,
``app/webserver/payments.py``). Like the real API:

- every call needs ``X-MerchantId`` and ``X-Secret`` (401 otherwise);
- ``POST /v2/transaction/process`` takes ``paymentDetails {amount, currency}``,
  ``description``, ``return``, ``failedUrl`` (all required) and optionally ``payload``,
  ``orderId``, ``metadata``; a client ``id`` or any other field is a 400
  (``additionalProperties: false``); the description is at most 64 UTF-8 bytes
  (BEDOLAGA's limit); there is no idempotency key: every call makes a transaction;
- amounts are JSON numbers in roubles (a float on Platega's side, so here too);
- ``GET /transaction/{id}`` of an unknown id is a 404;
- callbacks carry the merchant's own ``X-MerchantId``/``X-Secret`` and the camelCase
  body ``{id, amount, currency, status, paymentMethod, payload?}``.
"""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from ._base import ApiError, Call, FakeProvider, Json

MERCHANT_ID = "7c0f4b0e-3c1a-4d2e-9b77-5a1f0c9d2e11"
SECRET = "test_platega_X-Secret_0f9e8d7c6b5a"
#: ``CreateTransactionRequest`` fields the v2 endpoint takes.
CREATE_FIELDS = frozenset(
    {"paymentDetails", "description", "return", "failedUrl", "payload", "orderId", "metadata"}
)
REQUIRED = ("paymentDetails", "description", "return", "failedUrl")
MAX_DESCRIPTION_BYTES = 64
CURRENCIES = frozenset({"RUB"})
#: ``PaymentStatus`` (current docs) plus the legacy ``EXPIRED``/``FAILED`` and BEDOLAGA's
#: ``INPROGRESS``.
STATUSES = frozenset(
    {"PENDING", "INPROGRESS", "CONFIRMED", "CANCELED", "CHARGEBACKED", "EXPIRED", "FAILED"}
)
_TRANSACTION_PATH = re.compile(r"/transaction/([^/]+)(/cancel)?")


def _error(status: int, message: str) -> ApiError:
    return ApiError(status, {"statusCode": status, "message": message})


class FakePlatega(FakeProvider):
    """Holds ``transactions`` (id -> the transaction as ``GET /transaction/{id}`` shows
    it, with amounts kept as Decimals). ``manual_refunds`` makes cancel answer as the
    docs' example does: not accepted, a person must handle it."""

    prefix = ""

    def __init__(self, *, merchant_id: str = MERCHANT_ID, secret: str = SECRET, **base: Any):
        super().__init__(**base)
        self.merchant_id, self.secret = merchant_id, secret
        self.transactions: dict[str, Json] = {}
        self.manual_refunds = False

    # ----------------------------------------------------------------- the API

    async def handle(self, call: Call) -> Json:
        self._authenticate(call.headers)
        if call.method == "POST" and call.path == "/v2/transaction/process":
            return self._create(call)
        match = _TRANSACTION_PATH.fullmatch(call.path)
        if match is not None and call.method == "GET" and not match[2]:
            return self._view(self._transaction(match[1]))
        if match is not None and call.method == "POST" and match[2]:
            return self._cancel(self._transaction(match[1]))
        raise _error(404, "Not found")

    def _authenticate(self, headers: dict[str, str]) -> None:
        merchant_id, secret = headers.get("x-merchantid"), headers.get("x-secret")
        if not merchant_id or not secret:
            raise _error(401, "X-MerchantId or X-Secret is not specified")
        if merchant_id != self.merchant_id:
            raise _error(401, "Merchant not exists")
        if secret != self.secret:
            raise _error(401, "Merchant secret key is not correct")

    def _create(self, call: Call) -> Json:
        if not call.headers.get("content-type", "").startswith("application/json"):
            raise _error(415, "Unsupported Media Type")
        try:
            data = json.loads(call.body, parse_float=Decimal)
        except ValueError:
            raise _error(400, "Request validation error: the body is not JSON") from None
        if not isinstance(data, dict):
            raise _error(400, "Request validation error: the body is not an object")
        if "id" in data:
            raise _error(400, "Request validation error: do not pass field id")
        if extra := sorted(set(data) - CREATE_FIELDS):
            raise _error(400, f"Request validation error: unknown fields {extra}")
        if missing := [name for name in REQUIRED if name not in data]:
            raise _error(400, f"Request validation error: {missing} required")
        amount, currency = _payment_details(data["paymentDetails"])
        description = data["description"]
        if not isinstance(description, str) or not description:
            raise _error(400, "Request validation error: description")
        if len(description.encode()) > MAX_DESCRIPTION_BYTES:
            raise _error(400, "Request validation error: description is too long")
        for url_field in ("return", "failedUrl"):
            if not re.match(r"https?://\S+$", str(data[url_field])):
                raise _error(400, f"Request validation error: {url_field} is not a URL")
        for text_field in ("payload", "orderId"):
            if text_field in data and not isinstance(data[text_field], str):
                raise _error(400, f"Request validation error: {text_field}")
        metadata = data.get("metadata", {})
        if "metadata" in data and not (
            isinstance(metadata, dict) and {"userId", "userName"} <= set(metadata)
        ):
            raise _error(400, "Request validation error: metadata needs userId and userName")
        serial = self.next_serial()
        transaction_id = f"{serial:08x}-4b1d-4c5e-8a44-{serial:012x}"
        self.created += 1
        self.transactions[transaction_id] = {
            "id": transaction_id,
            "status": "PENDING",
            "paymentDetails": {"amount": amount, "currency": currency},
            "merchantName": "Test Merchant",
            "mechantId": self.merchant_id,  # sic: the API's own spelling
            "comission": Decimal(0),
            "paymentMethod": "SBPQR",
            "expiresIn": "00:15:00",
            "return": data["return"],
            "payload": data.get("payload"),
            "description": description,
        }
        url = f"https://pay.platega.io/?id={transaction_id}&mh={self.merchant_id}"
        return {
            "transactionId": transaction_id,
            "status": "PENDING",
            "url": self.checkout_url(transaction_id, url),
            "expiresIn": "00:15:00",
            "rate": 91.2,
        }

    def _cancel(self, transaction: Json) -> Json:
        accepted = transaction["status"] == "CONFIRMED" and not self.manual_refunds
        if accepted:
            transaction["status"] = "CHARGEBACKED"
        return {
            "transactionId": transaction["id"],
            "accepted": accepted,
            "manualControlRequired": not accepted,
            "message": "Возврат выполнен" if accepted else "Возврат в процессе",
        }

    def _transaction(self, transaction_id: str) -> Json:
        try:
            return self.transactions[transaction_id]
        except KeyError:
            raise _error(404, "Transaction not found") from None

    def _view(self, transaction: Json) -> Json:
        view = copy.deepcopy(transaction)
        details = view["paymentDetails"]
        if isinstance(details, dict):  # else the text form, "100 RUB", as set by a test
            details["amount"] = _number(details["amount"])
        view["comission"] = _number(view["comission"])
        return view

    # ----------------------------------------------------------------- commands

    def pay(self, transaction_id: str, amount: int | None = None) -> None:
        """The payer paid (``amount`` in kopecks, if not the asked one)."""
        transaction = self.transactions[transaction_id]
        if amount is not None:
            transaction["paymentDetails"]["amount"] = Decimal(amount) / 100
        transaction["status"] = "CONFIRMED"

    def set_status(self, transaction_id: str, status: str) -> None:
        """Any status Platega reports: ``CANCELED``, ``EXPIRED``, ``CHARGEBACKED``…"""
        assert status in STATUSES, status
        self.transactions[transaction_id]["status"] = status

    def cancel(self, transaction_id: str) -> None:
        self.set_status(transaction_id, "CANCELED")

    def webhook_for(
        self,
        transaction_id: str,
        *,
        with_payload: bool = True,
        merchant_id: str | None = None,
        secret: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """The callback Platega would POST for the transaction's current status.

        The official examples leave ``payload`` out, the schema lists it: ``with_payload``
        picks. ``merchant_id``/``secret`` replace the real credentials, to forge one.
        """
        transaction = self.transactions[transaction_id]
        details = transaction["paymentDetails"]
        body: Json = {
            "id": transaction_id,
            "amount": _number(details["amount"]),
            "currency": details["currency"],
            "status": transaction["status"],
            "paymentMethod": 2,
        }
        if with_payload and transaction["payload"] is not None:
            body["payload"] = transaction["payload"]
        headers = {
            "content-type": "application/json",
            "x-merchantid": self.merchant_id if merchant_id is None else merchant_id,
            "x-secret": self.secret if secret is None else secret,
        }
        return headers, json.dumps(body, ensure_ascii=False).encode()

    @staticmethod
    def ping() -> tuple[dict[str, str], bytes]:
        """Platega checking the callback URL: no credentials, no body."""
        return {}, b""


def _payment_details(details: object) -> tuple[Decimal, str]:
    if not isinstance(details, dict) or set(details) != {"amount", "currency"}:
        raise _error(400, "Request validation error: paymentDetails needs amount and currency")
    amount, currency = details["amount"], details["currency"]
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal):
        raise _error(400, "Request validation error: amount is not a number")
    try:
        exact = Decimal(amount)
        valid = exact > 0 and exact == exact.quantize(Decimal("0.01"))
    except InvalidOperation:
        valid = False
    if not valid:
        raise _error(400, "Request validation error: amount")
    if currency not in CURRENCIES:
        raise _error(400, f"Request validation error: currency {currency!r} is not supported")
    return exact, currency


def _number(value: Decimal) -> int | float:
    """A JSON number as Platega writes one (its amounts are floats)."""
    return int(value) if value == value.to_integral_value() else float(value)
