"""A fake YooMoney wallet: the Quickpay form, incoming transfers, HTTP notifications and
the ``operation-history`` API.

Written from YooMoney's documentation, not from the shop's code:
yoomoney.ru/docs/payment-buttons (the Quickpay form's fields),
yoomoney.ru/docs/wallet/using-api/notification-p2p-incoming (notification fields, the
``sha1_hash`` rule, currency always ``643``), yoomoney.ru/docs/wallet/user-account/
operation-history (request, operations, method errors with HTTP 200) and
yoomoney.ru/docs/wallet/using-api/format/protocol-response (400/401/403 for bad tokens),
with field types from the typed SDK ``AlexXanderGrib/yoomoney-sdk``. Like the real one:

- nothing is created through an API: :meth:`FakeYooMoney.pay_link` follows a Quickpay
  link as a payer would, refusing a link with a wrong receiver, form type, sum,
  payment type or any field the form does not have (:class:`QuickpayRefused`);
- the wallet receives the sum less the commission (3% from a card, 1% from a wallet);
  the notification says both (``amount``, ``withdraw_amount``), history only the first;
- operation-history wants ``Authorization: Bearer <token>`` and a form body.

With ``checkout_pages`` set (``shop sandbox`` does), :meth:`FakeYooMoney.page_for` stands a
checkout page in for the Quickpay page a link opens: the page is named by the link's
``label``, and its buttons pay the link (:meth:`~FakeYooMoney.pay_page`) or have the payer's
card declined (:meth:`~FakeYooMoney.decline_page`: nothing reaches the wallet, so YooMoney
sends nothing).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ._base import ApiError, Call, FakeProvider, Json

WALLET = "4100118408605024"
NOTIFICATION_SECRET = "Hb3rQ0xv1ZlkfP7wGm9s2Yd4"
TOKEN = "4100118408605024.8C1E3B0A5D7F2E4C6B8A0D2F4E6C8A0B1D3F5E7C9A1B3D5F7E9C1A3B5D7F9E1C"
QUICKPAY_URL = "https://yoomoney.ru/quickpay/confirm"
#: The fields of the Quickpay form (yoomoney.ru/docs/payment-buttons).
QUICKPAY_FIELDS = frozenset(
    {
        "receiver", "quickpay-form", "targets", "paymentType", "sum", "formcomment",
        "short-dest", "label", "comment", "successURL", "need-fio", "need-email",
        "need-phone", "need-address",
    }
)  # fmt: skip
COMMISSION = {"AC": Decimal("0.03"), "PC": Decimal("0.01")}
HISTORY_TYPES = frozenset({"deposition", "payment", "incoming-transfers-unaccepted"})
#: The notification hash: these values joined with "&", the secret in its place.
SIGNED = (
    "notification_type", "operation_id", "amount", "currency", "datetime", "sender",
    "codepro", "notification_secret", "label",
)  # fmt: skip
PAYER_WALLET = "41001000040"
#: A label a checkout page can be named by (the part of its address after the base).
_PAGE_LABEL = re.compile(r"[A-Za-z0-9_.~-]{1,64}")


class QuickpayRefused(ValueError):
    """Raised by :meth:`FakeYooMoney.pay_link` for a link YooMoney would not take."""


def _method_error(code: str) -> ApiError:
    return ApiError(200, {"error": code})  # method errors come with HTTP 200


class FakeYooMoney(FakeProvider):
    """Holds ``operations`` (operation_id -> the operation, with the notification's
    extra fields kept beside it). The API is served under ``/api``."""

    prefix = "/api"

    def __init__(
        self,
        *,
        wallet: str = WALLET,
        notification_secret: str = NOTIFICATION_SECRET,
        token: str = TOKEN,
        **base: Any,
    ):
        super().__init__(**base)
        self.wallet, self.notification_secret, self.token = wallet, notification_secret, token
        self.operations: dict[str, Json] = {}
        #: The checkout pages standing in for Quickpay links, by label: ``url`` (the link),
        #: ``form`` (its fields), ``status`` ("open", "paid" or "declined") and, once paid,
        #: ``operation_id``.
        self.pages: dict[str, Json] = {}

    # ----------------------------------------------------------------- the API

    async def handle(self, call: Call) -> Json:
        authorization = call.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            raise ApiError(400, {"error": "invalid_request"})
        if authorization != f"Bearer {self.token}":
            raise ApiError(401, {"error": "invalid_token"})
        if call.method != "POST" or not call.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            raise ApiError(400, {"error": "invalid_request"})
        if call.path == "/operation-history":
            return self._history(call.form())
        raise ApiError(404, {"error": "unknown method"})

    def _history(self, params: dict[str, str]) -> Json:
        types = params.get("type", "").split()
        if any(kind not in HISTORY_TYPES for kind in types):
            raise _method_error("illegal_param_type")
        label = params.get("label")
        if label is not None and len(label) > 64:
            raise _method_error("illegal_param_label")
        records = params.get("records", "30")
        if not records.isdigit() or not 1 <= int(records) <= 100:
            raise _method_error("illegal_param_records")
        start = params.get("start_record", "0")
        if not start.isdigit():
            raise _method_error("illegal_param_start_record")
        found = [
            op
            for op in reversed(self.operations.values())  # newest first
            if (label is None or op["label"] == label) and _of_types(op, types)
        ]
        page = found[int(start) : int(start) + int(records)]
        answer: Json = {"operations": [_history_view(op) for op in page]}
        if int(start) + int(records) < len(found):
            answer["next_record"] = str(int(start) + int(records))
        return answer

    # ----------------------------------------------------------------- the payer

    def pay_link(
        self,
        url: str,
        *,
        amount: int | None = None,
        payment_type: str | None = None,
        codepro: bool = False,
        unaccepted: bool = False,
    ) -> str:
        """Pay through a Quickpay link; returns the operation id.

        ``amount`` (kopecks) is what a payer who edited the link paid instead; with
        ``codepro`` or ``unaccepted`` the transfer is held and not in the wallet yet.
        """
        form = self.open_link(url)
        paid = Decimal(form["sum"]) if amount is None else Decimal(amount) / 100
        kind = payment_type or form["paymentType"]
        credited = (paid * (1 - COMMISSION[kind])).quantize(Decimal("0.01"), ROUND_DOWN)
        serial = self.next_serial()
        operation_id = f"9040357769{serial:08d}"
        self.operations[operation_id] = {
            "operation_id": operation_id,
            "status": "in_progress" if codepro or unaccepted else "success",
            "datetime": _iso(self.now()),
            "title": "Пополнение с банковской карты" if kind == "AC" else "Перевод из кошелька",
            "direction": "in",
            "amount": credited,
            "label": form.get("label", ""),
            "type": "deposition" if kind == "AC" else "incoming-transfer",
            # What only the notification says:
            "withdraw_amount": paid,
            "notification_type": "card-incoming" if kind == "AC" else "p2p-incoming",
            "sender": "" if kind == "AC" else PAYER_WALLET,
            "codepro": codepro,
            "unaccepted": unaccepted,
        }
        return operation_id

    def open_link(self, url: str) -> dict[str, str]:
        """The Quickpay form a link opens, checked as YooMoney checks it."""
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}{parts.path}" != QUICKPAY_URL:
            raise QuickpayRefused(f"not a Quickpay link: {url}")
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        form = dict(pairs)
        if len(form) != len(pairs) or not set(form) <= QUICKPAY_FIELDS:
            raise QuickpayRefused(f"unknown or repeated fields: {sorted(form)}")
        if form.get("receiver") != self.wallet:
            raise QuickpayRefused("receiver is not this wallet")
        if form.get("quickpay-form") != "button":
            raise QuickpayRefused("quickpay-form must be button")
        if form.get("paymentType") not in COMMISSION:
            raise QuickpayRefused("paymentType must be AC or PC")
        try:
            amount = Decimal(form.get("sum", ""))
        except InvalidOperation:
            raise QuickpayRefused("sum is not a number") from None
        if not (amount > 0 and amount == amount.quantize(Decimal("0.01"))):
            raise QuickpayRefused("sum must be positive, in kopecks at most")
        if len(form.get("label", "")) > 64:
            raise QuickpayRefused("label is longer than 64 characters")
        if "successURL" in form and not form["successURL"].startswith(("https://", "http://")):
            raise QuickpayRefused("successURL is not a URL")
        return form

    def credit(self, operation_id: str) -> None:
        """A held transfer reaches the wallet (the code was entered, space was freed)."""
        operation = self.operations[operation_id]
        operation |= {"status": "success", "codepro": False, "unaccepted": False}

    # ----------------------------------------------------------------- checkout pages

    def page_for(self, url: str) -> str | None:
        """The checkout page standing in for the Quickpay page ``url`` opens, once
        ``checkout_pages`` is set; None for any other address, a link YooMoney would refuse,
        or one without a label to name the page by. Nothing is created at YooMoney for a
        link, so the page is made here, when the link is first seen."""
        if self.checkout_pages is None:
            return None
        try:
            form = self.open_link(url)
        except QuickpayRefused:
            return None
        label = form.get("label", "")
        if not _PAGE_LABEL.fullmatch(label):
            return None
        page = self.pages.setdefault(label, {"status": "open"})
        if page["status"] == "open":  # the link as last shown, until it is acted on
            page |= {"url": url, "form": form}
        return self.checkout_url(label, url)

    def pay_page(self, label: str) -> str:
        """The payer paid on the page for ``label`` as the link asks; returns the
        operation id (see :meth:`pay_link`)."""
        page = self.pages[label]
        operation_id = self.pay_link(page["url"])
        page |= {"status": "paid", "operation_id": operation_id}
        return operation_id

    def decline_page(self, label: str) -> None:
        """The payer's card was declined on the page for ``label``: no money moved."""
        self.pages[label]["status"] = "declined"

    # ----------------------------------------------------------------- notifications

    def webhook_for(
        self,
        operation_id: str,
        *,
        secret: str | None = None,
        tamper: Mapping[str, str] | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """The HTTP notification YooMoney would POST, signed with the wallet's secret
        (or ``secret``); ``tamper`` changes fields after signing, as a forger would."""
        operation = self.operations[operation_id]
        fields = {
            "notification_type": operation["notification_type"],
            "operation_id": operation_id,
            "amount": _text(operation["amount"]),
            "withdraw_amount": _text(operation["withdraw_amount"]),
            "currency": "643",
            "datetime": operation["datetime"],
            "sender": operation["sender"],
            "codepro": _flag(operation["codepro"]),
            "label": operation["label"],
            "unaccepted": _flag(operation["unaccepted"]),
        }
        return self._signed(fields, secret, tamper)

    def test_notification(self) -> tuple[dict[str, str], bytes]:
        """What the "Test" button in the wallet's notification settings sends."""
        fields = {
            "notification_type": "p2p-incoming",
            "operation_id": "test-notification",
            "amount": "98.00",
            "withdraw_amount": "100.00",
            "currency": "643",
            "datetime": _iso(self.now()),
            "sender": PAYER_WALLET,
            "codepro": "false",
            "label": "",
            "test_notification": "true",
        }
        return self._signed(fields, None, None)

    def _signed(
        self, fields: dict[str, str], secret: str | None, tamper: Mapping[str, str] | None
    ) -> tuple[dict[str, str], bytes]:
        values = fields | {"notification_secret": secret or self.notification_secret}
        text = "&".join(values[name] for name in SIGNED)
        signed = fields | {"sha1_hash": hashlib.sha1(text.encode()).hexdigest()}
        signed |= dict(tamper or {})
        headers = {"content-type": "application/x-www-form-urlencoded"}
        return headers, urlencode(signed).encode()


def _of_types(operation: Json, types: list[str]) -> bool:
    if not types:
        return True
    incoming = operation["direction"] == "in"
    held = operation["status"] == "in_progress"
    return (
        ("deposition" in types and incoming)
        or ("payment" in types and not incoming)
        or ("incoming-transfers-unaccepted" in types and incoming and held)
    )


def _history_view(operation: Json) -> Json:
    keys = ("operation_id", "status", "datetime", "title", "direction", "label", "type")
    view = {key: operation[key] for key in keys}
    view["amount"] = float(operation["amount"])  # a JSON number, as YooMoney writes it
    return view


def _text(amount: Decimal) -> str:
    return str(amount.quantize(Decimal("0.01")))


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
