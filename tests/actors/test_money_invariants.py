"""Money invariants under duplicates, races, refunds and restarts (property-based).

Two shops run on one database, as two processes of one bot would, each behind its own
fake Bot API (one Stars account behind both). Hypothesis draws a customer's opening
balance, pending Stars invoices (plans, a package, a Stars subscription), balance
purchases and maybe a card payment (Stripe), and then a sequence of steps: a
``successful_payment`` (the invoice's charge, a second charge for it, a subscription
renewal) or a ``refunded_payment`` (before or after the success), each delivered once or
several times at once to either shop; the confirm button of a balance purchase pressed on
either shop; the card payment's success or refund webhook (one event, delivered to either
shop, again and again); shops restarting. Whether ``refundStarPayment`` works is drawn
too. After the steps, six hours of hourly sweeps.

The expected end is computed from the draw alone by ``tests.money_model`` (never read
back from the database): the exact expiry and balance, each payment's status, charge,
grant, ledger entries and refund shortfall, which charges were refunded with
``refundStarPayment`` and how often it was tried, and every message about money the
customer got. The balance must also equal its ledger and never be negative.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import psycopg
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings

from shop.clock import TrioClock
from shop.store import payments as payment_queries
from shop.store.payments import NewPayment
from shop.store.pool import BusyHook
from tests.conftest import START, hold_clock_while_busy, truncate_all
from tests.customer import Customer
from tests.fakes.providers import FakeStripe
from tests.fakes.providers import stripe as fake_stripe
from tests.fakes.telegram import FakeTelegram
from tests.harness import Shop, fake_telegram, running_shop
from tests.money_model import (
    BASE_DAYS,
    BY_CARD,
    CARD_REFUNDED_FIRST,
    CHARGED_TWICE,
    CURRENCY,
    PRODUCTS,
    PURCHASE,
    RENEWAL_REFUNDED_FIRST,
    RENEWED,
    SHORTFALL,
    Model,
    Row,
    Scenario,
    Step,
    charge_id,
    scenarios,
)
from tests.payments.test_checkout import choose

ANN = 1001
SETTLE = 30.0  # virtual seconds for both shops to finish a step and send what it owes
SWEEPS = dt.timedelta(hours=6, minutes=30)  # enough hourly sweeps for 5 refund tries
LONG_POLL = 86_400  # idle shops hold one long poll through the sweeps, not hundreds
STRIPE_EVENTS = {"card_pay": "checkout.session.completed", "card_refund": "charge.refunded"}


@settings(
    max_examples=int(os.environ.get("SHOP_PROPERTY_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
@example(scenario=SHORTFALL)
@example(scenario=CHARGED_TWICE)
@example(scenario=RENEWED)
@example(scenario=RENEWAL_REFUNDED_FIRST)
@example(scenario=BY_CARD)
@example(scenario=CARD_REFUNDED_FIRST)
def test_money_matches_the_model(
    database_url: str, caplog: pytest.LogCaptureFixture, scenario: Scenario
) -> None:
    steps, model = Model.play(scenario)
    truncate_all(database_url)
    seen = len(caplog.records)
    clock = trio.testing.MockClock(autojump_threshold=0)
    observed = trio.run(play, database_url, scenario, steps, clock, clock=clock)
    # Per example too (the autouse fixture only looks at the end), so hypothesis shrinks it.
    failures = [
        r.getMessage()
        for r in caplog.records[seen:]
        if r.name == "shop.actors.runtime" and r.levelno >= logging.ERROR
    ]
    assert not failures, failures
    check(database_url, observed, model)


@attrs.frozen
class Observed:
    ids: dict[str, str]  # payment id -> model key, for the payments made before the steps
    messages: Counter[str]
    refund_calls: dict[str, int]  # refundStarPayment calls per charge
    refunded: set[str]  # the charges the fake Bot API refunded


async def play(
    database_url: str, scenario: Scenario, steps: list[Step], mock: trio.testing.MockClock
) -> Observed:
    calendar = TrioClock.starting_at(START)
    async with (
        fake_telegram(calendar, long_poll_max=LONG_POLL) as one,
        fake_telegram(calendar, bot_id=777000222, long_poll_max=LONG_POLL) as two,
        open_stripe(calendar, scenario.card) as stripe,
        trio.open_nursery() as nursery,
    ):
        one_stars_account(one[0], two[0])
        hold = hold_clock_while_busy(mock)  # one hook: it counts the busy stores of both
        run = Run(database_url, scenario, nursery, hold, calendar, (one, two), stripe)
        await run.open()
        for step in steps:
            await run.play(step)
        # The hourly sweeps: duplicate refunds retried, Stars transactions read again.
        await trio.sleep(SWEEPS.total_seconds())
        for n in (0, 1):
            await run.stop(n)
    return run.observed()


@attrs.define
class Run:
    """Two shops of one bot on one database, played through a scenario's steps."""

    database_url: str
    scenario: Scenario
    nursery: trio.Nursery
    hold: BusyHook | None
    calendar: TrioClock
    telegrams: tuple[tuple[FakeTelegram, str], tuple[FakeTelegram, str]]
    stripe: FakeStripe | None
    shops: list[Shop] = attrs.Factory(list)
    stops: list[trio.Event] = attrs.Factory(lambda: [trio.Event(), trio.Event()])
    ended: list[trio.Event] = attrs.Factory(lambda: [trio.Event(), trio.Event()])
    keys: dict[str, str] = attrs.Factory(dict)  # model key -> payment id
    menus: list[int] = attrs.Factory(list)  # a message with buttons, per fake Bot API
    stripe_events: dict[str, bytes] = attrs.Factory(dict)  # one event per kind, redelivered

    async def open(self) -> None:
        """Both shops started, the customer and the payments stored, the card opened."""
        self.shops = [await self.nursery.start(self._keep, n) for n in (0, 1)]
        self.keys = await self.shops[0].app.store.run(set_up, self.scenario)
        if self.scenario.refunds_fail:
            for telegram, _ in self.telegrams:
                telegram.fail("refundStarPayment", status=400, times=1_000_000)
        for shop in self.shops:
            shop.telegram.send_text(ANN, "/start")
        await trio.sleep(SETTLE)
        self.menus = [shop.telegram.messages(ANN)[-1]["message_id"] for shop in self.shops]
        if self.stripe is not None:
            self.keys["card"], _ = await choose(Customer(self.shops[0], ANN), "stripe")
            # Only the webhooks speak for Stripe: a reconciliation poll in between would
            # make the order of success and refund (and so the outcome) a matter of luck.
            self.stripe.outage()

    async def play(self, step: Step) -> None:
        if step.op == "restart":
            for n in sorted(set(step.shops)):
                await self.stop(n)
                self.stops[n], self.ended[n] = trio.Event(), trio.Event()
                self.shops[n] = await self.nursery.start(self._keep, n)
            return
        if step.op in STRIPE_EVENTS:
            await self._webhooks(step)
        for n in step.shops:
            if step.op == "confirm":
                reference = self.keys[f"purchase-{step.target}"]
                self.shops[n].telegram.press(ANN, f"conf:{reference}", message_id=self.menus[n])
            elif step.op in ("pay", "refund"):
                self._stars_update(self.shops[n].telegram, step)
        await trio.sleep(SETTLE)

    async def stop(self, n: int) -> None:
        self.stops[n].set()
        await self.ended[n].wait()

    async def _keep(self, n: int, task_status: trio.TaskStatus[Shop]) -> None:
        """One shop process: runs until its stop event, in a task of its own."""
        environ = {}
        if self.stripe is not None:
            environ = {
                "PUBLIC_URL": "https://shop.example",
                "STRIPE_SECRET_KEY": fake_stripe.SECRET_KEY,
                "STRIPE_WEBHOOK_SECRET": fake_stripe.WEBHOOK_SECRET,
                "STRIPE_API_URL": self.stripe.base_url,
            }
        try:
            async with running_shop(
                self.database_url,
                environ,
                telegram=self.telegrams[n],
                clock=self.calendar,
                on_busy=self.hold,
                poll_timeout=LONG_POLL,
            ) as shop:
                task_status.started(shop)
                await self.stops[n].wait()
        finally:
            self.ended[n].set()

    def _stars_update(self, telegram: FakeTelegram, step: Step) -> None:
        invoice = self.scenario.invoices[step.target]
        payload = self.keys[f"invoice-{step.target}"]
        amount, charge = PRODUCTS[invoice.product].price, charge_id(step.target, step.charge)
        if step.op == "refund":
            telegram.refunded_payment(ANN, payload=payload, total_amount=amount, charge_id=charge)
            return
        recurring = invoice.recurring or None  # as Telegram marks a subscription's charges
        telegram.successful_payment(
            ANN, payload=payload, total_amount=amount, charge_id=charge,
            is_recurring=recurring, is_first_recurring=recurring and step.charge == "a",
        )  # fmt: skip

    async def _webhooks(self, step: Step) -> None:
        """Stripe's event about the card payment, delivered to each shop named at once."""
        stripe = self.stripe
        assert stripe is not None
        session = next(iter(stripe.sessions))
        if stripe.sessions[session]["payment_status"] != "paid":
            stripe.pay(session)
        charge = stripe.charges[stripe.sessions[session]["payment_intent"]]
        if step.op == "card_refund" and not charge["refunded"]:
            stripe.refund(session)
        kind = STRIPE_EVENTS[step.op]
        if kind not in self.stripe_events:
            self.stripe_events[kind] = stripe.event_for(session, kind)
        body = self.stripe_events[kind]
        answers = []

        async def deliver(shop: Shop) -> None:
            headers = {"content-type": "application/json", "stripe-signature": stripe.sign(body)}
            async with httpx.AsyncClient(base_url=shop.url) as http:
                answer = await http.post("/webhooks/stripe", content=body, headers=headers)
            answers.append(answer.status_code)

        async with trio.open_nursery() as nursery:
            for n in step.shops:
                nursery.start_soon(deliver, self.shops[n])
        assert answers == [200] * len(step.shops)

    def observed(self) -> Observed:
        calls = [call for telegram, _ in self.telegrams for call in telegram.calls]
        refund_calls = Counter(
            c.params["telegram_payment_charge_id"] for c in calls if c.method == "refundStarPayment"
        )
        texts = [
            c.params.get("text", "") for c in calls if c.method == "sendMessage" and c.status == 200
        ]
        return Observed(
            {payment_id: key for key, payment_id in self.keys.items()},
            Counter(filter(None, map(money_message, texts))),
            dict(refund_calls),
            set(self.telegrams[0][0].refunded),
        )


@asynccontextmanager
async def open_stripe(calendar: TrioClock, wanted: bool) -> AsyncIterator[FakeStripe | None]:
    if not wanted:
        yield None
        return
    stripe = FakeStripe(clock=calendar)
    async with trio.open_nursery() as nursery:
        await nursery.start(stripe.serve)
        yield stripe
        nursery.cancel_scope.cancel()


def one_stars_account(one: FakeTelegram, two: FakeTelegram) -> None:
    """Both fakes are one bot: the same Stars charges, transactions and refunds.

    Telegram keeps one Stars account per bot, whichever process calls it; without this the
    shop that did not see a charge would get CHARGE_NOT_FOUND refunding it, and the two
    processes' ``getStarTransactions`` (one stored cursor) would read different lists.
    """
    two._charges = one._charges  # there is no public way to share them
    two.star_transactions = one.star_transactions
    two.refunded = one.refunded


def money_message(text: str) -> str | None:
    """What a message to the customer was about, if it was about money."""
    if "Payment received" in text:
        return "paid"
    if text.startswith("↩️ Refund of"):
        return "refunded"
    if "charged twice" in text:
        return "dup_refunded" if "refunded to you" in text else "dup_credited"
    return None


def set_up(conn: Any, scenario: Scenario) -> dict[str, str]:
    """A customer with a long subscription, the balance drawn, and the pending payments
    (by model key)."""
    conn.execute(
        "INSERT INTO customers (telegram_id, first_seen, last_seen, trial_used)"
        " VALUES (%s, %s, %s, TRUE)",
        (ANN, START, START),
    )
    conn.execute(
        "INSERT INTO subscriptions (telegram_id, status, expires_at, started_at, updated_at)"
        " VALUES (%s, 'active', %s, %s, %s)",
        (ANN, START + dt.timedelta(days=BASE_DAYS), START, START),
    )
    if scenario.opening_balance:
        conn.execute(
            "INSERT INTO ledger (telegram_id, currency, delta, reason, created_at)"
            " VALUES (%s, %s, %s, 'adjustment', %s)",
            (ANN, CURRENCY, scenario.opening_balance, START),
        )
    conn.execute(
        "INSERT INTO balances (telegram_id, currency, amount) VALUES (%s, %s, %s)",
        (ANN, CURRENCY, scenario.opening_balance),
    )
    news = {}
    for i, invoice in enumerate(scenario.invoices):
        p = PRODUCTS[invoice.product]
        credit = {CURRENCY: p.credit} if p.credit else {}
        news[f"invoice-{i}"] = NewPayment(
            ANN, "stars", p.kind, invoice.product, invoice.product, p.days, credit, p.price,
            CURRENCY, recurring=invoice.recurring,
        )  # fmt: skip
    for j in range(scenario.purchases):
        news[f"purchase-{j}"] = NewPayment(
            ANN, "balance", "plan", "m1", "m1", PURCHASE.days, {}, PURCHASE.price, CURRENCY
        )
    day = dt.timedelta(days=1)
    return {key: payment_queries.create(conn, new, START, day).id for key, new in news.items()}


def query(database_url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(sql.encode(), params).fetchall()


def stored_rows(database_url: str, ids: dict[str, str]) -> dict[str, Row]:
    """Every payment row as the model describes one, keyed like the model's."""
    rows = query(
        database_url,
        "SELECT p.id, p.parent_id, p.status, p.telegram_payment_charge_id, p.problem,"
        " p.problem_amount, count(g.payment_id), count(g.reversed_at),"
        " (SELECT COALESCE(sum(delta), 0) FROM ledger l WHERE l.payment_id = p.id)"
        " FROM payments p LEFT JOIN grants g ON g.payment_id = p.id GROUP BY p.id",
    )
    stored: dict[str, Row] = {}
    for payment_id, parent, status, charge, problem, amount, grants, reversed_, ledger in rows:
        key = ids.get(payment_id) or charge or payment_id  # a row the model has no key for
        assert key not in stored, (key, status)
        if key.endswith("-b"):  # a duplicate charge is a problem of its own (not a refund's)
            problem = amount = None
        stored[key] = Row(
            parent=ids.get(parent), status=status, charge=charge, grants=grants,
            reversed=bool(reversed_), problem=problem, problem_amount=amount, ledger=ledger,
        )  # fmt: skip
    return stored


def check(database_url: str, observed: Observed, model: Model) -> None:
    assert stored_rows(database_url, observed.ids) == model.rows()
    ((expiry, status),) = query(database_url, "SELECT expires_at, status FROM subscriptions")
    assert (expiry, status) == (START + dt.timedelta(days=BASE_DAYS + model.days), "active")
    ((amount,),) = query(database_url, "SELECT amount FROM balances")
    ((ledger_sum, lowest),) = query(
        database_url,
        "SELECT COALESCE(sum(delta), 0), COALESCE(min(running), 0) FROM"
        " (SELECT delta, sum(delta) OVER (ORDER BY id) AS running FROM ledger) AS history",
    )
    assert lowest >= 0  # never negative, at any point of the ledger's history
    assert amount == ledger_sum == model.balance
    assert observed.messages == +model.messages
    assert observed.refunded == model.star_refunds
    assert observed.refund_calls == model.refund_calls()
    ((events,),) = query(database_url, "SELECT count(*) FROM provider_events")
    assert events == len(model.card_events)
