"""Hiddify fulfilment: the client against a fake panel (hiddifypanel 12.3.0) over real HTTP,
real PostgreSQL for the stored uuid, mock time for days."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from shop.catalog import Limits
from shop.clock import TrioClock
from shop.errors import FulfilmentFailed, StartupFailed
from shop.fulfilment import Access
from shop.fulfilment.hiddify import LIFETIME_LAST_DAY, UNLIMITED_GB, Hiddify
from shop.sandbox.panels.hiddify import API_KEY, FakeHiddify
from shop.store import Store, open_store, panel_accounts
from tests.conftest import START

ANN = 1001
DAY = dt.timedelta(days=1)
PLAN = Limits(traffic_gb=50, devices=3)
USERS = "/api/v2/admin/user/"


@pytest.fixture
async def clock() -> TrioClock:
    return TrioClock.starting_at(START)


@pytest.fixture
async def panel(nursery: trio.Nursery, clock: TrioClock) -> FakeHiddify:
    fake = FakeHiddify(clock=clock)
    await nursery.start(fake.serve)
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture
async def ann(store: Store) -> int:
    await store.run(_add_customer, ANN)
    return ANN


def _add_customer(conn: Any, telegram_id: int) -> None:
    conn.execute(
        "INSERT INTO customers (telegram_id, first_seen, last_seen) VALUES (%s, %s, %s)",
        (telegram_id, START, START),
    )


def hiddify(
    http: httpx.AsyncClient, panel: FakeHiddify, store: Store, clock: TrioClock, **kwargs: Any
) -> Hiddify:
    options: dict[str, Any] = {"api_key": API_KEY, "client_url": panel.client_url} | kwargs
    return Hiddify(http, url=panel.base_url, store=store, clock=clock, **options)


def access(
    expires_at: dt.datetime | None,
    *,
    grants: int = 1,
    active: bool = True,
    limits: Limits = PLAN,
    lifetime: bool = False,
    telegram_id: int = ANN,
) -> Access:
    return Access(
        telegram_id=telegram_id,
        active=active,
        expires_at=expires_at,
        lifetime=lifetime,
        limits=limits,
        grants=grants,
    )


async def stored(store: Store) -> str | None:
    return await store.run(panel_accounts.find, ANN, "hiddify")


def only_user(panel: FakeHiddify) -> dict[str, Any]:
    (user,) = panel.users.values()
    return user


def changes(panel: FakeHiddify) -> list[tuple[str, int]]:
    """The calls that could change something (not the GETs)."""
    return [(c.method, c.status) for c in panel.calls if c.method != "GET"]


# -- purchase ---------------------------------------------------------------------------


async def test_a_purchase_creates_the_user_with_our_expiry_and_limits(
    http: httpx.AsyncClient, panel: FakeHiddify, store: Store, clock: TrioClock, ann: int
) -> None:
    client = hiddify(http, panel, store, clock)
    await client.apply(access(START + 30 * DAY))  # 2026-12-01 12:00 UTC
    user = only_user(panel)
    account = await stored(store)
    assert user["uuid"] == account
    assert uuid.UUID(account).version == 4
    assert user["name"] == "tg_1001"
    assert user["telegram_id"] == ANN
    assert user["usage_limit_GB"] == 50
    assert user["current_usage_GB"] == 0
    assert (user["start_date"], user["package_days"]) == ("2026-11-01", 30)  # last day: Dec 1
    assert (user["mode"], user["enable"], user["is_active"]) == ("no_reset", True, True)
    assert "shop:grants=1" in user["comment"]
    assert panel.calls_to("POST", USERS)[0].json()["uuid"] == account
    text = await client.access_text(ANN, "en")
    assert text == f"🔑 <code>{panel.client_url}/{account}/</code>"

    await client.apply(access(START + 30 * DAY))  # the same state again: nothing to change
    assert changes(panel) == [("POST", 200)]


async def test_the_stored_id_wins_over_a_new_one(store: Store, ann: int) -> None:
    assert await store.run(panel_accounts.account_for, ANN, "hiddify", "a", START) == "a"
    assert await store.run(panel_accounts.account_for, ANN, "hiddify", "b", START) == "a"
    assert await store.run(panel_accounts.find, ANN, "other") is None


async def test_the_uuid_is_random_not_derived_from_the_telegram_id(
    http: httpx.AsyncClient, panel: FakeHiddify, store: Store, clock: TrioClock, ann: int
) -> None:
    client = hiddify(http, panel, store, clock)
    await client.apply(access(START + 30 * DAY))
    first = await stored(store)
    await store.run(lambda conn: conn.execute("DELETE FROM panel_accounts"))  # a new database
    await client.apply(access(START + 30 * DAY))
    second = await stored(store)
    assert first != second  # a derived uuid would come out the same (and be guessable)
    assert set(panel.users) == {first, second}
    assert all(uuid.UUID(u).version == 4 for u in panel.users)


@pytest.mark.parametrize(
    ("expires_at", "last_active", "package_days"),
    [
        # 12:00 rounds up to the next midnight: the panel lets Ann in all of Dec 1
        (START + 30 * DAY, dt.datetime(2026, 12, 1, 23, 59, 59, tzinfo=dt.UTC), 30),
        # exactly midnight is not rounded: Nov 30 is the last day
        (
            dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
            dt.datetime(2026, 11, 30, 23, 59, 59, tzinfo=dt.UTC),
            29,
        ),
        # one second past midnight is a whole day more
        (
            dt.datetime(2026, 12, 1, 0, 0, 1, tzinfo=dt.UTC),
            dt.datetime(2026, 12, 1, 23, 59, 59, tzinfo=dt.UTC),
            30,
        ),
    ],
    ids=["noon", "midnight", "a-second-past-midnight"],
)
async def test_the_panel_ends_access_at_the_first_midnight_not_before_the_expiry(
    http: httpx.AsyncClient,
    panel: FakeHiddify,
    store: Store,
    clock: TrioClock,
    ann: int,
    autojump_clock: trio.testing.MockClock,
    expires_at: dt.datetime,
    last_active: dt.datetime,
    package_days: int,
) -> None:
    await hiddify(http, panel, store, clock).apply(access(expires_at))
    account = await stored(store)
    assert panel.users[account]["package_days"] == package_days
    await trio.sleep((last_active - clock.now()).total_seconds())
    assert clock.now() >= expires_at - dt.timedelta(seconds=1)
    assert panel.users[account]["is_active"]
    await trio.sleep(2)  # past midnight
    assert not panel.users[account]["is_active"]


async def test_lifetime_and_unlimited_traffic_map_to_the_panels_largest_values(
    http: httpx.AsyncClient, panel: FakeHiddify, store: Store, clock: TrioClock, ann: int
) -> None:
    client = hiddify(http, panel, store, clock)
    await client.apply(access(None, lifetime=True, limits=Limits()))
    user = only_user(panel)
    assert user["usage_limit_GB"] == UNLIMITED_GB == 1_000_000
    assert user["package_days"] == (LIFETIME_LAST_DAY - START.date()).days
    assert user["is_active"]
    panel.use_traffic(user["uuid"], 5000)
    assert only_user(panel)["is_active"]
    await client.apply(access(None, lifetime=True, limits=Limits()))
    assert changes(panel) == [("POST", 200)]


# -- renewal ----------------------------------------------------------------------------


async def test_a_renewal_moves_the_end_and_carries_the_traffic_left(
    http: httpx.AsyncClient,
    panel: FakeHiddify,
    store: Store,
    clock: TrioClock,
    ann: int,
    autojump_clock: trio.testing.MockClock,
) -> None:
    client = hiddify(http, panel, store, clock)
    await client.apply(access(START + 30 * DAY))
    account = await stored(store)
    panel.use_traffic(account, 27)
    await trio.sleep(10 * 86_400)  # renewed on day 10
    await client.apply(access(START + 60 * DAY, grants=2))
    user = panel.users[account]
    assert user["usage_limit_GB"] - user["current_usage_GB"] == 73  # 50 bought, 27 used, 50 more
    assert user["current_usage_GB"] == 27
    assert user["start_date"] == "2026-11-11"
    assert user["package_days"] == 50  # Nov 11 + 50 = Dec 31, the last day
    assert "shop:grants=2" in user["comment"]
    (patch,) = panel.calls_to("PATCH", f"{USERS}{account}/")
    assert {"start_date", "package_days"} <= set(patch.json())

    await trio.sleep(86_400)  # a repeat on another day changes nothing
    await client.apply(access(START + 60 * DAY, grants=2))
    assert changes(panel) == [("POST", 200), ("PATCH", 200)]
    assert panel.users[account]["usage_limit_GB"] == 100


async def test_with_reset_a_renewal_starts_the_traffic_again(
    http: httpx.AsyncClient,
    panel: FakeHiddify,
    store: Store,
    clock: TrioClock,
    ann: int,
    autojump_clock: trio.testing.MockClock,
) -> None:
    client = hiddify(http, panel, store, clock, traffic_on_renewal="reset")
    await client.apply(access(START + 30 * DAY))
    account = await stored(store)
    panel.use_traffic(account, 27)
    await trio.sleep(10 * 86_400)
    await client.apply(access(START + 60 * DAY, grants=2))
    user = panel.users[account]
    assert (user["usage_limit_GB"], user["current_usage_GB"]) == (50, 0)
    await client.apply(access(START + 60 * DAY, grants=2))
    assert len(panel.calls_to("PATCH", f"{USERS}{account}/")) == 1


async def test_renewing_an_expired_user_makes_it_active_again(
    http: httpx.AsyncClient,
    panel: FakeHiddify,
    store: Store,
    clock: TrioClock,
    ann: int,
    autojump_clock: trio.testing.MockClock,
) -> None:
    client = hiddify(http, panel, store, clock)
    await client.apply(access(START + 3 * DAY))
    account = await stored(store)
    await trio.sleep(40 * 86_400)
    assert not panel.users[account]["is_active"]
    await client.apply(access(clock.now() + 30 * DAY, grants=2))
    user = panel.users[account]
    assert user["is_active"]
    assert user["start_date"] == (START + 40 * DAY).date().isoformat()


# -- revocation -------------------------------------------------------------------------


async def test_revocation_disables_the_user_once(
    http: httpx.AsyncClient, panel: FakeHiddify, store: Store, clock: TrioClock, ann: int
) -> None:
    client = hiddify(http, panel, store, clock)
    await client.apply(access(START + 30 * DAY))
    await client.apply(access(START + 30 * DAY, active=False))
    user = only_user(panel)
    assert (user["enable"], user["is_active"]) == (False, False)
    await client.apply(access(START + 30 * DAY, active=False))
    assert changes(panel) == [("POST", 200), ("PATCH", 200)]
    await client.apply(access(START + 60 * DAY, grants=2))  # bought again
    assert only_user(panel)["is_active"]


async def test_revoking_a_customer_who_never_had_a_user_calls_nothing(
    http: httpx.AsyncClient, panel: FakeHiddify, store: Store, clock: TrioClock, ann: int
) -> None:
    await hiddify(http, panel, store, clock).apply(access(None, active=False))
    assert panel.calls == []
    assert await stored(store) is None


# -- failures ---------------------------------------------------------------------------


async def test_a_create_whose_answer_was_lost_is_not_duplicated(
    http: httpx.AsyncClient, panel: FakeHiddify, store: Store, clock: TrioClock, ann: int
) -> None:
    client = hiddify(http, panel, store, clock)
    panel.lose_answers(1, method="POST")  # the panel stores the user; we hear 504
    with pytest.raises(FulfilmentFailed, match="create answered 504"):
        await client.apply(access(START + 30 * DAY))
    assert panel.created == 1
    await client.apply(access(START + 30 * DAY))
    assert panel.created == 1
    assert list(panel.users) == [await stored(store)]
    assert only_user(panel)["usage_limit_GB"] == 50


async def test_two_shops_applying_at_once_create_one_user(
    http: httpx.AsyncClient, panel: FakeHiddify, store: Store, clean_database: str, ann: int
) -> None:
    panel.hold("GET", 2)  # both look the user up before either creates it
    async with open_store(clean_database, size=2) as other:
        shops = [
            hiddify(http, panel, store, TrioClock.starting_at(START)),
            hiddify(http, panel, other, TrioClock.starting_at(START)),
        ]
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for shop in shops:
                    nursery.start_soon(shop.apply, access(START + 30 * DAY))
    assert panel.created == 1
    assert list(panel.users) == [await stored(store)]
    assert sorted(changes(panel)) == [("POST", 200), ("POST", 400)]  # one adopted the other's
    (row,) = await store.run(lambda conn: conn.execute("SELECT * FROM panel_accounts").fetchall())
    assert row[2] == await stored(store)


async def test_an_outage_fails_without_leaking_and_a_later_apply_succeeds(
    http: httpx.AsyncClient, panel: FakeHiddify, store: Store, clock: TrioClock, ann: int
) -> None:
    client = hiddify(http, panel, store, clock)
    panel.outage(502)
    with pytest.raises(FulfilmentFailed) as failed:
        await client.apply(access(START + 30 * DAY))
    account = await stored(store)
    assert account is not None  # chosen before any create call
    for secret in (panel.base_url, panel.admin_path, API_KEY, account):
        assert secret not in str(failed.value)
    assert panel.users == {}
    panel.end_outage()
    await client.apply(access(START + 30 * DAY))
    assert list(panel.users) == [account]


async def test_a_wrong_api_key_is_reported_without_the_key(
    http: httpx.AsyncClient, panel: FakeHiddify, store: Store, clock: TrioClock, ann: int
) -> None:
    wrong = str(uuid.uuid4())
    client = hiddify(http, panel, store, clock, api_key=wrong)
    with pytest.raises(FulfilmentFailed, match="refused the API key") as failed:
        await client.apply(access(START + 30 * DAY))
    assert wrong not in str(failed.value)
    assert panel.users == {}


async def test_a_url_without_the_admin_proxy_path_fails(
    http: httpx.AsyncClient, panel: FakeHiddify, store: Store, clock: TrioClock, ann: int
) -> None:
    client = hiddify(http, panel, store, clock)
    client._base = panel.base_url.removesuffix(panel.prefix)  # the operator forgot the path
    with pytest.raises(FulfilmentFailed, match="lookup answered 400 invalid request"):
        await client.apply(access(START + 30 * DAY))


async def test_check_reads_the_version(
    http: httpx.AsyncClient, panel: FakeHiddify, store: Store, clock: TrioClock
) -> None:
    assert await hiddify(http, panel, store, clock).check() == "12.3.0"
    panel.version = "9.2.1"
    with pytest.raises(StartupFailed, match=r"9\.2\.1 is not supported"):
        await hiddify(http, panel, store, clock).check()


async def test_without_a_client_url_access_text_only_says_access_is_active(
    http: httpx.AsyncClient, panel: FakeHiddify, store: Store, clock: TrioClock, ann: int
) -> None:
    client = hiddify(http, panel, store, clock, client_url=None)
    assert await client.access_text(ANN, "en") is None  # no user yet
    await client.apply(access(START + 30 * DAY))
    text = await client.access_text(ANN, "ru")
    assert text == "✅ Доступ активен."
    assert (await stored(store) or "?") not in text


# -- the fake keeps the panel's promises -------------------------------------------------


async def test_the_fake_is_as_strict_as_the_panel(panel: FakeHiddify) -> None:
    key = {"Hiddify-API-Key": API_KEY, "Accept": "application/json"}
    some = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=panel.base_url) as api:
        wrong = await api.get(f"{USERS}{some}/", headers={"Hiddify-API-Key": "nope"})
        assert (wrong.status_code, wrong.json()) == (403, {"msg": "Unathorized"})
        anonymous = await api.get(f"{USERS}{some}/", headers={"Accept": "application/json"})
        assert anonymous.json() == {"detail": {}, "message": "Unathorized"}
        missing = await api.get(f"{USERS}{some}/", headers=key)
        assert (missing.status_code, missing.json()["message"]) == (404, "User not found")
        redirect = await api.get(f"{USERS}{some}", headers=key)
        assert redirect.status_code == 308
        assert redirect.headers["location"].endswith(f"{USERS}{some}/")
        not_uuid = await api.get(f"{USERS}42/", headers=key)
        assert (not_uuid.status_code, not_uuid.json()["msg"][:13]) == (500, "404 Not Found")
        typed = await api.post(USERS, json={"name": "x", "usage_limit_GB": True}, headers=key)
        assert typed.status_code == 422
        assert typed.json()["detail"] == {"json": {"usage_limit_GB": ["Not a valid number."]}}
        unknown = await api.post(USERS, json={"name": "x", "expiry_time": "x"}, headers=key)
        assert unknown.json()["detail"]["json"] == {"expiry_time": ["Unknown field."]}
        body = {"name": "x", "uuid": some, "package_days": 10, "start_date": "2026-10-01"}
        created = await api.post(USERS, json=body, headers=key)
        assert created.status_code == 200
        again = await api.post(USERS, json=body, headers=key)
        assert (again.status_code, again.json()["message"]) == (400, "The user exists")
        alone = await api.patch(f"{USERS}{some}/", json={"start_date": "2026-11-01"}, headers=key)
        assert alone.json()["start_date"] == "2026-10-01"  # ignored without package_days
        bot = await api.get(f"{USERS}{some}/", headers=key | {"User-Agent": "ShopBot/1.0"})
        assert (bot.status_code, bot.json()["message"]) == (400, "invalid")
        gone = await api.delete(f"{USERS}{some}/", headers=key)
        assert gone.json() == {"msg": "ok", "status": 200}
        assert (await api.patch(f"{USERS}{some}/", json={}, headers=key)).status_code == 404
