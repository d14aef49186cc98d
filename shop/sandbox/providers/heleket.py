"""A fake Heleket API: signed requests, invoices by ``order_id``, PHP-encoded webhooks."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json

from shop.clock import WallClock
from shop.money import decimal_string, to_minor

from ._base import ApiError, Call, FakeProvider, Json

MERCHANT = "8b03432e-385b-4670-8d06-064591096795"
API_KEY = "fakeHeleketPaymentKey0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
#: Where Heleket sends webhooks from (its SDK docs).
WEBHOOK_PEER = "31.133.220.8"
FINAL = frozenset({"paid", "paid_over", "wrong_amount", "fail", "cancel", "system_fail"})


def sign(body: bytes, api_key: str) -> str:
    """``md5(base64(body) . api_key)``, as Heleket's docs and PHP SDK compute it."""
    return hashlib.md5(base64.b64encode(body) + api_key.encode()).hexdigest()


def php_json_encode(data: object) -> bytes:
    """PHP ``json_encode($data, JSON_UNESCAPED_UNICODE)``: compact, UTF-8 kept, ``\\/``,
    and U+2028/U+2029 still escaped (PHP >= 7.1 without JSON_UNESCAPED_LINE_TERMINATORS)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def _error(status: int, message: str, errors: Json | None = None) -> ApiError:
    body: Json = {"state": 1, "message": message}
    if errors:
        body["errors"] = errors
    return ApiError(status, body)


class FakeHeleket(FakeProvider):
    """Holds ``invoices`` (uuid -> the invoice as ``/v1/payment/info`` shows it).

    A create with an ``order_id`` that already has a live invoice returns that invoice and
    creates nothing (Cryptomus-style); with ``refuse_repeated_order_id = True`` it is a
    422 instead. Which one Heleket does is not confirmed, so the shop must cope with both.
    """

    webhook_peer = WEBHOOK_PEER

    def __init__(
        self, *, merchant: str = MERCHANT, api_key: str = API_KEY, clock: WallClock | None = None
    ) -> None:
        super().__init__(clock=clock)
        self.merchant, self.api_key = merchant, api_key
        self.invoices: dict[str, Json] = {}
        self._by_order: dict[str, str] = {}
        self.refuse_repeated_order_id = False

    # ----------------------------------------------------------------- the API

    async def handle(self, call: Call) -> Json:
        if call.method != "POST":
            raise _error(405, "Method not allowed")
        if call.headers.get("merchant") != self.merchant:
            raise _error(401, "Unauthorized")
        if call.headers.get("sign") != sign(call.body, self.api_key):
            raise _error(401, "Wrong sign")
        data = json.loads(call.body) if call.body else {}
        if call.path == "/v1/payment":
            return {"state": 0, "result": copy.deepcopy(self._create(data))}
        if call.path == "/v1/payment/info":
            uuid = self._by_order.get(data.get("order_id", "")) or data.get("uuid", "")
            if uuid not in self.invoices:
                raise _error(404, "Payment not found")
            return {"state": 0, "result": copy.deepcopy(self.invoices[uuid])}
        if call.path == "/v1/payment/refund":
            if not data.get("address"):
                raise _error(422, "Validation error", {"address": ["validation.required"]})
            raise _error(401, "Wrong sign")  # signed with the payout key, which we never hold
        raise _error(404, "Not found")

    def _create(self, data: Json) -> Json:
        missing = {k: ["validation.required"] for k in ("amount", "currency", "order_id")}
        missing = {k: v for k, v in missing.items() if not data.get(k)}
        if missing:
            raise _error(422, "Validation error", missing)
        try:
            positive = to_minor(str(data["amount"]), data["currency"]) > 0
        except ValueError:
            positive = False
        if not positive:
            raise _error(422, "Validation error", {"amount": ["validation.min"]})
        existing = self._by_order.get(data["order_id"])
        if existing is not None and self.refuse_repeated_order_id:
            raise _error(422, "Validation error", {"order_id": ["validation.unique"]})
        if existing is not None and self.invoices[existing]["status"] not in FINAL:
            return self.invoices[existing]
        serial = self.next_serial()
        uuid = f"{serial:08x}-b22d-4643-988f-{serial:012x}"
        now = self.now()
        self.created += 1
        self._by_order[data["order_id"]] = uuid
        self.invoices[uuid] = {
            "uuid": uuid,
            "order_id": data["order_id"],
            "amount": data["amount"],
            "payment_amount": None,
            "payer_amount": None,
            "discount_percent": None,
            "discount": "0.00000000",
            "payer_currency": None,
            "currency": data["currency"],
            "merchant_amount": None,
            "network": None,
            "address": None,
            "from": None,
            "txid": None,
            "payment_status": "check",
            "url": self.checkout_url(uuid, f"https://pay.heleket.com/pay/{uuid}"),
            "expired_at": int(now.timestamp()) + 3600,
            "status": "check",
            "is_final": False,
            "additional_data": data.get("additional_data"),
            "created_at": _moscow(now),
            "updated_at": _moscow(now),
        }
        return self.invoices[uuid]

    # ----------------------------------------------------------------- commands

    def pay(self, uuid: str, amount: int | None = None) -> None:
        """Paid in USDT on tron: in full, or ``amount`` (minor units of the invoice's
        currency), which makes it ``wrong_amount`` (less) or ``paid_over`` (more)."""
        invoice = self.invoices[uuid]
        currency = invoice["currency"]
        asked = to_minor(invoice["amount"], currency)
        paid = asked if amount is None else amount
        status = "paid" if paid == asked else "wrong_amount" if paid < asked else "paid_over"
        invoice |= {
            "payment_amount": decimal_string(paid, currency),
            "payer_amount": decimal_string(paid, currency),
            "payer_currency": "USDT",
            "merchant_amount": decimal_string(paid * 98 // 100, currency),
            "network": "tron",
            "from": "TXyzABCDEF1234567890abcdefghijklmn",
            "txid": "7f3c9a3e1b5d4c2e8f6a0b9c7d5e3f1a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e",
        }
        self.set_status(uuid, status)

    def cancel(self, uuid: str) -> None:
        self.set_status(uuid, "cancel")

    def refund(self, uuid: str) -> None:
        """As if refunded from the dashboard."""
        self.set_status(uuid, "refund_paid")

    def set_status(self, uuid: str, status: str) -> None:
        invoice = self.invoices[uuid]
        invoice |= {"status": status, "payment_status": status, "is_final": status in FINAL}
        invoice["updated_at"] = _moscow(self.now())

    def webhook_for(self, uuid: str, kind: str | None = None) -> tuple[dict[str, str], bytes]:
        """The webhook Heleket would POST for the invoice's status (or ``kind``): PHP-encoded
        JSON, ``sign`` last, ``/`` escaped. Pass ``webhook_peer`` as the peer."""
        invoice = self.invoices[uuid]
        status = kind or invoice["status"]
        data: Json = {
            "type": "payment",
            "uuid": uuid,
            "order_id": invoice["order_id"],
            "amount": invoice["amount"],
            "payment_amount": invoice["payment_amount"] or "0.00",
            "payment_amount_usd": invoice["payment_amount"] or "0.00",
            "merchant_amount": invoice["merchant_amount"] or "0.00",
            "commission": "0.09",
            "is_final": status in FINAL,
            "status": status,
            "from": invoice["from"],
            "wallet_address_uuid": None,
            "network": invoice["network"] or "tron",
            "currency": invoice["currency"],
            "payer_currency": invoice["payer_currency"] or "USDT",
            "additional_data": invoice["additional_data"],
            "convert": {
                "to_currency": "USDT",
                "commission": None,
                "rate": "0.01100000",
                "amount": "3.28900000",
            },
            "txid": invoice["txid"],
        }
        data["sign"] = sign(php_json_encode(data), self.api_key)
        return {"content-type": "application/json"}, php_json_encode(data)


def _moscow(when: dt.datetime) -> str:
    """Heleket writes local (UTC+3) times with an offset."""
    return when.astimezone(dt.timezone(dt.timedelta(hours=3))).isoformat(timespec="seconds")
