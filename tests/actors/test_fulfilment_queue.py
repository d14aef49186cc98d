"""The fulfilment queue: a panel that is down for hours delays access and loses nothing.

The backend here is a recording stand-in (the edge); the Remnawave client has its own
tests against a fake panel over HTTP.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from shop.errors import FulfilmentFailed
from shop.fulfilment import Access
from tests.customer import Customer
from tests.harness import Shop

ANN = 1001
DAY = dt.timedelta(days=1)
M1_STARS = 250


@attrs.define
class FlakyPanel:
    """Applies access like a panel would, or fails while ``down``."""

    name = "flaky"
    down: bool = False
    state: dict[int, Access] = attrs.Factory(dict)
    attempts: int = 0

    async def apply(self, access: Access) -> None:
        self.attempts += 1
        if self.down:
            raise FulfilmentFailed(self.name, "connection refused")
        self.state[access.telegram_id] = access

    async def access_text(self, telegram_id: int, language: str) -> str | None:
        return "🔑 <code>vless://example</code>"

    async def drift(self, access: Access) -> list[str]:
        return []


def subscription(shop: Shop) -> tuple[Any, ...]:
    (row,) = shop.query("SELECT status, expires_at FROM subscriptions WHERE telegram_id = %s", ANN)
    return row


async def test_a_panel_down_for_hours_delays_access_and_loses_nothing(
    shop_at: Any, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    panel = FlakyPanel(down=True)
    async with shop_at(fulfilment=panel, poll_timeout=86_400) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.choose_plan("m1", "stars")
        payment_id, _ = await ann.pay_last_invoice()
        # The money is settled whatever the panel does.
        assert shop.query("SELECT status FROM payments WHERE id = %s", payment_id) == [
            ("completed",)
        ]
        assert sum("Payment received" in t for t in ann.texts()) == 1
        await ann.press("sub")
        assert "being set up" in ann.last_text()
        assert "vless://" not in ann.last_text()
        await trio.sleep(6 * 3600)  # hours of outage: retried, further apart each time
        assert 5 <= panel.attempts <= 20
        assert caplog.text.count("ALERT: access of 1001 not applied") == 1
        assert panel.state == {}
        panel.down = False
        await trio.sleep(3600)  # the next retry finds the panel back
        status, expires_at = subscription(shop)
        assert status == "active"
        assert panel.state[ANN] == Access(
            telegram_id=ANN,
            active=True,
            expires_at=expires_at,
            lifetime=False,
            limits=shop.app.catalog.limits("m1"),
            grants=1,
        )
        assert shop.query("SELECT status FROM payments WHERE id = %s", payment_id) == [
            ("completed",)
        ]
        await ann.press("sub")
        assert "vless://" in ann.last_text()
        assert "being set up" not in ann.last_text()
        done = panel.attempts
        await trio.sleep(DAY.total_seconds())  # applied: nothing more to do
        assert panel.attempts == done


async def test_the_final_state_is_applied_not_every_step(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    panel = FlakyPanel(down=True)
    async with shop_at(fulfilment=panel, poll_timeout=86_400) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.choose_plan("m1", "stars")
        payment_id, charge_id = await ann.pay_last_invoice()
        shop.telegram.refunded_payment(
            ANN, payload=payment_id, total_amount=M1_STARS, charge_id=charge_id
        )
        await ann.settle()
        panel.down = False
        await trio.sleep(3600)
        assert subscription(shop)[0] == "expired"
        assert panel.state[ANN].active is False  # bought and refunded while down: no access
        assert shop.query("SELECT version = applied_version FROM fulfilment_queue") == [(True,)]


async def test_the_trial_and_a_renewal_reach_the_panel_at_once(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    panel = FlakyPanel()
    async with shop_at(fulfilment=panel, poll_timeout=86_400) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("trial")
        assert panel.state[ANN].grants == 1
        assert panel.state[ANN].limits == shop.app.catalog.limits("trial")
        await ann.choose_plan("m1", "stars")
        await ann.pay_last_invoice()
        assert panel.state[ANN].grants == 2  # each grant adds the plan's traffic once
        assert panel.state[ANN].expires_at == subscription(shop)[1]
        assert panel.attempts == 2


async def test_a_backend_bug_does_not_stop_the_queue(
    shop_at: Any, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    @attrs.define
    class BuggyPanel(FlakyPanel):
        async def apply(self, access: Access) -> None:
            if access.telegram_id == ANN:
                raise KeyError("a bug")
            await super().apply(access)

    panel = BuggyPanel()
    async with shop_at(fulfilment=panel, poll_timeout=86_400) as shop:
        for who in (ANN, 2002):
            customer = Customer(shop, who)
            await customer.send("/start")
            await customer.press("trial")
        assert list(panel.state) == [2002]
        assert "fulfilment of 1001 failed" in caplog.text
