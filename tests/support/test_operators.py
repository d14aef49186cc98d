"""The operators' side: a replayed update relays nothing twice; ``/tickets`` lists open ones."""

from __future__ import annotations

from typing import Any

import psycopg
import trio
import trio.testing

from shop.clock import TrioClock
from shop.store import updates as journal
from tests.conftest import START
from tests.customer import Customer
from tests.harness import fake_telegram, running_shop
from tests.support.test_tickets import GROUP, OPERATOR, OWNER, copies_of, ticket_of

ANN, BOB, ADMIN = 1001, 1002, 9001
ENV = {"SUPPORT_CHAT_ID": str(GROUP), "ADMIN_IDS": str(ADMIN)}


def taken_update(telegram: Any, update_id: int) -> dict[str, Any]:
    """An update as the fake handed it out (before the shop confirms it)."""
    return dict(next(u for u in telegram.pending if u["update_id"] == update_id))


async def test_a_replayed_update_relays_nothing_twice(
    clean_database: str, busy_hook: Any, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock.starting_at(START)
    async with fake_telegram(clock) as telegram:
        fake = telegram[0]
        fake.add_group(GROUP, owner=OWNER, members=[OPERATOR])
        async with running_shop(
            clean_database, ENV, telegram=telegram, clock=clock, on_busy=busy_hook
        ) as shop:
            ann = Customer(shop, ANN)
            await ann.send("/start")
            await ann.press("help")
            await ann.press("sup")
            asked = taken_update(fake, fake.send_text(ANN, "Where is my access?"))
            await ann.settle()
            (copy,) = copies_of(shop, "Where is my access?")
            answered = taken_update(
                fake,
                fake.group_message(
                    GROUP, OPERATOR, "Here it is", reply_to_message_id=copy["message_id"]
                ),
            )
            await ann.settle()
            before = (len(fake.calls_to("copyMessage")), len(fake.calls_to("sendMessage")))
            rows = shop.query("SELECT count(*) FROM ticket_messages")
        # As after a crash: both updates are in the journal again, and a new shop replays them.
        with psycopg.connect(clean_database, autocommit=True) as conn:
            journal.store(conn, fake.bot_id, [asked, answered], START)
        async with running_shop(
            clean_database, ENV, telegram=telegram, clock=clock, on_busy=busy_hook
        ) as again:
            await trio.sleep(30)
            after = (len(fake.calls_to("copyMessage")), len(fake.calls_to("sendMessage")))
            rows_after = again.query("SELECT count(*) FROM ticket_messages")
            left = again.query("SELECT count(*) FROM telegram_updates")
    assert before == (2, 3)  # two copies; the header, "sent", and the first menu
    assert after == before
    assert rows_after == rows == [(3,)]  # header, copy, reply
    assert left == [(0,)]  # replayed, and done


async def test_the_same_message_twice_in_one_run_is_relayed_once(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        fake = shop.telegram
        fake.add_group(GROUP, owner=OWNER, members=[OPERATOR])
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("help")
        await ann.press("sup")
        message = taken_update(fake, fake.send_text(ANN, "Hello?"))["message"]
        await ann.settle()
        fake.add_update({"message": message})  # delivered again, as a new update
        await ann.settle()
        copies = copies_of(shop, "Hello?")
        menus = ann.texts().count(shop.app.texts("en", "unknown.input"))
    assert len(copies) == 1
    assert menus == 0  # the repeat was recognised, not answered as unknown input


async def test_tickets_lists_the_open_ones_for_admins_and_nobody_else(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        shop.telegram.add_group(GROUP, owner=OWNER, members=[OPERATOR])
        ann, bob = Customer(shop, ANN), Customer(shop, BOB, first_name="Bob")
        admin = Customer(shop, ADMIN, first_name="Olga")
        await admin.send("/tickets")
        empty = admin.texts()[-1]
        for who, text in ((ann, "First"), (bob, "Second")):
            await who.send("/start")
            await who.press("help")
            await who.press("sup")
            await who.send(text)
        ann_ticket, bob_ticket = ticket_of(shop, ANN), ticket_of(shop, BOB)
        await bob.press(f"tkx:{bob_ticket}")
        await ann.send("And a photo later")
        await admin.send("/tickets")
        listing = admin.menu()
        await ann.send("/tickets")
        refused = ann.texts()[-2:]
    t = shop.app.texts
    assert empty == "No open tickets."
    assert listing["text"].startswith("<b>Open tickets: 1</b>")
    assert f"#{ann_ticket} · Ann · <code>{ANN}</code>" in listing["text"]
    assert "2 from them, 0 answers" in listing["text"]
    assert f"#{bob_ticket}" not in listing["text"]
    buttons = [
        b["callback_data"] for row in listing["reply_markup"]["inline_keyboard"] for b in row
    ]
    assert buttons == [f"adm:u:{ANN}", "adm"]
    # For a customer /tickets is an unknown command (and not a message for their ticket).
    assert refused[0] == t("en", "unknown.input")
    assert copies_of(shop, "/tickets") == []
