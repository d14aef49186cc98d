"""What the fake payment providers share: serving, recording, outages.

Each fake is a raw ASGI app served by hypercorn on loopback, like the Bot API emulator, so
the provider classes are exercised through their real httpx calls. All timing goes
through trio, so the fakes run under ``MockClock(autojump_threshold=0)``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from shop.clock import UTC, WallClock

Json = dict[str, Any]
Receive = Callable[[], Awaitable[Json]]
Send = Callable[[Json], Awaitable[None]]

#: Calendar time at trio.current_time() == 0 when a fake is given no WallClock.
EPOCH = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

log = logging.getLogger(__name__)


@attrs.define
class Call:
    """One request that reached a fake, in arrival order; ``status`` is what it answered."""

    method: str
    path: str  # without the API prefix: "/payments", "/createInvoice", "/v1/payment"
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # trio time
    status: int = 0

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


class ApiError(Exception):
    """Raised by a handler to answer with ``status`` and the provider's error ``body``."""

    def __init__(self, status: int, body: Json) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class FakeProvider:
    """Base class: subclasses set ``prefix`` and implement ``handle``.

    Attributes tests read: ``calls`` (every API call), ``created`` (payments really
    created, so that an idempotent repeat shows as one) and ``base_url`` (what the
    provider class takes as ``api_url``).
    """

    prefix = ""  # the API's path prefix, part of base_url

    def __init__(self, *, clock: WallClock | None = None) -> None:
        self.clock = clock
        self.base_url = ""
        self.checkout_pages: str | None = None
        self.calls: list[Call] = []
        self.created = 0
        self._outage: int | None = None
        self._lost = 0
        self._serial = itertools.count(1)

    # ----------------------------------------------------------------- programming

    def outage(self, status: int = 503) -> None:
        """Answer every API call with ``status`` (plain text, like a load balancer)."""
        self._outage = status

    def end_outage(self) -> None:
        self._outage = None

    def lose_answers(self, times: int = 1) -> None:
        """Carry out the next ``times`` calls but answer 504, as a proxy that gave up
        waiting would: the client cannot tell whether anything happened."""
        self._lost += times

    def calls_to(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if (c.method, c.path) == (method, path)]

    def now(self) -> dt.datetime:
        if self.clock is not None:
            return self.clock.now()
        return EPOCH + dt.timedelta(seconds=_trio_now())

    def next_serial(self) -> int:
        return next(self._serial)

    def checkout_url(self, payment_id: str, real: str) -> str:
        """Where the customer pays: the provider's own address (``real``), or with
        ``checkout_pages`` set (``shop sandbox`` does) that base URL plus the id, so that no
        link the shop shows leaves the machine."""
        return real if self.checkout_pages is None else f"{self.checkout_pages}/{payment_id}"

    # ----------------------------------------------------------------- serving

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled; hands back ``base_url``, e.g. ``http://127.0.0.1:40123/v3``."""
        config = Config()
        config.bind = [f"{host}:{port}"]
        config.accesslog = None
        config.errorlog = log
        config.keep_alive_timeout = 1e9  # virtual time must not close idle connections
        async with trio.open_nursery() as nursery:
            app: Any = self
            binds = await nursery.start(partial(hypercorn_serve, app, config, mode="asgi"))
            self.base_url = binds[0] + self.prefix
            task_status.started(self.base_url)

    async def __call__(self, scope: Json, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = bytearray()
        while (message := await receive()).get("more_body"):
            body += message.get("body", b"")
        body += message.get("body", b"")
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode() for k, v in scope["headers"]}
        call = Call(scope["method"], path, headers, bytes(body), trio.current_time())
        if path.startswith(self.prefix):
            call.path = path[len(self.prefix) :] or "/"
        self.calls.append(call)
        content_type = b"application/json"
        if self._outage is not None:
            status, data = self._outage, HTTPStatus(self._outage).phrase.encode()
            content_type = b"text/plain"
        elif not path.startswith(self.prefix):
            status, data = 404, b'{"error":"not found"}'
        else:
            try:
                status, payload = 200, await self.handle(call)
            except ApiError as error:
                status, payload = error.status, error.body
            data = json.dumps(payload, ensure_ascii=False).encode()
            if self._lost:
                self._lost -= 1
                status, data, content_type = 504, b"Gateway Timeout", b"text/plain"
        call.status = status
        headers_out = [(b"content-type", content_type), (b"content-length", b"%d" % len(data))]
        await send({"type": "http.response.start", "status": status, "headers": headers_out})
        await send({"type": "http.response.body", "body": data})

    async def handle(self, call: Call) -> Json:
        """Answer one API call (200 with the returned JSON), or raise :class:`ApiError`."""
        raise NotImplementedError


def _trio_now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # a builder called outside trio.run
        return 0.0


def compact(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
