"""A fake YooKassa v3 API: payments, refunds, ``Idempotence-Key``, notifications."""

from __future__ import annotations

import base64
import copy
import json

from shop.clock import WallClock
from shop.money import decimal_string, to_minor

from ._base import ApiError, Call, FakeProvider, Json

SHOP_ID = "506751"
SECRET_KEY = "test_Fh8hUAVVBGUGbjmlzba6TB0iyUbos_lueTHE-axOwM0"
#: An address inside YooKassa's notification range, to pass as ``peer``.
WEBHOOK_PEER = "185.71.76.10"


def _error(status: int, code: str, description: str, parameter: str | None = None) -> ApiError:
    body: Json = {"type": "error", "id": "0195e6f1-aaaa", "code": code, "description": description}
    if parameter:
        body["parameter"] = parameter
    return ApiError(status, body)


class FakeYooKassa(FakeProvider):
    """Holds ``payments`` and ``refunds`` (id -> the object as the API shows it).

    A repeated ``Idempotence-Key`` answers the first reply again without creating
    anything; the same key with a different body is a 400, as at YooKassa.
    """

    prefix = "/v3"
    webhook_peer = WEBHOOK_PEER

    def __init__(
        self,
        *,
        shop_id: str = SHOP_ID,
        secret_key: str = SECRET_KEY,
        clock: WallClock | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self.shop_id, self.secret_key = shop_id, secret_key
        self.payments: dict[str, Json] = {}
        self.refunds: dict[str, Json] = {}
        self._replies: dict[str, tuple[bytes, Json]] = {}

    # ----------------------------------------------------------------- the API

    async def handle(self, call: Call) -> Json:
        expected = base64.b64encode(f"{self.shop_id}:{self.secret_key}".encode()).decode()
        if call.headers.get("authorization") != f"Basic {expected}":
            raise _error(401, "invalid_credentials", "Login or password is incorrect")
        if call.method == "GET" and call.path.startswith("/payments/"):
            return copy.deepcopy(self._payment(call.path.removeprefix("/payments/")))
        if call.method == "POST" and call.path in ("/payments", "/refunds"):
            key = call.headers.get("idempotence-key")
            if not key:
                raise _error(400, "invalid_request", "Idempotence key is empty", "Idempotence-Key")
            if key in self._replies:
                body, reply = self._replies[key]
                if body != call.body:
                    raise _error(400, "invalid_request", "Idempotence key duplicated")
                return copy.deepcopy(reply)
            data = call.json()
            made = self._create(data) if call.path == "/payments" else self._refund_call(data)
            self._replies[key] = (call.body, copy.deepcopy(made))
            return copy.deepcopy(made)
        raise _error(404, "not_found", "Unknown method")

    def _create(self, data: Json) -> Json:
        amount = data.get("amount") or {}
        try:
            to_minor(amount["value"], amount["currency"])
        except (KeyError, ValueError):
            raise _error(400, "invalid_request", "Invalid amount", "amount") from None
        confirmation = data.get("confirmation") or {}
        if confirmation.get("type") != "redirect" or not confirmation.get("return_url"):
            raise _error(400, "invalid_request", "Confirmation is invalid", "confirmation")
        if len(data.get("description", "")) > 128:
            raise _error(400, "invalid_request", "Description is too long", "description")
        serial = self.next_serial()
        payment_id = f"{serial:08x}-000f-5000-9000-{serial:012x}"
        self.created += 1
        self.payments[payment_id] = {
            "id": payment_id,
            "status": "pending",
            "paid": False,
            "amount": amount,
            "confirmation": {
                "type": "redirect",
                "return_url": confirmation["return_url"],
                "confirmation_url": self.checkout_url(
                    payment_id,
                    f"https://yoomoney.ru/checkout/payments/v2/contract?orderId={payment_id}",
                ),
            },
            "created_at": self._iso(),
            "description": data.get("description", ""),
            "metadata": data.get("metadata", {}),
            "recipient": {"account_id": self.shop_id, "gateway_id": "2392087"},
            "refundable": False,
            "test": True,
        }
        return self.payments[payment_id]

    def _refund_call(self, data: Json) -> Json:
        payment = self._payment(str(data.get("payment_id")))
        amount = data.get("amount") or {}
        if payment["status"] != "succeeded":
            raise _error(400, "invalid_request", "Payment is not succeeded", "payment_id")
        if amount.get("currency") != payment["amount"]["currency"]:
            raise _error(400, "invalid_request", "Currency does not match", "amount")
        return self.refund(payment["id"], to_minor(amount["value"], amount["currency"]))

    def _payment(self, payment_id: str) -> Json:
        try:
            return self.payments[payment_id]
        except KeyError:
            raise _error(404, "not_found", "Payment doesn't exist or access denied") from None

    # ----------------------------------------------------------------- commands

    def pay(self, payment_id: str, amount: int | None = None) -> None:
        """The customer paid (``amount`` in minor units, if not the asked one)."""
        payment = self.payments[payment_id]
        if amount is not None:
            currency = payment["amount"]["currency"]
            payment["amount"] = {"value": decimal_string(amount, currency), "currency": currency}
        payment |= {"status": "succeeded", "paid": True, "refundable": True}
        payment["captured_at"] = self._iso()
        payment["payment_method"] = {"type": "bank_card", "id": payment_id, "saved": False}

    def cancel(self, payment_id: str, reason: str = "general_decline") -> None:
        payment = self.payments[payment_id]
        payment |= {"status": "canceled", "paid": False, "refundable": False}
        payment["cancellation_details"] = {"party": "yoo_money", "reason": reason}

    def expire(self, payment_id: str) -> None:
        """Not paid in time: YooKassa cancels it with reason ``expired_on_confirmation``."""
        self.cancel(payment_id, "expired_on_confirmation")

    def refund(self, payment_id: str, amount: int | None = None) -> Json:
        """Refund (all by default) as from the dashboard; returns the refund object."""
        payment = self.payments[payment_id]
        currency = payment["amount"]["currency"]
        total = to_minor(payment["amount"]["value"], currency)
        before = to_minor(payment.get("refunded_amount", {}).get("value", "0"), currency)
        amount = total - before if amount is None else amount
        if amount <= 0 or before + amount > total:
            raise _error(400, "invalid_request", "Refund amount exceeds the payment", "amount")
        refund_id = f"{self.next_serial():08x}-0015-5000-8000-{len(self.refunds):012x}"
        value = {"value": decimal_string(amount, currency), "currency": currency}
        self.refunds[refund_id] = {
            "id": refund_id,
            "payment_id": payment_id,
            "status": "succeeded",
            "created_at": self._iso(),
            "amount": value,
        }
        refunded = decimal_string(before + amount, currency)
        payment["refunded_amount"] = {"value": refunded, "currency": currency}
        return self.refunds[refund_id]

    def webhook_for(self, payment_id: str, kind: str | None = None) -> tuple[dict[str, str], bytes]:
        """The notification YooKassa would POST: ``payment.succeeded``/``payment.canceled``
        (by default, from the payment's status), ``payment.waiting_for_capture``, or
        ``refund.succeeded`` (for the payment's latest refund). Pass ``webhook_peer``."""
        payment = self.payments[payment_id]
        if kind is None:
            kind = {"succeeded": "payment.succeeded", "canceled": "payment.canceled"}.get(
                payment["status"], "payment.waiting_for_capture"
            )
        if kind.startswith("refund."):
            refunds = [r for r in self.refunds.values() if r["payment_id"] == payment_id]
            thing = refunds[-1]
        else:
            thing = payment
        body = {"type": "notification", "event": kind, "object": thing}
        headers = {"content-type": "application/json"}
        return headers, json.dumps(body, ensure_ascii=False).encode()

    def _iso(self) -> str:
        return self.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
