"""What a customer's money and access must be after a scenario: the model that
``tests/actors/test_money_invariants.py`` checks the shops against.

The model never reads the database. It walks the steps hypothesis drew, in order, and
applies the payment rules (``shop/actors/payment.py``) to plain numbers: the days granted
on top of the opening subscription, the balance, each payment's end state, and the
messages the customer must get. A step the rules say nothing about is dropped here, so
the shops never see it: the test only sends what the model can judge.

Charges are named per invoice: ``a`` is the charge the invoice was made for, ``b`` a
second charge for the same invoice (Telegram charged twice), ``r1`` and ``r2`` renewals
of a Stars subscription. A scenario may also hold one card payment through a provider
(Stripe), whose success and refund come as webhooks.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import attrs
from hypothesis import strategies as st

#: The customer's opening subscription ends this many days after the start, so that no
#: refund can shorten it down to "now" (the model does not know the second it is handled).
BASE_DAYS = 1000
CURRENCY = "XTR"
#: A duplicate charge's refundStarPayment is tried this often before it is credited.
REFUND_TRIES = 5


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
#: What the card payment buys: the one-month plan (the catalog's, in USD cents).
CARD = Product("plan", 30, 349, 0)


@attrs.frozen
class Invoice:
    """A pending Telegram Stars payment, created before the scenario starts."""

    product: str
    recurring: bool = False  # a Stars subscription (only "m1": a 30-day period)


@attrs.frozen
class Step:
    """One event, delivered ``len(shops)`` times at once (each copy to the shop named)."""

    op: Literal["pay", "refund", "confirm", "restart", "card_pay", "card_refund"]
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
    card: bool = False  # a pending card payment (Stripe), opened before the steps


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


Kind = Literal["invoice", "renewal", "duplicate", "purchase", "card"]


@attrs.define
class _Payment:
    kind: Kind
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
    card_events: set[str] = attrs.Factory(set)  # the provider's events: each stored once

    @classmethod
    def play(cls, scenario: Scenario) -> tuple[list[Step], Model]:
        """The steps the rules cover, and the model after them and the sweeps."""
        model = cls.start(scenario)
        kept = [step for step in scenario.steps if model.apply(step)]
        model.settle()
        return kept, model

    @classmethod
    def start(cls, scenario: Scenario) -> Model:
        model = cls(scenario.refunds_fail, scenario.opening_balance)
        for i, invoice in enumerate(scenario.invoices):
            product = PRODUCTS[invoice.product]
            model.payments[f"invoice-{i}"] = _Payment("invoice", product, None, invoice.recurring)
        for j in range(scenario.purchases):
            model.payments[f"purchase-{j}"] = _Payment("purchase", PURCHASE)
        if scenario.card:
            model.payments["card"] = _Payment("card", CARD)
        return model

    def apply(self, step: Step) -> bool:
        """Play one step; False if the rules do not cover it (the test leaves it out)."""
        if step.op == "confirm":
            self._confirm(self.payments[f"purchase-{step.target}"])
        elif step.op == "card_pay":  # the provider's success, however often and wherever
            self.card_events.add(step.op)
            if self.payments["card"].status == "pending":
                self._complete(self.payments["card"], None)
        elif step.op == "card_refund":  # the provider's refund: before or after, it wins
            self.card_events.add(step.op)
            self._refund(self.payments["card"], None)
        elif step.op == "pay":
            return self._stars_paid(step.target, step.charge)
        elif step.op == "refund":
            return self._stars_refunded(step.target, step.charge)
        return True

    def _stars_paid(self, target: int, label: str) -> bool:
        key, charge = f"invoice-{target}", charge_id(target, label)
        invoice = self.payments[key]
        if label == "a":
            if invoice.status == "pending":  # else this charge is known: nothing
                self._complete(invoice, charge)
            return True
        if (label == "b") == invoice.recurring:
            return False  # no second charges of a subscription, no renewals of an invoice
        if invoice.status == "pending":
            return False  # a second charge or a renewal before the first: not in the rules
        if charge in self.payments:
            return True  # known: granted, recorded as a duplicate, or refunded first
        if label == "b":
            self._duplicate(key, invoice, charge)
            return True
        if invoice.status != "completed":
            return False  # a renewal of a subscription refunded: not in the rules
        renewal = self.payments[charge] = _Payment("renewal", invoice.product, key)
        self._complete(renewal, charge)
        return True

    def _stars_refunded(self, target: int, label: str) -> bool:
        key, charge = f"invoice-{target}", charge_id(target, label)
        invoice = self.payments[key]
        if label == "a":
            self._refund(invoice, charge)
            return True
        if (label == "b") == invoice.recurring:
            return False
        known = self.payments.get(charge)
        if known is None:
            if invoice.charge is None:
                return False  # the shop would take it for the invoice's own refund
            # The refund overtook this charge's success: stored refunded, nothing granted,
            # the invoice untouched; its success, if it comes, grants nothing.
            kind: Kind = "duplicate" if label == "b" else "renewal"
            known = self.payments[charge] = _Payment(kind, invoice.product, key)
        if known.status == "duplicate":  # Telegram refunded it (or told us it did)
            known.status = "refunded"
            self.messages["dup_refunded"] += 1
        else:
            self._refund(known, charge)
        return True

    def settle(self) -> None:
        """The hourly sweeps: a duplicate whose refund kept failing goes to the balance."""
        for payment in self.payments.values():
            if payment.status == "duplicate":
                assert self.refunds_fail
                payment.status = "credited"
                payment.refund_tries = REFUND_TRIES
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

    def _refund(self, payment: _Payment, charge: str | None) -> None:
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


# -- scenarios always played -----------------------------------------------------------


def _steps(*steps: tuple[str, int, str, tuple[int, ...]]) -> tuple[Step, ...]:
    return tuple(Step(*step) for step in steps)  # type: ignore[arg-type]


# Whatever hypothesis draws besides (S: a package, R: a subscription, C: a card payment):
SHORTFALL = Scenario(  # S paid; most of its credit spent; S refunded (on both shops at once)
    150, (Invoice("p100"),), 1,
    _steps(("pay", 0, "a", (0, 1)), ("confirm", 0, "a", (1, 0, 1)), ("refund", 0, "a", (0, 1))),
    refunds_fail=False,
)  # fmt: skip
CHARGED_TWICE = Scenario(  # refundStarPayment failing: credited after 5 tries, or refunded
    0, (Invoice("m3"), Invoice("p100"), Invoice("m1")), 0,  # by Telegram (before the success)
    _steps(
        ("pay", 0, "a", (0, 1, 0)), ("pay", 0, "b", (1, 1)), ("restart", 0, "a", (0, 1)),
        ("pay", 0, "a", (1,)), ("pay", 1, "a", (0,)), ("pay", 1, "b", (1, 0)),
        ("refund", 1, "b", (0,)), ("pay", 2, "a", (1,)), ("refund", 2, "b", (0, 1)),
        ("pay", 2, "b", (1, 0)),
    ),
    refunds_fail=True,
)  # fmt: skip
RENEWED = Scenario(  # a refund overtakes a success, then a charge; R renewed and refunded
    600, (Invoice("m1", recurring=True), Invoice("m1")), 1,
    _steps(
        ("refund", 1, "a", (1,)), ("pay", 0, "a", (0, 1)), ("pay", 1, "a", (0, 1)),
        ("pay", 0, "r1", (1, 0)), ("restart", 0, "a", (1,)), ("refund", 0, "r1", (0,)),
        ("confirm", 0, "a", (0, 1, 1)), ("pay", 0, "r2", (1,)), ("refund", 0, "a", (1, 0)),
        ("pay", 1, "b", (0,)),
    ),
    refunds_fail=False,
)  # fmt: skip
BY_CARD = Scenario(  # C paid (a webhook delivered 3 times), refunded, paid again (late)
    0, (Invoice("m1"),), 0,
    _steps(
        ("card_pay", 0, "a", (0, 1, 1)), ("pay", 0, "a", (1,)), ("restart", 0, "a", (0,)),
        ("card_refund", 0, "a", (1, 0)), ("card_pay", 0, "a", (0,)),
    ),
    refunds_fail=False, card=True,
)  # fmt: skip
CARD_REFUNDED_FIRST = Scenario(  # C's refund overtakes its success
    0, (Invoice("m1"),), 0,
    _steps(("card_refund", 0, "a", (1,)), ("card_pay", 0, "a", (0, 1))),
    refunds_fail=False, card=True,
)  # fmt: skip
RENEWAL_REFUNDED_FIRST = Scenario(  # the refund of a renewal overtakes the renewal
    0, (Invoice("m1", recurring=True),), 0,
    _steps(("pay", 0, "a", (0,)), ("refund", 0, "r1", (1,)), ("pay", 0, "r1", (0,))),
    refunds_fail=False,
)  # fmt: skip


# -- drawing scenarios -------------------------------------------------------------------


def _chance(percent: int) -> st.SearchStrategy[bool]:
    """True this often; shrinks towards False (towards the event not happening)."""
    return st.integers(0, 99).map(lambda n: n >= 100 - percent)


@st.composite
def _events(draw: st.DrawFn, kind: Literal["stars", "subscription", "card"]) -> list[Step]:
    """What happens to one payment, in order (``target`` and ``shops`` are filled later)."""
    pay, refund = ("card_pay", "card_refund") if kind == "card" else ("pay", "refund")
    events = []
    if draw(_chance(20)):
        events.append((refund, "a"))  # the refund overtakes the success
    if draw(_chance(90)):
        events.append((pay, "a"))
    if kind == "subscription":
        for label in ("r1", "r2")[: draw(st.integers(0, 2))]:
            when = draw(st.sampled_from(["never", "after", "before"]))
            events += [(refund, label)] if when == "before" else []
            events.append((pay, label))
            events += [(refund, label)] if when == "after" else []
    elif kind == "stars" and draw(_chance(40)):  # Telegram charged twice; refunded, maybe
        when = draw(st.sampled_from(["never", "after", "before"]))
        events += [(refund, "b")] if when == "before" else []
        events.append((pay, "b"))
        events += [(refund, "b")] if when == "after" else []
    if draw(_chance(35)):
        events.append((refund, "a"))
    if draw(_chance(30)):
        events.append((pay, "a"))  # a late redelivery
    return [Step(op, 0, label, ()) for op, label in events]  # type: ignore[arg-type]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Per payment, a life in order; the lives, presses and restarts interleaved."""
    invoices = draw(
        st.lists(
            st.sampled_from(
                [
                    Invoice("m1"),
                    Invoice("m3"),
                    Invoice("p100"),
                    Invoice("p100"),
                    Invoice("m1", True),
                ]
            ),
            min_size=1,
            max_size=3,
        )
    )
    queues = [
        [attrs.evolve(step, target=i) for step in draw(_events("subscription"))]
        if invoice.recurring
        else [attrs.evolve(step, target=i) for step in draw(_events("stars"))]
        for i, invoice in enumerate(invoices)
    ]
    purchases = draw(st.integers(0, 2))
    queues += [[Step("confirm", j, "a", ())] * draw(st.integers(1, 2)) for j in range(purchases)]
    card = draw(_chance(40))
    queues.append(draw(_events("card")) if card else [])
    queues.append([Step("restart", 0, "a", ())] * draw(st.integers(0, 2)))
    steps = []
    while live := [queue for queue in queues if queue]:
        step = live[draw(st.integers(0, len(live) - 1))].pop(0)
        copies = draw(st.lists(st.integers(0, 1), min_size=1, max_size=3))
        steps.append(attrs.evolve(step, shops=tuple(copies)))
    return Scenario(
        opening_balance=draw(st.sampled_from([0, 150, 400, 600])),
        invoices=tuple(invoices),
        purchases=purchases,
        steps=tuple(steps),
        refunds_fail=draw(st.booleans()),
        card=card,
    )
