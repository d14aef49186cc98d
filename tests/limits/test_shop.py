"""The limits in the running shop: a customer over a limit is told once when to try again
(a pressed button as its answer), operators are exempt, and with ``REDIS_URL`` the
limits live in Redis, or in the instance while Redis is down, ``/readyz`` saying which.

The first tests run on mock time without Redis; the last ones talk to the real Redis and
so run on real time (a mock clock would jump while a Redis reply is on its way).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import coredis
import httpx
import pytest
import trio
import trio.testing

from shop.limits import RedisLimits
from tests.customer import Customer
from tests.growth.test_topup import TOPUP, catalog_with
from tests.harness import Shop, fake_telegram
from tests.limits.conftest import REDIS_URL, delete_keys, free_port

ANN = 1001
PREFIX = "shop:123456:"  # the fake Bot API's token is 123456:…
TOLD = "Not so fast 🙂 You can try again in"


def told(texts: list[str | None]) -> list[str]:
    return [text for text in texts if text and text.startswith(TOLD)]


async def test_messages_over_their_limit_are_told_once_when_to_try_again(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ={"RATE_LIMIT_MESSAGES": "2/60"}) as shop:
        ann = Customer(shop, ANN)
        for _ in range(4):
            await ann.send("/menu")  # 10 virtual seconds apart
        assert len(ann.texts()) == 3  # two menus, then one notice, then silence
        assert told(list(ann.texts())) == [f"{TOLD} 40 s."]
        await trio.sleep(20)  # the first message leaves the window
        await ann.send("/menu")
        assert len(ann.texts()) == 4
        assert ann.buttons()[0] == "buy"


async def test_a_button_over_its_limit_hears_it_as_the_answer(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ={"RATE_LIMIT_CALLBACKS": "2/60"}) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        for _ in range(4):
            await ann.press("help")
        assert ann.answers() == [None, None, f"{TOLD} 40 s.", None]  # answered every time
        assert not told(list(ann.texts()))  # and not a word in the chat


async def test_payments_over_their_limit_are_not_created(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ={"RATE_LIMIT_PAYMENTS": "1/60"}) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("buy")
        await ann.press("plan:m1")
        plan = ann.menu()
        await ann.press("pay:p:m1:stars:XTR", on=plan)
        await ann.press("pay:p:m1:stars:XTR", on=plan)
        assert len(ann.invoices()) == 1
        assert shop.query("SELECT count(*) FROM payments") == [(1,)]
        assert ann.answers()[-1] == f"{TOLD} 50 s."


async def test_operators_are_exempt(shop_at: Any, autojump_clock: trio.testing.MockClock) -> None:
    environ = {"ADMIN_IDS": str(ANN), "RATE_LIMIT_MESSAGES": "1/60", "RATE_LIMIT_PAYMENTS": "1/60"}
    async with shop_at(environ=environ) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.send("/menu")
        await ann.press("buy")
        await ann.press("plan:m1")
        plan = ann.menu()
        await ann.press("pay:p:m1:stars:XTR", on=plan)
        await ann.press("pay:p:m1:stars:XTR", on=plan)
        assert len(ann.invoices()) == 2
        assert not told(list(ann.texts()) + ann.answers())


# -- with Redis, on real time ------------------------------------------------------------


@pytest.fixture
async def clean_redis() -> AsyncIterator[None]:
    """The shop's keys (per bot: the fake's) removed before and after."""
    await delete_keys(PREFIX)
    try:
        yield
    finally:
        with trio.CancelScope(shield=True):
            await delete_keys(PREFIX)


async def three_messages(shop: Shop) -> list[str]:
    for _ in range(3):
        shop.telegram.send_text(ANN, "/menu")
    with trio.fail_after(20):
        calls = await shop.telegram.wait_for("sendMessage", chat_id=ANN, count=3)
    return [call.params["text"] for call in calls]


async def readyz(shop: Shop) -> tuple[int, str, str]:
    """The status code, and the overall status and Redis's in the answer."""
    async with httpx.AsyncClient(base_url=shop.url) as http:
        answer = await http.get("/readyz")
    return answer.status_code, answer.json()["status"], answer.json()["redis"]


@pytest.mark.slow
async def test_with_redis_the_limits_live_there_and_readyz_says_so(
    shop_at: Any, clean_redis: None
) -> None:
    environ = {"REDIS_URL": REDIS_URL, "RATE_LIMIT_MESSAGES": "2/60"}
    async with shop_at(environ=environ) as shop:
        assert isinstance(shop.app.limits, RedisLimits)
        texts = await three_messages(shop)
        assert told(list(texts)) == [f"{TOLD} 60 s."]
        assert await readyz(shop) == (200, "ready", "ok")
        async with coredis.Redis.from_url(REDIS_URL) as redis:
            assert await redis.llen(PREFIX + "limit:{message:1001}") == 2
            assert await redis.exists([PREFIX + "sends"]) == 1  # the replies took the budget


@pytest.mark.slow
async def test_with_redis_down_the_shop_serves_on_local_limits(
    shop_at: Any, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "RATE_LIMIT_MESSAGES": "2/60"}
    caplog.set_level(logging.WARNING, logger="shop.limits.link")
    async with shop_at(environ=environ) as shop:
        texts = await three_messages(shop)
        assert told(list(texts)) == [f"{TOLD} 60 s."]
        assert await readyz(shop) == (200, "ready", "down")  # degraded, still ready
    logged = [r.getMessage() for r in caplog.records if r.name == "shop.limits.link"]
    assert len(logged) == 1  # once, however many messages
    assert "unreachable" in logged[0]


@pytest.mark.slow
@pytest.mark.parametrize("redis", [True, False], ids=["with-redis", "without"])
async def test_a_question_asked_before_a_restart_is_answered_after_it_with_redis(
    shop_at: Any, clean_redis: None, tmp_path: Path, redis: bool
) -> None:
    environ = catalog_with(tmp_path, TOPUP) | ({"REDIS_URL": REDIS_URL} if redis else {})
    async with fake_telegram() as telegram:
        fake = telegram[0]
        async with shop_at(environ=environ, telegram=telegram):
            fake.send_text(ANN, "/start")
            with trio.fail_after(20):
                await fake.wait_for("sendMessage", chat_id=ANN)
                menu = fake.messages(ANN)[-1]
                fake.press(ANN, "bal", message_id=menu["message_id"])
                await fake.wait_for("editMessageText", chat_id=ANN)
                fake.press(ANN, "topup", message_id=menu["message_id"])
                await fake.wait_for("editMessageText", chat_id=ANN, count=2)
            assert "Type the amount" in fake.messages(ANN)[-1]["text"]
            asked = len(fake.calls_to("sendMessage", ANN))
        async with shop_at(environ=environ, telegram=telegram):  # restarted, or another one
            fake.send_text(ANN, "25")
            with trio.fail_after(20):
                replies = await fake.wait_for("sendMessage", chat_id=ANN, count=asked + 1)
            markup = json.dumps(replies[-1].params.get("reply_markup"))
            assert ("pay:t:25:stars:XTR" in markup) is redis  # without, it was forgotten
