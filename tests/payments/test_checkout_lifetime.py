"""A provider's checkout lives exactly as long as our payment: Crypto Pay's ``expires_in``."""

from __future__ import annotations

from typing import Any

import trio.testing

from tests.customer import Customer
from tests.payments.test_checkout import (  # noqa: F401 - fixtures
    ANN,
    Providers,
    choose,
    providers,
    shop_with,
)


async def test_a_crypto_pay_invoice_expires_with_its_payment(
    shop_with: Any,  # noqa: F811
    providers: Providers,  # noqa: F811
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with shop_with() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        reference, _ = await choose(ann, "cryptopay")
        (created,) = providers.cryptopay.calls_to("POST", "/createInvoice")
        ((lifetime,),) = shop.query(
            "SELECT extract(epoch FROM expires_at - created_at)::int FROM payments WHERE id = %s",
            reference,
        )
        assert lifetime == 24 * 3600
        # Created a moment after the payment was stored: within the same virtual second.
        assert lifetime - 5 <= created.json()["expires_in"] <= lifetime
