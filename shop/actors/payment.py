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
- from the reconciler: :class:`Reconcile`;
- from the hourly sweep: :class:`RetryRefund` (a duplicate charge's refund), and
  :class:`StarsPaid` / :class:`StarsRefunded` found in ``getStarTransactions``;
- from an operator (``shop.admin``): :class:`OperatorRefund` (-> :class:`Refunded`).

Sends: the customer's notices (confirmation, refund, duplicate charge), owed in the
transaction that moves the money and delivered by the courier; ``refundStarPayment``.

Life of a payment::

    pending ──success──> completed ──refund──> refunded
       │  └─short / other currency─> problem ──success──> completed
       ├─refund (overtook the success)──> refunded     (nothing granted, ever)
       └─no success in 24 h─> expired | canceled ──late success──> completed

Stored ``pending`` before any invoice or provider call names it; a success moves it to
``completed`` with its grant and its confirmation, in one transaction. A refund wins in
every state: from ``completed`` it reverses the grant (a balance credit already spent is
recorded as a problem and alerted); before the success it leaves nothing to grant. A
second Telegram Stars charge for one invoice becomes a ``duplicate`` payment of its own,
refunded with ``refundStarPayment`` at once or by the hourly sweep, and after
``stars.REFUND_TRIES`` failures ``credited`` to the customer's balance. A provider's
amount is checked: short or another currency ends ``problem`` (alerted once); more is
fulfilled and recorded.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import attrs
import trio

from ..app import App
from ..errors import BadRequest, InsufficientBalance, TelegramError
from ..money import decimal_string
from ..payments.base import (
    PaymentRequest,
    ProviderError,
    ProviderEvent,
    ProviderRefused,
    ProviderState,
)
from ..payments.gateways import Gateway
from ..store import checkouts, events, payments, refunds, stars
from ..store.batch import Batcher
from ..store.notices import Notice
from ..store.payments import PAYABLE, Charge, Grant, PaymentRow
from ..telegram.outbox import Lane
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


@attrs.frozen
class RetryRefund:
    """The sweep: try again to refund this duplicate charge."""


@attrs.frozen
class OperatorRefund:
    """An operator gives the money of ``payment_id`` back: this payment, or one of its
    renewals (a Stars subscription's charges are all handled by its first payment's actor)."""

    payment_id: str


@attrs.frozen
class Refunded:
    """What :class:`OperatorRefund` did: ``done``, and a sentence for the operator."""

    done: bool
    message: str


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
            case RetryRefund():
                return await self._retry_refund()
            case OperatorRefund():
                return await self._operator_refund(message)
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
        if payment.telegram_payment_charge_id == paid.charge_id:
            return  # this very charge is known: a replayed update, or the sweep's second look
        if paid.currency != payment.currency or paid.amount < payment.amount:
            await self._mismatch(paid.amount, paid.currency)  # pre-checkout would not allow it
            return
        charge = Charge(paid.amount, paid.currency, telegram_charge_id=paid.charge_id)
        if payment.recurring and payment.status == "completed":
            # A renewal of a Stars subscription: a new payment per charge id, granted once.
            grant = await self.app.store.run(
                payments.fulfil_renewal, payment, charge, self.app.clock.now(), self.app.instance
            )
            await self._after(grant)
            return
        if payment.status in PAYABLE and await self._paid(charge):
            return
        # Not payable (completed with another charge, refunded...), or another instance
        # completed it a moment ago: unless that was this charge, it was charged twice.
        if self._charge_id() != paid.charge_id:
            await self._duplicate(paid)

    async def _stars_refunded(self, refunded: StarsRefunded) -> None:
        target = await self.app.store.run(payments.by_charge, refunded.charge_id)
        if target is None and self.payment is not None:
            if self._charge_id() is None:
                # The refund overtook the success: this payment, with the charge noted.
                await self._refund(self.id, refunded.charge_id)
            else:  # another charge of this invoice (a renewal, a second charge) unseen
                notice = await self.app.store.run(
                    stars.record_refunded_charge,
                    self.id,
                    refunded.charge_id,
                    self._now(),
                    self._holder(),
                )
                await self._deliver(notice)
            return
        if target is None or self.id not in (target.id, target.parent_id):
            log.error("refund of unknown charge %s for payment %s", refunded.charge_id, self.id)
            return
        if target.status == "duplicate":  # refunded by hand, or our refund's receipt
            await self._deliver(
                await self.app.store.run(stars.refunded, target.id, self._now(), self._holder())
            )
            return
        await self._refund(target.id)

    async def _duplicate(self, paid: StarsPaid) -> None:
        """A second charge for this invoice: store it, alert, and give the Stars back."""
        duplicate = await self.app.store.run(
            stars.record_duplicate, self.id, paid.charge_id, paid.amount, self._now()
        )
        if duplicate is None:
            return  # recorded before (a replayed update)
        self.app.metrics.payment_reached(duplicate.provider, "duplicate")
        log.error(
            "ALERT: payment %s charged twice (charge %s, %s %s); refunding the second charge",
            self.id,
            paid.charge_id,
            paid.amount,
            paid.currency,
            extra={"payment_id": self.id, "telegram_id": paid.customer_id},
        )
        await self._refund_duplicate(duplicate)

    async def _retry_refund(self) -> None:
        if self.payment is not None and self.payment.status == "duplicate":
            await self._refund_duplicate(self.payment)

    async def _refund_duplicate(self, duplicate: PaymentRow) -> None:
        """One try of ``refundStarPayment``; after the last failed try, credit the balance."""
        params = {
            "user_id": duplicate.telegram_id,
            "telegram_payment_charge_id": duplicate.telegram_payment_charge_id,
        }
        try:
            await self.app.outbox.request("refundStarPayment", params, lane=Lane.ANSWER)
            done = True
        except BadRequest as exc:
            done = "CHARGE_ALREADY_REFUNDED" in exc.description
            failure = exc.description
        except TelegramError as exc:
            done, failure = False, str(exc)
        if done:
            notice = await self.app.store.run(
                stars.refunded, duplicate.id, self._now(), self._holder()
            )
            await self._deliver(notice)
            return
        tries = await self.app.store.run(stars.refund_failed, duplicate.id)
        if tries < stars.REFUND_TRIES:
            log.warning("refund of duplicate %s failed (%s); retried hourly", duplicate.id, failure)
            return
        notice = await self.app.store.run(stars.credit, duplicate.id, self._now(), self._holder())
        if notice is not None:
            log.error(
                "ALERT: duplicate charge %s could not be refunded (%s); %s %s credited to %s",
                duplicate.telegram_payment_charge_id,
                failure,
                duplicate.amount,
                duplicate.currency,
                duplicate.telegram_id,
            )
        await self._deliver(notice)

    # -- operators ---------------------------------------------------------------------

    async def _operator_refund(self, request: OperatorRefund) -> Refunded:
        """Give a completed payment's money back where it came from, then reverse what it
        granted (``store.refunds``), as a refund reported by the provider would. The money
        moves first: if the provider refuses, nothing here changes."""
        target = self.payment
        if request.payment_id != self.id:
            target = await self.app.store.run_statement(payments.load, request.payment_id)
            if target is not None and target.parent_id != self.id:
                target = None
        if target is None:
            return Refunded(False, "No such payment.")
        if target.status != "completed":
            return Refunded(False, f"The payment is {target.status}: there is nothing to refund.")
        failure = await self._give_back(target)
        if failure is not None:
            return Refunded(False, failure)
        if not await self._refund(target.id):  # a refund reported meanwhile did it
            return Refunded(True, "The money went back; the payment was already refunded.")
        return Refunded(True, "Refunded: the money went back and the grant was reversed.")

    async def _give_back(self, payment: PaymentRow) -> str | None:
        """Return the money at its source; None when done, else why not."""
        if payment.provider == "balance":
            return None  # store.refunds credits the balance back in its transaction
        if payment.provider == "stars":
            params = {
                "user_id": payment.telegram_id,
                "telegram_payment_charge_id": payment.telegram_payment_charge_id,
            }
            try:
                await self.app.outbox.request("refundStarPayment", params, lane=Lane.ANSWER)
            except BadRequest as exc:
                if "CHARGE_ALREADY_REFUNDED" not in exc.description:
                    return f"Telegram refused the refund: {exc.description}"
            except TelegramError as exc:
                return f"Telegram did not answer ({exc}); try again later."
            return None
        gateway = self.app.gateways.get(payment.provider)
        if gateway is None or payment.provider_payment_id is None:
            return f"{payment.provider} is not configured here: refund it in its dashboard."
        try:
            await gateway.refund(
                payment.provider_payment_id,
                payment.amount,
                payment.currency,
                f"{payment.idempotency_key}:refund",
            )
        except ProviderRefused as exc:
            return f"{exc} (refund it in the {payment.provider} dashboard)"
        except ProviderError as exc:
            return f"{exc}; try again later."
        return None

    # -- balance ---------------------------------------------------------------------

    async def _pay_from_balance(self, request: PayFromBalance) -> str | None:
        if self._owned_by(request.customer_id, "balance") is None:
            return "pay.error.not_found"
        try:
            grant = await self.app.store.run(
                payments.pay_from_balance, self.id, self._now(), self._holder()
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
                    expires_at=payment.expires_at,  # the provider closes it when we do
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
            paid_currency = currency or payment.currency
            if paid_currency != payment.currency:
                # A currency the shop may not even know the minor unit of: no amount is
                # recorded rather than our price under its name.
                return await self._mismatch(amount, paid_currency)
            paid_amount = payment.amount if amount is None else amount
            if paid_amount < payment.amount:
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

    async def _mismatch(self, amount: int | None, currency: str) -> str:
        """Paid short or in another currency: the payment ends ``problem``, alerted once."""
        payment = self.payment
        assert payment is not None
        problem = "underpaid" if currency == payment.currency else "other currency"
        marked = await self.app.store.run(
            refunds.mark_problem, self.id, problem, amount, currency, self._now()
        )
        await self._reload()
        if marked:
            self.app.metrics.payment_reached(payment.provider, "problem")
            log.error(
                "ALERT: payment %s was paid %s %s, expected %s %s: not fulfilled",
                self.id,
                decimal_string(amount, currency)
                if amount is not None and currency == payment.currency
                else amount,
                currency,
                decimal_string(payment.amount, payment.currency),
                payment.currency,
                extra={"payment_id": self.id, "telegram_id": payment.telegram_id},
            )
        return "mismatch"

    # -- the money ---------------------------------------------------------------------

    async def _paid(self, charge: Charge) -> bool:
        grant = await self.app.store.run(
            payments.fulfil, self.id, charge, self._now(), self._holder(), self.app.catalog.referral
        )
        await self._after(grant)
        return grant is not None

    async def _refund(self, payment_id: str, charge_id: str | None = None) -> bool:
        done = await self.app.store.run(
            refunds.refund, payment_id, self._now(), self._holder(), charge_id
        )
        await self._reload()
        if done is None:
            return False
        if done.shortfall:
            log.error(
                "ALERT: refund of payment %s took back less than it credited (%s missing:"
                " already spent)",
                payment_id,
                ", ".join(f"{amount} {currency}" for currency, amount in done.shortfall.items()),
                extra={"payment_id": payment_id, "telegram_id": done.payment.telegram_id},
            )
        self.app.metrics.payment_reached(done.payment.provider, "refunded")
        if done.reversed:
            self.app.fulfilment_due.poke()  # the queue row was written with the refund
        await self._deliver(done.notice)
        return True

    async def _after(self, grant: Grant | None) -> None:
        if grant is None or grant.payment.id != self.id:
            await self._reload()
        else:
            self.payment = grant.payment  # as the fulfilling transaction left it
        if grant is not None:
            log.info("payment %s completed", grant.payment.id, extra={"payment_id": self.id})
            self.app.metrics.payment_reached(grant.payment.provider, "completed")
            self.app.fulfilment_due.poke()  # the queue row was written with the grant
            await self._deliver(grant.notice)
            for notice in grant.more:  # a referral's reward
                await self._deliver(notice)

    async def _deliver(self, notice: Notice | None) -> None:
        """Hand a notice this transaction owed to the courier (None: owed before)."""
        if notice is not None:
            await self.app.courier.deliver([notice], Lane.INTERACTIVE)

    async def _problem(self, problem: str, amount: int | None, currency: str | None) -> None:
        await self.app.store.run(
            refunds.note_problem, self.id, problem, amount, currency, self._now()
        )

    # -- helpers ---------------------------------------------------------------------

    def _owned_by(self, customer_id: int, provider: str) -> PaymentRow | None:
        payment = self.payment
        if payment is None or payment.telegram_id != customer_id or payment.provider != provider:
            return None
        return payment

    def _now(self) -> dt.datetime:
        return self.app.clock.now()

    def _holder(self) -> int:
        """Who holds the notices this actor owes: this running shop."""
        return self.app.instance

    def _charge_id(self) -> str | None:
        return self.payment.telegram_payment_charge_id if self.payment is not None else None

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
