"""The poller: at-least-once delivery through the update journal, ordering, back-off.

The actors here are the test's own "user" kind, which records what it is handed and can
be held at a gate, so a test decides when handling finishes.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import pairwise
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from shop.actors.poller import Poller
from shop.actors.runtime import Kind, open_registry
from shop.clock import TrioClock
from shop.store import Store
from shop.telegram.api import open_bot_client
from shop.telegram.types import Update
from tests.fakes.telegram import TERMINATED, TOKEN, FakeTelegram


@attrs.define
class Recorder:
    handled: list[tuple[int, int]] = attrs.Factory(list)  # (customer, update_id)
    gates: dict[int, trio.Event] = attrs.Factory(dict)  # customers held until set
    running: dict[int, int] = attrs.Factory(dict)

    def kind(self) -> Kind:
        recorder = self

        class Customer:
            def __init__(self, key: int) -> None:
                self.key = key

            async def handle(self, update: Update) -> None:
                recorder.running[self.key] = recorder.running.get(self.key, 0) + 1
                assert recorder.running[self.key] == 1
                gate = recorder.gates.get(self.key)
                if gate is not None:
                    await gate.wait()
                recorder.handled.append((self.key, update.update_id))
                recorder.running[self.key] -= 1

            async def passivate(self) -> None:
                pass

        async def activate(key: int) -> Customer:
            return Customer(key)

        return Kind("user", activate)


@asynccontextmanager
async def polling(
    store: Store, base_url: str, recorder: Recorder, *, seed: int = 3
) -> AsyncIterator[Poller]:
    clock = TrioClock.starting_at(dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    stop = trio.Event()
    async with (
        open_bot_client(base_url, TOKEN) as bot,
        open_registry([recorder.kind()]) as actors,
        trio.open_nursery() as nursery,
    ):
        poller = Poller(bot, store, actors, clock, rng=random.Random(seed), poll_timeout=30)
        nursery.start_soon(poller.run, stop)
        try:
            yield poller
        finally:
            stop.set()


@pytest.fixture
async def telegram(nursery: trio.Nursery) -> tuple[FakeTelegram, str]:
    fake = FakeTelegram()
    return fake, await nursery.start(fake.serve)


async def journal_ids(store: Store) -> list[int]:
    def read(conn: Any) -> list[int]:
        rows = conn.execute("SELECT update_id FROM telegram_updates ORDER BY 1").fetchall()
        return [row[0] for row in rows]

    return await store.run(read)


async def settle(fake: FakeTelegram, polls: int = 1) -> None:
    """Wait until the poller has come back for more, ``polls`` more times."""
    seen = len(fake.calls_to("getUpdates"))
    await fake.wait_for("getUpdates", count=seen + polls)


async def test_an_update_leaves_the_journal_only_once_handled(
    store: Store, telegram: tuple[FakeTelegram, str], autojump_clock: trio.testing.MockClock
) -> None:
    fake, base = telegram
    recorder = Recorder(gates={7: trio.Event()})
    async with polling(store, base, recorder):
        held = fake.send_text(7, "/start")
        free = fake.send_text(8, "/start")
        await settle(fake, 2)
        await trio.testing.wait_all_tasks_blocked()
        assert recorder.handled == [(8, free)]  # one slow customer does not hold the other
        assert await journal_ids(store) == [held]
        assert fake.confirmed_offset == free + 1  # Telegram may forget: the journal remembers
        recorder.gates[7].set()
        await trio.sleep(1)  # virtual: the clock is held while the journal is written
        assert await journal_ids(store) == []
    assert sorted(recorder.handled) == [(7, held), (8, free)]


async def test_killed_mid_handling_then_restarted_loses_nothing(
    store: Store, telegram: tuple[FakeTelegram, str], autojump_clock: trio.testing.MockClock
) -> None:
    fake, base = telegram
    stuck = Recorder(gates={7: trio.Event()})
    with trio.CancelScope() as kill:
        async with polling(store, base, stuck):
            ids = [fake.send_text(7, f"message {n}") for n in range(3)]
            await settle(fake, 2)
            kill.cancel()  # no graceful stop: the process dies
    assert stuck.handled == []
    assert await journal_ids(store) == ids
    later = Recorder()
    async with polling(store, base, later):
        await settle(fake, 1)
        await trio.testing.wait_all_tasks_blocked()
    assert later.handled == [(7, i) for i in ids]  # all of them, in order
    assert await journal_ids(store) == []


async def test_one_customers_updates_are_handled_in_order_one_at_a_time(
    store: Store, telegram: tuple[FakeTelegram, str], autojump_clock: trio.testing.MockClock
) -> None:
    fake, base = telegram
    recorder = Recorder()
    async with polling(store, base, recorder):
        ids = {user: [fake.send_text(user, f"m{n}") for n in range(10)] for user in (1, 2, 3)}
        await settle(fake, 2)
        await trio.testing.wait_all_tasks_blocked()
    for user, sent in ids.items():
        assert [u for c, u in recorder.handled if c == user] == sent


async def test_conflict_backs_off_with_a_clear_log_line(
    store: Store,
    telegram: tuple[FakeTelegram, str],
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, base = telegram
    fake.fail("getUpdates", status=409, description=TERMINATED, times=3)
    async with polling(store, base, Recorder(), seed=3):
        await settle(fake, 4)
    polls = fake.calls_to("getUpdates")
    gaps = [b.at - a.at for a, b in pairwise(polls[:4])]
    expected = []
    rng = random.Random(3)
    for failures in (1, 2, 3):
        ceiling = min(60.0, 2.0**failures)
        expected.append(ceiling / 2 + rng.random() * ceiling / 2)
    assert gaps == pytest.approx(expected, abs=0.01)
    assert "another instance is polling with this token" in caplog.text


@pytest.mark.parametrize("failure", ["server", "network"])
async def test_server_and_network_errors_back_off_and_recover(
    store: Store,
    telegram: tuple[FakeTelegram, str],
    autojump_clock: trio.testing.MockClock,
    failure: str,
) -> None:
    fake, base = telegram
    recorder = Recorder()
    async with polling(store, base, recorder):
        await settle(fake, 1)
        if failure == "server":
            fake.outage(502)
        else:
            fake.drop_connections(times=4)
        update = fake.send_text(5, "hello")
        await trio.sleep(20)
        fake.end_outage()
        await settle(fake, 1)
        await trio.testing.wait_all_tasks_blocked()
    polls = fake.calls_to("getUpdates")
    failed = [c for c in polls if c.status != 200]
    assert len(failed) >= 3
    gaps = [b.at - a.at for a, b in pairwise(failed)]
    assert all(gap >= 1.0 for gap in gaps)  # backed off, no busy loop
    assert recorder.handled == [(5, update)]


async def test_a_malformed_update_is_skipped(
    store: Store,
    telegram: tuple[FakeTelegram, str],
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, base = telegram
    recorder = Recorder()
    caplog.set_level(logging.WARNING)
    async with polling(store, base, recorder):
        bad = fake.add_update({"message": {"message_id": "not a number", "chat": {}}})
        good = fake.send_text(5, "hello")
        await settle(fake, 2)
        await trio.testing.wait_all_tasks_blocked()
    assert recorder.handled == [(5, good)]
    assert f"skipping malformed update {bad}" in caplog.text
    assert await journal_ids(store) == []


async def test_an_update_the_database_cannot_hold_does_not_stop_the_others(
    store: Store, telegram: tuple[FakeTelegram, str], autojump_clock: trio.testing.MockClock
) -> None:
    fake, base = telegram
    recorder = Recorder()
    async with polling(store, base, recorder):
        nul = fake.send_text(5, "hi\x00there")  # jsonb refuses U+0000
        after = fake.send_text(6, "hello")
        await settle(fake, 2)
        await trio.testing.wait_all_tasks_blocked()
    assert sorted(recorder.handled) == [(5, nul), (6, after)]
