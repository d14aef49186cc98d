"""A raw Bot API client over httpx.

``BotClient.call("sendMessage", {...})`` posts JSON to
``{TELEGRAM_API_URL}/bot{TELEGRAM_TOKEN}/sendMessage`` and returns ``result``, or
raises the typed error that :func:`check_answer` maps the answer to. The token is part
of every URL, so no URL, request or httpx exception text ever leaves this module:
errors carry the method name only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import httpx
import trio

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
        answer = json.loads(body)
    except ValueError:
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


class BotClient:
    """Calls Bot API methods. Build it with :func:`open_bot_client`.

    It keeps ``connections`` httpx clients of one connection each and lends one to each
    call. (httpcore's shared pool re-examines every connection for every request, which
    costs more CPU than the request itself once a few dozen are open; a free list of
    single-connection clients is O(1).) Long polls get a client of their own, so they
    never hold up sends.
    """

    def __init__(
        self,
        clients: list[httpx.AsyncClient],
        long_poll: httpx.AsyncClient,
        api_url: str,
        token: str,
    ) -> None:
        self._free_send, self._free = trio.open_memory_channel[httpx.AsyncClient](len(clients))
        for client in clients:
            self._free_send.send_nowait(client)
        self._long_poll = long_poll
        self._base = f"{api_url.rstrip('/')}/bot{token}/"
        self._timeouts: dict[float | None, httpx.Timeout] = {}

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
        request = _request(params or {})
        if read_timeout is not None:
            return await self._post(self._long_poll, method, request, read_timeout)
        client = await self._free.receive()
        try:
            return await self._post(client, method, request, None)
        finally:
            self._free_send.send_nowait(client)

    async def _post(
        self,
        client: httpx.AsyncClient,
        method: str,
        request: dict[str, Any],
        read_timeout: float | None,
    ) -> Any:
        timeout = self._timeouts.get(read_timeout)
        if timeout is None:
            timeout = httpx.Timeout(DEFAULT_TIMEOUT, read=read_timeout or DEFAULT_TIMEOUT)
            self._timeouts[read_timeout] = timeout
        try:
            response = await client.post(self._base + method, timeout=timeout, **request)
        except httpx.TransportError as exc:
            # str(exc) can name the URL, and the URL holds the token: keep the class only.
            raise TelegramNetworkError(method, type(exc).__name__) from None
        return check_answer(method, response.status_code, response.content)


_JSON = {"content-type": "application/json"}


@attrs.frozen
class InputFile:
    """A file to upload with a call (``sendPhoto(photo=InputFile(...))``): the call then
    goes as multipart/form-data, as the Bot API asks for uploads."""

    filename: str
    content: bytes
    content_type: str


def _request(params: Mapping[str, Any]) -> dict[str, Any]:
    """httpx arguments for a call: JSON, or multipart when a parameter is a file (then
    the other parameters are form fields, objects among them as JSON text)."""
    files = {k: (v.filename, v.content, v.content_type) for k, v in params.items()
             if isinstance(v, InputFile)}  # fmt: skip
    if not files:
        body = json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode()
        return {"content": body, "headers": _JSON}
    fields = {
        key: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        for key, value in params.items()
        if key not in files
    }
    return {"data": fields, "files": files}


@asynccontextmanager
async def open_bot_client(
    api_url: str,
    token: str,
    *,
    connections: int = 16,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[BotClient]:
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    tls = httpx.create_ssl_context()  # loading CA certificates once, not per client
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(limits=one, transport=transport, verify=tls)
            )
            for _ in range(connections + 1)
        ]
        yield BotClient(clients[1:], clients[0], api_url, token)
