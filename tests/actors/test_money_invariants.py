"""Money invariants under duplicates, races, refunds and restarts (property-based).

Two shops run on one database, as two processes of one bot would, each behind its own
fake Bot API (one Stars account behind both). Hypothesis draws a customer's opening
balance, pending Stars invoices (plans, a package, a Stars subscription) and balance
purchases, and then a sequence of steps: a ``successful_payment`` (the invoice's charge,
a second charge for it, a subscription renewal) or a ``refunded_payment`` (before or
after the success), each delivered once or several times at once to either shop; the
confirm button of a balance purchase pressed on either shop; shops restarting. Whether
``refundStarPayment`` works is drawn too. After the steps, six hours of hourly sweeps.

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
from typing import Any

import attrs
import psycopg
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shop.clock import TrioClock
from shop.store import payments as payment_queries
from shop.store.payments import NewPayment
from tests.conftest import START, hold_clock_while_busy, truncate_all
from tests.fakes.telegram import FakeTelegram
from tests.harness import Shop, fake_telegram, running_shop
from tests.money_model import (
    BASE_DAYS,
    CURRENCY,
    PRODUCTS,
    PURCHASE,
    Invoice,
    Model,
    Row,
    Scenario,
    Step,
    charge_id,
)

ANN = 1001
SETTLE = 30.0  # virtual seconds for both shops to finish a step and send what it owes
SWEEPS = dt.timedelta(hours=6, minutes=30)  # enough hourly sweeps for 5 refund tries
LONG_POLL = 86_400  # idle shops hold one long poll through the sweeps, not hundreds

shops = st.integers(0, 1)
steps = st.builds(
    Step,
    op=st.sampled_from(["pay", "pay", "pay", "refund", "refund", "confirm", "restart"]),
    target=st.integers(0, 2),
    charge=st.sampled_from(["a", "a", "b", "r1", "r2"]),
    shops=st.lists(shops, min_size=1, max_size=3).map(tuple),
)
scenarios = st.builds(
    Scenario,
    opening_balance=st.sampled_from([0, 90, 300, 600]),
    invoices=st.lists(
        st.one_of(
            st.builds(Invoice, product=st.sampled_from(sorted(PRODUCTS))),
            st.just(Invoice("m1", recurring=True)),
        ),
        min_size=1,
        max_size=3,
    ).map(tuple),
    purchases=st.integers(0, 2),
    steps=st.lists(steps, min_size=1, max_size=12).map(tuple),
    refunds_fail=st.booleans(),
)


def played(scenario: Scenario) -> tuple[list[Step], Model]:
    """The steps the rules cover (targets wrapped into range), and the model after them."""
    model = Model.start(scenario)
    kept = []
    for step in scenario.steps:
        count = len(scenario.invoices) if step.op in ("pay", "refund") else scenario.purchases
        if step.op == "confirm" and not count:
            continue
        step = attrs.evolve(step, target=step.target % count) if count else step
        if model.apply(step):
            kept.append(step)
    model.settle()
    return kept, model


@settings(
    max_examples=int(os.environ.get("SHOP_PROPERTY_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios)
def test_money_matches_the_model(
    database_url: str, caplog: pytest.LogCaptureFixture, scenario: Scenario
) -> None:
    steps, model = played(scenario)
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
    hold = hold_clock_while_busy(mock)
    calendar = TrioClock.starting_at(START)
    async with (
        fake_telegram(calendar, long_poll_max=LONG_POLL) as one,
        fake_telegram(calendar, bot_id=777000222, long_poll_max=LONG_POLL) as two,
        trio.open_nursery() as nursery,
    ):
        one_stars_account(one[0], two[0])
        telegrams = (one, two)
        if scenario.refunds_fail:
            for telegram, _ in telegrams:
                telegram.fail("refundStarPayment", status=400, times=1_000_000)
        stops = [trio.Event(), trio.Event()]
        ended = [trio.Event(), trio.Event()]

        async def keep(n: int, task_status: trio.TaskStatus[Shop]) -> None:
            """One shop process: runs until its stop event, in a task of its own."""
            try:
                async with running_shop(
                    database_url,
                    telegram=telegrams[n],
                    clock=calendar,
                    on_busy=hold,
                    poll_timeout=LONG_POLL,
                ) as shop:
                    task_status.started(shop)
                    await stops[n].wait()
            finally:
                ended[n].set()

        async def restart(n: int) -> Shop:
            stops[n].set()
            await ended[n].wait()
            stops[n], ended[n] = trio.Event(), trio.Event()
            return await nursery.start(keep, n)

        running = [await nursery.start(keep, 0), await nursery.start(keep, 1)]
        invoices, purchases = await set_up(running[0], scenario)
        for n in (0, 1):
            running[n].telegram.send_text(ANN, "/start")
        await trio.sleep(SETTLE)
        menus = [running[n].telegram.last_message(ANN)["message_id"] for n in (0, 1)]

        for step in steps:
            if step.op == "restart":
                for n in sorted(set(step.shops)):
                    running[n] = await restart(n)
                continue
            for n in step.shops:
                telegram = running[n].telegram
                if step.op == "confirm":
                    telegram.press(ANN, f"conf:{purchases[step.target]}", message_id=menus[n])
                    continue
                payment_id = invoices[step.target]
                invoice = scenario.invoices[step.target]
                amount, charge = (
                    PRODUCTS[invoice.product].price,
                    charge_id(step.target, step.charge),
                )
                if step.op == "refund":
                    telegram.refunded_payment(
                        ANN, payload=payment_id, total_amount=amount, charge_id=charge
                    )
                    continue
                extra = {}
                if invoice.recurring:  # as Telegram marks a subscription's charges
                    extra = {"is_recurring": True, "is_first_recurring": step.charge == "a"}
                telegram.successful_payment(
                    ANN, payload=payment_id, total_amount=amount, charge_id=charge, **extra
                )
            await trio.sleep(SETTLE)
        # The hourly sweeps: duplicate refunds retried, Stars transactions read again.
        await trio.sleep(SWEEPS.total_seconds())
        for n in (0, 1):
            stops[n].set()
            await ended[n].wait()
    ids = {payment_id: f"invoice-{i}" for i, payment_id in enumerate(invoices)}
    ids |= {payment_id: f"purchase-{j}" for j, payment_id in enumerate(purchases)}
    calls = [call for telegram, _ in telegrams for call in telegram.calls]
    refund_calls = Counter(
        c.params["telegram_payment_charge_id"] for c in calls if c.method == "refundStarPayment"
    )
    texts = [
        c.params.get("text", "") for c in calls if c.method == "sendMessage" and c.status == 200
    ]
    return Observed(
        ids,
        Counter(filter(None, map(money_message, texts))),
        dict(refund_calls),
        set(one[0].refunded),
    )


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


async def set_up(shop: Shop, scenario: Scenario) -> tuple[list[str], list[str]]:
    """A customer with a long subscription, the balance drawn, and the pending payments."""

    def prepare(conn: Any) -> tuple[list[str], list[str]]:
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
        invoices = []
        for invoice in scenario.invoices:
            p = PRODUCTS[invoice.product]
            credit = {CURRENCY: p.credit} if p.credit else {}
            new = NewPayment(
                ANN, "stars", p.kind, invoice.product, invoice.product, p.days, credit, p.price,
                CURRENCY, recurring=invoice.recurring,
            )  # fmt: skip
            invoices.append(payment_queries.create(conn, new, START, dt.timedelta(days=1)).id)
        purchases = []
        for _ in range(scenario.purchases):
            new = NewPayment(
                ANN, "balance", "plan", "m1", "m1", PURCHASE.days, {}, PURCHASE.price, CURRENCY
            )
            purchases.append(payment_queries.create(conn, new, START, dt.timedelta(days=1)).id)
        return invoices, purchases

    return await shop.app.store.run(prepare)


def query(database_url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(sql.encode(), params).fetchall()  # type: ignore[arg-type]


def stored_rows(database_url: str, ids: dict[str, str]) -> dict[str, Row]:
    """Every payment row as the model describes one, keyed like the model's."""
    rows = query(
        database_url,
        "SELECT p.id, p.parent_id, p.status, p.telegram_payment_charge_id, p.problem,"
        " p.problem_amount, count(g.payment_id), count(g.reversed_at),"
        " (SELECT COALESCE(sum(delta), 0) FROM ledger l WHERE l.payment_id = p.id)"
        " FROM payments p LEFT JOIN grants g ON g.payment_id = p.id GROUP BY p.id",
    )
    stored = {}
    for payment_id, parent, status, charge, problem, amount, grants, reversed_, ledger in rows:
        key = ids.get(payment_id, charge)
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
    ((ledger_sum,),) = query(database_url, "SELECT COALESCE(sum(delta), 0) FROM ledger")
    assert amount == ledger_sum == model.balance
    assert amount >= 0
    assert observed.messages == +model.messages
    assert observed.refunded == model.star_refunds
    assert observed.refund_calls == model.refund_calls()
