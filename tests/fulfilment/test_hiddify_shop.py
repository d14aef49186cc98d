"""Hiddify fulfilment through the whole shop: a purchase creates the account, a refund
disables it, ``shop panel sync`` logic sees no drift after. Fake panel over real HTTP."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from shop.actors.fulfilment import sync_everyone
from shop.clock import TrioClock
from tests.conftest import START
from tests.customer import Customer
from tests.fakes.panels.hiddify import API_KEY, FakeHiddify

ANN = 1001


async def test_a_purchase_creates_the_account_and_a_refund_disables_it(
    shop_at: Any, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    panel = FakeHiddify(clock=TrioClock.starting_at(START))
    await nursery.start(panel.serve)
    environ = {
        "FULFILMENT": "hiddify",
        "HIDDIFY_URL": panel.base_url,
        "HIDDIFY_API_KEY": API_KEY,
        "HIDDIFY_CLIENT_URL": panel.client_url,
    }
    async with shop_at(environ=environ, poll_timeout=86_400) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.choose_plan("m1", "stars")
        payment_id, charge_id = await ann.pay_last_invoice()
        ((account,),) = shop.query("SELECT account_id FROM panel_accounts")
        user = panel.users[str(account)]
        assert user["enable"] is True
        assert user["telegram_id"] == ANN
        await ann.press("sub")
        assert f"{panel.client_url}/{account}/" in ann.last_text()
        app = shop.app
        lines: list[str] = []
        assert (
            await sync_everyone(
                app.store, app.fulfilment, app.catalog, app.clock, dry_run=True, report=lines.append
            )
            == 0
        ), lines
        shop.telegram.refunded_payment(
            ANN, payload=payment_id, total_amount=250, charge_id=charge_id
        )
        await ann.settle()
        assert panel.users[str(account)]["enable"] is False
        assert len(panel.users) == 1
