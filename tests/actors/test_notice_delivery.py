"""Notices are marked sent only once Telegram accepted them, under a lease that dies with
the shop holding it: a crash neither loses a notice nor, outside its moment of delivery,
repeats it; a reminder decided before a renewal is never sent after it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import trio
import trio.testing

from shop.clock import TrioClock
from tests.actors.test_jobs import LONG_POLL, give_stars, subscribe
from tests.customer import Customer
from tests.harness import Shop, fake_telegram, running_shop

UTC = dt.UTC
ANN = 1001
DAY = dt.timedelta(days=1)
START = dt.datetime(2026, 6, 1, 9, 0, tzinfo=UTC)  # an hour before the 10:00 reminders
ENDS = dt.datetime(2026, 6, 4, 18, 0, tzinfo=UTC)  # so the 3-day reminder is owed today


def reminders(shop: Shop) -> list[str]:
    """The reminders Ann's Telegram accepted (failed attempts are not messages)."""
    calls = shop.telegram.calls_to("sendMessage", ANN)
    texts = [c.params["text"] for c in calls if c.status == 200]
    return [text for text in texts if text.startswith(("⏳", "⏰"))]


def unsent(shop: Shop) -> list[tuple[Any, ...]]:
    return shop.query("SELECT kind FROM notices WHERE sent_at IS NULL")


async def test_a_notice_is_marked_sent_only_once_telegram_took_it(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(clock=TrioClock.starting_at(START), poll_timeout=LONG_POLL) as shop:
        subscribe(shop, ANN, ENDS)
        # Telegram fails every attempt the outbox makes for this chat: not delivered.
        shop.telegram.fail("sendMessage", status=502, times=5, chat_id=ANN)
        await trio.sleep(3600 + 120)  # the 10:00 reminders; the outbox gives up
        assert reminders(shop) == []
        assert unsent(shop) == [("remind_3d",)]
        await trio.sleep(15 * 60)  # the lease runs out: the deliverer tries again
        assert len(reminders(shop)) == 1
        assert unsent(shop) == []
        await trio.sleep(2 * DAY.total_seconds())
        assert len(reminders(shop)) == 2  # June 3's, and the 3-day one only once


async def test_a_reminder_decided_before_a_renewal_is_not_sent_after_it(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(clock=TrioClock.starting_at(START), poll_timeout=LONG_POLL) as shop:
        subscribe(shop, ANN, ENDS)
        give_stars(shop, ANN, 300)
        shop.telegram.fail("sendMessage", status=502, times=5, chat_id=ANN)
        await trio.sleep(3600 + 120)  # owed at 10:00, not delivered
        assert unsent(shop) == [("remind_3d",)]
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("buy")
        await ann.press("plan:m1")
        await ann.press("pay:p:m1:balance:XTR")
        await ann.press(next(b for b in ann.buttons() if b.startswith("conf:")))
        await trio.sleep(30 * 60)  # the lease ran out; the deliverer looked again
        assert unsent(shop) == []
    assert reminders(shop) == []


async def test_a_notice_under_delivery_when_the_shop_dies_is_delivered_after_restart(
    clean_database: str, busy_hook: Any, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock.starting_at(START)
    async with fake_telegram(clock) as (fake, base):
        with trio.CancelScope() as kill:
            async with running_shop(
                clean_database,
                telegram=(fake, base),
                clock=clock,
                on_busy=busy_hook,
                poll_timeout=LONG_POLL,
            ) as shop:
                subscribe(shop, ANN, ENDS)
                fake.delay("sendMessage", 120)  # Telegram is slow to answer
                await trio.sleep(3600 + 30)  # 10:00: the reminder is handed over...
                assert unsent(shop) == [("remind_3d",)]
                kill.cancel()  # ...and the shop dies (no graceful stop)
        fake.delay("sendMessage", 0)
        before = len(reminders(shop))
        async with running_shop(
            clean_database,
            telegram=(fake, base),
            clock=clock,
            on_busy=busy_hook,
            poll_timeout=LONG_POLL,
        ) as again:
            await trio.sleep(60)  # no waiting for the dead shop's lease
            assert unsent(again) == []
            assert len(reminders(again)) == before + 1
