"""``/broadcast`` in Telegram: compose, preview, audience with its size, confirm once, live
progress with a cancel button, and the summary. Fake Bot API, real PostgreSQL, mock time."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from tests.actors.test_broadcast import seed
from tests.customer import Customer

ADMIN, ANN, BOB = 9001, 1001, 1002
ENV = {"ADMIN_IDS": str(ADMIN), "TELEGRAM_GLOBAL_RATE": "30"}
BOLD = [{"type": "bold", "offset": 0, "length": 4}]


def pressable(admin: Customer, prefix: str) -> tuple[str, dict[str, Any]]:
    """The newest message in the operator's chat with a button starting with ``prefix``."""
    for message in reversed(admin.telegram.messages(admin.id)):
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
            for b in row:
                if b.get("callback_data", "").startswith(prefix):
                    return b["callback_data"], message
    raise AssertionError(f"no button {prefix}")


async def press(admin: Customer, prefix: str) -> None:
    data, message = pressable(admin, prefix)
    await admin.press(data, on=message)


async def test_compose_preview_choose_confirm_once_and_see_progress_to_the_summary(
    shop_at: Any, clean_database: str, autojump_clock: trio.testing.MockClock
) -> None:
    customers = seed(clean_database, 120)
    async with shop_at(environ=ENV) as shop:
        ann, bob, admin = Customer(shop, ANN), Customer(shop, BOB), Customer(shop, ADMIN)
        await ann.send("/start")
        await bob.send("/start")
        await admin.send(f"/user {BOB}")  # Bob is banned: never in an audience
        await press(admin, f"adm:ban:{BOB}")
        await press(admin, f"adm:bn:{BOB}:")
        await admin.send("/broadcast")
        shop.telegram.send_content(ADMIN, text="News & more", entities=BOLD)
        await admin.settle()
        assert "link button" in admin.last_text()
        await admin.send("Read it | https://example.com/news?a=1&b=2")
        preview = shop.telegram.calls_to("sendMessage", ADMIN)[-2].params
        assert preview["text"] == "<b>News</b> &amp; more"
        assert preview["reply_markup"]["inline_keyboard"][0][0]["url"].endswith("a=1&b=2")
        audiences = admin.buttons()
        everyone = 120 + 2  # the seeded, Ann and the operator; not Bob
        assert f"Everyone · {everyone}" in [
            b["text"] for row in admin.menu()["reply_markup"]["inline_keyboard"] for b in row
        ]
        assert "adm:ba:all:ru" in audiences
        await press(admin, "adm:ba:all")
        assert f"Send it to <b>Everyone</b>: {everyone}?" in admin.last_text()
        go, confirm = pressable(admin, "adm:bgo:all::")
        shop.telegram.press(ADMIN, go, message_id=confirm["message_id"])  # a double tap
        shop.telegram.press(ADMIN, go, message_id=confirm["message_id"])
        await trio.sleep(60)
        sent = [
            c.params["chat_id"]
            for c in shop.telegram.calls_to("sendMessage")
            if c.status == 200 and c.params.get("text") == "<b>News</b> &amp; more"
        ]
        progress = [
            c.params["text"]
            for c in shop.telegram.calls
            if c.method in ("sendMessage", "editMessageText")
            and c.params.get("chat_id") == ADMIN
            and "Broadcast #" in c.params.get("text", "")
        ]
        assert shop.query("SELECT count(*) FROM broadcasts") == [(1,)]
    assert sorted(sent) == sorted([*customers, ANN, ADMIN, ADMIN])  # ADMIN: the preview too
    assert BOB not in sent
    assert any("is sending" in text for text in progress)
    assert 2 <= len(progress) <= 10  # edited every few seconds, not per message
    (number,) = shop.query("SELECT id FROM broadcasts")
    assert progress[-2].startswith(f"✅ Broadcast #{number[0]} is done: {everyone} of {everyone}")
    assert progress[-1].startswith(f"📣 Broadcast #{number[0]} finished.")
    assert f"Delivered: {everyone}" in progress[-1]
    (audited,) = shop.query("SELECT after FROM audit WHERE action = 'broadcast'")
    assert audited[0]["broadcast"] == number[0]


async def test_the_cancel_button_stops_it_and_the_summary_says_so(
    shop_at: Any, clean_database: str, autojump_clock: trio.testing.MockClock
) -> None:
    seed(clean_database, 300)
    async with shop_at(environ=ENV) as shop:
        admin = Customer(shop, ADMIN)
        await admin.send("/broadcast")
        await admin.send("Plain <i>news</i>")
        await press(admin, "adm:bb")
        await press(admin, "adm:ba:all")
        go, confirm = pressable(admin, "adm:bgo:all::")
        shop.telegram.press(ADMIN, go, message_id=confirm["message_id"])
        await trio.sleep(6)
        await press(admin, "adm:bk:")
        await trio.sleep(30)
        (status,) = shop.query("SELECT status FROM broadcasts")
        summary = admin.texts()[-1]
    assert status == ("canceled",)
    assert summary.startswith("📣 Broadcast #")
    assert " was canceled." in summary
    assert "Not sent (canceled):" in summary


async def test_bad_html_and_a_bad_button_are_asked_again_and_a_photo_keeps_its_caption(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=ENV) as shop:
        admin = Customer(shop, ADMIN)
        await admin.send("/broadcast")
        await admin.send("<b>unclosed")
        assert "never closed" in admin.texts()[-1]
        photo = [{"file_id": "small", "width": 90}, {"file_id": "big", "width": 1280}]
        entities = [{"type": "italic", "offset": 0, "length": 3}]
        shop.telegram.send_content(
            ADMIN, photo=photo, caption="New plan", caption_entities=entities
        )
        await admin.settle()
        await admin.send("no url here")
        assert "button.url must be an http(s) URL" in admin.texts()[-1]
        await admin.send("Go | javascript:alert(1)")
        assert "button.url must be an http(s) URL" in admin.texts()[-1]
        await admin.send("Go | https://example.com")
        (preview,) = shop.telegram.calls_to("sendPhoto", ADMIN)
        await admin.send("/cancel")
        await admin.send("typed after cancel")
    assert preview.params["photo"] == "big"
    assert preview.params["caption"] == "<i>New</i> plan"
    assert admin.texts()[-3:-1] == ["Canceled.", shop.app.texts("en", "unknown.input")]
    assert shop.query("SELECT count(*) FROM broadcasts") == [(0,)]
