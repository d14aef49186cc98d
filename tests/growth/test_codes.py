"""Promo codes, vouchers and discounts: each code once per customer, within its limit under
concurrency, clear answers for every refusal. Fake Bot API, real PostgreSQL, mock time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import trio
import trio.testing

from shop.store import codes
from shop.store.codes import CodeRefused
from tests.conftest import START
from tests.customer import Customer
from tests.harness import Shop

TOKEN = "operator-token-0123456789"
ENV = {"ADMIN_TOKEN": TOKEN, "ADMIN_IDS": "9001"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ANN, BOB = 1001, 1002
DAY = dt.timedelta(days=1)


async def api(shop: Shop, path: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=shop.url, headers=AUTH) as http:
        if body is None:
            return await http.get(f"/admin/api{path}")
        return await http.post(f"/admin/api{path}", json=body)


def refusal(shop: Shop, reason: str, language: str = "en") -> str:
    return shop.app.texts(language, f"code.refused.{reason}")


def expiry(shop: Shop, who: int) -> dt.datetime | None:
    rows = shop.query("SELECT expires_at FROM subscriptions WHERE telegram_id = %s", who)
    return rows[0][0] if rows else None  # type: ignore[return-value]


async def test_a_promo_limit_holds_when_many_redeem_at_once(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        made = await api(
            shop, "/promos", {"code": "spring", "kind": "days", "value": 5, "max_uses": 3}
        )
        assert made.status_code == 201
        assert made.json() == {"code": "SPRING"}
        people = [Customer(shop, 2000 + n) for n in range(8)]
        for person in people:
            shop.telegram.send_text(person.id, "/start")
        await people[0].settle()
        for person in people:  # all at once: one update each, handled concurrently
            shop.telegram.send_text(person.id, "/promo spring")
        await people[0].settle()
        answers = [person.texts()[-1] for person in people]
        redeemed = shop.query("SELECT count(*) FROM code_uses")
        (uses,) = shop.query("SELECT uses FROM codes WHERE code = 'SPRING'")
    winners = [a for a in answers if a.startswith("🎉")]
    assert len(winners) == 3
    assert answers.count(refusal(shop, "exhausted")) == 5
    assert redeemed == [(3,)]
    assert uses == (3,)


async def test_a_limit_holds_across_two_connections_racing_in_the_database(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    """What two shops on one database do: the statements race in PostgreSQL itself."""
    async with shop_at(environ=ENV) as shop:
        store = shop.app.store
        await store.run_statement(
            codes.create_promo, "RACE", "balance", 10, "XTR", 2, None, False, None, START
        )
        people = list(range(3000, 3010))
        shop.query(
            "INSERT INTO customers (telegram_id, first_seen, last_seen)"
            " SELECT id, now(), now() FROM unnest(%s::bigint[]) AS id RETURNING 1",
            people,
        )
        outcomes: list[str] = []

        async def one(who: int) -> None:
            try:
                await store.run(codes.redeem, "race", who, START, shop.app.instance)
                outcomes.append("ok")
            except CodeRefused as exc:
                outcomes.append(exc.reason)

        async with trio.open_nursery() as nursery:
            for who in people:
                nursery.start_soon(one, who)
    assert sorted(outcomes) == ["exhausted"] * 8 + ["ok"] * 2
    assert shop.query("SELECT count(*), sum(delta) FROM ledger WHERE reason = 'promo'") == [(2, 20)]


async def test_each_refusal_is_answered_clearly_and_changes_nothing(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        tomorrow = (START + DAY).isoformat()
        for body in (
            {"code": "ONCE", "kind": "balance", "value": "25", "currency": "XTR"},
            {"code": "SOON", "kind": "days", "value": 3, "expires_at": tomorrow},
            {"code": "NEWBIE", "kind": "days", "value": 3, "new_customers_only": True},
        ):
            assert (await api(shop, "/promos", body)).status_code == 201
        await ann.send("/promo once")
        assert ann.texts()[-1].startswith("🎉 Code accepted: 25 ⭐")
        await ann.send("/promo ONCE")
        assert ann.texts()[-1] == refusal(shop, "used")
        await ann.send("/promo NOPE")
        assert ann.texts()[-1] == refusal(shop, "unknown")
        await ann.press("promo", on=ann.menu())
        await ann.send("  nope  ")  # the code typed after the button
        assert ann.texts()[-1] == refusal(shop, "unknown")
        await ann.choose_plan("m1", "stars")
        await ann.pay_last_invoice()
        await ann.send("/promo newbie")
        assert ann.texts()[-1] == refusal(shop, "not_new")
        await trio.sleep(2 * 86_400)
        await ann.send("/promo soon")
        assert ann.texts()[-1] == refusal(shop, "expired")
        ledger = shop.query("SELECT delta, reason, note FROM ledger ORDER BY id")
    assert ledger == [(25, "promo", "ONCE")]
    assert shop.query("SELECT count(*) FROM code_uses") == [(1,)]


async def test_a_discount_is_taken_off_the_next_purchase_only(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await api(shop, "/promos", {"code": "SALE20", "kind": "discount", "value": 20})
        await ann.send("/promo sale20")
        assert "20% off" in ann.texts()[-1]
        await ann.press("buy", on=ann.menu())
        await ann.press("plan:m1")
        assert "20%" in ann.last_text()
        await ann.press("pay:p:m1:stars:XTR")
        first = ann.invoices()[-1]["prices"][0]["amount"]
        await ann.pay_last_invoice()
        await ann.choose_plan("m1", "stars")
        second = ann.invoices()[-1]["prices"][0]["amount"]
        used = shop.query("SELECT used_at IS NOT NULL FROM discounts")
    assert (first, second) == (200, 250)  # m1 costs 250 Stars
    assert used == [(True,)]


async def test_a_voucher_batch_gives_links_csv_and_can_be_revoked(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        body = {"kind": "days", "value": 30, "count": 3, "expires_at": "2030-01-01T00:00:00Z"}
        made = await api(shop, "/vouchers", body)
        assert made.status_code == 201
        batch = made.json()
        links = [c["link"] for c in batch["codes"]]
        assert all(link.startswith("https://t.me/shop_test_bot?start=v_") for link in links)
        first, second, third = (c["code"] for c in batch["codes"])
        ann, bob = Customer(shop, ANN), Customer(shop, BOB)
        await ann.send(f"/start v_{first}")
        assert ann.texts()[-2].startswith("🎉 Code accepted: +30 days")
        await bob.send(f"/start v_{first}")  # single use
        assert bob.texts()[-2] == refusal(shop, "exhausted")
        revoked = await api(shop, f"/vouchers/{batch['id']}/revoke", {})
        assert revoked.json() == {"revoked": 2}
        await bob.send(f"/start v_{second}")
        assert bob.texts()[-2] == refusal(shop, "revoked")
        csv = await api(shop, f"/vouchers/{batch['id']}.csv")
        bad = await api(shop, "/vouchers", {"kind": "days", "value": 0, "count": 3})
        worse = await api(shop, "/vouchers", {"kind": "days", "value": 3, "count": 10**6})
        late = await api(shop, "/vouchers", body | {"expires_at": "2020-01-01T00:00:00Z"})
        refused = await api(shop, "/promos", {"code": "X", "kind": "days", "value": 3})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0] == "code,link,used"
    assert sorted(lines[1:]) == sorted(
        f"{code},https://t.me/shop_test_bot?start=v_{code},{'true' if code == first else 'false'}"
        for code in (first, second, third)
    )
    assert expiry(shop, ANN) is not None
    assert expiry(shop, BOB) is None
    assert [r.status_code for r in (bad, worse, late, refused)] == [400, 400, 400, 400]
    assert "count must be a whole number" in worse.json()["error"]


async def test_an_operator_creates_a_promo_in_telegram_with_an_audit_row(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        admin = Customer(shop, 9001)
        await admin.send("/newpromo GIFT50 balance 50XTR uses=10 until=2030-01-31 new")
        assert admin.texts()[-1] == "Promo code <code>GIFT50</code> created."
        await admin.send("/newpromo BAD kind 5")
        assert admin.texts()[-1].startswith("kind must be one of")
        outsider = Customer(shop, ANN)
        await outsider.send("/newpromo MINE days 365")
        rows = shop.query("SELECT code, kind, value, currency, max_uses, new_only FROM codes")
        audited = shop.query("SELECT action, target FROM audit")
    assert rows == [("GIFT50", "balance", 50, "XTR", 10, True)]
    assert audited == [("promo", "GIFT50")]
