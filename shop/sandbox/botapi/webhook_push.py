"""The fake Bot API delivering updates to a webhook, as the server's ``WebhookActor`` does.

Once ``setWebhook`` named a URL, every pending update is POSTed there as JSON, at most
``max_connections`` at a time and, as the server's per-chat queues do, one at a time per
chat (the next update of a chat waits for the previous one's 2xx), with
``X-Telegram-Bot-Api-Secret-Token`` when a secret was set. A 2xx answer removes it from
the queue; anything else (an error status, a refused or broken connection) keeps it and
tries again later with a doubling delay capped at 60 s (the server caps at a random
60-120 s), honouring ``Retry-After``. The webhook URL is https on a public name, so tests
say where it really goes: ``deliver_to`` replaces its scheme and host
(``http://127.0.0.1:PORT``), or a callable picks one per request (several instances
behind a load balancer).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio

Json = dict[str, Any]
MAX_RESEND = 60.0


class WebhookPusher:
    def __init__(self, fake: Any, deliver_to: str | Callable[[], str]) -> None:
        self._fake = fake
        self._deliver_to = deliver_to
        self._in_flight: set[int] = set()
        self.deliveries: list[tuple[int, int]] = []  # (update id, HTTP status or 0)
        self._round = itertools.count()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # Keep a connection per delivery slot open, as the server does (httpx would keep
        # only 20 and open a new connection for every other request).
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with (
            httpx.AsyncClient(timeout=10, limits=limits) as http,
            trio.open_nursery() as nursery,
        ):
            task_status.started()
            while True:
                fake = self._fake
                if fake.webhook_url:
                    limit = getattr(fake, "webhook_max_connections", 40)
                    waiting: set[int] = set()  # chats with an earlier update still queued
                    for update in list(fake.pending):
                        if len(self._in_flight) >= limit:
                            break
                        chat = _queue_of(update)
                        if chat in waiting:
                            continue
                        waiting.add(chat)
                        if update["update_id"] not in self._in_flight:
                            self._in_flight.add(update["update_id"])
                            nursery.start_soon(self._deliver, http, update)
                changed = fake._updates_changed
                await changed.wait()

    async def _deliver(self, http: httpx.AsyncClient, update: Json) -> None:
        fake, delay = self._fake, 1.0
        try:
            while fake.webhook_url:
                target = urlsplit(fake.webhook_url)
                base = self._deliver_to() if callable(self._deliver_to) else self._deliver_to
                headers = {"Content-Type": "application/json"}
                if fake.webhook_secret:
                    headers["X-Telegram-Bot-Api-Secret-Token"] = fake.webhook_secret
                wait = delay
                try:
                    answer = await http.post(base + target.path, json=update, headers=headers)
                    status = answer.status_code
                    if "retry-after" in answer.headers:
                        wait = min(3600.0, float(answer.headers["retry-after"]))
                except httpx.HTTPError:
                    status = 0
                self.deliveries.append((update["update_id"], status))
                if 200 <= status < 300:
                    index = bisect.bisect_left(
                        fake.pending, update["update_id"], key=lambda u: u["update_id"]
                    )
                    if index < len(fake.pending) and fake.pending[index] is update:
                        del fake.pending[index]
                    return
                await trio.sleep(wait)
                delay = min(delay * 2, MAX_RESEND)
        finally:
            self._in_flight.discard(update["update_id"])
            fake._updates_changed.set()  # a free connection: look at the queue again
            fake._updates_changed = trio.Event()


def _queue_of(update: Json) -> int:
    """The chat (or user) whose queue an update is in: the chat of a message, else the
    user who caused it."""
    for value in update.values():
        if isinstance(value, dict):
            chat = value.get("chat") or (value.get("message") or {}).get("chat")
            if isinstance(chat, dict) and isinstance(chat.get("id"), int):
                return int(chat["id"])
            sender = value.get("from")
            if isinstance(sender, dict) and isinstance(sender.get("id"), int):
                return int(sender["id"])
    return 0
