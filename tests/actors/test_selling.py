"""Selling through the fake Bot API, on real PostgreSQL: trial, Stars, renewals, balance.

Runs on mock time; ``Customer`` waits a few virtual seconds after each action.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import trio.testing

from tests.conftest import START
from tests.customer import Customer
from tests.harness import Shop, fake_telegram

ANN, BOB = 1001, 2002
DAY = dt.timedelta(days=1)


def expiry(shop: Shop, telegram_id: int) -> dt.datetime | None:
    rows = shop.query("SELECT expires_at FROM subscriptions WHERE telegram_id = %s", telegram_id)
    return rows[0][0] if rows else None  # type: ignore[return-value]


def balance(shop: Shop, telegram_id: int, currency: str = "XTR") -> int:
    rows = shop.query(
        "SELECT amount FROM balances WHERE telegram_id = %s AND currency = %s",
        telegram_id,
        currency,
    )
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def payment(shop: Shop, payment_id: str) -> tuple[Any, ...]:
    (row,) = shop.query(
        "SELECT status, telegram_payment_charge_id FROM payments WHERE id = %s", payment_id
    )
    return row


def granted_at(shop: Shop, payment_id: str) -> dt.datetime:
    (row,) = shop.query("SELECT granted_at FROM grants WHERE payment_id = %s", payment_id)
    return row[0]  # type: ignore[no-any-return]


async def test_trial_once_per_customer(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        assert "trial" in ann.buttons()
        menu = ann.menu()
        await ann.press("trial")
        assert "Your free trial is on" in ann.texts()[-1]
        (taken_at,) = shop.query("SELECT updated_at FROM subscriptions")
        assert expiry(shop, ANN) == taken_at[0] + 3 * DAY
        await ann.send("/start")
        assert "trial" not in ann.buttons()
        await ann.press("trial", on=menu)  # the old menu still has the button
        assert ann.answers()[-1] == (
            "The free trial is once per customer, for those who never had a subscription."
        )
        assert expiry(shop, ANN) == taken_at[0] + 3 * DAY


async def test_buy_with_stars_then_duplicates_change_nothing(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("buy")
        assert ann.buttons()[:4] == ["plan:m1", "plan:m3", "plan:m6", "plan:m12"]
        await ann.press("plan:m1")
        assert "pay:p:m1:stars:XTR" in ann.buttons()
        await ann.press("pay:p:m1:stars:XTR")
        (invoice,) = ann.invoices()
        assert (invoice["currency"], invoice["prices"][0]["amount"]) == ("XTR", 250)
        reference = invoice["payload"]
        assert payment(shop, reference) == ("pending", None)  # stored before the invoice

        _, charge = await ann.pay_last_invoice()
        assert payment(shop, reference) == ("completed", charge)
        assert expiry(shop, ANN) == granted_at(shop, reference) + 30 * DAY
        confirmations = [t for t in ann.texts() if "Payment received" in t]
        assert len(confirmations) == 1
        assert "active until <b>Dec 1, 2026 12:00\u202fPM (UTC)</b>" in confirmations[0]

        for _ in range(3):
            await ann.paid(reference, 250, charge_id=charge)
        assert len([t for t in ann.texts() if "Payment received" in t]) == 1
        assert expiry(shop, ANN) == granted_at(shop, reference) + 30 * DAY
        assert shop.query("SELECT count(*) FROM grants") == [(1,)]


async def test_renewal_extends_from_the_current_expiry(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.choose_plan("m1", "stars")
        await ann.pay_last_invoice()
        after_first = expiry(shop, ANN)
        assert after_first is not None
        await ann.press("sub")
        assert "Active until" in ann.last_text()
        await ann.choose_plan("m3", "stars")
        await ann.pay_last_invoice()
        assert expiry(shop, ANN) == after_first + 90 * DAY


async def test_top_up_with_a_package(shop_at: Any, autojump_clock: trio.testing.MockClock) -> None:
    async with shop_at() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("bal")
        assert "pkg:p100" in ann.buttons()
        await ann.press("pkg:p100")
        await ann.press("pay:k:p100:stars:XTR")
        assert ann.invoices()[-1]["prices"][0]["amount"] == 100
        await ann.pay_last_invoice()
        assert balance(shop, ANN) == 110
        assert shop.query("SELECT sum(delta) FROM ledger WHERE telegram_id = %s", ANN) == [(110,)]
        assert "110 ⭐ added to your balance" in ann.texts()[-1]


async def test_buy_from_balance_once_however_often_confirmed(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.top_up("p250")
        assert balance(shop, ANN) == 275
        await ann.press("buy")
        await ann.press("plan:m1")
        assert "pay:p:m1:balance:XTR" in ann.buttons()
        await ann.press("pay:p:m1:balance:XTR")
        (confirm,) = [b for b in ann.buttons() if b.startswith("conf:")]
        confirm_screen = ann.menu()
        await ann.press(confirm)
        await ann.press(confirm, on=confirm_screen)  # a double tap
        assert balance(shop, ANN) == 25
        assert ann.answers()[-1] == "This payment is already completed."
        assert expiry(shop, ANN) is not None
        assert shop.query("SELECT sum(delta) FROM ledger WHERE telegram_id = %s", ANN) == [(25,)]
        assert len([t for t in ann.texts() if "Payment received" in t]) == 2  # top-up, plan


async def test_not_enough_balance_changes_nothing(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.top_up("p250")
        await ann.choose_plan("m1", "balance")
        confirm = next(b for b in ann.buttons() if b.startswith("conf:"))
        # Meanwhile the balance went elsewhere (an operator adjustment, say).
        shop.query("UPDATE balances SET amount = 100 WHERE telegram_id = %s RETURNING 1", ANN)
        await ann.press(confirm)
        assert ann.answers()[-1] == "Not enough balance. Top it up under 💰 Balance."
        assert balance(shop, ANN) == 100
        assert expiry(shop, ANN) is None
        assert payment(shop, confirm.split(":")[1]) == ("pending", None)


async def test_history_pages_ten_entries_newest_first(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        for n in range(26):
            days_ago = 40 if n == 0 else 25 - n  # one entry is older than 30 days
            shop.query(
                "INSERT INTO payments (id, telegram_id, provider, product_kind, product_id, title,"
                " amount, currency, status, created_at, updated_at, expires_at, idempotency_key)"
                " VALUES (%s, %s, 'stars', 'package', 'p100', %s, 100, 'XTR', 'completed',"
                " %s, %s, %s, 'k') RETURNING 1",
                f"pay{n:02d}",
                ANN,
                f"Package {n}",
                START - days_ago * DAY,
                START,
                START,
            )
        await ann.press("bal")
        await ann.press("hist:0")
        first = [b for b in ann.buttons() if b.startswith("tx:")]
        assert first == [f"tx:pay{n:02d}" for n in range(25, 15, -1)]
        assert "hist:1" in ann.buttons()
        await ann.press("hist:1")
        await ann.press("hist:2")
        last = [b for b in ann.buttons() if b.startswith("tx:")]
        assert last == [f"tx:pay{n:02d}" for n in range(5, 0, -1)]
        assert "hist:3" not in ann.buttons()
        await ann.press("tx:pay03")
        assert "Package 3" in ann.last_text()
        assert "<code>pay03</code>" in ann.last_text()


async def test_forged_pre_checkouts_are_refused_and_change_nothing(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann, bob = Customer(shop, ANN), Customer(shop, BOB, "Bob")
        for customer in (ann, bob):
            await customer.send("/start")
            await customer.choose_plan("m1", "stars")
        anns = ann.invoices()[-1]["payload"]
        bobs = bob.invoices()[-1]["payload"]

        wrong_amount = await ann.pre_checkout(anns, 1)
        assert wrong_amount == {
            "pre_checkout_query_id": wrong_amount["pre_checkout_query_id"],
            "ok": False,
            "error_message": "The price has changed. Please start a new purchase.",
        }
        foreign = await ann.pre_checkout(bobs, 250)
        assert foreign["ok"] is False
        assert foreign["error_message"] == "Payment not found."
        unknown = await ann.pre_checkout("no-such-payment", 250)
        assert unknown["ok"] is False
        await ann.pay_last_invoice()
        again = await ann.pre_checkout(anns, 250)
        assert again["error_message"] == "This payment is already completed."
        assert payment(shop, bobs) == ("pending", None)
        assert expiry(shop, BOB) is None
        assert shop.query("SELECT count(*) FROM grants") == [(1,)]


async def test_forged_callback_data_gets_not_found_and_changes_nothing(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann, bob = Customer(shop, ANN), Customer(shop, BOB, "Bob")
        await bob.send("/start")
        bobs_topup, _ = await bob.top_up("p250")
        await bob.choose_plan("m1", "balance")
        bobs_pending = next(b for b in bob.buttons() if b.startswith("conf:")).split(":")[1]

        await ann.send("/start")
        menu_text = ann.last_text()
        not_found = "Not found. It may belong to someone else or be out of date."
        for forged in (
            f"tx:{bobs_topup}",
            f"conf:{bobs_pending}",
            "tx:nope",
            "plan:zz",
            "pay:p:m1:balance:XTR",  # Ann has no balance: not an offered method
            "pay:p:zz:stars:XTR",
            "hist:x",
            "hist:²",
            "hist:99999999999999999999",
        ):
            await ann.press(forged)
            assert ann.answers()[-1] == not_found, forged
            assert ann.last_text() == menu_text  # the screen did not change
        assert balance(shop, BOB) == 275
        assert payment(shop, bobs_pending) == ("pending", None)
        assert shop.query("SELECT count(*) FROM payments WHERE telegram_id = %s", ANN) == [(0,)]


async def test_stars_subscription_renews_once_per_charge_and_refunds(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.choose_plan("m1", "starsub")
        (link,) = shop.telegram.calls_to("createInvoiceLink")
        assert link.params["subscription_period"] == 2592000
        reference = link.params["payload"]
        assert ann.buttons()[0].startswith("https://t.me/$")  # the subscription link
        await ann.pre_checkout(reference, 250)
        first = await ann.paid(reference, 250, is_recurring=True, is_first_recurring=True)
        start = granted_at(shop, reference)
        assert expiry(shop, ANN) == start + 30 * DAY
        renewal = await ann.paid(reference, 250, is_recurring=True)
        await ann.paid(reference, 250, charge_id=renewal, is_recurring=True)  # duplicate
        await ann.paid(reference, 250, charge_id=first, is_recurring=True, is_first_recurring=True)
        assert expiry(shop, ANN) == start + 60 * DAY
        assert shop.query("SELECT count(*) FROM payments WHERE parent_id = %s", reference) == [(1,)]

        shop.telegram.refunded_payment(ANN, payload=reference, total_amount=250, charge_id=renewal)
        await ann.settle()
        assert expiry(shop, ANN) == start + 30 * DAY
        (child,) = shop.query("SELECT status FROM payments WHERE parent_id = %s", reference)
        assert child == ("refunded",)
        assert "Refund of 250 ⭐ processed" in ann.texts()[-1]


async def test_refunded_top_up_takes_the_credit_back_never_below_zero(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        topup, charge = await ann.top_up("p250")
        await ann.choose_plan("m1", "balance")
        await ann.press(next(b for b in ann.buttons() if b.startswith("conf:")))
        assert balance(shop, ANN) == 25
        shop.telegram.refunded_payment(ANN, payload=topup, total_amount=250, charge_id=charge)
        await ann.settle()
        assert balance(shop, ANN) == 0
        assert payment(shop, topup) == ("refunded", charge)
        ledger = shop.query("SELECT reason, delta FROM ledger ORDER BY id")
        assert ledger == [("topup", 275), ("purchase", -250), ("reversal", -25)]


async def test_two_shops_on_one_database_fulfil_once(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        fake_telegram() as first_bot,
        fake_telegram(bot_id=777000222) as second_bot,
        shop_at(telegram=first_bot) as one,
        shop_at(telegram=second_bot) as two,
    ):
        ann_one, ann_two = Customer(one, ANN), Customer(two, ANN)
        await ann_one.send("/start")
        await ann_one.choose_plan("m1", "stars")
        reference = ann_one.invoices()[-1]["payload"]
        assert (await ann_one.pre_checkout(reference, 250))["ok"] is True
        # The same successful payment reaches both processes at the same moment.
        for shop in (one, two):
            shop.telegram.successful_payment(
                ANN, payload=reference, total_amount=250, charge_id="stxSame"
            )
        await ann_one.settle()
        confirmations = [
            t for ann in (ann_one, ann_two) for t in ann.texts() if "Payment received" in t
        ]
        assert len(confirmations) == 1
        assert one.query("SELECT count(*) FROM grants") == [(1,)]
        assert expiry(one, ANN) == granted_at(one, reference) + 30 * DAY


async def test_a_lifetime_subscription_is_never_changed_by_arithmetic(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        shop.query(
            "INSERT INTO subscriptions (telegram_id, status, expires_at, lifetime, started_at,"
            " updated_at) VALUES (%s, 'active', NULL, TRUE, now(), now()) RETURNING 1",
            ANN,
        )
        await ann.choose_plan("m1", "stars")
        await ann.pay_last_invoice()
        assert shop.query("SELECT expires_at, lifetime FROM subscriptions") == [(None, True)]
        assert "Your access is lifetime." in ann.texts()[-1]
        await ann.press("sub")
        assert "Lifetime access" in ann.last_text()
        assert "auto:1" not in ann.buttons()  # nothing to renew


async def test_auto_renew_is_switched_on_my_subscription(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("trial")
        await ann.press("sub", on=ann.menu())
        assert "auto:1" in ann.buttons()
        await ann.press("auto:1")
        assert shop.query("SELECT auto_renew FROM customers") == [(True,)]
        assert "auto:0" in ann.buttons()
        assert ann.answers()[-1].startswith("Auto-renew is on")
        await ann.press("auto:0")
        assert shop.query("SELECT auto_renew FROM customers") == [(False,)]
