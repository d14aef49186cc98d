"""Telegram Stars money that other shops lose: a second charge for one invoice, a
``successful_payment`` Telegram never delivered, a refund that overtakes the success.

Whole shops on real PostgreSQL and the fake Bot API, on mock time; the hourly sweep
runs at the top of each hour.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
import trio.testing

from tests.conftest import START
from tests.customer import Customer
from tests.harness import Shop

ANN = 1001
DAY = dt.timedelta(days=1)
M1_STARS = 250  # the example catalog's one-month plan


def row(shop: Shop, sql: str, *params: object) -> tuple[Any, ...]:
    (found,) = shop.query(sql, *params)
    return found


def expiry(shop: Shop) -> dt.datetime | None:
    rows = shop.query("SELECT expires_at FROM subscriptions WHERE telegram_id = %s", ANN)
    return rows[0][0] if rows else None  # type: ignore[return-value]


def balance(shop: Shop) -> int:
    rows = shop.query("SELECT amount FROM balances WHERE telegram_id = %s", ANN)
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def said(ann: Customer, fragment: str) -> int:
    return sum(fragment in text for text in ann.texts())


async def bought(shop: Shop) -> tuple[Customer, str, str]:
    """Ann buys one month with Stars: (Ann, payment id, charge id)."""
    ann = Customer(shop, ANN)
    await ann.send("/start")
    await ann.choose_plan("m1", "stars")
    payment_id, charge_id = await ann.pay_last_invoice()
    assert row(shop, "SELECT status FROM payments WHERE id = %s", payment_id) == ("completed",)
    return ann, payment_id, charge_id


async def test_a_second_charge_for_one_invoice_is_refunded(
    shop_at: Any, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with shop_at() as shop:
        ann, payment_id, _ = await bought(shop)
        paid_until = expiry(shop)
        await ann.paid(payment_id, M1_STARS, charge_id="second-charge")
        await ann.paid(payment_id, M1_STARS, charge_id="second-charge")  # replayed update
        duplicate = shop.query(
            "SELECT status, amount, problem FROM payments WHERE parent_id = %s"
            " AND telegram_payment_charge_id = 'second-charge'",
            payment_id,
        )
        assert duplicate == [("refunded", M1_STARS, "duplicate charge")]
        refunds = shop.telegram.calls_to("refundStarPayment")
        assert [c.params["telegram_payment_charge_id"] for c in refunds] == ["second-charge"]
        assert [c.params["user_id"] for c in refunds] == [ANN]
        assert expiry(shop) == paid_until  # granted once
        assert row(shop, "SELECT count(*) FROM grants") == (1,)
        assert said(ann, "charged twice") == 1
        assert said(ann, "has been refunded") == 1
        assert caplog.text.count("ALERT: payment") == 1


async def test_a_second_charge_that_cannot_be_refunded_is_credited(
    shop_at: Any, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with shop_at(poll_timeout=86_400) as shop:
        ann, payment_id, _ = await bought(shop)
        paid_until = expiry(shop)
        shop.telegram.fail(
            "refundStarPayment", status=400, description="Bad Request: REFUND_FAILED", times=99
        )
        await ann.paid(payment_id, M1_STARS, charge_id="second-charge")
        (duplicate_id, status, tries) = row(
            shop, "SELECT id, status, checks FROM payments WHERE parent_id = %s", payment_id
        )
        assert (status, tries) == ("duplicate", 1)
        await trio.sleep(3 * 3600)  # two more hourly sweeps: tried again, not yet given up
        assert row(shop, "SELECT status FROM payments WHERE id = %s", duplicate_id) == (
            "duplicate",
        )
        assert balance(shop) == 0
        await trio.sleep(4 * 3600)
        assert row(shop, "SELECT status, checks FROM payments WHERE id = %s", duplicate_id) == (
            "credited",
            5,
        )
        assert len(shop.telegram.calls_to("refundStarPayment")) == 5
        assert balance(shop) == M1_STARS
        assert shop.query(
            "SELECT delta, reason FROM ledger WHERE payment_id = %s", duplicate_id
        ) == [(M1_STARS, "refund")]
        assert expiry(shop) == paid_until
        assert said(ann, "added to your balance") == 1
        assert "could not be refunded" in caplog.text
        await trio.sleep(3 * 3600)  # nothing more happens to it
        assert balance(shop) == M1_STARS
        assert len(shop.telegram.calls_to("refundStarPayment")) == 5


@pytest.mark.parametrize("refund_first", [True, False])
async def test_a_refund_wins_in_either_order(
    shop_at: Any, autojump_clock: trio.testing.MockClock, refund_first: bool
) -> None:
    async with shop_at() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.choose_plan("m1", "stars")
        invoice = ann.invoices()[-1]
        payment_id = invoice["payload"]
        assert (await ann.pre_checkout(payment_id, M1_STARS))["ok"] is True
        events = ["refund", "paid"] if refund_first else ["paid", "refund"]
        for event in events:
            if event == "paid":
                await ann.paid(payment_id, M1_STARS, charge_id="the-charge")
            else:
                shop.telegram.refunded_payment(
                    ANN, payload=payment_id, total_amount=M1_STARS, charge_id="the-charge"
                )
                await ann.settle()
        assert row(
            shop,
            "SELECT status, telegram_payment_charge_id FROM payments WHERE id = %s",
            payment_id,
        ) == ("refunded", "the-charge")
        if refund_first:
            assert shop.query("SELECT * FROM grants") == []
            assert expiry(shop) is None
            assert said(ann, "Payment received") == 0
        else:
            assert row(shop, "SELECT reversed_at IS NOT NULL FROM grants") == (True,)
            assert row(shop, "SELECT status FROM subscriptions") == ("expired",)
            assert said(ann, "Payment received") == 1
        assert said(ann, "Refund of") == 1
        assert shop.telegram.calls_to("refundStarPayment") == []  # not a second charge


async def test_a_successful_payment_never_delivered_is_found_by_the_sweep(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(poll_timeout=86_400) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.choose_plan("m1", "stars")
        payment_id = ann.invoices()[-1]["payload"]
        assert (await ann.pre_checkout(payment_id, M1_STARS))["ok"] is True
        shop.telegram.charge_silently(
            ANN, payload=payment_id, total_amount=M1_STARS, charge_id="lost-charge"
        )
        await ann.settle()
        assert row(shop, "SELECT status FROM payments WHERE id = %s", payment_id) == ("pending",)
        await trio.sleep(3600)  # the hourly sweep reads the Stars transactions
        assert row(
            shop,
            "SELECT status, telegram_payment_charge_id FROM payments WHERE id = %s",
            payment_id,
        ) == ("completed", "lost-charge")
        assert said(ann, "Payment received") == 1
        until = expiry(shop)
        assert until is not None
        assert until > START + 29 * DAY
        # The update turns up after all, and the sweep reads the same charge again.
        await ann.paid(payment_id, M1_STARS, charge_id="lost-charge")
        await trio.sleep(3600)
        assert expiry(shop) == until
        assert row(shop, "SELECT count(*) FROM grants") == (1,)
        assert said(ann, "Payment received") == 1
        assert shop.telegram.calls_to("refundStarPayment") == []


async def test_a_charge_for_nothing_of_ours_is_alerted_once(
    shop_at: Any, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with shop_at(poll_timeout=86_400) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        shop.telegram.charge_silently(
            ANN, payload="not-a-payment", total_amount=5, charge_id="stray-charge"
        )
        await trio.sleep(3 * 3600)  # three sweeps
        assert caplog.text.count("for unknown payment not-a-payment") == 1
        assert shop.query("SELECT count(*) FROM payments") == [(0,)]


async def test_a_refund_never_delivered_is_found_by_the_sweep(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    import httpx

    from tests.fakes.telegram import TOKEN

    async with shop_at(poll_timeout=86_400) as shop:
        ann, payment_id, charge_id = await bought(shop)
        paid_until = expiry(shop)
        assert paid_until is not None
        # Refunded by another tool with the bot's token: Telegram records it, but the
        # refunded_payment update never reaches the shop.
        async with httpx.AsyncClient(base_url=f"{shop.telegram.base_url}/bot{TOKEN}/") as api:
            answer = await api.post(
                "refundStarPayment", json={"user_id": ANN, "telegram_payment_charge_id": charge_id}
            )
            assert answer.json()["ok"] is True
        assert row(shop, "SELECT status FROM payments WHERE id = %s", payment_id) == ("completed",)
        await trio.sleep(3600)  # the hourly sweep reads the outgoing transaction
        assert row(shop, "SELECT status FROM payments WHERE id = %s", payment_id) == ("refunded",)
        assert row(shop, "SELECT reversed_at IS NOT NULL FROM grants") == (True,)
        assert expiry(shop) < paid_until  # the days paid for are taken back
        assert said(ann, "Refund of") == 1
        await trio.sleep(3600)  # read again: applied once
        assert said(ann, "Refund of") == 1
