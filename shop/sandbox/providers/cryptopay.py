"""A fake Crypto Pay API: createInvoice, getInvoices, signed ``invoice_paid`` updates.

Like the real API it has no idempotency key: every createInvoice makes an invoice.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from decimal import Decimal
from functools import partial
from urllib.parse import parse_qsl

from shop.clock import WallClock
from shop.money import decimal_string

from ._base import ApiError, Call, FakeProvider, Json

TOKEN = "12345:AAfakeCryptoPayTokenForTests0000000"
#: createInvoice's ``expires_in``: "Values between 1-2678400 are accepted" (the API docs,
#: as the SDKs that cite them quote it); anything else is a 400 ``EXPIRES_IN_INVALID``
#: (the error name SDKs handle).
EXPIRES_IN = range(1, 2_678_400 + 1)
ASSETS = frozenset({"USDT", "TON", "BTC", "ETH", "LTC", "BNB", "TRX", "USDC"})
FIATS = frozenset({"USD", "EUR", "RUB", "BYN", "UAH", "GBP", "KZT", "UZS", "TRY"})


def _error(status: int, name: str) -> ApiError:
    return ApiError(status, {"ok": False, "error": {"code": status, "name": name}})


class FakeCryptoPay(FakeProvider):
    """Holds ``invoices`` (invoice_id -> the Invoice object as the API shows it)."""

    prefix = "/api"

    def __init__(self, *, token: str = TOKEN, clock: WallClock | None = None) -> None:
        super().__init__(clock=clock)
        self.token = token
        self.invoices: dict[int, Json] = {}
        self._updates = 0

    # ----------------------------------------------------------------- the API

    async def handle(self, call: Call) -> Json:
        if call.headers.get("crypto-pay-api-token") != self.token:
            raise _error(401, "UNAUTHORIZED")
        params = _params(call)
        if call.path == "/createInvoice":
            return {"ok": True, "result": copy.deepcopy(self._create(params))}
        if call.path == "/getInvoices":
            ids = params.get("invoice_ids")
            if ids in (None, ""):
                items = list(self.invoices.values())
            else:
                wanted = [
                    str(i).strip() for i in (ids if isinstance(ids, list) else ids.split(","))
                ]
                items = [
                    self.invoices[int(i)] for i in wanted if i.isdigit() and int(i) in self.invoices
                ]
            return {"ok": True, "result": {"items": copy.deepcopy(items)}}
        raise _error(405, "METHOD_NOT_FOUND")

    def _create(self, params: Json) -> Json:
        kind = params.get("currency_type", "crypto")
        code = params.get("asset") if kind == "crypto" else params.get("fiat")
        if kind not in ("crypto", "fiat") or code not in (ASSETS if kind == "crypto" else FIATS):
            raise _error(400, "ASSET_INVALID" if kind == "crypto" else "FIAT_INVALID")
        try:
            valid = Decimal(str(params["amount"])) > 0
        except (KeyError, ArithmeticError):
            valid = False
        if not valid:
            raise _error(400, "AMOUNT_INVALID")
        if params.get("paid_btn_name") and not params.get("paid_btn_url"):
            raise _error(400, "PAID_BTN_URL_REQUIRED")
        if "expires_in" in params:
            seconds = _seconds(params["expires_in"])
            if seconds is None or seconds not in EXPIRES_IN:
                raise _error(400, "EXPIRES_IN_INVALID")
        invoice_id = self.next_serial()
        invoice_hash = f"IV{invoice_id:010d}"
        page = partial(self.checkout_url, str(invoice_id))
        self.created += 1
        invoice: Json = {"invoice_id": invoice_id, "hash": invoice_hash, "currency_type": kind}
        invoice[("asset" if kind == "crypto" else "fiat")] = code
        invoice |= {
            "amount": str(params["amount"]),
            "pay_url": page(f"https://t.me/CryptoBot?start={invoice_hash}"),
            "bot_invoice_url": page(f"https://t.me/CryptoBot?start={invoice_hash}"),
            "mini_app_invoice_url": page(
                f"https://t.me/CryptoBot/app?startapp=invoice-{invoice_hash}"
            ),
            "web_app_invoice_url": page(f"https://app.send.tg/invoices/{invoice_hash}"),
            "description": params.get("description", ""),
            "status": "active",
            "created_at": self._iso(),
            "allow_comments": True,
            "allow_anonymous": True,
        }
        for optional in ("payload", "paid_btn_name", "paid_btn_url"):
            if optional in params:
                invoice[optional] = params[optional]
        if kind == "fiat":
            invoice["accepted_assets"] = ["USDT", "TON", "BTC", "ETH", "LTC", "BNB", "TRX"]
        self.invoices[invoice_id] = invoice
        return invoice

    # ----------------------------------------------------------------- commands

    def pay(self, invoice_id: str | int, amount: int | None = None) -> None:
        """The invoice was paid (``amount`` in minor units replaces the price, to test
        that the shop checks it; Crypto Pay itself only takes exact payments)."""
        invoice = self.invoices[int(invoice_id)]
        currency = invoice.get("fiat") or invoice["asset"]
        if amount is not None:
            invoice["amount"] = decimal_string(amount, currency)
        paid_asset = invoice.get("asset", "USDT")
        invoice |= {
            "status": "paid",
            "paid_at": self._iso(),
            "paid_asset": paid_asset,
            "paid_amount": invoice["amount"] if "asset" in invoice else "3.289000",
            "paid_usd_rate": "1.00000000",
            "fee_asset": paid_asset,
            "fee_amount": "0",
            "paid_anonymously": False,
        }
        if "fiat" in invoice:
            invoice["paid_fiat_rate"] = "91.21000000"

    def expire(self, invoice_id: str | int) -> None:
        self.invoices[int(invoice_id)]["status"] = "expired"

    def webhook_for(
        self, invoice_id: str | int, kind: str = "invoice_paid"
    ) -> tuple[dict[str, str], bytes]:
        """The update Crypto Pay would POST, signed with HMAC-SHA256(SHA256(token))."""
        self._updates += 1
        update = {
            "update_id": self._updates,
            "update_type": kind,
            "request_date": self._iso(),
            "payload": self.invoices[int(invoice_id)],
        }
        body = json.dumps(update, ensure_ascii=False, separators=(",", ":")).encode()
        return {
            "content-type": "application/json",
            "crypto-pay-api-signature": self.sign(body),
        }, body

    def sign(self, body: bytes, token: str | None = None) -> str:
        key = hashlib.sha256((token or self.token).encode()).digest()
        return hmac.new(key, body, hashlib.sha256).hexdigest()

    def _iso(self) -> str:
        return self.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(value: object) -> int | None:
    """A whole number of seconds, as a JSON integer or (form fields) ASCII digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _params(call: Call) -> Json:
    """Crypto Pay takes a JSON body or form fields (query strings are not kept here)."""
    if call.headers.get("content-type", "").startswith("application/json") and call.body:
        data = call.json()
        if not isinstance(data, dict):
            raise _error(400, "BAD_REQUEST")
        return data
    return dict(parse_qsl(call.body.decode()))
