"""What a customer's money and access must be after a scenario: the model that
``tests/actors/test_money_invariants.py`` checks the shops against.

The model never reads the database. It walks the steps hypothesis drew, in order, and
applies the payment rules (``shop/actors/payment.py``) to plain numbers: the days granted
on top of the opening subscription, the balance, each payment's end state, and the
messages the customer must get. A step the rules say nothing about is dropped here, so
the shops never see it: the test only sends what the model can judge.

Charges are named per invoice: ``a`` is the charge the invoice was made for, ``b`` a
second charge for the same invoice (Telegram charged twice), ``r1`` and ``r2`` renewals
of a Stars subscription.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import attrs

#: The customer's opening subscription ends this many days after the start, so that no
#: refund can shorten it down to "now" (the model does not know the second it is handled).
BASE_DAYS = 1000
CURRENCY = "XTR"


@attrs.frozen
class Product:
    kind: Literal["plan", "package"]
    days: int
    price: int  # Stars
    credit: int  # Stars added to the balance (packages)


PRODUCTS = {
    "m1": Product("plan", 30, 250, 0),
    "m3": Product("plan", 90, 650, 0),
    "p100": Product("package", 0, 100, 110),
}
#: What a balance purchase buys: the one-month plan, paid from the balance.
PURCHASE = PRODUCTS["m1"]


@attrs.frozen
class Invoice:
    """A pending Telegram Stars payment, created before the scenario starts."""

    product: str
    recurring: bool = False  # a Stars subscription (only "m1": a 30-day period)


@attrs.frozen
class Step:
    """One event, delivered ``len(shops)`` times at once (each copy to the shop named)."""

    op: Literal["pay", "refund", "confirm", "restart"]
    target: int  # which invoice (pay, refund) or balance purchase (confirm)
    charge: Literal["a", "b", "r1", "r2"]
    shops: tuple[int, ...]


@attrs.frozen
class Scenario:
    opening_balance: int
    invoices: tuple[Invoice, ...]
    purchases: int  # pending balance purchases of PURCHASE
    steps: tuple[Step, ...]
    refunds_fail: bool  # refundStarPayment fails every time it is called


def charge_id(invoice: int, label: str) -> str:
    return f"charge-{invoice}-{label}"


@attrs.frozen
class Row:
    """What one payment row must be at the end (``problem``: a refund's shortfall only)."""

    parent: str | None  # the row key of the invoice a renewal or duplicate belongs to
    status: str
    charge: str | None
    grants: int  # grant rows: 0 or 1
    reversed: bool  # its grant was taken back
    problem: str | None
    problem_amount: int | None
    ledger: int  # the sum of the ledger entries that name this payment


@attrs.define
class _Payment:
    kind: Literal["invoice", "renewal", "duplicate", "purchase"]
    product: Product
    parent: str | None = None
    recurring: bool = False
    status: str = "pending"
    charge: str | None = None
    granted: bool = False
    reversed: bool = False
    shortfall: int = 0
    ledger: int = 0
    refund_tries: int = 0  # refundStarPayment calls for a duplicate charge


@attrs.define
class Model:
    """The scenario's expected state, advanced one step at a time with :meth:`apply`."""

    refunds_fail: bool
    balance: int
    days: int = 0  # granted and not taken back, on top of BASE_DAYS
    payments: dict[str, _Payment] = attrs.Factory(dict)
    messages: Counter[str] = attrs.Factory(Counter)
    star_refunds: set[str] = attrs.Factory(set)  # charges refunded with refundStarPayment

    @classmethod
    def start(cls, scenario: Scenario) -> Model:
        model = cls(scenario.refunds_fail, scenario.opening_balance)
        for i, invoice in enumerate(scenario.invoices):
            product = PRODUCTS[invoice.product]
            model.payments[f"invoice-{i}"] = _Payment("invoice", product, None, invoice.recurring)
        for j in range(scenario.purchases):
            model.payments[f"purchase-{j}"] = _Payment("purchase", PURCHASE)
        return model

    def apply(self, step: Step) -> bool:
        """Play one step; False if the rules do not cover it (the test leaves it out)."""
        if step.op == "restart":
            return True
        if step.op == "confirm":
            self._confirm(self.payments[f"purchase-{step.target}"])
            return True
        key = f"invoice-{step.target}"
        invoice = self.payments[key]
        recurring = invoice.recurring
        charge = charge_id(step.target, step.charge)
        if step.op == "pay":
            if step.charge == "a":
                if invoice.status == "pending":  # else this charge is known: nothing
                    self._complete(invoice, charge)
                return True
            if step.charge == "b":
                # A second charge, after the first was settled (for a plain invoice).
                if invoice.status == "pending" or recurring:
                    return False
                if charge not in self.payments:
                    self._duplicate(key, invoice, charge)
                return True
            if not recurring:
                return False
            if charge in self.payments:
                return True  # this renewal is known (granted, or refunded first)
            if invoice.status != "completed":
                return False  # a renewal of a subscription not running: not in the rules
            renewal = self.payments[charge] = _Payment("renewal", invoice.product, key)
            self._complete(renewal, charge)
            return True
        # A refund of the charge named.
        if step.charge == "a":
            self._refund(invoice, charge)
            return True
        if step.charge == "b":
            duplicate = self.payments.get(charge)
            if duplicate is None:
                return False  # a double charge refunded before it was reported: not in the rules
            if duplicate.status == "duplicate":  # refunded by Telegram: told once
                duplicate.status = "refunded"
                self.messages["dup_refunded"] += 1
            return True
        if not recurring:
            return False
        renewal = self.payments.get(charge)
        if renewal is None:
            if invoice.status != "completed":
                return False
            # The refund overtook the renewal's success: that renewal ends refunded, with
            # nothing granted; the subscription it renews is not touched.
            renewal = self.payments[charge] = _Payment("renewal", invoice.product, key)
        self._refund(renewal, charge)
        return True

    def settle(self) -> None:
        """The hourly sweeps: a duplicate whose refund kept failing goes to the balance."""
        for payment in self.payments.values():
            if payment.status == "duplicate":
                assert self.refunds_fail
                payment.status = "credited"
                payment.refund_tries = 5
                payment.ledger += payment.product.price
                self.balance += payment.product.price
                self.messages["dup_credited"] += 1

    def rows(self) -> dict[str, Row]:
        """The payment rows the database must hold, by key (see :func:`Model.start`)."""
        return {
            key: Row(
                parent=p.parent,
                status=p.status,
                charge=p.charge,
                grants=int(p.granted),
                reversed=p.reversed,
                problem="refund shortfall" if p.shortfall else None,
                problem_amount=p.shortfall or None,
                ledger=p.ledger,
            )
            for key, p in self.payments.items()
        }

    def refund_calls(self) -> dict[str, int]:
        """How many times refundStarPayment must have been called, per charge."""
        return {
            p.charge: p.refund_tries for p in self.payments.values() if p.refund_tries and p.charge
        }

    # -- the rules -----------------------------------------------------------------------

    def _complete(self, payment: _Payment, charge: str | None) -> None:
        payment.status, payment.charge, payment.granted = "completed", charge, True
        self.days += payment.product.days
        payment.ledger += payment.product.credit
        self.balance += payment.product.credit
        self.messages["paid"] += 1

    def _refund(self, payment: _Payment, charge: str) -> None:
        if payment.status == "refunded":
            return  # told already; nothing left to take back
        if payment.status == "completed":
            payment.reversed = True
            self.days -= payment.product.days
            taken = min(self.balance, payment.product.credit)
            self.balance -= taken
            payment.ledger -= taken
            payment.shortfall = payment.product.credit - taken
        payment.status = "refunded"
        payment.charge = payment.charge or charge
        self.messages["refunded"] += 1

    def _duplicate(self, key: str, invoice: _Payment, charge: str) -> None:
        duplicate = self.payments[charge] = _Payment("duplicate", invoice.product, key)
        duplicate.status, duplicate.charge, duplicate.refund_tries = "duplicate", charge, 1
        if not self.refunds_fail:
            duplicate.status = "refunded"
            self.star_refunds.add(charge)
            self.messages["dup_refunded"] += 1

    def _confirm(self, purchase: _Payment) -> None:
        if purchase.status != "pending" or self.balance < purchase.product.price:
            return  # paid already (once), or refused: the balance is short
        purchase.status, purchase.granted = "completed", True
        self.days += purchase.product.days
        self.balance -= purchase.product.price
        purchase.ledger -= purchase.product.price
        self.messages["paid"] += 1
        assert self.balance >= 0
