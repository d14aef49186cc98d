"""YooMoney (ЮMoney): payments into a personal wallet through a Quickpay form.

Nothing is created at YooMoney: the payment page is a Quickpay link
(``https://yoomoney.ru/quickpay/confirm?receiver=…&quickpay-form=button&sum=…&label=…``)
that carries our reference as ``label``. YooMoney then POSTs an HTTP notification
(``application/x-www-form-urlencoded``) signed with the wallet's notification secret::

    sha1_hash = hex SHA-1 of "notification_type&operation_id&amount&currency&datetime&
                              sender&codepro&notification_secret&label"

``amount`` is what reached the wallet after YooMoney's commission; ``withdraw_amount``
is what the payer paid, and is the amount checked against the price. ``codepro=true``
or ``unaccepted=true`` means the money is not in the wallet yet: not paid.

Status checks need an OAuth token with the ``operation-history`` right
(``YOOMONEY_TOKEN``). Without one :meth:`YooMoney.status` answers "pending" without a
call, so a payment waits for its notification: reconciliation neither fails nor trips the
breaker, and the payment expires as usual if none comes (a late one is still honoured).

operation-history only shows what reached the wallet, after the commission. So the
provider payment id is ``"{label}:{price in kopecks}"``, and a payment found there
counts as the full price when what arrived covers the price less
:data:`MAX_COMMISSION`; less than that is reported as it is, and the shop records an
underpayment. YooMoney has no refund API for incoming transfers.

Sources: yoomoney.ru/docs/wallet/using-api/notification-p2p-incoming,
yoomoney.ru/docs/wallet/user-account/operation-history, yoomoney.ru/docs/payment-buttons,
and the typed SDK ``AlexXanderGrib/yoomoney-sdk`` (``src/notifications.ts``,
``src/api.types.ts``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal
from urllib.parse import parse_qsl, urlencode

import httpx

from ..money import MoneyError, to_minor
from ._http import RETRYABLE_4XX, Fields, decimal_text, equal_digests, error_text
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
    WebhookRejected,
)

QUICKPAY_URL = "https://yoomoney.ru/quickpay/confirm"
#: The fields the notification hash covers, in order; the secret goes where it is named.
SIGNED_FIELDS = (
    "notification_type",
    "operation_id",
    "amount",
    "currency",
    "datetime",
    "sender",
    "codepro",
    "notification_secret",
    "label",
)
#: Notifications name the wallet's currency by its ISO 4217 number; it is always roubles.
CURRENCY_CODES = {"643": "RUB"}
#: The most YooMoney takes from an incoming card payment (3%; 1% from a wallet). Only
#: payments found by operation-history, which shows the amount after it, rely on this.
MAX_COMMISSION = Decimal("0.03")
#: How a payer pays on the Quickpay page: ``AC`` bank card (anyone), ``PC`` a wallet.
PAYMENT_TYPE = "AC"
#: Incoming transfers: a wallet (``p2p-incoming``) or a card (``card-incoming``).
INCOMING = frozenset({"p2p-incoming", "card-incoming"})


class YooMoney:
    """The YooMoney wallet provider. Creating is building a link, so it is repeatable."""

    name = "yoomoney"
    idempotent_create = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        wallet: str,
        notification_secret: str,
        token: str | None = None,
        api_url: str = "https://yoomoney.ru/api",
    ) -> None:
        self._http = http
        self._wallet = wallet
        self._secret = notification_secret
        self._token = token
        self._api_url = api_url.rstrip("/")

    async def create(self, request: PaymentRequest) -> Checkout:
        if request.currency != "RUB":
            raise ProviderRefused(self.name, f"a wallet takes roubles, not {request.currency}")
        form = {
            "receiver": self._wallet,
            "quickpay-form": "button",
            "sum": decimal_text(request.amount, request.currency),
            "label": request.reference,
            "paymentType": PAYMENT_TYPE,
            "successURL": request.return_url,
        }
        url = f"{QUICKPAY_URL}?{urlencode(form)}"
        return Checkout(f"{request.reference}:{request.amount}", url)

    async def status(self, provider_payment_id: str) -> ProviderStatus:
        label, price = _split_payment_id(provider_payment_id)
        pending = ProviderStatus(provider_payment_id, ProviderState.PENDING, label, None, None)
        if self._token is None:
            return pending  # nothing to ask: the notification decides (module docstring)
        history = await self._history(label)
        credited = [
            _credited(operation)
            for operation in history.items("operations")
            if operation.optional_text("direction") == "in"
            and operation.optional_text("label") == label
            and operation.optional_text("status") == "success"
        ]
        if not credited:
            return pending  # in_progress (held) and refused transfers are not money yet
        arrived = max(credited)
        paid = price if arrived >= _least_credited(price) else arrived
        return ProviderStatus(provider_payment_id, ProviderState.PAID, label, paid, "RUB")

    async def refund(
        self, provider_payment_id: str, amount: int, currency: str, idempotency_key: str
    ) -> None:
        raise ProviderRefused(
            self.name, "YooMoney has no refunds for incoming transfers: send the money back"
        )

    def verify(self, headers: Headers, body: bytes, peer: str) -> None:
        """Check ``sha1_hash`` over the documented fields and our secret (401).

        The hash is inside the body, so a body that is not a form cannot be checked at
        all: :class:`MalformedWebhook` (400), as at Heleket.
        """
        form = _form(body)
        given = form.get("sha1_hash")
        if not given:
            raise WebhookRejected("yoomoney: no sha1_hash")
        if any(name not in form for name in SIGNED_FIELDS if name != "notification_secret"):
            raise WebhookRejected("yoomoney: a signed field is missing")
        if not equal_digests(notification_hash(form, self._secret), given):
            raise WebhookRejected("yoomoney: sha1_hash does not match")

    def parse(self, body: bytes) -> ProviderEvent:
        """An incoming-transfer notification; ``operation_id`` is the event id.

        A transfer held back (``codepro`` or ``unaccepted``) gets the id
        ``"{operation_id}:held"``, so that the notification YooMoney sends once it is
        credited is not taken for a duplicate of it.
        """
        form = _form(body)
        notification = Fields(form, _malformed)
        operation_id = notification.text("operation_id")
        code = notification.text("currency")
        currency = CURRENCY_CODES.get(code) or notification.currency_code("currency")
        held = form.get("codepro") == "true" or form.get("unaccepted") == "true"
        paid = (
            form.get("notification_type") in INCOMING
            and not held
            and form.get("test_notification") != "true"  # the "Test" button in settings
        )
        return ProviderEvent(
            event_id=f"{operation_id}:held" if held else operation_id,
            reference=form.get("label") or None,
            provider_payment_id=operation_id,
            state=ProviderState.PAID if paid else ProviderState.PENDING,
            amount=_paid_amount(notification, currency),
            currency=currency,
        )

    async def _history(self, label: str) -> Fields:
        """``POST {api}/operation-history`` for the incoming operations with ``label``."""
        assert self._token is not None
        form = {"type": "deposition", "label": label, "records": "100"}
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            response = await self._http.post(
                f"{self._api_url}/operation-history", data=form, headers=headers
            )
        except httpx.HTTPError as error:
            # The exception text can name the request: only its class is kept.
            raise ProviderUnavailable(self.name, f"no answer ({type(error).__name__})") from None
        status = response.status_code
        if not 200 <= status < 300:
            message = f"HTTP {status}: {error_text(response.content) or response.reason_phrase}"
            if 400 <= status < 500 and status not in RETRYABLE_4XX:
                raise ProviderRefused(self.name, message)  # a bad token, a missing right
            raise ProviderUnavailable(self.name, message)
        try:
            answer = json.loads(response.content, parse_float=Decimal)
        except (ValueError, RecursionError):
            raise ProviderUnavailable(self.name, "the answer is not JSON") from None
        if not isinstance(answer, dict):
            raise ProviderUnavailable(self.name, "the answer is not a JSON object")
        if answer.get("error"):  # method errors come with HTTP 200
            raise ProviderRefused(self.name, f"operation-history: {answer['error']}")
        return Fields(answer, lambda message: ProviderUnavailable(self.name, message))


def notification_hash(form: Mapping[str, str], secret: str) -> str:
    """The ``sha1_hash`` YooMoney computes for a notification."""
    values = {**form, "notification_secret": secret}
    signed = "&".join(values.get(name, "") for name in SIGNED_FIELDS)
    return hashlib.sha1(signed.encode()).hexdigest()


def _form(body: bytes) -> dict[str, str]:
    """The notification's fields; a repeated field is refused rather than guessed at."""
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise MalformedWebhook("yoomoney: the body is not a form") from None
    form = dict(pairs)
    if len(form) != len(pairs):
        raise MalformedWebhook("yoomoney: a field is repeated")
    return form


def _malformed(message: str) -> Exception:
    return MalformedWebhook(f"yoomoney: {message}")


def _paid_amount(notification: Fields, currency: str) -> int | None:
    """What the payer paid, in kopecks: ``withdraw_amount``, or when it is absent the
    signed ``amount`` (after the commission, so never more than was paid)."""
    if currency != "RUB":
        notification.decimal("amount")  # still a number; no minor unit to express it in
        return None
    key = "withdraw_amount" if notification.data.get("withdraw_amount") else "amount"
    return notification.minor(key, currency)


def _split_payment_id(provider_payment_id: str) -> tuple[str, int]:
    label, _, price = provider_payment_id.rpartition(":")
    if not label or not price.isascii() or not price.isdigit():
        raise ProviderRefused("yoomoney", f"{provider_payment_id!r} is not a YooMoney payment")
    return label, int(price)


def _credited(operation: Fields) -> int:
    value = operation.data.get("amount")
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise operation.error("amount is missing or not a number")
    try:
        return to_minor(value, "RUB")
    except MoneyError as error:
        raise operation.error(f"amount: {error}") from None


def _least_credited(price: int) -> int:
    """The least that reaches the wallet when the payer paid ``price`` kopecks."""
    commission = (Decimal(price) * MAX_COMMISSION).to_integral_value(rounding=ROUND_CEILING)
    return price - int(commission)
