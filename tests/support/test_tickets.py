"""Support tickets: customer → support chat (a group, a forum, or the admins) → customer.

The whole shop runs against the fake Bot API over real HTTP, real PostgreSQL, mock time; an
operator writes in the support chat as the fake's ``group_message``.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from tests.customer import Customer, buttons
from tests.harness import Shop

GROUP, OWNER, OPERATOR = -1001000000100, 4242, 4343
ANN, BOB, ADMIN, ADMIN2 = 1001, 1002, 9001, 9002
PHOTO = [{"file_id": "AgAD-photo", "file_unique_id": "ph1", "width": 640, "height": 480}]


def env(**extra: str) -> dict[str, str]:
    return {"SUPPORT_CHAT_ID": str(GROUP), "ADMIN_IDS": str(ADMIN)} | extra


def posted(shop: Shop, chat_id: int = GROUP) -> list[dict[str, Any]]:
    """What the bot has in a chat now (after edits), oldest first."""
    return shop.telegram.messages(chat_id)


def headers(shop: Shop, chat_id: int = GROUP) -> list[dict[str, Any]]:
    return [m for m in posted(shop, chat_id) if m.get("text", "").startswith("🆘")]


def copies_of(shop: Shop, text: str, chat_id: int = GROUP) -> list[dict[str, Any]]:
    return [m for m in posted(shop, chat_id) if m.get("text") == text]


def ticket_of(shop: Shop, who: int) -> int:
    """The customer's open ticket (ids run on across tests: the tables are emptied only)."""
    ((ticket,),) = shop.query(
        "SELECT id FROM tickets WHERE telegram_id = %s AND status = 'open'", who
    )
    return int(ticket)  # type: ignore[call-overload]


async def write_to_support(customer: Customer, text: str) -> None:
    await customer.send("/help")
    assert "sup" in customer.buttons()
    await customer.press("sup")
    assert customer.last_text() == customer.shop.app.texts(customer.language, "support.ask")
    await customer.send(text)


async def test_a_ticket_goes_to_the_group_with_a_header_and_the_answer_comes_back(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=env()) as shop:
        shop.telegram.add_group(GROUP, owner=OWNER, members=[OPERATOR])
        t = shop.app.texts
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.choose_plan("m1", "stars")
        payment_id, _ = await ann.pay_last_invoice()
        await write_to_support(ann, "My VPN does not connect")
        (header,) = headers(shop)
        (copy,) = copies_of(shop, "My VPN does not connect")
        n = ticket_of(shop, ANN)
        assert ann.last_text() == t("en", "support.sent", id=n)
        assert ann.buttons() == [f"tkx:{n}", "menu"]
        # The operator answers by replying to the customer's message there.
        shop.telegram.group_message(
            GROUP, OPERATOR, "Try the second server", reply_to_message_id=copy["message_id"]
        )
        await ann.settle()
        answer = posted(shop, ANN)[-1]
        # The customer's next message joins the ticket; a reply to the header reaches them too.
        await ann.send("Still nothing")
        shop.telegram.group_message(
            GROUP, OPERATOR, "Restart the app", reply_to_message_id=header["message_id"]
        )
        await ann.settle()
        second = posted(shop, ANN)[-1]
        (follow_up,) = copies_of(shop, "Still nothing")
        tickets = shop.query("SELECT id, status, telegram_id FROM tickets")
    assert header["text"].splitlines()[:3] == [
        f"🆘 <b>Ticket #{n}</b>",
        f"👤 Ann · id <code>{ANN}</code>",
        "🌐 Language: en",
    ]
    assert "📅 Subscription: active until" in header["text"]
    assert "(m1)" in header["text"]
    assert "💰 Balance: empty" in header["text"]
    assert "💳 Last payment: 250 ⭐ · completed" in header["text"]
    assert payment_id in header["text"]
    assert buttons(header) == [f"tkc:{n}"]
    assert copy["reply_to_message"]["message_id"] == header["message_id"]
    assert follow_up["reply_to_message"]["message_id"] == header["message_id"]
    assert (answer["text"], buttons(answer)) == ("Try the second server", [f"tkx:{n}"])
    assert second["text"] == "Restart the app"
    assert tickets == [(n, "open", ANN)]


async def test_a_forum_gives_each_ticket_a_topic_and_closing_closes_it(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=env()) as shop:
        forum = shop.telegram.add_group(GROUP, owner=OWNER, members=[OPERATOR], forum=True)
        t = shop.app.texts
        ann = Customer(shop, ANN, language="ru")
        await ann.send("/start")
        await write_to_support(ann, "Не работает")
        (topic_id,) = forum.topics
        (header,) = headers(shop)
        n = ticket_of(shop, ANN)
        # Any message in the topic answers the ticket: no reply needed.
        shop.telegram.group_message(
            GROUP, OPERATOR, "Сейчас проверим", message_thread_id=topic_id, first_name="Olga"
        )
        await ann.settle()
        answer = posted(shop, ANN)[-1]
        await ann.send("Спасибо")
        in_topic = [m.get("text") for m in shop.telegram.group_messages(GROUP, topic_id)]
        # The operator closes it with the button under the header: both sides are told.
        shop.telegram.group_press(GROUP, OPERATOR, f"tkc:{n}", message_id=header["message_id"])
        await ann.settle()
        told = ann.texts()[-1]
        (header_after,) = headers(shop)
        closed_topic = dict(forum.topics[topic_id])
        *_, notice, closed_service = shop.telegram.group_messages(GROUP, topic_id)
        # The same button again: it was closed already.
        shop.telegram.group_press(GROUP, OPERATOR, f"tkc:{n}", message_id=header["message_id"])
        await ann.settle()
        again = shop.telegram.calls_to("answerCallbackQuery")[-1].params.get("text")
        # A message after closing is not part of it; writing to support opens a new ticket.
        await ann.send("И ещё")
        not_relayed = ann.texts()[-2]
        await write_to_support(ann, "Новый вопрос")
        topics = {thread: topic["name"] for thread, topic in forum.topics.items()}
        rows = shop.query("SELECT id, status, thread_id FROM tickets ORDER BY id")
    create = shop.telegram.calls_to("createForumTopic")[0].params
    assert (create["chat_id"], create["name"]) == (GROUP, f"#{n} Ann")
    assert header["message_thread_id"] == topic_id
    assert "Write in this topic to answer." in header["text"]
    assert answer["text"] == "Сейчас проверим"
    assert in_topic[:4] == [None, header["text"], "Не работает", "Сейчас проверим"]
    assert "Спасибо" in in_topic
    assert told == t("ru", "support.closed_by_support", id=n)
    assert "reply_markup" not in header_after  # the close button is gone
    assert closed_topic["is_closed"] is True
    assert notice["text"] == f"🔒 Ticket #{n} was closed by Olga."
    assert "forum_topic_closed" in closed_service
    assert again == "Already closed."
    assert not_relayed == t("ru", "unknown.input")
    assert list(topics.values()) == [f"#{n} Ann", f"#{n + 1} Ann"]
    assert rows == [(n, "closed", topic_id), (n + 1, "open", max(topics))]


async def test_without_a_support_chat_the_admins_get_it_and_answer_by_replying(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ={"ADMIN_IDS": f"{ADMIN},{ADMIN2}"}) as shop:
        ann, admin = Customer(shop, ANN), Customer(shop, ADMIN, first_name="Olga")
        admin2 = Customer(shop, ADMIN2)
        for who in (admin, admin2, ann):
            await who.send("/start")
        await write_to_support(ann, "Help me please")
        (header1,), (header2,) = headers(shop, ADMIN), headers(shop, ADMIN2)
        (copy2,) = copies_of(shop, "Help me please", ADMIN2)
        # The second admin replies in their own chat, to the customer's message.
        shop.telegram.reply_text(ADMIN2, "On it", reply_to_message_id=copy2["message_id"])
        await ann.settle()
        answer = posted(shop, ANN)[-1]
        # The first admin closes it with the button under their header.
        n = ticket_of(shop, ANN)
        await admin.press(f"tkc:{n}", on=header1)
        told = ann.texts()[-1]
        notes = [headers(shop, chat)[0].get("reply_markup") for chat in (ADMIN, ADMIN2)]
        closed_notes = [posted(shop, chat)[-1]["text"] for chat in (ADMIN, ADMIN2)]
    assert copy2["reply_to_message"]["message_id"] == header2["message_id"]
    assert answer["text"] == "On it"
    assert told == shop.app.texts("en", "support.closed_by_support", id=n)
    assert notes == [None, None]
    assert closed_notes == [f"🔒 Ticket #{n} was closed by Olga."] * 2
    assert f"Ticket #{n}" in header1["text"]


async def test_the_customer_closes_both_sides_hear_and_later_replies_bounce(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=env()) as shop:
        shop.telegram.add_group(GROUP, owner=OWNER, members=[OPERATOR])
        t = shop.app.texts
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await write_to_support(ann, "Question")
        (copy,) = copies_of(shop, "Question")
        n = ticket_of(shop, ANN)
        await ann.press(f"tkx:{n}")
        told = ann.texts()[-1]
        (header,) = headers(shop)
        notice = posted(shop)[-1]
        await ann.press(f"tkx:{n}", on=ann.menu())
        again = ann.answers()[-1]
        # An operator who answers the closed ticket hears that it did not go through.
        shop.telegram.group_message(
            GROUP, OPERATOR, "Late answer", reply_to_message_id=copy["message_id"]
        )
        await ann.settle()
        bounced = posted(shop)[-1]
        copied_to_ann = shop.telegram.calls_to("copyMessage", ANN)
    assert told == t("en", "support.closed_by_you", id=n)
    assert "reply_markup" not in header
    assert notice["text"] == f"🔒 Ticket #{n} was closed by the customer."
    assert notice["reply_to_message"]["message_id"] == header["message_id"]
    assert again == t("en", "support.already_closed")
    assert bounced["text"] == f"🔒 Ticket #{n} is closed: the customer did not get this."
    assert copied_to_ann == []


async def test_a_photo_and_a_document_arrive_as_sent_both_ways(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=env()) as shop:
        shop.telegram.add_group(GROUP, owner=OWNER, members=[OPERATOR])
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.send("/help")
        await ann.press("sup")
        shop.telegram.send_content(ANN, photo=PHOTO, caption="the error I see")
        await ann.settle()
        document = {"file_id": "BQAD-log", "file_unique_id": "d1", "file_name": "log.txt"}
        shop.telegram.send_content(ANN, document=document)
        await ann.settle()
        photo, log_file = [m for m in posted(shop) if "photo" in m or "document" in m]
        shop.telegram.group_message(
            GROUP, OPERATOR, photo=PHOTO, caption="do this", reply_to_message_id=photo["message_id"]
        )
        await ann.settle()
        back = posted(shop, ANN)[-1]
    assert (photo["photo"], photo["caption"]) == (PHOTO, "the error I see")
    assert log_file["document"] == document
    assert (back["photo"], back["caption"]) == (PHOTO, "do this")


async def test_support_chat_updates_skip_the_rate_limit_and_the_ban(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=env(RATE_LIMIT="5/60")) as shop:
        shop.telegram.add_group(GROUP, owner=OWNER, members=[OPERATOR])
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await write_to_support(ann, "Hi")
        (copy,) = copies_of(shop, "Hi")
        shop.query(
            "INSERT INTO customers (telegram_id, first_seen, last_seen, banned)"
            " VALUES (%s, now(), now(), true) RETURNING 1",
            OPERATOR,
        )  # banned as a customer
        for n in range(6):
            shop.telegram.group_message(
                GROUP, OPERATOR, f"answer {n}", reply_to_message_id=copy["message_id"]
            )
        await ann.settle()
        received = [m.get("text") for m in posted(shop, ANN)]
        chatter = shop.telegram.group_message(GROUP, OPERATOR, "coffee, anyone?")
        await ann.settle()
        said_to_operator = shop.telegram.calls_to("sendMessage", OPERATOR)
    assert [f"answer {n}" for n in range(6)] == [
        t for t in received if t and t.startswith("answer")
    ]
    assert chatter > 0  # the bot heard it (an administrator) and did nothing with it
    assert said_to_operator == []  # no ban notice, no "slow down", no menu
