"""HTTP/1.1 with keep-alive to one origin, directly over trio streams.

The Bot API client sends every message the shop writes, so its cost per call is the
shop's cost per reply (issue #15, README "Performance"). Measured on the development
machine with 16 calls at a time to the fake Bot API in another process, the client's
CPU per ``sendMessage`` was about 650 µs through httpx and httpcore (URL and header
models, the pool's bookkeeping, layers of context managers per request), 220 µs with
h11 over trio streams, and 150 µs here: the request head is written directly (one
fixed shape: ``POST``, ``host``, content type and length) and the answer is read with
httptools, the C parser (llhttp, Node's) that uvicorn uses, instead of h11's pure Python
state machine.

A :class:`ConnectionPool` keeps up to ``size`` connections and lends each to one request
at a time: the calling task writes the request and reads the answer itself, so a call
costs no task of its own and no hand-over between tasks. Idle connections are reused
newest first; one that the server closed while it sat idle is noticed before reuse (its
socket reads as ready: the end of the stream) and replaced. A connection whose exchange
failed or was cancelled half-way is closed, never reused: what is left on it is unknown.
A server's ``Connection: close`` is honoured. The pool never retries a request on its
own: whether to repeat a call that may have reached the server is the caller's decision
(the outbox's).

Failures raise :class:`HttpError`, whose ``reason`` is a short name in httpx's words
(``ConnectError``, ``ReadTimeout``, ``RemoteProtocolError``...): never a URL, which for
the Bot API holds the token.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

import attrs
import httptools
import trio


class HttpError(Exception):
    """Raised when a request got no complete answer; ``reason`` names what went wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@attrs.frozen
class Origin:
    """Where a pool connects: scheme, host and port of a URL (the rest is ignored)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL with a host")
        default = 443 if parts.scheme == "https" else 80
        return cls(parts.scheme, parts.hostname, parts.port or default)

    def host_header(self) -> bytes:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        default = 443 if self.scheme == "https" else 80
        return (host if self.port == default else f"{host}:{self.port}").encode("idna")


class _Answer:
    """httptools' callbacks for one response: its status, body and framing."""

    __slots__ = ("chunks", "complete", "framed", "headers", "keep_alive", "parser")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.chunks: list[bytes] = []
        self.headers = False  # the head has been read
        self.framed = False  # Content-Length or Transfer-Encoding says where the body ends
        self.keep_alive = False
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers = True
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:  # informational (1xx): the answer follows
            self.chunks.clear()
            self.headers = self.framed = False
            return
        self.complete = True


class _Connection:
    """One keep-alive connection: a trio stream, and whether it may carry another request."""

    def __init__(self, stream: trio.abc.Stream, sock: trio.socket.SocketType) -> None:
        self.stream = stream
        self.socket = sock
        self.open = True  # false once an exchange failed or the server said close
        self.idle_since = 0.0  # trio time it came back to the pool
        self.phase = "Write"  # what a timeout interrupted: "Write", then "Read"

    def close(self) -> None:
        """Close at once, without a TLS goodbye: what is left on it does not matter."""
        self.open = False
        self.socket.close()

    def reusable(self) -> bool:
        """Ready for another request: the last exchange ended cleanly and the server has
        not closed its end meanwhile (an idle socket that reads as ready is at its end)."""
        return self.open and not self.socket.is_readable()

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.open = False  # until the answer has been read whole
        self.phase = "Write"
        try:
            await self.stream.send_all(request)
        except (trio.BrokenResourceError, OSError) as exc:
            raise HttpError("WriteError") from exc
        self.phase = "Read"
        answer = _Answer()
        while not answer.complete:
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, OSError) as exc:
                raise HttpError("ReadError") from exc
            if not data:
                if answer.headers and not answer.framed:
                    break  # a body that ends where the connection does (HTTP/1.0 style)
                raise HttpError("RemoteProtocolError")  # closed before the whole answer
            try:
                answer.parser.feed_data(data)
            except httptools.HttpParserError as exc:  # HttpParserUpgrade is one too
                raise HttpError("RemoteProtocolError") from exc
        self.open = answer.complete and answer.keep_alive
        return answer.parser.get_status_code(), b"".join(answer.chunks)


class ConnectionPool:
    """Up to ``size`` keep-alive connections to one origin, one request on each at a time.

    A request waits at most ``pool_timeout`` seconds for a connection (then
    ``PoolTimeout``), ``connect_timeout`` to open one (``ConnectTimeout``), and ``read_timeout``
    for the whole exchange (``WriteTimeout`` while sending, ``ReadTimeout`` after). A
    connection idle for more than ``keepalive_expiry`` seconds is closed rather than reused.
    """

    def __init__(
        self,
        url: str,
        *,
        size: int,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 15.0,
        pool_timeout: float = 15.0,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self.origin = Origin.of(url)
        self._host = self.origin.host_header()
        self._ssl = ssl_context if self.origin.scheme == "https" else None
        if self.origin.scheme == "https" and self._ssl is None:
            self._ssl = ssl.create_default_context()
        self._slots = trio.Semaphore(size)
        self._idle: list[_Connection] = []  # the newest last
        self._keepalive_expiry = keepalive_expiry
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._closed = False
        self.opened = 0  # connections opened so far (tests and benchmarks read it)

    async def request(
        self, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes, *, read_timeout: float
    ) -> tuple[int, bytes]:
        """POST ``body`` to ``target`` (the path); returns the status and the whole body."""
        head = [b"POST ", target, b" HTTP/1.1\r\nhost: ", self._host, b"\r\n"]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        request = b"".join(head)
        lines = len(headers) + 3  # the request line, host, the headers, the blank line
        if request.count(b"\n") != lines or request.count(b"\r") != lines:
            raise ValueError("a line break inside the target or a header")  # never sent
        await self._take_slot()
        try:
            connection = await self._connection()
            kept = False
            try:
                # A bare scope: fail_after's generator costs more than the rest of the set-up.
                with trio.CancelScope(deadline=trio.current_time() + read_timeout) as deadline:
                    status, answer = await connection.exchange(request + body)
                if deadline.cancelled_caught:
                    raise HttpError(f"{connection.phase}Timeout")
                kept = connection.open and not self._closed
            finally:
                if kept:
                    connection.idle_since = trio.current_time()
                    self._idle.append(connection)
                else:  # failed, cancelled, or the server asked to close
                    connection.close()
            return status, answer
        finally:
            self._slots.release()

    async def _take_slot(self) -> None:
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            with trio.move_on_after(self._pool_timeout) as waiting:
                await self._slots.acquire()
            if waiting.cancelled_caught:
                raise HttpError("PoolTimeout") from None

    async def _connection(self) -> _Connection:
        # Idle longer than keepalive_expiry (httpx's default too): closed, not trusted. A
        # server or a NAT on the way may have dropped it without a word; the next request
        # would then wait for its read timeout instead of opening a new connection.
        stale = trio.current_time() - self._keepalive_expiry
        while self._idle and self._idle[0].idle_since < stale:
            self._idle.pop(0).close()
        while self._idle:
            connection = self._idle.pop()  # the newest: the least likely to be stale
            if connection.reusable():
                return connection
            connection.close()
        host, port = self.origin.host, self.origin.port
        tcp: trio.SocketStream | None = None
        try:
            with trio.fail_after(self._connect_timeout):
                tcp = await trio.open_tcp_stream(host, port)
                stream: trio.abc.Stream = tcp
                if self._ssl is not None:
                    tls = trio.SSLStream(tcp, self._ssl, server_hostname=host)
                    await tls.do_handshake()
                    stream = tls
        except (trio.TooSlowError, OSError, trio.BrokenResourceError) as exc:
            if tcp is not None:
                tcp.socket.close()
            if isinstance(exc, trio.TooSlowError):
                raise HttpError("ConnectTimeout") from None
            raise HttpError("ConnectError") from exc
        self.opened += 1
        return _Connection(stream, tcp.socket)

    def close(self) -> None:
        """Close the idle connections; those lent out are closed when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
