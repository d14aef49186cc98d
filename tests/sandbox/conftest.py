"""A whole sandbox inside a test's trio run: ``shop sandbox`` as ``shop.main`` composes it,
on the test's database instead of an embedded one, on a free port."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection

from shop.main import serve_shop
from shop.sandbox.run import RunningSandbox, serve_sandbox
from shop.sandbox.settings import sandbox_config

CUSTOMER = 100001  # the customer every sandbox starts with
OPERATOR = 1000


@pytest.fixture
async def sandbox(
    clean_database: str, tmp_path: Path, nursery: trio.Nursery
) -> AsyncIterator[RunningSandbox]:
    settings = sandbox_config({"SHUTDOWN_GRACE": "5"}, port=0, data_dir=tmp_path / "sandbox")
    settings = type(settings)(
        settings.config.replace(database_url=clean_database),
        settings.providers,
        settings.fulfilment,
    )
    stop = trio.Event()
    done = trio.Event()

    async def run(task_status: trio.TaskStatus[RunningSandbox]) -> None:
        try:
            await serve_sandbox(settings, stop, serve_shop=serve_shop, task_status=task_status)
        finally:
            done.set()

    with trio.fail_after(30):
        running: RunningSandbox = await nursery.start(run)
    try:
        yield running
    finally:
        stop.set()  # the shop drains and stops, then its stand-ins
        with trio.fail_after(30):
            await done.wait()


async def next_event(
    ws: WebSocketConnection, where: Callable[[dict[str, Any]], bool], seconds: float = 15
) -> dict[str, Any]:
    """The next event the page gets that matches ``where`` (others are skipped)."""
    with trio.fail_after(seconds):
        while True:
            event: dict[str, Any] = json.loads(await ws.get_message())
            if where(event):
                return event


def callbacks(message: dict[str, Any]) -> list[str]:
    return [b["data"] for row in message["keyboard"] for b in row if b["kind"] == "callback"]


def keys(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for row in message["keyboard"] for b in row]


class ChatPage:
    """One page of the web chat, used as one customer: each step waits for the bot."""

    def __init__(self, ws: WebSocketConnection, chat: int) -> None:
        self.ws, self.chat = ws, chat

    def _from_bot(self, event: dict[str, Any]) -> bool:
        message = event.get("message")
        return (
            event.get("chat") == self.chat
            and isinstance(message, dict)
            and (message.get("from") == "bot")
        )

    async def send(self, command: dict[str, Any]) -> None:
        await self.ws.send_message(json.dumps({"chat": self.chat, **command}))

    async def say(self, text: str) -> dict[str, Any]:
        """Write ``text``; the bot's answer (a new message, or one edited in place)."""
        await self.send({"type": "send", "text": text})
        return (await next_event(self.ws, self._from_bot))["message"]

    async def press(self, message: dict[str, Any], data: str) -> dict[str, Any]:
        await self.send({"type": "press", "message": message["id"], "data": data})
        return (await next_event(self.ws, self._from_bot))["message"]

    async def next(self, kind: str = "message") -> dict[str, Any]:
        """The bot's next message of this kind ("message": a new one, or "edit")."""
        event = await next_event(self.ws, lambda e: self._from_bot(e) and e["type"] == kind)
        return dict(event["message"])
