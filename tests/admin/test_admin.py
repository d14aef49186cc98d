"""Operators in Telegram: who may, what each action does (once), and the audit of it.

The whole shop runs against the fake Bot API over real HTTP, real PostgreSQL, mock time.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import trio
import trio.testing

from shop.store import audit, fulfilment, operators
from shop.store.audit import Act
from tests.conftest import START
from tests.customer import Customer
from tests.harness import Shop

ADMIN, ANN, BOB = 9001, 1001, 1002
ENV = {"ADMIN_IDS": str(ADMIN), "ADMIN_TOKEN": "operator-token-0123456789"}
DAY = dt.timedelta(days=1)


def admin_buttons(customer: Customer) -> list[str]:
    return [b for b in customer.buttons() if b.startswith("adm:")]


def button(customer: Customer, prefix: str) -> str:
    return next(b for b in customer.buttons() if b.startswith(prefix))


def expiry(shop: Shop, who: int) -> Any:
    rows = shop.query(
        "SELECT expires_at, status, lifetime FROM subscriptions WHERE telegram_id = %s", who
    )
    return rows[0] if rows else None


async def test_non_operators_see_the_normal_shop_and_change_nothing(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        for command in ("/admin", "/user 1001", "/audit", "/broadcast", "/cancel"):
            await ann.send(command)
            assert ann.texts()[-2] == shop.app.texts("en", "unknown.input")
            assert not admin_buttons(ann)
        # Forged operator buttons: a stale button, like any unknown one.
        for forged in (f"adm:d:{ANN}:30:abcdefgh", f"adm:l:{ANN}:1:abcdefgh", "adm:st", "adm"):
            await ann.press(forged)
            assert ann.answers()[-1] == shop.app.texts("en", "stale.button")
        assert not admin_buttons(ann)
    assert expiry(shop, ANN) is None
    assert shop.query("SELECT count(*) FROM audit") == [(0,)]


async def test_the_panel_shows_the_shops_numbers(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        ann, bob, admin = Customer(shop, ANN), Customer(shop, BOB), Customer(shop, ADMIN)
        await ann.send("/start")
        await bob.send("/start")
        await ann.choose_plan("m1", "stars")
        await ann.pay_last_invoice()
        await admin.send("/admin")
        assert admin_buttons(admin) == ["adm:st", "adm:fu", "adm:bc", "adm:au"]
        await admin.press("adm:st")
        text = admin.last_text()
    assert "Customers: <b>3</b>" in text  # the operator is a customer too
    assert "Active subscriptions: <b>1</b>" in text
    price = shop.app.catalog.plan("m1").prices["XTR"]  # type: ignore[union-attr]
    assert f"today: {price} ⭐" in text
    assert "completed 1" in text
    assert "Open problems: <b>0</b>" in text
    assert "Conversion start → paid (30d): 33.3% (1 of 3)" in text


async def test_days_are_granted_once_per_press_and_taken_back_never_below_now(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        ann, admin = Customer(shop, ANN), Customer(shop, ADMIN)
        await ann.send("/start")
        await admin.send(f"/user {ANN}")
        profile = admin.menu()
        assert "Subscription: none" in profile["text"]
        plus30 = button(admin, f"adm:d:{ANN}:30:")
        # A double tap: the same button twice before the screen changes.
        shop.telegram.press(ADMIN, plus30, message_id=profile["message_id"])
        shop.telegram.press(ADMIN, plus30, message_id=profile["message_id"])
        await admin.settle()
        granted = expiry(shop, ANN)
        assert granted[1] == "active"
        assert abs(granted[0] - (START + 30 * DAY)) < DAY
        assert "Already done." in admin.answers()
        await admin.press(button(admin, f"adm:d:{ANN}:-30:"))
        await admin.press(button(admin, f"adm:d:{ANN}:-7:"))
        taken = expiry(shop, ANN)
        assert taken[1] == "expired"
        assert abs(taken[0] - START) < DAY  # never below now
        rows = shop.query("SELECT action, target, before, after, admin_id FROM audit ORDER BY id")
    assert [r[:2] for r in rows] == [
        ("grant_days", str(ANN)),
        ("take_days", str(ANN)),
        ("take_days", str(ANN)),
    ]
    assert rows[0][2] is None
    assert rows[0][3]["status"] == "active"
    assert rows[1][2]["status"] == "active"
    assert rows[1][3]["status"] == "expired"
    assert {r[4] for r in rows} == {ADMIN}


async def test_lifetime_on_and_off(shop_at: Any, autojump_clock: trio.testing.MockClock) -> None:
    async with shop_at(environ=ENV) as shop:
        ann, admin = Customer(shop, ANN), Customer(shop, ADMIN)
        await ann.send("/start")
        await admin.send(f"/user {ANN}")
        await admin.press(button(admin, f"adm:l:{ANN}:1:"))
        assert expiry(shop, ANN)[1:] == ("active", True)
        await admin.press(button(admin, f"adm:d:{ANN}:30:"))  # a lifetime stays so
        assert expiry(shop, ANN)[0] is None
        await admin.press(button(admin, f"adm:l:{ANN}:0:"))
        assert expiry(shop, ANN)[1:] == ("expired", False)
        actions = shop.query("SELECT action FROM audit ORDER BY id")
    assert actions == [("lifetime_on",), ("grant_days",), ("lifetime_off",)]


async def test_a_balance_change_needs_a_reason_goes_to_the_ledger_and_never_overdraws(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        ann, admin = Customer(shop, ANN), Customer(shop, ADMIN)
        await ann.send("/start")
        await admin.send(f"/user {ANN}")
        await admin.press(f"adm:b:{ANN}")
        for bad in ("100 XTR no sign", "+1.5 XTR fractions", "+100 XTR", "+abc XTR x"):
            await admin.send(bad)
            assert "Not done" not in admin.texts()[-1]
        await admin.send("+100 XTR goodwill for the outage")
        await admin.press(f"adm:b:{ANN}")
        await admin.send("-500 XTR more than there is")
        assert "Not done: the balance is only 100 ⭐" in admin.texts()[-1]
        await admin.press(f"adm:b:{ANN}")
        await admin.send("-40 XTR correction")
        ledger = shop.query("SELECT delta, reason, note FROM ledger ORDER BY id")
        balance = shop.query("SELECT amount FROM balances WHERE telegram_id = %s", ANN)
        audited = shop.query("SELECT action, before, after FROM audit ORDER BY id")
    assert ledger == [
        (100, "adjustment", "goodwill for the outage"),
        (-40, "adjustment", "correction"),
    ]
    assert balance == [(60,)]
    assert [a[0] for a in audited] == ["balance", "balance"]
    assert audited[1][1] == {"currency": "XTR", "balance": 100}
    assert audited[1][2]["balance"] == 60


async def test_an_operator_action_with_a_used_key_changes_nothing(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    """What a replayed update (after a crash) does: the key is taken, nothing repeats."""
    async with shop_at(environ=ENV) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        act = Act("msg:9001:77", ADMIN, START)
        store = shop.app.store
        first = await store.run(operators.adjust_balance, act, ANN, "XTR", 50, "gift")
        again = await store.run(operators.adjust_balance, act, ANN, "XTR", 50, "gift")
        days = Act("nonce-1", ADMIN, START)
        await store.run(operators.grant_days, days, ANN, 10)
        assert await store.run(operators.grant_days, days, ANN, 10) is None
        assert await store.run(operators.set_banned, days, ANN, True) is None  # key is spent
    assert first is not None
    assert again is None
    assert shop.query("SELECT sum(delta) FROM ledger") == [(50,)]
    assert abs(expiry(shop, ANN)[0] - (START + 10 * DAY)) < DAY


async def test_a_banned_customer_sees_one_notice_loses_access_and_can_be_unbanned(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        ann, admin = Customer(shop, ANN), Customer(shop, ADMIN)
        await ann.send("/start")
        await admin.send(f"/user {ANN}")
        await admin.press(button(admin, f"adm:d:{ANN}:30:"))
        (version,) = shop.query("SELECT version FROM fulfilment_queue")
        await admin.press(f"adm:ban:{ANN}")
        await admin.press(button(admin, f"adm:bn:{ANN}:"))
        now = shop.app.clock.now()
        (wanted,) = await shop.app.store.run(fulfilment.everyone, now, 0, 10)
        assert wanted.active is False  # the backend is told to revoke...
        applied = shop.query("SELECT version, applied_version FROM fulfilment_queue")
        assert applied == [(version[0] + 1, version[0] + 1)]  # ...and it was
        sent_before = len(ann.texts())
        await ann.send("/start")
        await ann.send("/menu")
        await ann.send("hello?")
        notices = ann.texts()[sent_before:]
        assert notices == [shop.app.texts("en", "banned.notice")]
        invoice_like = shop.telegram.calls_to("answerCallbackQuery")
        await ann.press("buy", on=ann.menu())
        assert len(shop.telegram.calls_to("answerCallbackQuery")) == len(invoice_like) + 1
        assert len(ann.texts()) == sent_before + 1  # silence after the notice
        await admin.press(button(admin, f"adm:ub:{ANN}:"))
        await ann.send("/start")
        assert ann.buttons()[0] == "buy"
        actions = shop.query("SELECT action, before, after FROM audit ORDER BY id")
    assert [a[0] for a in actions] == ["grant_days", "ban", "unban"]
    assert actions[1][1:] == ({"banned": False}, {"banned": True})


async def test_a_banned_customers_invoice_is_declined_but_money_already_taken_is_kept(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        ann, admin = Customer(shop, ANN), Customer(shop, ADMIN)
        await ann.send("/start")
        await ann.choose_plan("m1", "stars")
        invoice = ann.invoices()[-1]
        amount = invoice["prices"][0]["amount"]
        await admin.send(f"/user {ANN}")
        await admin.press(f"adm:ban:{ANN}")
        await admin.press(button(admin, f"adm:bn:{ANN}:"))
        answer = await ann.pre_checkout(invoice["payload"], amount)
        assert answer["ok"] is False
        # Telegram charged anyway (a race with the ban): the money is recorded, not lost.
        await ann.paid(invoice["payload"], amount)
        status = shop.query("SELECT status FROM payments WHERE id = %s", invoice["payload"])
    assert status == [("completed",)]


async def test_a_customer_is_found_by_username_and_by_a_forwarded_message(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        admin = Customer(shop, ADMIN)
        shop.telegram.send_text(ANN, "/start", first_name="Ann <3", username="AnnK")
        await admin.settle()
        await admin.send("/user @annk")
        assert f"<code>{ANN}</code>" in admin.last_text()
        assert "Ann &lt;3" in admin.last_text()
        forwarded = {"type": "user", "date": 1, "sender_user": {"id": ANN, "is_bot": False}}
        shop.telegram.send_content(ADMIN, text="hi", forward_origin=forwarded)
        await admin.settle()
        assert admin.menu()["text"].count(f"<code>{ANN}</code>") == 1
        hidden = {"type": "hidden_user", "date": 1, "sender_user_name": "Secret <b>"}
        shop.telegram.send_content(ADMIN, text="hi", forward_origin=hidden)
        await admin.settle()
        assert "Secret &lt;b&gt; hides their account" in admin.texts()[-1]
        await admin.send("/user @nobody")
        assert admin.texts()[-1] == "No customer @nobody."


async def test_the_audit_is_shown_and_served_to_the_operator_api(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        ann, admin = Customer(shop, ANN), Customer(shop, ADMIN)
        await ann.send("/start")
        await admin.send(f"/user {ANN}")
        await admin.press(button(admin, f"adm:d:{ANN}:7:"))
        await admin.send("/audit")
        assert f"<b>grant_days</b> {ANN}" in admin.menu()["text"]
        async with httpx.AsyncClient(base_url=shop.url) as http:
            refused = await http.get("/admin/api/audit")
            answer = await http.get(
                "/admin/api/audit?limit=1",
                headers={"Authorization": f"Bearer {ENV['ADMIN_TOKEN']}"},
            )
    assert refused.status_code == 401
    assert answer.status_code == 200
    (row,) = answer.json()["audit"]
    assert row["action"] == "grant_days"
    assert row["target"] == str(ANN)
    assert row["admin_id"] == ADMIN
    assert row["after"]["status"] == "active"
    json.dumps(row)  # plain JSON all through


async def test_audit_rows_page_newest_first(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        await Customer(shop, ANN).send("/start")
        for n in range(3):
            await shop.app.store.run(
                audit.record, Act(f"k{n}", ADMIN, START), "note", str(n), None, {"n": n}
            )
        first = await shop.app.store.run_statement(audit.latest, 2, None)
        rest = await shop.app.store.run_statement(audit.latest, 2, first[-1].id)
    assert [r.target for r in first] == ["2", "1"]
    assert [r.target for r in rest] == ["0"]
