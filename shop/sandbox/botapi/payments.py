"""Payments in the fake Telegram Bot API server: invoices, pre-checkout and Telegram Stars.

The user's side comes from builders (``pre_checkout``, ``successful_payment``,
``refunded_payment``, ``charge_silently``); the bot's from sendInvoice, createInvoiceLink,
answerPreCheckoutQuery, refundStarPayment, getStarTransactions and
editUserStarSubscription. A refund sends no ``refunded_payment`` update by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import ApiError, Json
from .params import _bool, _chat_id, _int, _invoice, _required, _to_int32, _user_id
from .server import _now


class PaymentsMixin:
    """Invoices and the bot's Telegram Stars account, for ``FakeTelegram``.

    Attributes that tests may read: ``invoice_links`` (link -> createInvoiceLink params),
    ``refunded`` (charge ids), ``subscriptions`` (charge id -> is_canceled) and
    ``star_transactions`` (oldest first, as ``getStarTransactions`` returns them).
    """

    pre_checkout_timeout: float  # set by FakeTelegram

    if TYPE_CHECKING:  # given by FakeTelegram
        _serial: Iterator[int]
        _queries: dict[str, dict[str, float]]

        def _user(self, user_id: int) -> Json: ...
        def _date(self) -> int: ...
        def _user_message(self, user_id: int, **content: Any) -> Json: ...
        def _answer(self, kind: str, query_id: object) -> bool: ...
        def _store(self, chat_id: int, content: Json, params: Json) -> Json: ...
        def add_update(self, update: Json) -> int: ...

    def _reset_payments(self) -> None:
        self.invoice_links: dict[str, Json] = {}
        self.refunded: set[str] = set()
        self.star_transactions: list[Json] = []
        self._charges: dict[str, Json] = {}  # charge id -> its incoming StarTransaction
        self.subscriptions: dict[str, bool] = {}

    def pre_checkout(
        self, user_id: int, *, payload: str, total_amount: int, currency: str = "XTR"
    ) -> int:
        """The user confirms an invoice; the bot must answer within ``pre_checkout_timeout``."""
        query_id = str(9_000_000_000_000_000 + next(self._serial))
        self._queries["pre_checkout"][query_id] = _now() + self.pre_checkout_timeout
        query: Json = {"id": query_id, "from": self._user(user_id), "currency": currency}
        query |= {"total_amount": total_amount, "invoice_payload": payload}
        return self.add_update({"pre_checkout_query": query})

    def successful_payment(
        self,
        user_id: int,
        *,
        payload: str,
        total_amount: int,
        currency: str = "XTR",
        charge_id: str,
        is_recurring: bool | None = None,
        is_first_recurring: bool | None = None,
        subscription_expiration_date: int | None = None,
    ) -> int:
        """The service message Telegram sends after charging the user.

        A payment in Stars is also recorded as the bot's incoming transaction (once per
        charge id, so a redelivered update adds none); a recurring one has a 30-day period.
        """
        if currency == "XTR" and charge_id not in self._charges:
            period = 2592000 if is_recurring else None
            self.charge_silently(
                user_id,
                payload=payload,
                total_amount=total_amount,
                charge_id=charge_id,
                subscription_period=period,
            )
        payment = {"currency": currency, "total_amount": total_amount, "invoice_payload": payload}
        payment |= {"telegram_payment_charge_id": charge_id, "provider_payment_charge_id": ""}
        optional = {
            "subscription_expiration_date": subscription_expiration_date,
            "is_recurring": is_recurring,
            "is_first_recurring": is_first_recurring,
        }
        payment |= {k: v for k, v in optional.items() if v is not None}
        return self.add_update({"message": self._user_message(user_id, successful_payment=payment)})

    def charge_silently(
        self,
        user_id: int,
        *,
        payload: str,
        total_amount: int,
        charge_id: str,
        subscription_period: int | None = None,
    ) -> Json:
        """Telegram charges the user in Stars but the bot never gets ``successful_payment``.

        Only the transaction is recorded (and returned), as when the update expired after
        24 h undelivered; ``getStarTransactions`` is then the only trace of the payment.
        """
        if charge_id in self._charges:
            raise ValueError(f"charge {charge_id} is already recorded")
        source: Json = {"type": "user", "transaction_type": "invoice_payment"}
        source |= {"user": self._user(user_id), "invoice_payload": payload}
        if subscription_period is not None:
            source["subscription_period"] = subscription_period
        transaction = {"id": charge_id, "amount": total_amount, "date": self._date()}
        transaction["source"] = source
        self._charges[charge_id] = transaction
        self.star_transactions.append(transaction)
        return transaction

    def share_stars(self, other: PaymentsMixin) -> None:
        """Make ``other`` keep its Stars charges, transactions and refunds in this fake's.

        For one bot served by two fakes (two shop processes): Telegram keeps one Stars
        account per bot, whichever process calls it. Undone by ``other.reset()``.
        """
        other._charges = self._charges
        other.star_transactions = self.star_transactions
        other.refunded = self.refunded

    def refunded_payment(
        self,
        user_id: int,
        *,
        payload: str,
        total_amount: int,
        charge_id: str,
        currency: str = "XTR",
    ) -> int:
        """The service message about a refund (not sent by ``refundStarPayment`` itself)."""
        refund = {"currency": currency, "total_amount": total_amount, "invoice_payload": payload}
        refund["telegram_payment_charge_id"] = charge_id
        return self.add_update({"message": self._user_message(user_id, refunded_payment=refund)})

    # Bot API methods (FakeTelegram._handlers lists them all)

    async def _answer_pre_checkout_query(self, params: Json) -> bool:
        if "ok" not in params:
            raise ApiError(400, "Bad Request: ok is empty")
        if not _bool(params, "ok") and not params.get("error_message"):
            raise ApiError(400, "Bad Request: error_message is empty")
        return self._answer("pre_checkout", params.get("pre_checkout_query_id"))

    async def _send_invoice(self, params: Json) -> Json:
        chat_id, invoice = _chat_id(params), _invoice(params)
        return self._store(chat_id, {"invoice": invoice}, params)

    async def _create_invoice_link(self, params: Json) -> str:
        invoice = _invoice(params)
        period = params.get("subscription_period")
        if period is not None and (int(period) != 2592000 or invoice["currency"] != "XTR"):
            raise ApiError(400, "Bad Request: SUBSCRIPTION_PERIOD_INVALID")
        link = f"https://t.me/$inv_{next(self._serial)}"
        self.invoice_links[link] = params
        return link

    async def _refund_star_payment(self, params: Json) -> bool:
        # Telegram documents CHARGE_ALREADY_REFUNDED for payments.refundStarsCharge; for a
        # charge it does not know, or one of another user, the server's CHARGE_NOT_FOUND.
        user_id = _user_id(params)
        charge_id = params.get("telegram_payment_charge_id")
        if charge_id in (None, ""):
            raise ApiError(400, 'Bad Request: parameter "telegram_payment_charge_id" is required')
        charge = self._charges.get(str(charge_id))
        if charge is None or charge["source"]["user"]["id"] != user_id:
            raise ApiError(400, "Bad Request: CHARGE_NOT_FOUND")
        if charge["id"] in self.refunded:
            raise ApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")
        self.refunded.add(charge["id"])
        # The refund is an outgoing transaction with the id and partner of the original.
        refund = {"id": charge["id"], "amount": charge["amount"], "date": self._date()}
        self.star_transactions.append(refund | {"receiver": dict(charge["source"])})
        return True

    async def _get_star_transactions(self, params: Json) -> Json:
        # Client::get_integer_arg clamps rather than refusing: limit 1..100, offset >= 0.
        offset = max(_to_int32(params.get("offset"), 0), 0)
        limit = min(max(_to_int32(params.get("limit"), 100), 1), 100)
        return {"transactions": self.star_transactions[offset : offset + limit]}

    async def _edit_user_star_subscription(self, params: Json) -> bool:
        _int(params, "user_id")
        charge_id = _required(params, "telegram_payment_charge_id")
        _required(params, "is_canceled")
        self.subscriptions[charge_id] = _bool(params, "is_canceled")
        return True
