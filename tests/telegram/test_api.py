"""The Bot API client: error mapping (EXTERNAL-APIS.md §A.2), and the token kept secret."""

from __future__ import annotations

import json
import logging

import pytest
import trio

from shop.errors import (
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
from shop.logs import RedactingFilter, redact
from shop.telegram.api import check_answer, open_bot_client
from tests.fakes.telegram import NOT_MODIFIED, TOKEN, FakeTelegram


def answer(code: int, description: str, **parameters: int) -> bytes:
    body: dict[str, object] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (429, answer(429, "Too Many Requests: retry after 5", retry_after=5), RetryAfter),
        (
            400,
            answer(400, "Bad Request: group chat was upgraded", migrate_to_chat_id=-1001),
            MigrateToChat,
        ),
        (400, answer(400, NOT_MODIFIED), BadRequest),
        (401, answer(401, "Unauthorized"), Unauthorized),
        (403, answer(403, "Forbidden: bot was blocked by the user"), Forbidden),
        (404, answer(404, "Not Found"), TelegramNotFound),
        (409, answer(409, "Conflict: terminated by other getUpdates request"), Conflict),
        (413, answer(413, "Request Entity Too Large"), EntityTooLarge),
        (500, answer(500, "Internal Server Error"), TelegramServerError),
        (502, b"<html>Bad Gateway</html>", TelegramServerError),
        (200, b"not json", TelegramServerError),
        (418, answer(418, "I'm a teapot"), TelegramError),
    ],
)
def test_answers_map_to_typed_errors(status: int, body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        check_answer("sendMessage", status, body)
    assert type(caught.value) is error


def test_parameters_win_over_the_code() -> None:
    # retry_after decides even on a code that would otherwise be a plain 400.
    with pytest.raises(RetryAfter) as caught:
        check_answer("sendMessage", 400, answer(400, "Flood", retry_after=3))
    assert caught.value.retry_after == 3
    with pytest.raises(BadRequest) as not_modified:
        check_answer("editMessageText", 400, answer(400, NOT_MODIFIED))
    assert not_modified.value.not_modified


def test_success_returns_the_result() -> None:
    assert check_answer("getMe", 200, b'{"ok":true,"result":{"id":1}}') == {"id": 1}


async def test_a_network_error_does_not_carry_the_token(nursery: trio.Nursery) -> None:
    fake = FakeTelegram()
    base = await nursery.start(fake.serve)
    fake.drop_connections(times=1)
    async with open_bot_client(base, TOKEN) as bot:
        with pytest.raises(TelegramNetworkError) as caught:
            await bot.call("getMe")
        assert TOKEN not in str(caught.value)
        assert TOKEN.split(":")[1] not in repr(caught.value.__context__)
        assert (await bot.call("getMe"))["username"] == "shop_test_bot"


def test_logs_redact_bot_urls_and_secrets(caplog: pytest.LogCaptureFixture) -> None:
    line = f"POST https://api.telegram.org/bot{TOKEN}/sendMessage with sk_live_abcdef123"
    assert TOKEN not in redact(line)
    assert "sk_live_abcdef123" not in redact(line, ["sk_live_abcdef123"])
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "%s", (line,), None)
    RedactingFilter(["sk_live_abcdef123"]).filter(record)
    assert TOKEN not in record.getMessage()
    assert "sk_live" not in record.getMessage()
