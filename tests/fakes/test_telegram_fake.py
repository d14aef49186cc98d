"""The fake Bot API keeps the server's promises that the shop's client relies on."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from tests.fakes.telegram import (
    BLOCKED,
    NOT_MODIFIED,
    QUERY_INVALID,
    TERMINATED,
    TOKEN,
    WEBHOOK_ACTIVE,
    FakeTelegram,
)

KEYBOARD = {"inline_keyboard": [[{"text": "1 month", "callback_data": "buy:m1"}]]}


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeTelegram:
    fake = FakeTelegram()
    await nursery.start(fake.serve)
    return fake


@pytest.fixture
async def api(fake: FakeTelegram) -> AsyncIterator[httpx.AsyncClient]:
    # The HTTP timeout must outlast the longest long poll, in virtual time too. verify=False
    # only skips loading CA certificates (~20 ms a client): it is plain HTTP on loopback.
    base_url = f"{fake.base_url}/bot{TOKEN}/"
    async with httpx.AsyncClient(base_url=base_url, timeout=100, verify=False) as client:
        yield client


async def call(api: httpx.AsyncClient, method: str, **params: Any) -> tuple[int, Any]:
    response = await api.post(method, json=params)
    return response.status_code, response.json()


async def later(seconds: float, action: Callable[[], object]) -> None:
    await trio.sleep(seconds)
    action()


def test_token_matches_the_bot_token_shape() -> None:
    assert re.fullmatch(r"\d{1,20}:[A-Za-z0-9_-]{20,}", TOKEN)


async def test_envelope_token_and_unknown_method(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    status, body = await call(api, "getMe")
    assert (status, body["result"]["id"], body["result"]["is_bot"]) == (200, fake.bot_id, True)
    async with httpx.AsyncClient(base_url=fake.base_url, verify=False) as other:
        wrong = await other.post("/bot1:wrong-token-wrong-token-wrong/getMe")
        assert (wrong.status_code, wrong.json()) == (
            401,
            {"ok": False, "error_code": 401, "description": "Unauthorized"},
        )
        # GET with a query string works too, and method names ignore case.
        got = await other.get(f"/bot{TOKEN}/getupdates", params={"limit": "5"})
        assert got.json() == {"ok": True, "result": []}
    status, body = await call(api, "sendNothing")
    assert (status, body["description"]) == (404, "Not Found: method not found")
    assert [(c.method, c.status) for c in fake.calls] == [
        ("getMe", 200),
        ("getMe", 401),
        ("getUpdates", 200),
        ("sendNothing", 404),
    ]


async def test_long_poll_waits_for_timeout_then_returns_empty(
    fake: FakeTelegram, api: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    assert await call(api, "getUpdates", timeout=30) == (200, {"ok": True, "result": []})
    assert trio.current_time() - start == 30
    await call(api, "getUpdates", timeout=3600)  # clamped to the server's 50 s
    assert trio.current_time() - start == 80


async def test_long_poll_returns_as_soon_as_an_update_arrives(
    fake: FakeTelegram, api: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(later, 5, lambda: fake.send_text(42, "/start ref_1"))
        status, body = await call(api, "getUpdates", timeout=30)
    assert (status, trio.current_time() - start) == (200, 5)
    (update,) = body["result"]
    message = update["message"]
    assert message["chat"] == {"id": 42, "type": "private", "first_name": "Ann"}
    assert message["entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]


async def test_offset_confirms_and_forgets_updates(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    ids = [fake.send_text(7, f"hello {n}") for n in range(3)]
    _, body = await call(api, "getUpdates", limit=2)
    assert [u["update_id"] for u in body["result"]] == ids[:2]
    _, body = await call(api, "getUpdates", offset=ids[1] + 1)
    assert [u["update_id"] for u in body["result"]] == ids[2:]
    assert fake.confirmed_offset == ids[1] + 1
    assert [u["update_id"] for u in fake.pending] == ids[2:]


async def test_second_poll_terminates_the_first(
    fake: FakeTelegram, api: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    first: list[tuple[int, Any]] = []

    async def poll() -> None:
        first.append(await call(api, "getUpdates", timeout=30))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await trio.sleep(1)
        assert await call(api, "getUpdates") == (200, {"ok": True, "result": []})
    assert first == [(409, {"ok": False, "error_code": 409, "description": TERMINATED})]
    assert trio.current_time() == 1


async def test_webhook_excludes_polling(fake: FakeTelegram, api: httpx.AsyncClient) -> None:
    fake.send_text(7, "hi")
    await call(api, "setWebhook", url="https://shop.example/tg", secret_token="s3cret")
    assert await call(api, "getUpdates") == (
        409,
        {"ok": False, "error_code": 409, "description": WEBHOOK_ACTIVE},
    )
    await call(api, "deleteWebhook", drop_pending_updates=True)
    _, body = await call(api, "getWebhookInfo")
    assert body["result"] == {"url": "", "has_custom_certificate": False, "pending_update_count": 0}


async def test_edit_with_the_same_content_is_not_modified(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    _, sent = await call(api, "sendMessage", chat_id=5, text="Choose", reply_markup=KEYBOARD)
    message_id = sent["result"]["message_id"]
    same = {"chat_id": 5, "message_id": message_id, "text": "Choose", "reply_markup": KEYBOARD}
    assert await call(api, "editMessageText", **same) == (
        400,
        {"ok": False, "error_code": 400, "description": NOT_MODIFIED},
    )
    status, body = await call(api, "editMessageText", **same | {"text": "Chosen"})
    assert (status, fake.last_message(5)) == (200, body["result"])
    assert fake.last_message(5)["text"] == "Chosen"  # type: ignore[index]
    status, body = await call(api, "editMessageText", **same | {"message_id": 99})
    assert body["description"] == "Bad Request: message to edit not found"


async def test_programmed_429_carries_retry_after(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    fake.fail("sendMessage", status=429, retry_after=7)
    assert await call(api, "sendMessage", chat_id=5, text="hi") == (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 7",
            "parameters": {"retry_after": 7},
        },
    )
    assert (await call(api, "sendMessage", chat_id=5, text="hi"))[0] == 200
    assert [c.status for c in fake.calls_to("sendMessage", chat_id=5)] == [429, 200]


async def test_blocked_user_gets_403_until_unblocked(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    fake.block(5)
    assert await call(api, "sendMessage", chat_id=5, text="hi") == (
        403,
        {"ok": False, "error_code": 403, "description": BLOCKED},
    )
    fake.unblock(5)
    assert (await call(api, "sendMessage", chat_id=5, text="hi"))[0] == 200


async def test_callback_query_is_answerable_once(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    _, sent = await call(api, "sendMessage", chat_id=5, text="Choose", reply_markup=KEYBOARD)
    fake.press(5, "buy:m1", message_id=sent["result"]["message_id"])
    _, polled = await call(api, "getUpdates")
    query = polled["result"][0]["callback_query"]
    assert query["message"] == sent["result"]
    assert await call(api, "answerCallbackQuery", callback_query_id=query["id"]) == (
        200,
        {"ok": True, "result": True},
    )
    status, body = await call(api, "answerCallbackQuery", callback_query_id=query["id"])
    assert (status, body["description"]) == (400, QUERY_INVALID)


async def test_dropped_connection_is_a_transport_error(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    fake.drop_connections(times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        await api.post("getMe")
    assert (await call(api, "getMe"))[0] == 200


async def test_wait_for_wakes_on_a_matching_call(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(call, api, "sendMessage", chat_id=1, text="a"))
        (found,) = await fake.wait_for("sendMessage", where=lambda c: c.params["text"] == "a")
    assert found.params == {"chat_id": 1, "text": "a"}


async def test_lost_answer_still_takes_effect(fake: FakeTelegram, api: httpx.AsyncClient) -> None:
    fake.drop_connections(after_processing=True)
    with pytest.raises(httpx.RemoteProtocolError):
        await api.post("sendMessage", json={"chat_id": 5, "text": "once"})
    assert [m["text"] for m in fake.messages(5)] == ["once"]
    assert [c.status for c in fake.calls_to("sendMessage")] == [200]


async def test_pre_checkout_must_be_answered_within_10_seconds(
    fake: FakeTelegram, api: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    fake.pre_checkout(5, payload="order:1", total_amount=150)
    _, body = await call(api, "getUpdates")
    query = body["result"][0]["pre_checkout_query"]
    assert (query["invoice_payload"], query["total_amount"]) == ("order:1", 150)
    await trio.sleep(11)
    status, body = await call(
        api, "answerPreCheckoutQuery", pre_checkout_query_id=query["id"], ok=True
    )
    assert (status, body["description"]) == (400, QUERY_INVALID)


async def test_form_encoded_params_and_allowed_updates(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    form = {"allowed_updates": '["callback_query"]', "timeout": "0"}
    assert (await api.post("getUpdates", data=form)).json() == {"ok": True, "result": []}
    fake.send_text(5, "dropped: not an allowed type")
    assert fake.pending == []
    await call(api, "getUpdates", allowed_updates=[])  # back to the default set
    fake.chat_member(5, "kicked")
    assert [u["my_chat_member"]["new_chat_member"]["status"] for u in fake.pending] == ["kicked"]
    assert 5 in fake.blocked
