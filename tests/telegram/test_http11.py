"""The Bot API client's own HTTP/1.1 connections: keep-alive, and every way a connection
can fail (closed while idle, reset, cut in the middle of an answer, too slow, too busy).

A scripted server (``RawServer``) answers each request with exactly the bytes a test
gives it, so the failures are the ones a real server or proxy produces on the wire.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Callable

import attrs
import h11
import httpx
import pytest
import trio
import trio.testing
import trustme

from shop.errors import TelegramNetworkError
from shop.telegram.api import InputFile, _proxied, open_bot_client
from shop.telegram.http11 import ConnectionPool, HttpError
from tests.fakes.telegram import TOKEN, FakeTelegram, Upload

OK = b'{"ok":true,"result":true}'
#: What the scripted server sends for the n-th request (1-based), and whether it then
#: closes the connection; ``RESET`` closes it with a TCP reset instead of answering.
Script = Callable[[int], tuple[bytes, bool]]
RESET = b"<reset>"


def answer(body: bytes = OK, *, length: int | None = None, close: bool = False) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    head += b"content-length: %d\r\n" % (len(body) if length is None else length)
    if close:
        head += b"connection: close\r\n"
    return head + b"\r\n" + body


@attrs.define
class RawServer:
    """Answers what ``script`` says, counting connections and requests; it reads requests
    with h11, a parser independent of the client's."""

    script: Script
    url: str = ""
    connections: int = 0
    requests: int = 0
    targets: list[bytes] = attrs.Factory(list)
    closed: trio.Event = attrs.Factory(trio.Event)  # set (and renewed) as one closes

    async def wait_closed(self) -> None:
        """Wait until the server has closed a connection (its end of it)."""
        await self.closed.wait()
        self.closed = trio.Event()

    async def serve(
        self,
        ssl_context: ssl.SSLContext | None = None,
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        if ssl_context is None:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        else:
            listeners = await trio.open_ssl_over_tcp_listeners(0, ssl_context, host="127.0.0.1")
        port = listeners[0].transport_listener.socket.getsockname()[1] if ssl_context else (
            listeners[0].socket.getsockname()[1]
        )  # fmt: skip
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{port}"
        async with trio.open_nursery() as nursery:
            task_status.started(self.url)
            await trio.serve_listeners(self._connection, listeners, handler_nursery=nursery)

    async def _connection(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        try:
            await self._answer(stream)
        finally:
            self.closed.set()

    async def _answer(self, stream: trio.abc.Stream) -> None:
        async with stream:
            while await self._read_request(stream):
                self.requests += 1
                raw, close = self.script(self.requests)
                if raw == RESET:
                    sock = stream.socket if isinstance(stream, trio.SocketStream) else None
                    assert sock is not None
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                await stream.send_all(raw)
                if close:
                    return

    async def _read_request(self, stream: trio.abc.Stream) -> bool:
        parser = h11.Connection(h11.SERVER)
        while True:
            event = parser.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return False
                if not data:
                    return False
                parser.receive_data(bytes(data))
            elif type(event) is h11.Request:
                self.targets.append(event.target)
            elif type(event) is h11.EndOfMessage:
                return True


async def serve(nursery: trio.Nursery, script: Script) -> RawServer:
    server = RawServer(script)
    await nursery.start(server.serve)
    return server


async def test_calls_share_one_kept_alive_connection(nursery: trio.Nursery) -> None:
    server = await serve(nursery, lambda n: (answer(), False))
    with trio.fail_after(5):
        async with open_bot_client(server.url, TOKEN) as bot:
            for _ in range(3):
                assert await bot.call("sendMessage", {"chat_id": 1, "text": "hi"}) is True
    assert (server.requests, server.connections) == (3, 1)


async def test_a_connection_the_server_closed_while_idle_is_replaced(
    nursery: trio.Nursery,
) -> None:
    # The server answers, then closes the connection (a keep-alive timeout, a restart):
    # the next call notices before it writes and opens a new connection, without error.
    server = await serve(nursery, lambda n: (answer(), True))
    with trio.fail_after(5):
        async with open_bot_client(server.url, TOKEN) as bot:
            assert await bot.call("getMe") is True
            await server.wait_closed()
            assert await bot.call("getMe") is True
    assert (server.requests, server.connections) == (2, 2)


async def test_connection_close_is_honoured(nursery: trio.Nursery) -> None:
    server = await serve(nursery, lambda n: (answer(close=True), False))
    with trio.fail_after(5):
        async with open_bot_client(server.url, TOKEN) as bot:
            assert await bot.call("getMe") is True
            assert await bot.call("getMe") is True
    assert server.connections == 2  # never wrote a second request on a closing connection


async def test_an_answer_cut_short_is_a_network_error(nursery: trio.Nursery) -> None:
    def script(n: int) -> tuple[bytes, bool]:
        if n == 1:  # promises 100 bytes, sends 10, closes
            return answer(b'{"ok":true', length=100), True
        return answer(), False

    server = await serve(nursery, script)
    with trio.fail_after(5):
        async with open_bot_client(server.url, TOKEN) as bot:
            with pytest.raises(TelegramNetworkError) as caught:
                await bot.call("sendMessage", {"chat_id": 1, "text": "hi"})
            assert caught.value.description == "RemoteProtocolError"
            assert TOKEN not in str(caught.value)
            assert TOKEN.split(":")[1] not in repr(caught.value.__context__)
            assert await bot.call("sendMessage", {"chat_id": 1, "text": "hi"}) is True
    assert server.connections == 2  # the broken connection was not reused


async def test_a_reset_connection_is_a_network_error(nursery: trio.Nursery) -> None:
    server = await serve(nursery, lambda n: (RESET, True) if n == 1 else (answer(), False))
    with trio.fail_after(5):
        async with open_bot_client(server.url, TOKEN) as bot:
            with pytest.raises(TelegramNetworkError) as caught:
                await bot.call("getMe")
            assert caught.value.description in ("ReadError", "RemoteProtocolError")
            assert await bot.call("getMe") is True


async def test_closed_without_an_answer_is_a_network_error(nursery: trio.Nursery) -> None:
    server = await serve(nursery, lambda n: (b"", True) if n == 1 else (answer(), False))
    with trio.fail_after(5):
        async with open_bot_client(server.url, TOKEN) as bot:
            with pytest.raises(TelegramNetworkError, match="RemoteProtocolError"):
                await bot.call("getMe")
            assert await bot.call("getMe") is True


async def test_nothing_listening_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        with trio.fail_after(5):
            async with open_bot_client(f"http://127.0.0.1:{port}", TOKEN) as bot:
                with pytest.raises(TelegramNetworkError, match="ConnectError"):
                    await bot.call("getMe")


@pytest.fixture
async def telegram(nursery: trio.Nursery) -> tuple[FakeTelegram, str]:
    fake = FakeTelegram()
    return fake, await nursery.start(fake.serve)


async def test_a_slow_answer_times_out_and_its_connection_is_dropped(
    telegram: tuple[FakeTelegram, str], autojump_clock: trio.testing.MockClock
) -> None:
    fake, base = telegram
    fake.delay("sendMessage", 20.0)
    async with open_bot_client(base, TOKEN, connections=1) as bot:
        start = trio.current_time()
        with pytest.raises(TelegramNetworkError, match="ReadTimeout"):
            await bot.call("sendMessage", {"chat_id": 1, "text": "slow"})
        assert trio.current_time() - start == pytest.approx(15.0)
        fake.delay("sendMessage", 0)
        # The late answer to the first call must not be taken for the second's.
        sent = await bot.call("sendMessage", {"chat_id": 1, "text": "next"})
        assert sent["text"] == "next"


async def test_a_long_poll_waits_longer_on_its_own_connection(
    telegram: tuple[FakeTelegram, str], autojump_clock: trio.testing.MockClock
) -> None:
    _, base = telegram
    async with open_bot_client(base, TOKEN, connections=1) as bot, trio.open_nursery() as inner:
        polled: list[object] = []

        async def poll() -> None:
            polled.append(await bot.call("getUpdates", {"timeout": 30}, read_timeout=45))

        inner.start_soon(poll)
        await trio.sleep(1)
        start = trio.current_time()
        await bot.call("sendMessage", {"chat_id": 1, "text": "meanwhile"})
        assert trio.current_time() == start  # not behind the poll
    assert polled == [[]]
    assert trio.current_time() == pytest.approx(30.0, abs=0.1)


async def test_calls_beyond_the_pool_wait_for_a_connection(
    telegram: tuple[FakeTelegram, str], autojump_clock: trio.testing.MockClock
) -> None:
    fake, base = telegram
    fake.delay("sendMessage", 2.0)
    async with open_bot_client(base, TOKEN, connections=2) as bot:
        done: list[float] = []

        async def send(chat: int) -> None:
            await bot.call("sendMessage", {"chat_id": chat, "text": "hi"})
            done.append(trio.current_time())

        async with trio.open_nursery() as inner:
            for chat in range(1, 6):
                inner.start_soon(send, chat)
    assert sorted(done) == pytest.approx([2.0, 2.0, 4.0, 4.0, 6.0], abs=0.01)
    assert len(fake.calls_to("sendMessage")) == 5


async def test_a_call_that_waits_too_long_for_a_connection_gives_up(
    telegram: tuple[FakeTelegram, str], autojump_clock: trio.testing.MockClock
) -> None:
    fake, base = telegram
    fake.delay("sendMessage", 10.0)
    async with open_bot_client(base, TOKEN, connections=1) as bot:
        outcomes: list[str] = []

        async def send(chat: int) -> None:
            try:
                await bot.call("sendMessage", {"chat_id": chat, "text": "hi"})
                outcomes.append("sent")
            except TelegramNetworkError as exc:
                outcomes.append(exc.description)

        async with trio.open_nursery() as inner:
            for chat in range(1, 4):
                inner.start_soon(send, chat)
                await trio.sleep(0.01)  # they queue in this order
    # The first holds the connection 10 s, the second gets it then; the third has waited
    # 15 s by the time the second is done with it at 20 s, so it gives up.
    assert outcomes == ["sent", "PoolTimeout", "sent"]
    assert len(fake.calls_to("sendMessage")) == 2


async def test_a_cancelled_call_does_not_leave_its_answer_for_the_next(
    telegram: tuple[FakeTelegram, str], autojump_clock: trio.testing.MockClock
) -> None:
    fake, base = telegram
    fake.delay("sendMessage", 5.0)
    async with open_bot_client(base, TOKEN, connections=1) as bot:
        with trio.move_on_after(1):
            await bot.call("sendMessage", {"chat_id": 1, "text": "abandoned"})
        fake.delay("sendMessage", 0)
        sent = await bot.call("sendMessage", {"chat_id": 1, "text": "wanted"})
        assert sent["text"] == "wanted"


async def test_uploads_go_as_multipart(telegram: tuple[FakeTelegram, str]) -> None:
    fake, base = telegram
    photo = InputFile("qr.png", b"\x89PNG\r\n\x1a\n-bytes", "image/png")
    markup = {"inline_keyboard": [[{"text": "Open", "url": "https://example.com"}]]}
    with trio.fail_after(5):
        async with open_bot_client(base, TOKEN) as bot:
            params = {"chat_id": 7, "photo": photo, "caption": "Скан", "reply_markup": markup}
            await bot.call("sendPhoto", params)
    (call,) = fake.calls_to("sendPhoto")
    assert call.params["photo"] == Upload("qr.png", photo.content, "image/png")
    assert call.params["caption"] == "Скан"
    assert call.params["reply_markup"] == markup


async def test_an_api_url_with_a_path_prefix(nursery: trio.Nursery) -> None:
    server = await serve(nursery, lambda n: (answer(), False))
    with trio.fail_after(5):
        async with open_bot_client(f"{server.url}/telegram/", TOKEN) as bot:
            await bot.call("getMe")
    assert server.targets == [f"/telegram/bot{TOKEN}/getMe".encode()]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_https_with_keep_alive(nursery: trio.Nursery, ca: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server = RawServer(lambda n: (answer(), n == 2))  # closes after the second answer
    url = await nursery.start(server.serve, server_context)
    pool = ConnectionPool(url, size=2, ssl_context=client_context)
    with trio.fail_after(5):
        for n in range(1, 4):
            assert await pool.request(b"/botX/getMe", [], b"", read_timeout=5) == (200, OK)
            if n == 2:
                await server.wait_closed()
    pool.close()
    assert (server.requests, server.connections) == (3, 2)


async def test_https_refuses_a_certificate_it_does_not_trust(
    nursery: trio.Nursery, ca: trustme.CA
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    server = RawServer(lambda n: (answer(), False))
    url = await nursery.start(server.serve, server_context)
    pool = ConnectionPool(url, size=1)  # the system's trust store: not our test CA
    with trio.fail_after(5), pytest.raises(HttpError, match="ConnectError"):
        await pool.request(b"/botX/getMe", [], b"", read_timeout=5)


async def test_a_given_transport_is_used_through_httpx() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/getMe"):
            raise httpx.ConnectError(f"cannot reach {request.url}")
        return httpx.Response(200, json={"ok": True, "result": {"message_id": 3}})

    async with open_bot_client(
        "https://api.example/", TOKEN, transport=httpx.MockTransport(handler)
    ) as bot:
        assert await bot.call("sendMessage", {"chat_id": 1, "text": "hi"}) == {"message_id": 3}
        with pytest.raises(TelegramNetworkError, match="ConnectError") as caught:
            await bot.call("getMe")
    assert str(seen[0].url) == f"https://api.example/bot{TOKEN}/sendMessage"
    assert TOKEN.split(":")[1] not in repr(caught.value) + repr(caught.value.__context__)


def test_a_proxy_in_the_environment_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert not _proxied("https://api.telegram.org")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert _proxied("https://api.telegram.org")
    assert not _proxied("http://127.0.0.1:8081")  # an http:// URL needs HTTP_PROXY
    monkeypatch.setenv("NO_PROXY", "api.telegram.org")
    assert not _proxied("https://api.telegram.org")


async def test_informational_answers_are_skipped(nursery: trio.Nursery) -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"
    server = await serve(nursery, lambda n: (early + answer(), False))
    with trio.fail_after(5):
        async with open_bot_client(server.url, TOKEN) as bot:
            assert await bot.call("getMe") is True
            assert await bot.call("getMe") is True
    assert server.connections == 1


async def test_chunked_and_close_delimited_answers(nursery: trio.Nursery) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"a\r\n" + OK[:10] + b"\r\n" + b"%x\r\n" % (len(OK) - 10) + OK[10:] + b"\r\n0\r\n\r\n"
    )
    until_close = b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n" + OK
    answers = {1: (chunked, False), 2: (until_close, True), 3: (answer(), False)}
    server = await serve(nursery, lambda n: answers[n])
    with trio.fail_after(5):
        async with open_bot_client(server.url, TOKEN) as bot:
            for _ in answers:
                assert await bot.call("getMe") is True
    assert server.connections == 2  # the answer that ended with the connection closed it


async def test_an_answer_that_is_not_http_is_a_network_error(nursery: trio.Nursery) -> None:
    server = await serve(nursery, lambda n: (b"SSH-2.0-OpenSSH_9.6\r\n", False))
    with trio.fail_after(5):
        async with open_bot_client(server.url, TOKEN) as bot:
            with pytest.raises(TelegramNetworkError, match="RemoteProtocolError"):
                await bot.call("getMe")


async def test_a_line_break_in_a_header_is_never_sent(nursery: trio.Nursery) -> None:
    server = await serve(nursery, lambda n: (answer(), False))
    pool = ConnectionPool(server.url, size=1)
    smuggled = [(b"content-type", b"application/json\r\nx-injected: 1")]
    with trio.fail_after(5), pytest.raises(ValueError, match="line break"):
        await pool.request(b"/botX/getMe", smuggled, b"", read_timeout=5)
    pool.close()
    assert server.requests == 0


async def test_a_connection_idle_too_long_is_not_trusted(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # A NAT or a server may drop an idle connection without a word: after 5 s idle (as
    # httpx) a call opens a new one rather than wait out its read timeout on a dead one.
    server = await serve(nursery, lambda n: (answer(), False))
    async with open_bot_client(server.url, TOKEN) as bot:
        await bot.call("getMe")
        await trio.sleep(4)
        await bot.call("getMe")
        assert server.connections == 1
        await trio.sleep(6)
        await bot.call("getMe")
        assert server.connections == 2
