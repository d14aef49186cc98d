"""Remnawave fulfilment end to end: the shop, the fake Bot API and a fake panel (2.8.1 and
3.3.2) over real HTTP, real PostgreSQL, mock time."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from shop.catalog import Limits
from shop.clock import TrioClock
from shop.errors import FulfilmentFailed
from shop.fulfilment import Access
from shop.fulfilment.qr import qr_png
from shop.fulfilment.remnawave import Remnawave
from shop.sandbox.panels.remnawave import DEFAULT_SQUAD, TOKEN, FakeRemnawave
from tests.conftest import START
from tests.customer import Customer
from tests.harness import Shop

ANN = 1001
GB = 1024**3
DAY = dt.timedelta(days=1)
SECRET = "wHsEcReT0123456789abcdefghijklmnopqrstuv"
SQUAD = DEFAULT_SQUAD[0]
#: What an operator's own client (or another bot) sends the panel, to change it by hand.
AS_AN_OPERATOR = {
    "Authorization": f"Bearer {TOKEN}",
    "X-Forwarded-For": "10.0.0.1",
    "X-Forwarded-Proto": "https",
}
CATALOG = f"""
[trial]
days = 3
traffic_gb = 5
devices = 1
squads = ["{SQUAD}"]

[[plans]]
id = "m1"
days = 30
title = "1 month"
prices = {{ XTR = 250 }}
traffic_gb = 50
devices = 3
squads = ["{SQUAD}"]
"""


@pytest.fixture(params=["3.3.2", "2.8.1"])
async def panel(request: pytest.FixtureRequest, nursery: trio.Nursery) -> FakeRemnawave:
    fake = FakeRemnawave(version=request.param, clock=TrioClock.starting_at(START))
    await nursery.start(fake.serve)
    return fake


@pytest.fixture
def shop_with_panel(shop_at: Any, panel: FakeRemnawave, tmp_path: Path) -> Any:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)

    @asynccontextmanager
    async def start(**environ: str) -> AsyncIterator[Shop]:
        env = {
            "FULFILMENT": "remnawave",
            "REMNAWAVE_URL": panel.base_url,
            "REMNAWAVE_TOKEN": TOKEN,
            "REMNAWAVE_WEBHOOK_SECRET": SECRET,
            "SHOP_CATALOG": str(catalog),
        } | environ
        async with shop_at(environ=env, poll_timeout=86_400) as shop:
            yield shop

    return start


def expiry(shop: Shop) -> dt.datetime:
    (row,) = shop.query("SELECT expires_at FROM subscriptions WHERE telegram_id = %s", ANN)
    return row[0]  # type: ignore[no-any-return]


def panel_expiry(panel: FakeRemnawave) -> dt.datetime:
    text = panel.users["tg_1001"]["expireAt"]
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def buy(ann: Customer) -> None:
    await ann.choose_plan("m1", "stars")
    await ann.pay_last_invoice()


async def test_a_purchase_creates_the_account_with_our_expiry_and_limits(
    shop_with_panel: Any, panel: FakeRemnawave, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with_panel() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await buy(ann)
        user = panel.users["tg_1001"]
        assert user["status"] == "ACTIVE"
        assert user["telegramId"] == ANN
        assert user["trafficLimitBytes"] == 50 * GB
        assert user["hwidDeviceLimit"] == 3
        assert [s["uuid"] for s in user["activeInternalSquads"]] == [SQUAD]
        assert panel_expiry(panel) == expiry(shop).replace(microsecond=0)
        assert panel.created == 1
        await ann.press("sub")
        assert user["subscriptionUrl"] in ann.last_text()


async def test_a_renewal_patches_the_absolute_expiry_and_carries_traffic(
    shop_with_panel: Any, panel: FakeRemnawave, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with_panel() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await buy(ann)
        panel.use_traffic("tg_1001", 27 * GB)
        await buy(ann)
        user = panel.users["tg_1001"]
        left = user["trafficLimitBytes"] - user["userTraffic"]["usedTrafficBytes"]
        assert left == 73 * GB  # 50 bought, 27 used, 50 more
        assert panel_expiry(panel) == expiry(shop).replace(microsecond=0)
        assert expiry(shop) > START + 59 * DAY
        patches = panel.calls_to("PATCH", "/api/users")
        assert all("expireAt" not in c.json() or "days" not in c.json() for c in patches)
        assert not [c for c in panel.calls if c.path.endswith("/actions/extend")]
        assert panel.created == 1


async def test_with_reset_a_renewal_starts_the_traffic_again(
    shop_with_panel: Any, panel: FakeRemnawave, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with_panel(TRAFFIC_ON_RENEWAL="reset") as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await buy(ann)
        panel.use_traffic("tg_1001", 27 * GB)
        await buy(ann)
        user = panel.users["tg_1001"]
        assert user["trafficLimitBytes"] == 50 * GB
        assert user["userTraffic"]["usedTrafficBytes"] == 0


async def test_a_create_whose_answer_was_lost_is_not_made_twice(
    shop_with_panel: Any, panel: FakeRemnawave, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with_panel() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        panel.lose_answers(1)  # the lookup is answered; the create is stored, its answer lost
        lookups = len(panel.calls_to("GET", "/api/users/by-username/tg_1001"))
        await buy(ann)
        await trio.sleep(120)  # the queue's retry
        assert panel.created == 1
        assert panel.users["tg_1001"]["status"] == "ACTIVE"
        assert len(panel.calls_to("GET", "/api/users/by-username/tg_1001")) > lookups


async def test_refund_and_expiry_disable(
    shop_with_panel: Any, panel: FakeRemnawave, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with_panel() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("trial")
        assert panel.users["tg_1001"]["trafficLimitBytes"] == 5 * GB
        await trio.sleep(5 * 86_400)  # the trial ends; the 07:00 expiry job runs
        assert panel.users["tg_1001"]["status"] == "DISABLED"
        await ann.choose_plan("m1", "stars")
        payment_id, charge_id = await ann.pay_last_invoice()
        assert panel.users["tg_1001"]["status"] == "ACTIVE"
        shop.telegram.refunded_payment(
            ANN, payload=payment_id, total_amount=250, charge_id=charge_id
        )
        await ann.settle()
        assert panel.users["tg_1001"]["status"] == "DISABLED"


async def test_a_panel_outage_delays_access_and_the_payment_stands(
    shop_with_panel: Any, panel: FakeRemnawave, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with_panel() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        panel.outage(502)
        await buy(ann)
        assert shop.query("SELECT status FROM payments") == [("completed",)]
        await ann.press("sub")
        assert "being set up" in ann.last_text()
        await trio.sleep(3 * 3600)
        assert "tg_1001" not in panel.users
        panel.end_outage()
        await trio.sleep(3600)
        assert panel.users["tg_1001"]["status"] == "ACTIVE"
        assert panel_expiry(panel) == expiry(shop).replace(microsecond=0)


async def test_panel_webhooks_are_signed_and_acted_on(
    shop_with_panel: Any, panel: FakeRemnawave, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with_panel() as shop, httpx.AsyncClient(base_url=shop.url) as http:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await buy(ann)
        headers, body = panel.webhook("user.limited", "tg_1001", secret="not-the-secret" * 3)
        assert (
            await http.post("/webhooks/remnawave", content=body, headers=headers)
        ).status_code == 401
        headers, body = panel.webhook("user.limited", "tg_1001", secret=SECRET)
        for _ in range(2):  # the panel retries a delivery: told once
            answer = await http.post("/webhooks/remnawave", content=body, headers=headers)
            assert answer.status_code == 200
        await ann.settle()
        assert sum("traffic has run out" in t for t in ann.texts()) == 1
        headers, body = panel.webhook(
            "user.bandwidth_usage_threshold_reached", "tg_1001", secret=SECRET
        )
        answer = await http.post("/webhooks/remnawave", content=body, headers=headers)
        assert answer.status_code == 200
        await ann.settle()
        assert sum("Most of your VPN traffic is used up" in t for t in ann.texts()) == 1
        assert "buy" in ann.buttons()
        panel.disable_by_hand("tg_1001")
        headers, body = panel.webhook("user.disabled", "tg_1001", secret=SECRET)
        assert (
            await http.post("/webhooks/remnawave", content=body, headers=headers)
        ).status_code == 200
        await ann.settle()
        assert panel.users["tg_1001"]["status"] == "ACTIVE"  # put back as paid for
        headers, body = panel.webhook("user.first_connected", "tg_1001", secret=SECRET)
        assert (
            await http.post("/webhooks/remnawave", content=body, headers=headers)
        ).status_code == 200


async def test_two_clients_racing_create_one_account(
    panel: FakeRemnawave, autojump_clock: trio.testing.MockClock
) -> None:
    access = Access(
        telegram_id=ANN,
        active=True,
        expires_at=START + 30 * DAY,
        lifetime=False,
        limits=Limits(50, 3, (SQUAD,)),
        grants=1,
    )
    async with httpx.AsyncClient() as http:
        clients = [Remnawave(http, url=panel.base_url, token=TOKEN) for _ in range(2)]
        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(client.apply, access)
    assert panel.created == 1
    assert panel.users["tg_1001"]["trafficLimitBytes"] == 50 * GB  # counted once


async def test_an_account_of_another_telegram_id_is_left_alone(
    panel: FakeRemnawave, autojump_clock: trio.testing.MockClock
) -> None:
    headers = AS_AN_OPERATOR
    access = Access(ANN, True, START + 30 * DAY, False, Limits(), 1)
    async with httpx.AsyncClient() as http:
        # Another bot made tg_1001 for its own customer 99.
        made = await http.post(
            f"{panel.base_url}/api/users",
            json={"username": "tg_1001", "expireAt": "2027-01-01T00:00:00.000Z", "telegramId": 99},
            headers=headers,
        )
        assert made.status_code == 201
        before = dict(panel.users["tg_1001"])
        with pytest.raises(FulfilmentFailed):
            await Remnawave(http, url=panel.base_url, token=TOKEN).apply(access)
    assert panel.users["tg_1001"] == before


async def test_sync_repairs_each_kind_of_drift(
    shop_with_panel: Any, panel: FakeRemnawave, autojump_clock: trio.testing.MockClock
) -> None:
    from shop.actors.fulfilment import sync_everyone

    async with shop_with_panel() as shop, httpx.AsyncClient() as http:
        customers = [Customer(shop, who) for who in (ANN, 2002, 3003, 4004)]
        for customer in customers:
            await customer.send("/start")
            await buy(customer)
        panel.delete_by_hand("tg_1001")  # missing account
        panel.disable_by_hand("tg_2002")  # wrong status
        headers = AS_AN_OPERATOR
        for change in (
            {"username": "tg_3003", "expireAt": "2031-01-01T00:00:00.000Z"},  # wrong expiry
            {"username": "tg_4004", "hwidDeviceLimit": 10},  # wrong limits
        ):
            patched = await http.patch(f"{panel.base_url}/api/users", json=change, headers=headers)
            assert patched.status_code == 200
        app = shop.app
        lines: list[str] = []
        found = await sync_everyone(
            app.store, app.fulfilment, app.catalog, app.clock, dry_run=True, report=lines.append
        )
        assert found == 4
        assert any(line.startswith("1001: no account") for line in lines)
        assert any(line.startswith("2002: status: DISABLED -> ACTIVE") for line in lines)
        assert any(line.startswith("3003: expireAt: 2031-01-01") for line in lines)
        assert any(line.startswith("4004: hwidDeviceLimit: 10 -> 3") for line in lines)
        assert panel.users["tg_2002"]["status"] == "DISABLED"  # a dry run changes nothing
        repaired = await sync_everyone(
            app.store, app.fulfilment, app.catalog, app.clock, dry_run=False, report=lines.append
        )
        assert repaired == 4
        again: list[str] = []
        assert (
            await sync_everyone(
                app.store, app.fulfilment, app.catalog, app.clock, dry_run=True, report=again.append
            )
            == 0
        )
        assert again == []
        assert panel.users["tg_1001"]["status"] == "ACTIVE"
        assert panel.users["tg_4004"]["hwidDeviceLimit"] == 3


async def test_my_subscription_shows_the_access_and_resets_the_link(
    shop_with_panel: Any, panel: FakeRemnawave, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with_panel() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await buy(ann)
        panel.use_traffic("tg_1001", 12 * GB)
        await ann.press("sub")
        screen = ann.last_text()
        old_link = panel.users["tg_1001"]["subscriptionUrl"]
        assert old_link in screen
        assert "12 GB used, <b>38 GB left</b> of 50 GB" in screen
        assert "Devices: up to 3" in screen
        await ann.press("relink")
        assert "old link stops working" in ann.last_text()
        assert panel.users["tg_1001"]["subscriptionUrl"] == old_link  # asked, not done
        await ann.press("relink:yes")
        new_link = panel.users["tg_1001"]["subscriptionUrl"]
        assert new_link != old_link
        assert new_link in ann.last_text()
        assert ann.answers()[-1] == "Your link was reset"
        await ann.press("relink:no")  # a forged argument changes nothing
        assert panel.users["tg_1001"]["subscriptionUrl"] == new_link


async def test_import_adopts_another_bots_accounts_without_duplicates(
    shop_with_panel: Any, panel: FakeRemnawave, autojump_clock: trio.testing.MockClock
) -> None:
    from shop.actors.fulfilment import import_accounts

    headers = AS_AN_OPERATOR
    later = (START + 40 * DAY).isoformat().replace("+00:00", "Z")
    async with shop_with_panel() as shop, httpx.AsyncClient() as http:
        for body in (  # what another bot left on the panel
            {"username": "user_1001", "expireAt": later, "telegramId": ANN,
             "trafficLimitBytes": 80 * GB, "hwidDeviceLimit": 5},
            {"username": "user_2002", "expireAt": "2026-10-01T00:00:00.000Z", "telegramId": 2002},
            {"username": "nobody", "expireAt": later},
        ):  # fmt: skip
            made = await http.post(f"{panel.base_url}/api/users", json=body, headers=headers)
            assert made.status_code == 201, made.text
        lines: list[str] = []
        app = shop.app
        adopted = await import_accounts(app.store, app.fulfilment, app.clock, report=lines.append)
        assert adopted == 2
        assert "nobody: no Telegram id, skipped" in lines
        assert shop.query(
            "SELECT telegram_id, status, expires_at FROM subscriptions ORDER BY telegram_id"
        ) == [
            (ANN, "active", START + 40 * DAY),
            (2002, "expired", dt.datetime(2026, 10, 1, tzinfo=dt.UTC)),
        ]
        again: list[str] = []
        assert await import_accounts(app.store, app.fulfilment, app.clock, report=again.append) == 0
        await trio.sleep(60)  # the queue looks at the adopted customers: nothing to change
        assert panel.created == 3
        adopted_user = panel.users["user_1001"]
        assert adopted_user["trafficLimitBytes"] == 80 * GB  # its limits are left alone
        assert adopted_user["hwidDeviceLimit"] == 5
        # Ann renews here: the same account, extended, with the plan's limits from now on.
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await buy(ann)
        assert panel.created == 3
        assert "tg_1001" not in panel.users
        assert panel_expiry_of(panel, "user_1001") == expiry(shop).replace(microsecond=0)
        assert expiry(shop) == START + 70 * DAY
        assert panel.users["user_1001"]["trafficLimitBytes"] == 80 * GB + 50 * GB


def panel_expiry_of(panel: FakeRemnawave, name: str) -> dt.datetime:
    text = panel.users[name]["expireAt"]
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_the_qr_code_is_the_subscription_link(
    shop_with_panel: Any, panel: FakeRemnawave, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with_panel() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await buy(ann)
        await ann.press("sub")
        await ann.press("qr")
        (call,) = shop.telegram.calls_to("sendPhoto", ANN)
        link = panel.users["tg_1001"]["subscriptionUrl"]
        assert call.status == 200
        assert link in call.params["caption"]
        (upload,) = shop.telegram.uploads
        assert upload.content_type == "image/png"
        assert upload.content == qr_png(link)  # the very link, encoded
        assert upload.content.startswith(b"\x89PNG")


async def test_two_shops_on_one_database_make_one_account(
    clean_database: str,
    busy_hook: Any,
    panel: FakeRemnawave,
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
) -> None:
    from tests.harness import fake_telegram, running_shop

    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    environ = {
        "FULFILMENT": "remnawave",
        "REMNAWAVE_URL": panel.base_url,
        "REMNAWAVE_TOKEN": TOKEN,
        "SHOP_CATALOG": str(catalog),
    }
    clock = TrioClock.starting_at(START)
    async with (
        fake_telegram(clock) as one,
        fake_telegram(clock, bot_id=777000222) as two,
        running_shop(clean_database, environ, telegram=one, clock=clock, on_busy=busy_hook) as a,
        running_shop(clean_database, environ, telegram=two, clock=clock, on_busy=busy_hook) as b,
    ):
        for customer in range(5000, 5020):  # paid for on either shop, at the same moment
            a.query(
                "WITH c AS (INSERT INTO customers (telegram_id, first_seen, last_seen)"
                " VALUES (%s, %s, %s)) INSERT INTO subscriptions (telegram_id, status,"
                " expires_at, plan_id, started_at, updated_at)"
                " VALUES (%s, 'active', %s, 'm1', %s, %s) RETURNING 1",
                customer, START, START, customer, START + 30 * DAY, START, START,
            )  # fmt: skip
        a.app.fulfilment_due.poke()
        b.app.fulfilment_due.poke()
        await trio.sleep(30)
        assert panel.created == 20
        assert sorted(panel.users) == [f"tg_{c}" for c in range(5000, 5020)]
        assert a.query("SELECT count(*) FROM fulfilment_queue WHERE version = applied_version") == [
            (20,)
        ]


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ((200, {"response": {"version": "3.3.2"}}), "3.3.2"),
        ((200, {"response": {"version": "2.8.1"}}), "2.8.1"),
        ((404, {"message": "Cannot GET /api/system/metadata"}), "2.2-2.4"),  # before 2.5.0
        ((200, {"response": {"version": "1.6.3"}}), None),
        ((200, {"response": {"version": "2.1.0"}}), None),
        ((200, {"response": {"version": "4.0.0"}}), None),
    ],
)
async def test_the_panel_version_is_read_and_an_unsupported_one_stops_the_start(
    answer: tuple[int, dict[str, Any]], verdict: str | None
) -> None:
    from shop.errors import StartupFailed

    status, body = answer
    seen: list[httpx.Request] = []

    def metadata(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(metadata)) as http:
        panel = Remnawave(http, url="https://panel.example", token=TOKEN)
        if verdict is None:
            with pytest.raises(StartupFailed, match="not supported") as failed:
                await panel.check()
            assert failed.value.code == 2
        else:
            assert await panel.check() == verdict
    assert seen[0].url.path == "/api/system/metadata"
    assert seen[0].headers["x-forwarded-proto"] == "https"


async def test_a_caddy_portal_needs_its_api_key(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery, httpx.AsyncClient() as http:
        panel = FakeRemnawave(
            caddy_token="caddy-key-0123456789", clock=TrioClock.starting_at(START)
        )
        await nursery.start(panel.serve)
        access = Access(ANN, True, START + 30 * DAY, False, Limits(), 1)
        with pytest.raises(FulfilmentFailed):
            await Remnawave(http, url=panel.base_url, token=TOKEN).apply(access)
        assert "tg_1001" not in panel.users
        client = Remnawave(
            http, url=panel.base_url, token=TOKEN, caddy_token="caddy-key-0123456789"
        )
        await client.apply(access)
        assert panel.users["tg_1001"]["status"] == "ACTIVE"
        nursery.cancel_scope.cancel()
