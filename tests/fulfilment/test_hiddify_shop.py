"""Hiddify fulfilment through the whole shop: a purchase creates the account, a refund
disables it, ``shop panel sync`` logic sees no drift after. Fake panel over real HTTP."""

from __future__ import annotations

import datetime as dt
from typing import Any

import trio
import trio.testing

from shop.actors.fulfilment import sync_everyone
from shop.clock import TrioClock
from shop.sandbox.panels.hiddify import API_KEY, FakeHiddify
from tests.conftest import START
from tests.customer import Customer

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


async def test_import_adopts_hiddify_users(
    shop_at: Any, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    import httpx

    from shop.actors.fulfilment import import_accounts

    panel = FakeHiddify(clock=TrioClock.starting_at(START))
    await nursery.start(panel.serve)
    environ = {"FULFILMENT": "hiddify", "HIDDIFY_URL": panel.base_url, "HIDDIFY_API_KEY": API_KEY}
    headers = {"Hiddify-API-Key": API_KEY, "Accept": "application/json"}
    async with shop_at(environ=environ, poll_timeout=86_400) as shop, httpx.AsyncClient() as http:
        for body in (  # what another bot left on the panel
            {"name": "old_1001", "telegram_id": ANN, "package_days": 30,
             "start_date": START.date().isoformat(), "usage_limit_GB": 80},
            {"name": "someone"},
        ):  # fmt: skip
            made = await http.post(
                f"{panel.base_url}/api/v2/admin/user/", json=body, headers=headers
            )
            assert made.status_code == 200, made.text
        old_uuid = next(u for u, user in panel.users.items() if user["name"] == "old_1001")
        lines: list[str] = []
        app = shop.app
        assert await import_accounts(app.store, app.fulfilment, app.clock, report=lines.append) == 1
        assert "someone: no Telegram id, skipped" in lines
        ((expires_at,),) = shop.query("SELECT expires_at FROM subscriptions")
        # 30 days from the start date: in through its last day, so ending the next midnight.
        assert expires_at.date() == START.date() + dt.timedelta(days=31)
        assert shop.query("SELECT account_id FROM panel_accounts") == [(old_uuid,)]
        # Ann renews: the adopted user is extended, no second user is made.
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.choose_plan("m1", "stars")
        await ann.pay_last_invoice()
        assert len(panel.users) == 2
        assert panel.users[old_uuid]["package_days"] > 30
