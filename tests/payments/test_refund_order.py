"""A provider's refund wins whichever order its events come in; another currency is a
problem, not a purchase. Whole shop, fake Stripe over real HTTP, mock time."""

from __future__ import annotations

from typing import Any

import pytest
import trio.testing

from tests.customer import Customer
from tests.payments.test_checkout import (  # noqa: F401 - fixtures
    ANN,
    Providers,
    choose,
    deliver,
    providers,
    shop_with,
    status,
)


def confirmations(ann: Customer) -> int:
    return sum("Payment received" in text for text in ann.texts())


@pytest.mark.parametrize("refund_first", [True, False])
async def test_a_provider_refund_wins_in_either_order(
    shop_with: Any,  # noqa: F811
    providers: Providers,  # noqa: F811
    autojump_clock: trio.testing.MockClock,
    refund_first: bool,
) -> None:
    async with shop_with() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        reference, session = await choose(ann, "stripe")
        providers.stripe.pay(session)
        paid = providers.stripe.webhook_for(session, "checkout.session.completed")
        providers.stripe.refund(session)
        refunded = providers.stripe.webhook_for(session, "charge.refunded")
        for headers, body in [refunded, paid] if refund_first else [paid, refunded]:
            assert (await deliver(shop, "stripe", headers, body)).status_code == 200
            await ann.settle()
        await ann.press(f"chk:{reference}")  # Stripe's status still says "paid"
        await trio.sleep(2 * 3600)  # and so do the reconciler's checks
        assert status(shop, reference) == "refunded"
        subscription = shop.query("SELECT status FROM subscriptions")
        if refund_first:
            assert shop.query("SELECT count(*) FROM grants") == [(0,)]
            assert subscription == []
            assert confirmations(ann) == 0
        else:
            assert shop.query("SELECT reversed_at IS NOT NULL FROM grants") == [(True,)]
            assert subscription == [("expired",)]
            assert confirmations(ann) == 1
        assert sum("Refund of" in text for text in ann.texts()) == 1


async def test_another_currency_is_not_fulfilled(
    shop_with: Any,  # noqa: F811
    providers: Providers,  # noqa: F811
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with shop_with() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        reference, session = await choose(ann, "stripe")
        providers.stripe.sessions[session]["currency"] = "eur"  # 3.49 EUR for 3.49 USD
        providers.stripe.pay(session)
        headers, body = providers.stripe.webhook_for(session, "checkout.session.completed")
        assert (await deliver(shop, "stripe", headers, body)).status_code == 200
        await ann.settle()
        assert status(shop, reference) == "problem"
        assert shop.query(
            "SELECT problem, problem_amount, problem_currency FROM payments WHERE id = %s",
            reference,
        ) == [("other currency", 349, "EUR")]
        assert shop.query("SELECT count(*) FROM grants") == [(0,)]
        assert confirmations(ann) == 0
