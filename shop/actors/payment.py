"""PaymentActor: one per payment; every event about a payment is handled here, in turn.

Keyed by the payment reference (for a Telegram Stars subscription, the first payment's:
its renewals and refunds come here too). Webhook, reconciliation poll and the customer's
"I paid — check" button all end here, one at a time, so they cannot race each other;
across processes the SQL guards in ``store.payments`` decide.

Accepts:
- from the customer's UserActor: :class:`PreCheckout` (-> ``None`` or the text key of
  why not), :class:`StarsPaid`, :class:`StarsRefunded`, :class:`PayFromBalance`,
  :class:`OpenCheckout` (-> the provider's payment URL, or a text key), :class:`CheckNow`;
- from the webhook server: :class:`ProviderEventReceived`;
- from the reconciler: :class:`Reconcile`.

Sends: the customer's one confirmation through the outbox.

Life of a payment: stored ``pending`` before any invoice or provider call names it; a
reported success moves it to ``completed`` with its grant, in one transaction; a refund
moves ``completed`` to ``refunded`` and reverses the grant; no success within 24 h
closes it ``expired`` (a success after that is still honoured: the money was taken).
A provider's amount is checked against the payment: short or another currency is
recorded for an operator and not fulfilled; more is fulfilled and recorded.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import attrs
import trio

from ..app import App
from ..errors import InsufficientBalance
from ..money import decimal_string
from ..payments.base import (
    PaymentRequest,
    ProviderError,
    ProviderEvent,
    ProviderRefused,
    ProviderState,
)
from ..payments.gateways import Gateway
from ..store import checkouts, events, payments
from ..store.batch import Batcher
from ..store.payments import Charge, Grant, PaymentRow
from ..store.subscriptions import SubscriptionRow
from . import notices
from .runtime import Kind

log = logging.getLogger(__name__)

KIND = "payment"
#: After the last scheduled check, how often a provider that did not answer is asked again.
RECHECK_UNANSWERED = dt.timedelta(hours=1)


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


@attrs.frozen
class OpenCheckout:
    customer_id: int


@attrs.frozen
class CheckNow:
    customer_id: int


@attrs.frozen
class Opened:
    """What :class:`OpenCheckout` got: where to pay, or the text key of why not."""

    url: str | None = None
    error: str | None = None


@attrs.frozen
class ProviderEventReceived:
    event_row: int
    event: ProviderEvent
    received: float = attrs.field(factory=trio.current_time)  # trio time of arrival


@attrs.frozen
class Reconcile:
    pass


Marker = Batcher[events.Handled, None]


class PaymentActor:
    def __init__(
        self, app: App, payment_id: str, payment: PaymentRow | None, marker: Marker
    ) -> None:
        self.app = app
        self.id = payment_id
        self.payment = payment  # None: no such payment (a forged or stale reference)
        self._marker = marker

    async def handle(self, message: Any) -> Any:
        match message:
            case PreCheckout():
                return self._pre_checkout(message)
            case StarsPaid():
                return await self._stars_paid(message)
            case StarsRefunded():
                return await self._stars_refunded(message)
            case PayFromBalance():
                return await self._pay_from_balance(message)
            case OpenCheckout():
                return await self._open_checkout(message)
            case CheckNow():
                return await self._check_now(message)
            case ProviderEventReceived():
                return await self._provider_event(message)
            case Reconcile():
                return await self._reconcile()
        raise TypeError(f"PaymentActor cannot handle {type(message).__name__}")

    async def passivate(self) -> None:
        pass  # everything is written while handling

    # -- Telegram Stars ------------------------------------------------------------------

    def _pre_checkout(self, query: PreCheckout) -> str | None:
        """Whether Telegram may charge: answered from memory, well within its 10 s."""
        payment = self._owned_by(query.customer_id, "stars")
        if payment is None:
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
        if paid.currency != payment.currency or paid.amount < payment.amount:
            await self._mismatch(paid.amount, paid.currency)  # pre-checkout would not allow it
            return
        charge = Charge(paid.amount, paid.currency, telegram_charge_id=paid.charge_id)
        if payment.recurring and payment.status != "pending":
            # A renewal of a Stars subscription: a new payment per charge id, granted once.
            grant = await self.app.store.run(
                payments.fulfil_renewal, payment, charge, self.app.clock.now()
            )
            await self._after(grant)
        else:
            await self._paid(charge)

    async def _stars_refunded(self, refunded: StarsRefunded) -> None:
        target = await self.app.store.run(payments.by_charge, refunded.charge_id)
        if target is None or self.id not in (target.id, target.parent_id):
            log.error("refund of unknown charge %s for payment %s", refunded.charge_id, self.id)
            return
        await self._refund(target.id)

    # -- balance ---------------------------------------------------------------------

    async def _pay_from_balance(self, request: PayFromBalance) -> str | None:
        if self._owned_by(request.customer_id, "balance") is None:
            return "pay.error.not_found"
        try:
            grant = await self.app.store.run(
                payments.pay_from_balance, self.id, self.app.clock.now()
            )
        except InsufficientBalance:
            return "pay.error.balance"
        await self._after(grant)
        if grant is None:
            return "pay.error.already_paid" if self._status() == "completed" else "pay.error.stale"
        return None

    # -- external providers ------------------------------------------------------------

    async def _open_checkout(self, request: OpenCheckout) -> Opened:
        """Open the payment at its provider (once: the idempotency key is the payment's)."""
        payment = self.payment
        if payment is None or payment.telegram_id != request.customer_id:
            return Opened(error="pay.error.not_found")
        gateway = self.app.gateways.get(payment.provider)
        if gateway is None or payment.status != "pending":
            return Opened(error="pay.error.stale")
        if payment.checkout_url:
            return Opened(payment.checkout_url)
        public = self.app.config.public_url or ""
        try:
            checkout = await gateway.create(
                PaymentRequest(
                    reference=payment.id,
                    amount=payment.amount,
                    currency=payment.currency,
                    description=payment.title,
                    idempotency_key=payment.idempotency_key,
                    return_url=f"{public}/payments/return",
                    callback_url=f"{public}/webhooks/{gateway.name}",
                    customer_id=payment.telegram_id,
                )
            )
        except ProviderRefused as exc:
            log.error("ALERT: %s refused payment %s: %s", gateway.name, self.id, exc)
            return Opened(error="invoice.failed")
        except ProviderError as exc:
            log.warning("%s unavailable for payment %s: %s", gateway.name, self.id, exc)
            return Opened(error="method.unavailable")
        times = checkouts.check_times(payment.created_at, payment.expires_at)
        await self.app.store.run(
            checkouts.open_checkout, self.id, checkout.provider_payment_id, checkout.url, times[0]
        )
        self.app.checks_due.poke()
        await self._reload()
        return Opened(checkout.url)

    async def _check_now(self, request: CheckNow) -> str:
        """The customer's "I paid — check" button: ask the provider at once."""
        payment = self.payment
        if payment is None or payment.telegram_id != request.customer_id:
            return "pay.error.not_found"
        if payment.status in ("completed", "refunded"):
            return "check.paid"
        if not await self._ask_provider():
            return "check.later"
        return "check.paid" if self._status() == "completed" else "check.pending"

    async def _reconcile(self) -> None:
        """A scheduled check: ask the provider, then book the next one (or close)."""
        payment = self.payment
        if payment is None or payment.status != "pending" or payment.provider_payment_id is None:
            return
        answered = await self._ask_provider()
        payment = self.payment
        if payment is None or payment.status != "pending":
            return
        now = self.app.clock.now()
        times = checkouts.check_times(payment.created_at, payment.expires_at)
        upcoming = next((at for at in times if at > now), None)
        if upcoming is None and not answered:
            # Never closed without the provider's word: the money may have been taken.
            upcoming = now + RECHECK_UNANSWERED
        if upcoming is not None:
            await self.app.store.run(
                checkouts.schedule_check, self.id, payment.checks + 1, upcoming
            )
            self.app.checks_due.poke()  # it may be sooner than the lease the reconciler saw
        else:
            await self.app.store.run(payments.close, self.id, "expired", now)
        await self._reload()

    async def _provider_event(self, received: ProviderEventReceived) -> None:
        event, outcome = received.event, "ignored"
        if self.payment is None:
            outcome = "unknown payment"
            log.warning("%s event %s names no payment of ours", self._provider(), event.event_id)
        elif event.needs_confirmation:
            # Not authenticated by a signature: only the provider's API is believed.
            outcome = "confirmed" if await self._ask_provider() else "unconfirmed"
        else:
            outcome = await self._apply(
                event.state, event.amount, event.currency, event.provider_payment_id
            )
        if outcome in ("fulfilled", "confirmed") and self._status() == "completed":
            self.app.metrics.webhook_confirmed(trio.current_time() - received.received)
        # Marks from many payments go to the database together (see store.batch).
        await self._marker.submit(events.Handled(received.event_row, outcome, self.app.clock.now()))

    async def _ask_provider(self) -> bool:
        """Fetch the provider's view and act on it; False when the provider did not answer."""
        payment = self.payment
        gateway = self._gateway()
        if payment is None or gateway is None or payment.provider_payment_id is None:
            return False
        try:
            status = await gateway.status(payment.provider_payment_id)
        except ProviderError as exc:
            log.warning("cannot check payment %s with %s: %s", self.id, gateway.name, exc)
            return False
        await self._apply(status.state, status.amount, status.currency, status.provider_payment_id)
        return True

    async def _apply(
        self,
        state: ProviderState,
        amount: int | None,
        currency: str | None,
        provider_payment_id: str | None,
    ) -> str:
        """Act on what a provider says about this payment; returns what was done."""
        payment = self.payment
        assert payment is not None
        now = self.app.clock.now()
        if state is ProviderState.PAID:
            paid_amount = payment.amount if amount is None else amount
            paid_currency = currency or payment.currency
            if paid_currency != payment.currency or paid_amount < payment.amount:
                return await self._mismatch(paid_amount, paid_currency)
            if paid_amount > payment.amount:
                await self._problem("overpaid", paid_amount, paid_currency)
            charge = Charge(paid_amount, paid_currency, provider_payment_id=provider_payment_id)
            return "fulfilled" if await self._paid(charge) else "duplicate"
        if state in (ProviderState.CANCELED, ProviderState.EXPIRED):
            closed = await self.app.store.run(payments.close, self.id, state.value, now)
            await self._reload()
            return state.value if closed else "ignored"
        if state is ProviderState.REFUNDED:
            return "refunded" if await self._refund(self.id) else "ignored"
        if state is ProviderState.FAILED:
            log.error("ALERT: %s reports payment %s failed", self._provider(), self.id)
            await self._problem("failed at the provider", amount, currency)
            return "failed"
        return "pending"

    async def _mismatch(self, amount: int, currency: str) -> str:
        payment = self.payment
        assert payment is not None
        log.error(
            "ALERT: payment %s was paid %s %s, expected %s %s: not fulfilled",
            self.id,
            decimal_string(amount, currency) if currency == payment.currency else amount,
            currency,
            decimal_string(payment.amount, payment.currency),
            payment.currency,
        )
        await self._problem("underpaid" if currency == payment.currency else "other currency",
                            amount, currency)  # fmt: skip
        return "mismatch"

    # -- the money ---------------------------------------------------------------------

    async def _paid(self, charge: Charge) -> bool:
        grant = await self.app.store.run(payments.fulfil, self.id, charge, self.app.clock.now())
        await self._after(grant)
        return grant is not None

    async def _refund(self, payment_id: str) -> bool:
        done = await self.app.store.run(payments.refund, payment_id, self.app.clock.now())
        await self._reload()
        if done is not None:
            await self._sync_access(done.payment.telegram_id, done.subscription)
            await notices.refunded(self.app, done)
        return done is not None

    async def _after(self, grant: Grant | None) -> None:
        if grant is None or grant.payment.id != self.id:
            await self._reload()
        else:
            self.payment = grant.payment  # as the fulfilling transaction left it
        if grant is not None:
            log.info("payment %s completed", grant.payment.id, extra={"payment_id": self.id})
            await self._sync_access(grant.payment.telegram_id, grant.subscription)
            await notices.fulfilled(self.app, grant)

    async def _sync_access(self, telegram_id: int, subscription: SubscriptionRow | None) -> None:
        """Make the fulfilment backend match the database (an absolute state: idempotent).

        The money is settled by now; a backend that fails is an operator's problem, not a
        reason to tell the customer their payment failed.
        """
        if subscription is None:
            return
        try:
            if subscription.active(self.app.clock.now()):
                await self.app.fulfilment.apply(
                    telegram_id, subscription.expires_at, subscription.lifetime
                )
            else:
                await self.app.fulfilment.revoke(telegram_id)
        except Exception:
            log.exception(
                "ALERT: access of %s not synced with %s", telegram_id, self.app.fulfilment.name
            )

    async def _problem(self, problem: str, amount: int | None, currency: str | None) -> None:
        await self.app.store.run(checkouts.note_problem, self.id, problem, amount, currency)

    # -- helpers ---------------------------------------------------------------------

    def _owned_by(self, customer_id: int, provider: str) -> PaymentRow | None:
        payment = self.payment
        if payment is None or payment.telegram_id != customer_id or payment.provider != provider:
            return None
        return payment

    def _status(self) -> str | None:
        return self.payment.status if self.payment is not None else None

    def _provider(self) -> str:
        return self.payment.provider if self.payment is not None else "?"

    def _gateway(self) -> Gateway | None:
        return self.app.gateways.get(self.payment.provider) if self.payment else None

    async def _reload(self) -> None:
        self.payment = await self.app.store.run_statement(payments.load, self.id)


def payment_kind(app: App, *, idle_timeout: float = 600.0) -> Kind:
    marker: Marker = Batcher(app.store, events.mark_handled)

    async def activate(payment_id: str) -> PaymentActor:
        payment = await app.store.run_statement(payments.load, payment_id)
        return PaymentActor(app, payment_id, payment, marker)

    return Kind(KIND, activate, idle_timeout=idle_timeout)
