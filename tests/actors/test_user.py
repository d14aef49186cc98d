"""The first conversation, through a fake Bot API server over real HTTP, real PostgreSQL.

These run on mock time (the database hook holds the clock while a query runs), so the
outbox's one-message-a-second per chat costs no real time. pytest-trio only picks up a
clock that the test function itself requests, hence ``autojump_clock`` in each test.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import trio
import trio.testing

from tests.harness import Shop, fake_telegram

ANN = 1001
MENU = ["buy", "trial", "sub", "bal", "promo", "help", "lang"]  # a new customer may take the trial


def buttons(message: dict[str, Any]) -> list[str]:
    markup = message.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


async def menu_of(shop: Shop, chat_id: int) -> dict[str, Any]:
    await shop.telegram.wait_for("sendMessage", chat_id=chat_id)
    menu = shop.telegram.last_message(chat_id)
    assert menu is not None
    return menu


async def test_start_greets_by_escaped_name_with_the_main_menu(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        shop.telegram.send_text(ANN, "/start", first_name="<Ann & Co>")
        (call,) = await shop.telegram.wait_for("sendMessage", chat_id=ANN)
    assert "&lt;Ann &amp; Co&gt;" in call.params["text"]
    assert call.params["parse_mode"] == "HTML"
    assert buttons(call.params) == MENU
    assert shop.query("SELECT language, blocked, first_name FROM customers") == [
        ("en", False, "<Ann & Co>")
    ]


async def test_a_button_edits_the_menu_in_place(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        tg = shop.telegram
        tg.send_text(ANN, "/start")
        menu = await menu_of(shop, ANN)
        tg.press(ANN, "help", message_id=menu["message_id"])
        await tg.wait_for("answerCallbackQuery")
        (edit,) = await tg.wait_for("editMessageText", chat_id=ANN)
    assert edit.params["message_id"] == menu["message_id"]
    assert "Help" in edit.params["text"]
    assert buttons(edit.params) == ["faq", "menu"]  # no support: no SUPPORT_CHAT_ID, ADMIN_IDS
    assert len(tg.messages(ANN)) == 1  # still one message: edited, not sent again


async def test_language_switch_survives_a_restart(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with fake_telegram() as telegram:
        async with shop_at(telegram=telegram) as shop:
            shop.telegram.send_text(ANN, "/start", language_code="en")
            menu = await menu_of(shop, ANN)
            shop.telegram.press(ANN, "lang:uk", message_id=menu["message_id"])
            (edit,) = await shop.telegram.wait_for("editMessageText", chat_id=ANN)
            assert "Що бажаєте зробити?" in edit.params["text"]
        async with shop_at(telegram=telegram) as shop:
            shop.telegram.send_text(ANN, "/start", first_name="Ann", language_code="en")
            greetings = await shop.telegram.wait_for("sendMessage", chat_id=ANN, count=2)
    assert greetings[-1].params["text"].startswith("Вітаємо, <b>Ann</b>!")


async def test_first_contact_language_comes_from_telegram(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        shop.telegram.send_text(ANN, "/start", language_code="ru")
        (greeting,) = await shop.telegram.wait_for("sendMessage", chat_id=ANN)
    assert greeting.params["text"].startswith("Здравствуйте")


async def test_a_stale_button_gets_an_answer_and_the_menu(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        tg = shop.telegram
        tg.send_text(ANN, "/start")
        menu = await menu_of(shop, ANN)
        tg.press(ANN, "an-old-button:from-v0", message_id=menu["message_id"])
        (answer,) = await tg.wait_for("answerCallbackQuery")
        (edit,) = await tg.wait_for("editMessageText", chat_id=ANN)
    assert answer.params["text"] == "This button is no longer active."
    assert buttons(edit.params) == MENU


async def test_deep_link_payload_is_kept_once(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        shop.telegram.send_text(ANN, "/start ref_42")
        await shop.telegram.wait_for("sendMessage", chat_id=ANN)
        shop.telegram.send_text(ANN, "/start PROMO2026")
        await shop.telegram.wait_for("sendMessage", chat_id=ANN, count=2)
    assert shop.query("SELECT start_payload FROM customers") == [("ref_42",)]


async def count_menus(shop: Shop, chat_id: int) -> int:
    await trio.sleep(120)  # virtual: let the outbox send everything queued
    return sum(buttons(c.params) == MENU for c in shop.telegram.calls_to("sendMessage", chat_id))


async def test_rate_limit_answers_once_then_stays_silent_for_the_ban(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    # RATE_LIMIT alone: the messages' own limit (tests/limits) is set out of the way.
    environ = {"RATE_LIMIT": "20/60", "RATE_LIMIT_BAN": "300", "RATE_LIMIT_MESSAGES": "100/60"}
    async with shop_at(environ=environ) as shop:
        tg = shop.telegram
        for _ in range(25):
            tg.send_text(ANN, "/menu")
        assert await count_menus(shop, ANN) == 20
        texts = [c.params["text"] for c in tg.calls_to("sendMessage", ANN)]
        assert sum("going a bit fast" in t for t in texts) == 1
        tg.send_text(ANN, "/menu")  # still inside the ban (about 120 s in)
        assert await count_menus(shop, ANN) == 20
        await trio.sleep(300)
        tg.send_text(ANN, "/menu")
        assert await count_menus(shop, ANN) == 21


async def test_admins_are_not_rate_limited(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ={"RATE_LIMIT": "20/60", "ADMIN_IDS": f"5, {ANN}"}) as shop:
        for _ in range(25):
            shop.telegram.send_text(ANN, "/menu")
        assert await count_menus(shop, ANN) == 25


async def test_a_refused_send_marks_the_customer_blocked_until_they_return(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        tg = shop.telegram
        tg.send_text(ANN, "/start")
        await tg.wait_for("sendMessage", chat_id=ANN)
        tg.block(ANN)
        tg.send_text(ANN, "/menu")
        await trio.sleep(5)
        assert shop.query("SELECT blocked FROM customers") == [(True,)]
        tg.chat_member(ANN, "member")
        await trio.sleep(5)
        assert shop.query("SELECT blocked FROM customers") == [(False,)]
        tg.chat_member(ANN, "kicked")
        await trio.sleep(5)
        assert shop.query("SELECT blocked FROM customers") == [(True,)]


@pytest.mark.allows_actor_errors
async def test_a_button_is_answered_even_when_its_handler_fails(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        tg = shop.telegram
        tg.send_text(ANN, "/start")
        menu = await menu_of(shop, ANN)
        with psycopg.connect(shop.database_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE subscriptions RENAME TO subscriptions_away")
            try:  # the screen's query fails: an operator's mistake, say
                tg.press(ANN, "sub", message_id=menu["message_id"])
                (answer,) = await tg.wait_for("answerCallbackQuery")
            finally:
                conn.execute("ALTER TABLE subscriptions_away RENAME TO subscriptions")
    assert answer.params["text"] == "Something went wrong on our side. Please try again."
