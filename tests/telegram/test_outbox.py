"""The outbox under mock time, against the fake Bot API server over real HTTP."""

from __future__ import annotations

import random
from itertools import pairwise
from typing import Any

import pytest
import trio
import trio.testing

from shop.errors import BadRequest, Forbidden, TelegramServerError
from shop.telegram.api import open_bot_client
from shop.telegram.outbox import Lane, Outbox
from tests.fakes.telegram import NOT_MODIFIED, TOKEN, Call, FakeTelegram


@pytest.fixture
async def telegram(nursery: trio.Nursery) -> tuple[FakeTelegram, str]:
    fake = FakeTelegram()
    return fake, await nursery.start(fake.serve)


async def open_outbox(
    nursery: trio.Nursery, base_url: str, **options: Any
) -> tuple[Outbox, list[int]]:
    blocked: list[int] = []

    async def on_blocked(chat_id: int) -> None:
        blocked.append(chat_id)

    bot = await nursery_enter(nursery, open_bot_client(base_url, TOKEN))
    outbox = Outbox(bot, on_blocked=on_blocked, rng=random.Random(7), **options)
    await nursery.start(outbox.run)
    return outbox, blocked


async def nursery_enter(nursery: trio.Nursery, manager: Any) -> Any:
    """Enter an async context manager for the lifetime of ``nursery``."""

    async def hold(task_status: trio.TaskStatus[Any]) -> None:
        async with manager as value:
            task_status.started(value)
            await trio.sleep_forever()

    return await nursery.start(hold)


def sends(fake: FakeTelegram) -> list[Call]:
    return [c for c in fake.calls if c.method in ("sendMessage", "editMessageText")]


def text(chat_id: int, body: str = "hi") -> dict[str, Any]:
    return {"chat_id": chat_id, "text": body}


async def test_global_rate_is_never_exceeded(
    telegram: tuple[FakeTelegram, str],
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake, base = telegram
    outbox, _ = await open_outbox(nursery, base, global_rate=25)
    for chat in range(1, 101):
        await outbox.send("sendMessage", text(chat), lane=Lane.BULK)
    await outbox.drain()
    times = sorted(c.at for c in sends(fake))
    assert len(times) == 100
    # Any 26 consecutive sends span at least one second.
    assert all(later - earlier >= 1.0 for earlier, later in zip(times, times[25:], strict=False))
    assert times[-1] - times[0] == pytest.approx(3.0, abs=0.05)  # and no slower than that


async def test_one_chat_gets_at_most_one_message_a_second_in_order(
    telegram: tuple[FakeTelegram, str],
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake, base = telegram
    outbox, _ = await open_outbox(nursery, base)
    for n in range(5):
        await outbox.send("sendMessage", text(42, f"m{n}"))
    await outbox.send("sendMessage", text(-100123, "group 1"))
    await outbox.send("sendMessage", text(-100123, "group 2"))
    await outbox.drain()
    mine = fake.calls_to("sendMessage", chat_id=42)
    assert [c.params["text"] for c in mine] == [f"m{n}" for n in range(5)]
    gaps = [b.at - a.at for a, b in pairwise(mine)]
    assert all(gap >= 1.0 for gap in gaps)
    group = fake.calls_to("sendMessage", chat_id=-100123)
    assert group[1].at - group[0].at >= 3.0  # 20 a minute in groups


async def test_a_chat_may_burst_but_averages_one_message_a_second(
    telegram: tuple[FakeTelegram, str],
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake, base = telegram
    outbox, _ = await open_outbox(nursery, base, chat_burst=3)
    for n in range(13):
        await outbox.send("sendMessage", text(42, f"m{n}"))
    await outbox.drain()
    mine = fake.calls_to("sendMessage", chat_id=42)
    assert [c.params["text"] for c in mine] == [f"m{n}" for n in range(13)]
    starts = [c.at - mine[0].at for c in mine]
    # The first three go at once (an invoice and then a screen are not held back) ...
    assert starts[2] < 0.01
    # ... then one a second: no window of t seconds holds more than 3 + t messages.
    assert [round(t) for t in starts[3:]] == list(range(1, 11))
    assert all(b - a >= 1.0 for a, b in pairwise(starts[2:]))
    # Once the chat has been quiet for its allowance (3 s), it may burst again; a call
    # queued before then waits only for the allowance it has, not for the whole bucket.
    await trio.sleep(1.5)
    await outbox.send("sendMessage", text(42, "soon"))
    await outbox.drain()
    soon = fake.calls_to("sendMessage", chat_id=42)[-1]
    assert soon.at - mine[-1].at == pytest.approx(1.5, abs=0.01)  # not held to 3 s
    await trio.sleep(3.0)
    for n in range(3):
        await outbox.send("sendMessage", text(42, f"again{n}"))
    await outbox.drain()
    again = fake.calls_to("sendMessage", chat_id=42)[-3:]
    assert again[2].at - again[0].at < 0.01


async def test_flood_control_waits_exactly_retry_after(
    telegram: tuple[FakeTelegram, str],
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake, base = telegram
    outbox, _ = await open_outbox(nursery, base)
    fake.fail(
        "sendMessage", status=429, description="Too Many Requests: retry after 7", retry_after=7
    )
    result = await outbox.request("sendMessage", text(42))
    assert result["text"] == "hi"
    first, second = fake.calls_to("sendMessage")
    assert first.status == 429
    assert second.status == 200
    assert second.at - first.at == pytest.approx(7.0, abs=1e-6)


async def test_forbidden_reports_the_chat_as_blocked(
    telegram: tuple[FakeTelegram, str],
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake, base = telegram
    outbox, blocked = await open_outbox(nursery, base)
    fake.block(42)
    with pytest.raises(Forbidden):
        await outbox.request("sendMessage", text(42))
    assert blocked == [42]
    assert len(fake.calls_to("sendMessage")) == 1  # not retried


async def test_a_reply_overtakes_queued_bulk_sends(
    telegram: tuple[FakeTelegram, str],
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake, base = telegram
    outbox, _ = await open_outbox(nursery, base, global_rate=25)
    for chat in range(1, 101):
        await outbox.send("sendMessage", text(chat, "news"), lane=Lane.BULK)
    await trio.sleep(0.5)  # the first second's bulk budget is spent
    await outbox.send("sendMessage", text(5000, "your order"), lane=Lane.INTERACTIVE)
    await outbox.drain()
    reply = fake.calls_to("sendMessage", chat_id=5000)[0]
    # It took the first slot that opened, ahead of the 75 bulk sends still waiting.
    assert reply.at == pytest.approx(1.0, abs=0.01)
    assert sum(c.at > reply.at + 0.5 for c in sends(fake)) >= 50


async def test_answers_skip_the_queue_and_the_limits(
    telegram: tuple[FakeTelegram, str],
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake, base = telegram
    outbox, _ = await open_outbox(nursery, base, global_rate=1)
    menu = await outbox.request("sendMessage", text(9, "menu"))
    fake.press(9, "menu", message_id=menu["message_id"])
    (query,) = [u["callback_query"] for u in fake.pending if "callback_query" in u]
    for chat in range(1, 6):
        await outbox.send("sendMessage", text(chat), lane=Lane.BULK)
    start = trio.current_time()
    params = {"callback_query_id": query["id"]}
    assert await outbox.request("answerCallbackQuery", params, lane=Lane.ANSWER) is True
    assert trio.current_time() - start < 0.01
    with pytest.raises(BadRequest):  # a second answer to the same query is refused, at once
        await outbox.request("answerCallbackQuery", params, lane=Lane.ANSWER)


async def test_not_modified_counts_as_success(
    telegram: tuple[FakeTelegram, str],
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake, base = telegram
    outbox, _ = await open_outbox(nursery, base)
    fake.fail("editMessageText", status=400, description=NOT_MODIFIED)
    params = {"chat_id": 42, "message_id": 1, "text": "same"}
    assert await outbox.request("editMessageText", params) is None


async def test_server_errors_are_retried_a_bounded_number_of_times(
    telegram: tuple[FakeTelegram, str],
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake, base = telegram
    outbox, _ = await open_outbox(nursery, base, max_attempts=4)
    fake.outage(502)
    with pytest.raises(TelegramServerError):
        await outbox.request("sendMessage", text(42))
    attempts = fake.calls_to("sendMessage")
    assert len(attempts) == 4
    gaps = [b.at - a.at for a, b in pairwise(attempts)]
    assert all(gap >= 1.0 for gap in gaps)  # backoff, and never faster than the chat limit
    fake.end_outage()
    fake.drop_connections(times=2)
    assert (await outbox.request("sendMessage", text(43)))["text"] == "hi"
    assert len(fake.calls_to("sendMessage", chat_id=43)) == 3


async def test_sends_run_concurrently(
    telegram: tuple[FakeTelegram, str],
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake, base = telegram
    outbox, _ = await open_outbox(nursery, base)
    fake.delay("sendMessage", 2.0)
    start = trio.current_time()
    for chat in range(1, 17):  # as many as the outbox runs at once
        await outbox.send("sendMessage", text(chat))
    await outbox.drain()
    assert trio.current_time() - start == pytest.approx(2.0, abs=0.05)
