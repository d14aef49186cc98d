"""A small HTTP/1.1 server over trio streams for the fake Bot API.

The fake Bot API answers thousands of calls a second in the benchmarks, and there it
shares the machine's two cores with the bot it serves, which real Telegram does not. Under
hypercorn (an ASGI server built on h11's pure-Python state machine, a task per request and
per-connection timers) the fake spent about 1.5 ms of CPU per update, as much as the shop
itself, and 85 % of that in the server rather than in the Bot API it emulates; that cost
was measured into whichever bot was benchmarked against it. This server reads requests
with httptools (llhttp, the parser uvicorn uses) on one task per connection, answers them
in order, and keeps connections open until the client closes them: no idle timeout, which
under a test's autojump clock would close connections in virtual time.

What it does with a request is the caller's: ``respond(request)`` returns the status and
the body, or ``None`` to drop the connection without an answer (a fault the fake is told to
play). Malformed requests get 400 and the connection is closed, as a server would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from http import HTTPStatus
from urllib.parse import unquote

import attrs
import httptools
import trio


@attrs.define
class Request:
    """One request as read off the wire; header names are lower-cased."""

    method: str
    path: str
    query: bytes
    headers: dict[bytes, bytes]
    body: bytes


Respond = Callable[[Request], Awaitable[tuple[int, bytes] | None]]


class _Reader:
    """httptools' callbacks: the requests completed so far on one connection, in order."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.done: deque[tuple[Request, bool]] = deque()
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        url = httptools.parse_url(self._url)
        request = Request(
            method=self.parser.get_method().decode("latin-1"),
            path=unquote((url.path or b"/").decode("latin-1")),
            query=url.query or b"",
            headers=self._headers,
            body=b"".join(self._body),
        )
        self.done.append((request, self.parser.should_keep_alive()))


def _answer(status: int, body: bytes, *, keep_alive: bool) -> bytes:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    head = (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
    )
    if not keep_alive:
        head += "connection: close\r\n"
    return head.encode("latin-1") + b"\r\n" + body


async def _serve_connection(respond: Respond, stream: trio.abc.Stream) -> None:
    reader = _Reader()
    async with stream:
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return
            if not data:
                return
            try:
                reader.parser.feed_data(data)
            except httptools.HttpParserError:  # HttpParserUpgrade is one too
                body = b'{"ok":false,"error_code":400,"description":"Bad Request"}'
                await _send_quietly(stream, _answer(400, body, keep_alive=False))
                return
            while reader.done:
                request, keep_alive = reader.done.popleft()
                answer = await respond(request)
                if answer is None:
                    return  # dropped on purpose: closed without a word
                if not await _send_quietly(stream, _answer(*answer, keep_alive=keep_alive)):
                    return
                if not keep_alive:
                    return


async def _send_quietly(stream: trio.abc.Stream, data: bytes) -> bool:
    """Send; False if the client has gone (its loss, as with any server)."""
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False
    return True


async def serve_http1(
    respond: Respond,
    *,
    host: str,
    port: int,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; hands back the base URL, e.g. ``http://127.0.0.1:40123``."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound_host, bound_port = listeners[0].socket.getsockname()[:2]
    task_status.started(f"http://{bound_host}:{bound_port}")
    await trio.serve_listeners(partial(_serve_connection, respond), listeners)
