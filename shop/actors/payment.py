"""PaymentActor: one per payment; every event about a payment is handled here, in turn.

Keyed by the payment reference (for a Telegram Stars subscription, the first payment's
reference: its renewals and refunds all come here too).

Accepts, from the customer's UserActor:
- :class:`PreCheckout` -> ``None`` (go ahead) or the text key of why not;
- :class:`StarsPaid` -> fulfils (or, for a subscription renewal, grants once per charge);
- :class:`StarsRefunded` -> refunds the payment that charge paid for;
- :class:`PayFromBalance` -> debits the balance and grants, or says why not.

Sends: the confirmation to the customer, once, through the outbox.

Life of a payment: stored ``pending`` before any invoice names it; a success moves it to
``completed`` together with its grant in one transaction (``store.payments.fulfil``);
a refund moves ``completed`` to ``refunded`` and reverses the grant. Duplicates find the
payment no longer in the state they need and change nothing, here and in SQL, so the
same holds across processes.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs

from ..app import App
from ..errors import InsufficientBalance
from ..store import payments
from ..store.payments import Charge, Grant, PaymentRow
from . import notices
from .runtime import Kind

log = logging.getLogger(__name__)

KIND = "payment"


@attrs.frozen
class PreCheckout:
    customer_id: int
    amount: int
    currency: str


@attrs.frozen
class StarsPaid:
    customer_id: int
    charge_id: str
    amount: int
    currency: str
    recurring: bool = False


@attrs.frozen
class StarsRefunded:
    customer_id: int
    charge_id: str


@attrs.frozen
class PayFromBalance:
    customer_id: int


class PaymentActor:
    def __init__(self, app: App, payment_id: str, payment: PaymentRow | None) -> None:
        self.app = app
        self.id = payment_id
        self.payment = payment  # None: no such payment (a forged or stale reference)

    async def handle(self, message: Any) -> Any:
        if isinstance(message, PreCheckout):
            return self._pre_checkout(message)
        if isinstance(message, StarsPaid):
            return await self._stars_paid(message)
        if isinstance(message, StarsRefunded):
            return await self._stars_refunded(message)
        if isinstance(message, PayFromBalance):
            return await self._pay_from_balance(message)
        raise TypeError(f"PaymentActor cannot handle {type(message).__name__}")

    async def passivate(self) -> None:
        pass  # everything is written while handling

    # -- Telegram Stars ------------------------------------------------------------------

    def _pre_checkout(self, query: PreCheckout) -> str | None:
        """Whether Telegram may charge: answered within 10 s, from what is in memory."""
        payment = self.payment
        if payment is None or payment.telegram_id != query.customer_id:
            return "pay.error.not_found"
        if payment.provider != "stars":
            return "pay.error.not_found"
        if payment.status != "pending":
            return "pay.error.already_paid" if payment.status == "completed" else "pay.error.stale"
        if payment.expires_at <= self.app.clock.now():
            return "pay.error.stale"
        if (query.amount, query.currency) != (payment.amount, payment.currency):
            return "pay.error.amount"
        return None

    async def _stars_paid(self, paid: StarsPaid) -> None:
        payment = self.payment
        if payment is None:
            log.error(
                "ALERT: Telegram charged %s %s (charge %s) for unknown payment %s;"
                " refund it or grant by hand",
                paid.amount,
                paid.currency,
                paid.charge_id,
                self.id,
            )
            return
        if (paid.amount, paid.currency) != (payment.amount, payment.currency):
            log.error(
                "ALERT: payment %s was paid %s %s, expected %s %s; not fulfilled",
                self.id,
                paid.amount,
                paid.currency,
                payment.amount,
                payment.currency,
            )
            return
        charge = Charge(paid.amount, paid.currency, telegram_charge_id=paid.charge_id)
        now = self.app.clock.now()
        if payment.recurring and payment.status != "pending":
            # A renewal of a Stars subscription: a new payment per charge id.
            grant = await self.app.store.run(payments.fulfil_renewal, payment, charge, now)
        else:
            grant = await self.app.store.run(payments.fulfil, self.id, charge, now)
        await self._reload()
        if grant is not None:
            await self._confirm(grant)

    async def _stars_refunded(self, refunded: StarsRefunded) -> None:
        target = await self.app.store.run(payments.by_charge, refunded.charge_id)
        if target is None or (target.id != self.id and target.parent_id != self.id):
            log.error("refund of unknown charge %s for payment %s", refunded.charge_id, self.id)
            return
        done = await self.app.store.run(payments.refund, target.id, self.app.clock.now())
        await self._reload()
        if done is not None:
            await notices.refunded(self.app, done)

    # -- balance ---------------------------------------------------------------------

    async def _pay_from_balance(self, request: PayFromBalance) -> str | None:
        payment = self.payment
        if payment is None or payment.telegram_id != request.customer_id:
            return "pay.error.not_found"
        if payment.provider != "balance":
            return "pay.error.not_found"
        try:
            grant = await self.app.store.run(
                payments.pay_from_balance, self.id, self.app.clock.now()
            )
        except InsufficientBalance:
            return "pay.error.balance"
        await self._reload()
        if grant is None:
            return "pay.error.already_paid" if self._status() == "completed" else "pay.error.stale"
        await self._confirm(grant)
        return None

    # -- helpers ---------------------------------------------------------------------

    def _status(self) -> str | None:
        return self.payment.status if self.payment is not None else None

    async def _reload(self) -> None:
        self.payment = await self.app.store.run(payments.load, self.id)

    async def _confirm(self, grant: Grant) -> None:
        log.info("payment %s completed", grant.payment.id, extra={"payment_id": grant.payment.id})
        await notices.fulfilled(self.app, grant)


def payment_kind(app: App, *, idle_timeout: float = 600.0) -> Kind:
    async def activate(payment_id: str) -> PaymentActor:
        return PaymentActor(app, payment_id, await app.store.run(payments.load, payment_id))

    return Kind(KIND, activate, idle_timeout=idle_timeout)
