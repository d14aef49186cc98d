"""The web chat's message stream, through a real WebSocket client (trio-websocket): what a
page sees and sends is what Telegram's clients see and send."""

from __future__ import annotations

import json
import logging

import httpx
import trio
from trio_websocket import open_websocket_url

from shop.sandbox.run import RunningSandbox
from tests.sandbox.conftest import CUSTOMER, OPERATOR, callbacks, next_event


def _is_bot_message(chat: int):  # type: ignore[no-untyped-def]
    return lambda e: (
        e["type"] in ("message", "edit") and e["chat"] == chat and (e["message"]["from"] == "bot")
    )


async def test_a_page_gets_a_snapshot_then_every_change(sandbox: RunningSandbox) -> None:
    async with open_websocket_url(sandbox.url.replace("http://", "ws://") + "/ws") as ws:
        hello = json.loads(await ws.get_message())
        assert hello["type"] == "hello"
        assert {p["id"]: p["operator"] for p in hello["people"]} == {
            OPERATOR: True,
            CUSTOMER: False,
        }
        assert set(hello["languages"]) >= {"en", "ru", "uk"}
        assert hello["jumps"] == ["hour", "day", "week", "month"]
        assert hello["chats"] == {str(OPERATOR): [], str(CUSTOMER): []}

        await ws.send_message(json.dumps({"type": "send", "chat": CUSTOMER, "text": "/start"}))
        mine = await next_event(ws, lambda e: e["type"] == "message" and e["chat"] == CUSTOMER)
        assert mine["message"]["from"] == "user"
        assert mine["message"]["entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]
        menu = (await next_event(ws, _is_bot_message(CUSTOMER)))["message"]
        assert "buy" in callbacks(menu)
        # The bot's HTML arrives as visible text plus entities (the name is bold), not markup.
        assert "<b>" not in menu["text"]
        assert "bold" in [entity["type"] for entity in menu["entities"]]

        press = {"type": "press", "chat": CUSTOMER, "message": menu["id"], "data": "buy"}
        await ws.send_message(json.dumps(press))
        plans = await next_event(ws, _is_bot_message(CUSTOMER))
        assert (plans["type"], plans["message"]["id"]) == ("edit", menu["id"])  # in place
        assert "plan:m1" in callbacks(plans["message"])

    # A page that opens now is drawn from the snapshot: both messages, as they are now.
    async with open_websocket_url(sandbox.url.replace("http://", "ws://") + "/ws") as ws:
        chat = json.loads(await ws.get_message())["chats"][str(CUSTOMER)]
        shown = [(m["from"], m["id"]) for m in chat]
        assert shown == [("user", mine["message"]["id"]), ("bot", menu["id"])]
        assert chat[1] == plans["message"]


async def test_a_page_is_told_what_it_may_not_do(sandbox: RunningSandbox) -> None:
    async with open_websocket_url(sandbox.url.replace("http://", "ws://") + "/ws") as ws:
        await ws.get_message()  # hello
        refusals = [
            {"type": "press", "chat": CUSTOMER, "message": 99, "data": "buy"},
            {"type": "send", "chat": 4242, "text": "hi"},
            {"type": "send", "chat": CUSTOMER, "text": "   "},
            {"type": "pay", "chat": CUSTOMER, "message": 1},
            {"type": "advance", "by": "century"},
            {"type": "person", "name": "Zed", "language": "xx"},
            {"type": "teleport"},
        ]
        for command in refusals:
            await ws.send_message(json.dumps(command))
            refused = await next_event(ws, lambda e: True)
            assert refused["type"] == "refused", command
        await ws.send_message("not json")
        assert json.loads(await ws.get_message()) == {"type": "refused", "text": "bad request"}


async def test_people_and_the_clock_reach_every_page(sandbox: RunningSandbox) -> None:
    url = sandbox.url.replace("http://", "ws://") + "/ws"
    async with open_websocket_url(url) as one, open_websocket_url(url) as other:
        await one.get_message()
        before = json.loads(await other.get_message())["clock"]
        await one.send_message(json.dumps({"type": "person", "name": "Олег", "language": "uk"}))
        for page in (one, other):
            person = await next_event(page, lambda e: e["type"] == "person")
            assert person["person"] == {
                "id": CUSTOMER + 1,
                "name": "Олег",
                "language": "uk",
                "operator": False,
            }
        start = sandbox.clock.now()
        await other.send_message(json.dumps({"type": "advance", "by": "day"}))
        for page in (one, other):
            moved = await next_event(page, lambda e: e["type"] == "clock")
            assert moved["clock"]["ahead"] == "1 d 0 h ahead"
            assert moved["clock"]["now"] != before["now"]
        assert (sandbox.clock.now() - start).days == 1

        # What an operator must act on reaches the operator's chat (ADMIN_CHAT_ID).
        logging.getLogger("shop.sandbox").error("ALERT: the sandbox's test alert")
        alert = await next_event(one, lambda e: e["type"] == "message" and e["chat"] == OPERATOR)
        assert "the sandbox's test alert" in alert["message"]["text"]


async def test_a_page_from_another_site_is_refused(sandbox: RunningSandbox) -> None:
    """Loopback is not enough: any site the person visits could reach it from their browser."""
    host, port = sandbox.url.removeprefix("http://").split("/")[0].split(":")
    handshake = (
        f"GET /sandbox/ws HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: Upgrade\r\n"
        "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://evil.example\r\n\r\n"
    )
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(host, int(port)) as stream:
            await stream.send_all(handshake.encode())
            assert (await stream.receive_some(1024)).startswith(b"HTTP/1.1 403")
    async with httpx.AsyncClient(timeout=10) as client:
        pay = f"{sandbox.url}/api/checkout/stripe/cs_1/pay"
        answer = await client.post(pay, headers={"Origin": "http://evil.example"})
        assert answer.status_code == 403
        page = await client.get(sandbox.url)
        assert "script-src 'self'" in page.headers["content-security-policy"]
