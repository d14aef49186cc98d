"""Money invariants under duplicates, races, refunds and restarts (property-based).

Two shops run on one database, as two processes would, each behind its own fake Bot
API. Hypothesis draws which payment events reach which shop and how often, which
balance purchases are confirmed where and how many times, and which shops restart
between rounds. Whatever it draws, afterwards:

- every payment is fulfilled at most once (one grant, one confirmation);
- expiry = start + the days of every fulfilled, unrefunded plan payment;
- every balance equals the sum of its ledger, and is never negative.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from typing import Any

import attrs
import psycopg
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shop.clock import TrioClock
from shop.store import payments as payment_queries
from shop.store.payments import NewPayment
from tests.conftest import START, hold_clock_while_busy, truncate_all
from tests.harness import Shop, fake_telegram, running_shop

ANN = 1001
BASE_DAYS = 1000  # an existing subscription long enough that no refund reaches "now"
OPENING_BALANCE = 600  # Stars: room for two 250-Star purchases, not three
PRODUCTS = {
    "m1": ("plan", 30, 250, {}),
    "m3": ("plan", 90, 650, {}),
    "p100": ("package", 0, 100, {"XTR": 110}),
}


@attrs.frozen
class StarsPayment:
    product: str
    deliveries: tuple[int, ...]  # which shop gets each copy of successful_payment
    refunds: tuple[int, ...]  # which shop gets each copy of refunded_payment


@attrs.frozen
class BalancePurchase:
    presses: tuple[int, ...]  # which shop gets each press of the confirm button


@attrs.frozen
class Scenario:
    stars: tuple[StarsPayment, ...]
    purchases: tuple[BalancePurchase, ...]
    restarts: tuple[tuple[bool, bool], ...]  # before rounds 2 and 3: restart shop 0 / shop 1


shops = st.integers(0, 1)
scenarios = st.builds(
    Scenario,
    stars=st.lists(
        st.builds(
            StarsPayment,
            product=st.sampled_from(sorted(PRODUCTS)),
            deliveries=st.lists(shops, max_size=4).map(tuple),
            refunds=st.lists(shops, max_size=2).map(tuple),
        ),
        min_size=1,
        max_size=4,
    ).map(tuple),
    purchases=st.lists(
        st.builds(BalancePurchase, presses=st.lists(shops, min_size=1, max_size=3).map(tuple)),
        max_size=3,
    ).map(tuple),
    restarts=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=2, max_size=2).map(tuple),
)


@settings(
    max_examples=int(os.environ.get("SHOP_PROPERTY_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios)
def test_money_invariants_hold(database_url: str, scenario: Scenario) -> None:
    truncate_all(database_url)
    clock = trio.testing.MockClock(autojump_threshold=0)
    trio.run(play, database_url, scenario, clock, clock=clock)
    check(database_url, scenario)


async def play(database_url: str, scenario: Scenario, mock: trio.testing.MockClock) -> None:
    hold = hold_clock_while_busy(mock)
    calendar = TrioClock.starting_at(START)
    charges = itertools.count(1)
    async with (
        fake_telegram() as one,
        fake_telegram(bot_id=777000222) as two,
        trio.open_nursery() as nursery,
    ):
        telegrams = (one, two)
        stops = [trio.Event(), trio.Event()]
        ended = [trio.Event(), trio.Event()]

        async def keep(n: int, task_status: trio.TaskStatus[Shop]) -> None:
            """One shop process: runs until its stop event, in a task of its own."""
            try:
                async with running_shop(
                    database_url, telegram=telegrams[n], clock=calendar, on_busy=hold
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
        stars, balance_ids = await set_up(running[0], scenario)
        for n in (0, 1):
            running[n].telegram.send_text(ANN, "/start")
        await trio.sleep(10)
        menus = [running[n].telegram.last_message(ANN)["message_id"] for n in (0, 1)]

        charge_ids = {reference: f"charge-{next(charges)}" for reference in stars}
        # Round 1: payments arrive (duplicated, on either shop), purchases are confirmed.
        for reference, spec in stars.items():
            for n in spec.deliveries:
                paid(running[n], reference, spec.product, charge_ids[reference])
        for reference, purchase in zip(balance_ids, scenario.purchases, strict=True):
            for n in purchase.presses:
                running[n].telegram.press(ANN, f"conf:{reference}", message_id=menus[n])
        await trio.sleep(60)

        for round_restarts in scenario.restarts:
            for n, again in enumerate(round_restarts):
                if again:
                    running[n] = await restart(n)
            # Later rounds: late duplicates, and refunds of what was paid.
            for reference, spec in stars.items():
                for n in spec.deliveries[:1]:
                    paid(running[n], reference, spec.product, charge_ids[reference])
                for n in spec.refunds:
                    running[n].telegram.refunded_payment(
                        ANN,
                        payload=reference,
                        total_amount=PRODUCTS[spec.product][2],
                        charge_id=charge_ids[reference],
                    )
            await trio.sleep(60)
        for n in (0, 1):
            stops[n].set()
            await ended[n].wait()
        confirmations = sum(
            "Payment received" in call.params.get("text", "")
            for telegram in telegrams
            for call in telegram[0].calls_to("sendMessage", ANN)
        )
    completed = query(
        database_url, "SELECT count(*) FROM payments WHERE status IN ('completed', 'refunded')"
    )
    assert confirmations == completed[0][0]


def paid(shop: Shop, reference: str, product: str, charge: str) -> None:
    shop.telegram.successful_payment(
        ANN, payload=reference, total_amount=PRODUCTS[product][2], charge_id=charge
    )


async def set_up(shop: Shop, scenario: Scenario) -> tuple[dict[str, StarsPayment], list[str]]:
    """A customer with a long subscription, some Stars, and the pending payments drawn."""
    now = calendar_now = START

    def prepare(conn: Any) -> tuple[dict[str, StarsPayment], list[str]]:
        conn.execute(
            "INSERT INTO customers (telegram_id, first_seen, last_seen, trial_used)"
            " VALUES (%s, %s, %s, TRUE)",
            (ANN, now, now),
        )
        conn.execute(
            "INSERT INTO subscriptions (telegram_id, status, expires_at, started_at, updated_at)"
            " VALUES (%s, 'active', %s, %s, %s)",
            (ANN, START + dt.timedelta(days=BASE_DAYS), now, now),
        )
        conn.execute(
            "INSERT INTO ledger (telegram_id, currency, delta, reason, created_at)"
            " VALUES (%s, 'XTR', %s, 'adjustment', %s)",
            (ANN, OPENING_BALANCE, now),
        )
        conn.execute(
            "INSERT INTO balances (telegram_id, currency, amount) VALUES (%s, 'XTR', %s)",
            (ANN, OPENING_BALANCE),
        )
        stars = {}
        for spec in scenario.stars:
            kind, days, price, credit = PRODUCTS[spec.product]
            new = NewPayment(
                ANN, "stars", kind, spec.product, spec.product, days, credit, price, "XTR"
            )
            row = payment_queries.create(conn, new, calendar_now, dt.timedelta(days=1))
            stars[row.id] = spec
        purchases = []
        for _ in scenario.purchases:
            new = NewPayment(ANN, "balance", "plan", "m1", "m1", 30, {}, 250, "XTR")
            purchases.append(
                payment_queries.create(conn, new, calendar_now, dt.timedelta(days=1)).id
            )
        return stars, purchases

    return await shop.app.store.run(prepare)


def query(database_url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(sql.encode(), params).fetchall()  # type: ignore[arg-type]


def check(database_url: str, scenario: Scenario) -> None:
    # Fulfilled at most once: one grant per completed (or later refunded) payment, none else.
    rows = query(
        database_url,
        "SELECT p.id, p.status, p.provider, count(g.payment_id) FROM payments p"
        " LEFT JOIN grants g ON g.payment_id = p.id GROUP BY p.id, p.status, p.provider",
    )
    for payment_id, status, _provider, grants in rows:
        assert grants == (1 if status in ("completed", "refunded") else 0), (payment_id, status)
    statuses = {payment_id: status for payment_id, status, _, _ in rows}
    # Expiry: start + the days of every fulfilled plan payment not refunded.
    (days,) = query(
        database_url,
        "SELECT COALESCE(sum(days), 0) FROM payments WHERE status = 'completed'"
        " AND product_kind = 'plan'",
    )[0]
    (expiry,) = query(database_url, "SELECT expires_at FROM subscriptions")[0]
    assert expiry == START + dt.timedelta(days=BASE_DAYS + days)
    # Balance = the ledger's sum, never negative.
    (amount,) = query(database_url, "SELECT amount FROM balances")[0]
    (ledger_sum,) = query(database_url, "SELECT sum(delta) FROM ledger")[0]
    assert amount == ledger_sum >= 0
    # A completed balance purchase was paid for exactly once, a refused one not at all.
    debits = query(
        database_url,
        "SELECT p.id, count(l.id) FROM payments p LEFT JOIN ledger l"
        " ON l.payment_id = p.id AND l.reason = 'purchase'"
        " WHERE p.provider = 'balance' GROUP BY p.id",
    )
    assert len(debits) == len(scenario.purchases)
    for payment_id, count in debits:
        assert count == (1 if statuses[payment_id] == "completed" else 0), payment_id
