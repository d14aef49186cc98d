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
from contextlib import asynccontextmanager
from typing import Any

import httpx

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
    """Calls Bot API methods. Build it with :func:`open_bot_client`."""

    def __init__(self, http: httpx.AsyncClient, api_url: str, token: str) -> None:
        self._http = http
        self._base = f"{api_url.rstrip('/')}/bot{token}/"

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        read_timeout: float | None = None,
    ) -> Any:
        """Call ``method`` with JSON ``params``; return its result or raise TelegramError."""
        body = json.dumps(params or {}, ensure_ascii=False, separators=(",", ":")).encode()
        timeout = httpx.Timeout(DEFAULT_TIMEOUT, read=read_timeout or DEFAULT_TIMEOUT)
        try:
            response = await self._http.post(
                self._base + method,
                content=body,
                headers={"content-type": "application/json"},
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            # str(exc) can name the URL, and the URL holds the token: keep the class only.
            raise TelegramNetworkError(method, type(exc).__name__) from None
        return check_answer(method, response.status_code, response.content)


@asynccontextmanager
async def open_bot_client(
    api_url: str, token: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[BotClient]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits, transport=transport) as http:
        yield BotClient(http, api_url, token)
