"""Refunds by an operator, each path through the payment's actor: Telegram Stars, each
provider that has a refund API, the ones that have none (the dashboard), and a refusal.

Fake Bot API and fake providers over real HTTP, real PostgreSQL, mock time.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from tests.customer import Customer
from tests.payments.test_checkout import Providers, choose, deliver, fake, status

ADMIN, ANN = 9001, 1001
ENV = {"ADMIN_IDS": str(ADMIN)}


def button(customer: Customer, prefix: str) -> str:
    return next(b for b in customer.buttons() if b.startswith(prefix))


async def refund_by_operator(admin: Customer, reference: str, *, twice: bool = False) -> list[str]:
    """Profile → the payment → "Yes, refund" (pressed twice at once if ``twice``)."""
    await admin.send(f"/user {ANN}")
    await admin.press(f"adm:p:{reference}")
    confirm = button(admin, f"adm:rf:{reference}:")
    screen = admin.menu()
    admin.telegram.press(ADMIN, confirm, message_id=screen["message_id"])
    if twice:
        admin.telegram.press(ADMIN, confirm, message_id=screen["message_id"])
    await admin.settle()
    return [str(a) for a in admin.answers()[-2 if twice else -1 :]]


def subscription(shop: Any) -> tuple[Any, ...]:
    (row,) = shop.query("SELECT status FROM subscriptions WHERE telegram_id = %s", ANN)
    return tuple(row)


async def test_a_stars_payment_is_refunded_once_and_its_days_taken_back(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        ann, admin = Customer(shop, ANN), Customer(shop, ADMIN)
        await ann.send("/start")
        await ann.choose_plan("m1", "stars")
        reference, charge = await ann.pay_last_invoice()
        assert subscription(shop) == ("active",)
        answer = await refund_by_operator(admin, reference, twice=True)
        refunds = shop.telegram.calls_to("refundStarPayment")
        audited = shop.query("SELECT action, target, after FROM audit")
    assert [c.params["telegram_payment_charge_id"] for c in refunds] == [charge]
    assert shop.telegram.refunded == {charge}
    assert answer[0].startswith("Refunded")
    assert "nothing to refund" in answer[1]  # the second press found it refunded
    assert status(shop, reference) == "refunded"
    assert subscription(shop) == ("expired",)
    assert len(audited) == 1  # one press, one row: the second had the same key
    assert audited[0][:2] == ("refund", reference)
    assert audited[0][2]["done"] is True
    assert any("refund" in text.lower() for text in ann.texts()[-2:])  # the customer is told


async def test_a_stars_refund_telegram_refuses_changes_nothing(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        ann, admin = Customer(shop, ANN), Customer(shop, ADMIN)
        await ann.send("/start")
        await ann.choose_plan("m1", "stars")
        reference, _ = await ann.pay_last_invoice()
        shop.telegram.fail(
            "refundStarPayment", status=400, description="Bad Request: BALANCE_TOO_LOW"
        )
        answer = await refund_by_operator(admin, reference)
    assert answer[0].startswith("Telegram refused the refund")
    assert status(shop, reference) == "completed"
    assert subscription(shop) == ("active",)


async def test_a_balance_purchase_is_refunded_to_the_balance(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        ann, admin = Customer(shop, ANN), Customer(shop, ADMIN)
        await ann.send("/start")
        await ann.top_up("p500")
        await ann.choose_plan("m1", "balance", "XTR")
        await ann.press(button(ann, "conf:"))
        (paid,) = shop.query("SELECT id, amount FROM payments WHERE provider = 'balance'")
        (before,) = shop.query("SELECT amount FROM balances")
        await refund_by_operator(admin, str(paid[0]))
        (after,) = shop.query("SELECT amount FROM balances")
    assert status(shop, str(paid[0])) == "refunded"
    assert after[0] == before[0] + paid[1]


@pytest.mark.parametrize("provider", ["stripe", "yookassa"])
async def test_a_provider_payment_is_refunded_through_its_api(
    shop_with: Any, providers: Providers, provider: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with(**ENV) as shop:
        ann, admin = Customer(shop, ANN), Customer(shop, ADMIN)
        await ann.send("/start")
        reference, remote = await choose(ann, provider)
        fake(providers, provider).pay(remote)
        await deliver(shop, provider, *fake(providers, provider).webhook_for(remote))
        await ann.settle()
        assert status(shop, reference) == "completed"
        answer = await refund_by_operator(admin, reference, twice=True)
        asked = fake(providers, provider).calls_to(
            "POST", "/v1/refunds" if provider == "stripe" else "/refunds"
        )
    assert answer[0].startswith("Refunded")
    assert "nothing to refund" in answer[1]
    assert len(asked) == 1
    assert status(shop, reference) == "refunded"
    assert subscription(shop) == ("expired",)


@pytest.mark.parametrize("provider", ["cryptopay", "heleket"])
async def test_a_provider_without_a_refund_api_points_to_its_dashboard(
    shop_with: Any, providers: Providers, provider: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with(**ENV) as shop:
        ann, admin = Customer(shop, ANN), Customer(shop, ADMIN)
        await ann.send("/start")
        reference, remote = await choose(ann, provider)
        fake(providers, provider).pay(remote)
        await deliver(shop, provider, *fake(providers, provider).webhook_for(remote))
        await ann.settle()
        answer = await refund_by_operator(admin, reference)
        (audited,) = shop.query("SELECT after FROM audit")
    assert "dashboard" in answer[0] or "@CryptoBot" in answer[0]
    assert status(shop, reference) == "completed"
    assert subscription(shop) == ("active",)
    assert audited[0]["done"] is False
