"""Referrals and gifts: each reward and each gift granted once, under duplicates, double taps
and two connections racing. Fake Bot API, real PostgreSQL, mock time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from shop.catalog import EXAMPLE, Referral
from shop.store import payments
from shop.store.payments import Charge, NewPayment
from tests.conftest import START
from tests.customer import Customer
from tests.harness import Shop

ANN, BOB, CAT = 1001, 1002, 1003
DAY = dt.timedelta(days=1)
REFERRAL = "\n[referral]\ndays = 7\ncredit = { XTR = 50 }\nwelcome_days = 3\n"


@pytest.fixture
def catalog(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "catalog.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8") + REFERRAL, encoding="utf-8")
    return {"SHOP_CATALOG": str(path)}


def expiry(shop: Shop, who: int) -> Any:
    rows = shop.query("SELECT expires_at FROM subscriptions WHERE telegram_id = %s", who)
    return rows[0][0] if rows else None


async def test_a_referral_is_rewarded_once_on_the_first_paid_purchase(
    shop_at: Any, catalog: dict[str, str], autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=catalog) as shop:
        ann, bob = Customer(shop, ANN), Customer(shop, BOB)
        await ann.send("/start")
        await ann.press("ref", on=ann.menu())
        assert f"https://t.me/shop_test_bot?start=ref_{ANN}" in ann.last_text()
        await bob.send(f"/start ref_{ANN}")
        await bob.choose_plan("m1", "stars")
        payload, charge = await bob.pay_last_invoice()
        await bob.paid(payload, 250, charge_id=charge)  # the same charge again: a replay
        await bob.choose_plan("m1", "stars")
        await bob.pay_last_invoice()  # a second purchase earns nothing more
        rewards = shop.query("SELECT referee, referrer, payment_id FROM referral_rewards")
        ledger = shop.query("SELECT telegram_id, delta, reason FROM ledger ORDER BY id")
        told = [t for t in ann.texts() if "first purchase" in t]
        await ann.press("ref", on=ann.menu())
        screen = ann.last_text()
    assert rewards == [(BOB, ANN, payload)]
    assert ledger == [(ANN, 50, "referral")]
    assert abs(expiry(shop, ANN) - (START + 7 * DAY)) < DAY
    assert abs(expiry(shop, BOB) - (START + (30 + 3 + 30) * DAY)) < DAY  # welcome 3 days
    assert len(told) == 1
    assert "Invited: 1 · rewarded: 1" in screen


async def test_no_referral_for_oneself_or_for_a_customer_who_was_here_before(
    shop_at: Any, catalog: dict[str, str], autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=catalog) as shop:
        ann, bob, cat = Customer(shop, ANN), Customer(shop, BOB), Customer(shop, CAT)
        await ann.send(f"/start ref_{ANN}")
        await bob.send("/start")
        await bob.send(f"/start ref_{ANN}")  # Bob existed already
        await cat.send("/start ref_99999")  # nobody the shop knows
        referred = shop.query("SELECT telegram_id, referred_by FROM customers ORDER BY 1")
    assert referred == [(ANN, None), (BOB, None), (CAT, None)]


async def test_two_first_purchases_racing_in_the_database_reward_once(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    """Two payments of one referee completing at once, on separate connections (as on two
    shops): the referral_rewards key lets one reward through."""
    referral = Referral(days=7)
    async with shop_at() as shop:
        shop.query(
            "INSERT INTO customers (telegram_id, first_seen, last_seen, referred_by) VALUES"
            " (%s, now(), now(), NULL), (%s, now(), now(), %s) RETURNING 1",
            ANN,
            BOB,
            ANN,
        )
        store = shop.app.store
        made = [
            await store.run(
                payments.create,
                NewPayment(BOB, "stars", "plan", "m1", "1 month", 30, {}, 250, "XTR"),
                START,
                DAY,
            )
            for _ in range(2)
        ]
        granted: list[Any] = []

        async def complete(payment_id: str, charge: str) -> None:
            grant = await store.run(
                payments.fulfil, payment_id, Charge(250, "XTR", charge), START, 0, referral
            )
            granted.append(grant)

        async with trio.open_nursery() as nursery:
            for n, payment in enumerate(made):
                nursery.start_soon(complete, payment.id, f"charge-{n}")
    assert len([g for g in granted if g is not None]) == 2
    assert shop.query("SELECT count(*) FROM referral_rewards") == [(1,)]
    assert sum(len(g.more) for g in granted) == 1
    assert abs(expiry(shop, ANN) - (START + 7 * DAY)) < DAY


async def test_a_gift_is_redeemed_once_under_a_double_tap_and_its_buyer_is_told(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann, bob, cat = Customer(shop, ANN), Customer(shop, BOB), Customer(shop, CAT)
        await ann.send("/start")
        await ann.press("buy", on=ann.menu())
        await ann.press("plan:m1")
        assert "gift:m1" in ann.buttons()
        await ann.press("gift:m1")
        assert "pay:p:m1:starsub:XTR" not in ann.buttons()  # a gift is paid once
        await ann.press("pay:g:m1:stars:XTR")
        await ann.pay_last_invoice()
        confirmation = ann.texts()[-1]
        assert expiry(shop, ANN) is None  # the days are not the buyer's
        (code,) = shop.query("SELECT code FROM codes WHERE source = 'gift'")
        link = f"https://t.me/shop_test_bot?start=g_{code[0]}"
        assert link in confirmation
        await bob.send("/start")
        for _ in range(2):  # a double tap on the link
            shop.telegram.send_text(BOB, f"/start g_{code[0]}")
        await bob.settle()
        await cat.send(f"/start g_{code[0]}")
        bob_texts, cat_texts = bob.texts(), cat.texts()
        told = [t for t in ann.texts() if "gift was redeemed" in t]
    assert abs(expiry(shop, BOB) - (START + 30 * DAY)) < DAY
    assert sum(t.startswith("🎉 Code accepted: +30 days") for t in bob_texts) == 1
    assert shop.app.texts("en", "code.refused.used") in bob_texts
    assert shop.app.texts("en", "code.refused.exhausted") in cat_texts
    assert expiry(shop, CAT) is None
    assert len(told) == 1


async def test_a_refunded_gift_nobody_used_stops_working(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann, bob = Customer(shop, ANN), Customer(shop, BOB)
        await ann.send("/start")
        await ann.press("buy", on=ann.menu())
        await ann.press("plan:m1")
        await ann.press("gift:m1")
        await ann.press("pay:g:m1:stars:XTR")
        payload, charge = await ann.pay_last_invoice()
        shop.telegram.refunded_payment(ANN, payload=payload, total_amount=250, charge_id=charge)
        await ann.settle()
        (code,) = shop.query("SELECT code FROM codes WHERE source = 'gift'")
        await bob.send(f"/start g_{code[0]}")
        answer = bob.texts()[-2]
    assert answer == shop.app.texts("en", "code.refused.revoked")
    assert expiry(shop, BOB) is None
    assert shop.query("SELECT status FROM payments") == [("refunded",)]


async def test_a_gift_nobody_used_can_be_redeemed_by_its_buyer(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("buy", on=ann.menu())
        await ann.press("plan:m1")
        await ann.press("gift:m1")
        await ann.press("pay:g:m1:stars:XTR")
        await ann.pay_last_invoice()
        (code,) = shop.query("SELECT code FROM codes WHERE source = 'gift'")
        await ann.send(f"/start g_{code[0]}")
        texts = ann.texts()
    assert abs(expiry(shop, ANN) - (START + 30 * DAY)) < DAY
    assert not [t for t in texts if "gift was redeemed" in t]  # no note to oneself
