"""A raw Bot API client.

``BotClient.call("sendMessage", {...})`` posts JSON to
``{TELEGRAM_API_URL}/bot{TELEGRAM_TOKEN}/sendMessage`` and returns ``result``, or
raises the typed error that :func:`check_answer` maps the answer to. The token is part
of every URL, so no URL, request or transport exception text ever leaves this module:
errors carry the method name and a reason such as ``ReadTimeout`` only.

Requests go over keep-alive HTTP/1.1 connections of our own (:mod:`.http11`); httpx
stays for the payment providers, and here for a test's transport or an HTTP proxy.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import attrs
import httpx
import orjson

from ..errors import (
    BadRequest,
    Conflict,
    EntityTooLarge,
    Forbidden,
    MigrateToChat,
    RetryAfter,
    TelegramError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramServerError,
    Unauthorized,
)
from .http11 import ConnectionPool, HttpError

#: Seconds a call may take, unless the caller sets its own (long polls do).
DEFAULT_TIMEOUT = 15.0

_BY_CODE: dict[int, type[TelegramError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: TelegramNotFound,
    409: Conflict,
    413: EntityTooLarge,
}


def check_answer(method: str, status: int, body: bytes) -> Any:
    """Return ``result`` of a Bot API answer, or raise the error it describes.

    The order follows EXTERNAL-APIS.md §A.2 (and aiogram's ``check_response``):
    ``parameters.retry_after`` and ``parameters.migrate_to_chat_id`` first, then the
    error code.
    """
    try:
        answer = orjson.loads(body)
    except ValueError:  # orjson.JSONDecodeError is one
        answer = None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise TelegramServerError(method, status, f"not a Bot API answer (HTTP {status})")
    if answer["ok"] is True:
        return answer.get("result")
    code = int(answer.get("error_code") or status)
    description = str(answer.get("description") or "")
    parameters = answer.get("parameters") or {}
    if isinstance(parameters, dict):
        if (retry_after := parameters.get("retry_after")) is not None:
            raise RetryAfter(method, code, description, int(retry_after))
        if (new_chat_id := parameters.get("migrate_to_chat_id")) is not None:
            raise MigrateToChat(method, code, description, int(new_chat_id))
    if code >= 500:
        raise TelegramServerError(method, code, description)
    raise _BY_CODE.get(code, TelegramError)(method, code, description)


class Session(Protocol):
    """How a :class:`BotClient` reaches the Bot API: one POST, the status and body back."""

    async def request(
        self, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes, *, read_timeout: float
    ) -> tuple[int, bytes]:
        """Raises :class:`~shop.telegram.http11.HttpError` when no whole answer came."""
        ...


class BotClient:
    """Calls Bot API methods. Build it with :func:`open_bot_client`.

    Calls go over a :class:`~shop.telegram.http11.ConnectionPool` of ``connections``
    keep-alive connections (HTTP/1.1 written and parsed directly over trio streams: through
    httpx a call cost more CPU than the rest of a reply, issue #15). Long polls get a
    connection of their own, so they never hold up sends.
    """

    def __init__(self, sends: Session, long_polls: Session, api_url: str, token: str) -> None:
        self._sends = sends
        self._long_polls = long_polls
        path = urlsplit(api_url).path.rstrip("/")
        self._prefix = f"{path}/bot{quote(token, safe=':')}/".encode("ascii")

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        read_timeout: float | None = None,
    ) -> Any:
        """Call ``method`` with JSON ``params``; return its result or raise TelegramError.

        ``read_timeout`` marks a long poll: it may wait that long for an answer.
        """
        body, content_type = _encode(params or {})
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
        session = self._sends if read_timeout is None else self._long_polls
        try:
            status, answer = await session.request(
                self._prefix + method.encode("ascii"),
                headers,
                body,
                read_timeout=read_timeout or DEFAULT_TIMEOUT,
            )
        except HttpError as exc:
            # The target holds the token: the error keeps the method and a class name only.
            raise TelegramNetworkError(method, exc.reason) from None
        return check_answer(method, status, answer)


@attrs.frozen
class InputFile:
    """A file to upload with a call (``sendPhoto(photo=InputFile(...))``): the call then
    goes as multipart/form-data, as the Bot API asks for uploads."""

    filename: str
    content: bytes
    content_type: str


_JSON = b"application/json"


def _encode(params: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The body of a call and its content type: JSON, or multipart when a parameter is a
    file (then the other parameters are form fields, objects among them as JSON text)."""
    files = {k: (v.filename, v.content, v.content_type) for k, v in params.items()
             if isinstance(v, InputFile)}  # fmt: skip
    if not files:
        return orjson.dumps(params), _JSON
    fields = {
        key: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        for key, value in params.items()
        if key not in files
    }
    # Uploads are rare (a QR code now and then): httpx's multipart encoder writes them.
    upload = httpx.Request("POST", "http://upload.invalid/", data=fields, files=files)
    return upload.read(), upload.headers["content-type"].encode("latin-1")


class _HttpxSession:
    """The Bot API through an httpx client: a test's transport, or a proxy that the
    environment names (``HTTPS_PROXY``...), which httpx honours and the pool does not."""

    def __init__(self, client: httpx.AsyncClient, api_url: str) -> None:
        self._client = client
        parts = urlsplit(api_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"

    async def request(
        self, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes, *, read_timeout: float
    ) -> tuple[int, bytes]:
        limits = httpx.Timeout(DEFAULT_TIMEOUT, read=read_timeout)
        url = self._origin + target.decode("ascii")
        try:
            response = await self._client.post(url, content=body, headers=headers, timeout=limits)
        except httpx.TransportError as exc:
            raise HttpError(type(exc).__name__) from None  # its text may name the URL
        return response.status_code, response.content


def _proxied(api_url: str) -> bool:
    """Whether the environment sends requests for this URL through a proxy (as httpx reads it)."""
    parts = urlsplit(api_url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.netloc)


@asynccontextmanager
async def open_bot_client(
    api_url: str,
    token: str,
    *,
    connections: int = 16,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[BotClient]:
    """A client for the lifetime of the block: ``connections`` for calls, one for long polls.

    With a ``transport`` (tests), or when the environment names a proxy for the URL,
    calls go through httpx instead of the pool.
    """
    if transport is not None or _proxied(api_url):
        async with httpx.AsyncClient(transport=transport) as client:
            session = _HttpxSession(client, api_url)
            yield BotClient(session, session, api_url, token)
        return
    # https: the same certificate bundle httpx would load (certifi), loaded once.
    tls = httpx.create_ssl_context() if api_url.startswith("https:") else None
    sends = ConnectionPool(api_url, size=connections, ssl_context=tls)
    long_polls = ConnectionPool(api_url, size=1, ssl_context=tls)
    try:
        yield BotClient(sends, long_polls, api_url, token)
    finally:
        sends.close()
        long_polls.close()
