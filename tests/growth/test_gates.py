"""What holds buying back: the required channel and maintenance (by hand, and by itself
while the panel fails); and texts an operator replaces with TEXTS_DIR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from shop.check import check
from shop.clock import TrioClock
from shop.sandbox.panels.remnawave import FakeRemnawave
from tests.conftest import START
from tests.customer import Customer
from tests.harness import fake_telegram, running_shop

ANN, ADMIN, OWNER = 1001, 9001, 4242
CHANNEL = -1001234567890


async def test_buying_and_the_trial_wait_for_the_required_channel(
    clean_database: str, busy_hook: Any, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock.starting_at(START)
    env = {"REQUIRED_CHANNEL_ID": str(CHANNEL), "ADMIN_IDS": str(ADMIN)}
    async with fake_telegram(clock) as telegram:
        telegram[0].add_channel(CHANNEL, owner=OWNER)
        async with running_shop(
            clean_database, env, telegram=telegram, clock=clock, on_busy=busy_hook
        ) as shop:
            ann, admin = Customer(shop, ANN), Customer(shop, ADMIN)
            await ann.send("/start")
            for verb in ("buy", "trial"):
                await ann.press(verb, on=ann.menu())
                assert ann.last_text() == shop.app.texts("en", "channel.join")
            join_url = ann.menu()["reply_markup"]["inline_keyboard"][0][0]["url"]
            await ann.press("chan")
            assert ann.answers()[-1] == shop.app.texts("en", "channel.not_yet")
            shop.telegram.join(ANN, join_url)
            await ann.press("chan")
            assert ann.answers()[-1] == shop.app.texts("en", "channel.thanks")
            assert "plan:m1" in ann.buttons()
            await ann.press("plan:m1")
            await ann.press("pay:p:m1:stars:XTR")
            invoices = ann.invoices()
            await admin.send("/start")
            await admin.press("buy", on=admin.menu())  # operators are never held back
            admin_sees = admin.buttons()
    assert len(invoices) == 1
    assert "plan:m1" in admin_sees


async def test_a_bot_that_cannot_see_the_channel_is_reported_and_lets_customers_through(
    clean_database: str,
    busy_hook: Any,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = TrioClock.starting_at(START)
    env = {"REQUIRED_CHANNEL_ID": str(CHANNEL)}
    async with fake_telegram(clock) as telegram:
        telegram[0].add_channel(CHANNEL, owner=OWNER, bot_rights=None)
        async with running_shop(
            clean_database, env, telegram=telegram, clock=clock, on_busy=busy_hook
        ) as shop:
            ann = Customer(shop, ANN)
            await ann.send("/start")
            await ann.press("buy", on=ann.menu())
            buttons = ann.buttons()
    assert "plan:m1" in buttons
    alerts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT")]
    assert any(str(CHANNEL) in alert for alert in alerts)


async def test_maintenance_by_hand_pauses_buying_keeps_paying_and_survives_a_restart(
    clean_database: str, busy_hook: Any, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock.starting_at(START)
    env = {"ADMIN_IDS": str(ADMIN)}
    async with fake_telegram(clock) as telegram:
        async with running_shop(
            clean_database, env, telegram=telegram, clock=clock, on_busy=busy_hook
        ) as shop:
            ann, admin = Customer(shop, ANN), Customer(shop, ADMIN)
            await ann.send("/start")
            await ann.choose_plan("m1", "stars")  # an invoice from before
            await admin.send("/maintenance on")
            assert admin.texts()[-1] == "Maintenance on."
            await ann.send("/start")
            closed = ann.menu()
            await ann.press("trial", on=closed)
            assert ann.answers()[-1] == shop.app.texts("en", "maintenance.notice")
            await ann.pay_last_invoice()  # paid meanwhile: fulfilled all the same
            paid = shop.query("SELECT status FROM subscriptions")
        shown = [b["callback_data"] for r in closed["reply_markup"]["inline_keyboard"] for b in r]
        assert "buy" not in shown
        assert shop.app.texts("en", "maintenance.notice") in closed["text"]
        assert paid == [("active",)]
        async with running_shop(
            clean_database, env, telegram=telegram, clock=clock, on_busy=busy_hook
        ) as again:
            ann = Customer(again, ANN)
            await ann.send("/start")
            assert "buy" not in ann.buttons()
            await Customer(again, ADMIN).send("/maintenance off")
            await ann.send("/start")
            assert "buy" in ann.buttons()
            audited = again.query("SELECT action, before, after FROM audit ORDER BY id")
    assert audited == [
        ("maintenance", {"on": False}, {"on": True}),
        ("maintenance", {"on": True}, {"on": False}),
    ]


async def test_maintenance_comes_on_by_itself_while_the_panel_fails_and_goes_off_after(
    shop_at: Any, nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    from tests.fulfilment.test_remnawave import CATALOG, SECRET, TOKEN

    panel = FakeRemnawave(version="3.3.2", clock=TrioClock.starting_at(START))
    await nursery.start(panel.serve)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    env = {
        "FULFILMENT": "remnawave",
        "REMNAWAVE_URL": panel.base_url,
        "REMNAWAVE_TOKEN": TOKEN,
        "REMNAWAVE_WEBHOOK_SECRET": SECRET,
        "SHOP_CATALOG": str(catalog),
    }
    async with shop_at(environ=env, poll_timeout=86_400) as shop:
        ann, bob = Customer(shop, ANN), Customer(shop, 1002)
        await ann.send("/start")
        await bob.send("/start")
        panel.outage(503)
        await ann.choose_plan("m1", "stars")
        await ann.pay_last_invoice()
        assert not shop.app.maintenance.on  # failing, not for long yet
        await trio.sleep(600)  # the backend keeps failing for ten minutes
        assert shop.app.maintenance.automatic
        await bob.send("/start")
        assert "buy" not in bob.buttons()
        panel.end_outage()
        await trio.sleep(3600)  # the next retry applies Ann's access
        await bob.send("/start")
        on_after = shop.app.maintenance.on
        buttons = bob.buttons()
    assert "tg_1001" in panel.users
    assert not on_after
    assert "buy" in buttons


def test_texts_dir_replaces_texts_and_refuses_what_could_not_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "en.po").write_text(
        'msgid "menu.title"\nmsgstr "Our shop"\n\n'
        'msgid "code.days"\nmsgstr "+{days} days until {date} for {name}"\n\n'
        'msgid "no.such.key"\nmsgstr "hello"\n',
        encoding="utf-8",
    )
    environ = {
        "TELEGRAM_TOKEN": "123456:ABCdefGhIJKlmnOPQRstuVWXyz0123456789",
        "TEXTS_DIR": str(tmp_path),
    }
    assert check(environ) == 2
    errors = capsys.readouterr().err
    assert "code.days: uses {name}, which this text is not given" in errors
    assert "no.such.key: no such text" in errors
    (tmp_path / "en.po").write_text('msgid "menu.title"\nmsgstr "Our shop"\n', encoding="utf-8")
    from shop.telegram.texts import load_texts

    texts = load_texts(overrides=tmp_path)
    assert texts("en", "menu.title") == "Our shop"
    assert texts("ru", "menu.title") != "Our shop"  # only the language given
    assert check(environ) == 0


async def test_an_override_reaches_customers(
    shop_at: Any, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    (tmp_path / "ru.po").write_text(
        'msgid "menu.greeting"\nmsgstr "Здравствуйте, {name}!"\n', encoding="utf-8"
    )
    async with shop_at(environ={"TEXTS_DIR": str(tmp_path)}) as shop:
        shop.telegram.send_text(ANN, "/start", first_name="<Аня>", language_code="ru")
        (reply,) = await shop.telegram.wait_for("sendMessage", chat_id=ANN)
    assert reply.params["text"] == "Здравствуйте, &lt;Аня&gt;!"
