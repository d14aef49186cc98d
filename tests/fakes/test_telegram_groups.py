"""Groups and forums in the fake Bot API: as strict as the server the support desk talks to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from shop.sandbox.botapi.groups import (
    CANT_COPY,
    CHAT_NOT_FOUND,
    COPY_NOT_FOUND,
    KICKED_FROM_GROUP,
    NO_CLOSE_RIGHTS,
    NO_TOPIC_RIGHTS,
    NOT_A_FORUM,
    NOT_IN_GROUP,
    REPLY_NOT_FOUND,
    THREAD_NOT_FOUND,
    TOPIC_CLOSED,
    TOPIC_NOT_MODIFIED,
)
from tests.fakes.telegram import BLOCKED, TOKEN, FakeTelegram

GROUP, FORUM, OWNER, OPERATOR, ANN = -1001000000100, -1001000000200, 4242, 4343, 1001


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeTelegram:
    fake = FakeTelegram()
    await nursery.start(fake.serve)
    fake.add_group(GROUP, owner=OWNER, members=[OPERATOR])
    fake.add_group(FORUM, owner=OWNER, members=[OPERATOR], forum=True)
    fake.send_text(ANN, "hello")  # Ann has started the bot: it may write to her
    return fake


@pytest.fixture
async def api(fake: FakeTelegram) -> AsyncIterator[httpx.AsyncClient]:
    base_url = f"{fake.base_url}/bot{TOKEN}/"
    async with httpx.AsyncClient(base_url=base_url, timeout=100, verify=False) as client:
        yield client


async def call(api: httpx.AsyncClient, method: str, **params: Any) -> Any:
    body = (await api.post(method, json=params)).json()
    assert body["ok"] is True, body
    return body["result"]


async def failure(api: httpx.AsyncClient, method: str, **params: Any) -> tuple[int, str]:
    response = await api.post(method, json=params)
    body = response.json()
    assert body["ok"] is False, body
    assert body["error_code"] == response.status_code
    return response.status_code, body["description"]


async def test_a_topic_takes_messages_until_it_is_closed_and_says_so_once(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    topic = await call(api, "createForumTopic", chat_id=FORUM, name="  #1   Ann  ")
    thread = topic["message_thread_id"]
    assert topic["name"] == "#1 Ann"
    sent = await call(api, "sendMessage", chat_id=FORUM, message_thread_id=thread, text="hi")
    assert (sent["message_thread_id"], sent["is_topic_message"]) == (thread, True)
    assert sent["chat"] == {"id": FORUM, "title": "Support", "is_forum": True, "type": "supergroup"}
    assert sent["reply_to_message"]["forum_topic_created"]["name"] == "#1 Ann"
    assert await call(api, "closeForumTopic", chat_id=FORUM, message_thread_id=thread) is True
    assert await failure(api, "closeForumTopic", chat_id=FORUM, message_thread_id=thread) == (
        400,
        TOPIC_NOT_MODIFIED,
    )
    # The bot may still write in its closed topic (it manages topics); a member may not.
    await call(api, "sendMessage", chat_id=FORUM, message_thread_id=thread, text="closed")
    with pytest.raises(ValueError, match="TOPIC_CLOSED"):
        fake.group_message(FORUM, OPERATOR, "late", message_thread_id=thread)
    assert await call(api, "reopenForumTopic", chat_id=FORUM, message_thread_id=thread) is True
    kinds = [
        next(k for k in m if k.startswith("forum_topic") or k == "text")
        for m in (fake.group_messages(FORUM, thread))
    ]
    assert kinds == [
        "forum_topic_created",
        "text",
        "forum_topic_closed",
        "text",
        "forum_topic_reopened",
    ]


async def test_threads_are_checked_as_the_server_checks_them(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    for thread in (1, 999):  # the General topic, and one that does not exist
        assert await failure(
            api, "sendMessage", chat_id=FORUM, message_thread_id=thread, text="x"
        ) == (400, THREAD_NOT_FOUND)
    assert await failure(api, "sendMessage", chat_id=ANN, message_thread_id=5, text="x") == (
        400,
        THREAD_NOT_FOUND,
    )
    plain = await call(api, "sendMessage", chat_id=GROUP, message_thread_id=5, text="x")
    assert "message_thread_id" not in plain  # a group without topics ignores it
    assert await failure(api, "createForumTopic", chat_id=GROUP, name="t") == (400, NOT_A_FORUM)
    assert await failure(api, "closeForumTopic", chat_id=GROUP, message_thread_id=3) == (
        400,
        NOT_A_FORUM,
    )
    assert await failure(api, "createForumTopic", chat_id=-1009, name="t") == (400, CHAT_NOT_FOUND)
    assert await failure(api, "createForumTopic", chat_id=FORUM, name="   ") == (
        400,
        "Bad Request: title must be non-empty",
    )


async def test_topics_need_the_right_to_manage_them(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    mine = (await call(api, "createForumTopic", chat_id=FORUM, name="mine"))["message_thread_id"]
    theirs = fake.open_topic(FORUM, OWNER, "theirs")
    fake.groups[FORUM].members[fake.bot_id]["can_manage_topics"] = False
    assert await failure(api, "createForumTopic", chat_id=FORUM, name="t") == (400, NO_TOPIC_RIGHTS)
    assert await failure(api, "closeForumTopic", chat_id=FORUM, message_thread_id=theirs) == (
        400,
        NO_CLOSE_RIGHTS,
    )
    # Its own topic it may close without the right (TDLib: the topic is outgoing).
    assert await call(api, "closeForumTopic", chat_id=FORUM, message_thread_id=mine) is True
    assert await failure(api, "closeForumTopic", chat_id=FORUM, message_thread_id=0) == (
        400,
        "Bad Request: invalid message thread identifier specified",
    )


async def test_a_group_the_bot_left_or_never_saw(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    fake.add_group(GROUP, owner=OWNER, bot="left")
    assert await failure(api, "sendMessage", chat_id=GROUP, text="x") == (403, NOT_IN_GROUP)
    fake.add_group(GROUP, owner=OWNER, bot="kicked")
    assert await failure(api, "getChat", chat_id=GROUP) == (403, KICKED_FROM_GROUP)
    assert await failure(api, "copyMessage", chat_id=-1009, from_chat_id=ANN, message_id=1) == (
        400,
        CHAT_NOT_FOUND,
    )
    assert await failure(api, "getChat", chat_id=-1009) == (400, CHAT_NOT_FOUND)
    forum = await call(api, "getChat", chat_id=FORUM)
    assert (forum["type"], forum["is_forum"], forum["title"]) == ("supergroup", True, "Support")


async def test_copy_message_copies_content_and_nothing_else(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    photo = [{"file_id": "ph1", "file_unique_id": "u1", "width": 90, "height": 90}]
    fake.send_content(ANN, photo=photo, caption="my screen")  # message 2 in Ann's chat
    copied = await call(api, "copyMessage", chat_id=GROUP, from_chat_id=ANN, message_id=2)
    (copy,) = [m for m in fake.messages(GROUP) if m["message_id"] == copied["message_id"]]
    assert (copy["photo"], copy["caption"], copy["from"]["id"]) == (photo, "my screen", fake.bot_id)
    assert "forward_origin" not in copy
    assert await failure(api, "copyMessage", chat_id=GROUP, from_chat_id=ANN, message_id=77) == (
        400,
        COPY_NOT_FOUND,
    )
    assert await failure(api, "copyMessage", chat_id=GROUP, from_chat_id=ANN) == (
        400,
        COPY_NOT_FOUND,
    )
    assert await failure(api, "copyMessage", chat_id=GROUP, message_id=2) == (
        400,
        'Bad Request: parameter "from_chat_id" is required',
    )
    topic = await call(api, "createForumTopic", chat_id=FORUM, name="t")
    service = topic["message_thread_id"]
    assert await failure(
        api, "copyMessage", chat_id=ANN, from_chat_id=FORUM, message_id=service
    ) == (
        400,
        CANT_COPY,
    )
    assert await failure(api, "copyMessage", chat_id=5555, from_chat_id=ANN, message_id=2) == (
        400,
        CHAT_NOT_FOUND,  # a user who never started the bot
    )
    fake.block(ANN)
    fake.group_message(GROUP, OPERATOR, "answer", reply_to_message_id=copied["message_id"])
    last = fake.group_messages(GROUP)[-1]["message_id"]
    assert await failure(api, "copyMessage", chat_id=ANN, from_chat_id=GROUP, message_id=last) == (
        403,
        BLOCKED,
    )


async def test_replies_and_what_the_bot_hears(fake: FakeTelegram, api: httpx.AsyncClient) -> None:
    header = await call(api, "sendMessage", chat_id=GROUP, text="header")
    assert await failure(
        api, "sendMessage", chat_id=GROUP, text="x", reply_parameters={"message_id": 555}
    ) == (400, REPLY_NOT_FOUND)
    loose = {"message_id": 555, "allow_sending_without_reply": True}
    assert "reply_to_message" not in await call(
        api, "sendMessage", chat_id=GROUP, text="x", reply_parameters=loose
    )
    under = await call(
        api,
        "sendMessage",
        chat_id=GROUP,
        text="x",
        reply_parameters={"message_id": header["message_id"]},
    )
    assert under["reply_to_message"]["text"] == "header"
    fake.pending.clear()
    fake.add_group(GROUP, owner=OWNER, members=[OPERATOR], bot="member")  # privacy mode
    assert fake.group_message(GROUP, OPERATOR, "among ourselves") == 0
    assert fake.group_message(GROUP, OPERATOR, "/tickets") > 0
    fake.add_group(GROUP, owner=OWNER, members=[OPERATOR])  # an administrator hears it all
    assert fake.group_message(GROUP, OPERATOR, "among ourselves") > 0
    assert [u["message"]["text"] for u in fake.pending] == ["/tickets", "among ourselves"]


async def test_a_closed_topic_refuses_a_bot_without_the_right(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    topic = await call(api, "createForumTopic", chat_id=FORUM, name="t")
    thread = topic["message_thread_id"]
    await call(api, "closeForumTopic", chat_id=FORUM, message_thread_id=thread)
    fake.groups[FORUM].members[fake.bot_id]["can_manage_topics"] = False
    assert await failure(api, "sendMessage", chat_id=FORUM, message_thread_id=thread, text="x") == (
        400,
        TOPIC_CLOSED,
    )
