"""The timer: exact cron fire times (across DST), catch-up once, one run per slot."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import trio
import trio.testing

from shop.actors.timer import Job, latest_slot, next_slot
from shop.app import App
from shop.clock import TrioClock
from tests.harness import fake_telegram

BERLIN = "Europe/Berlin"
#: Long polls as long as a day, so passing days of mock time costs few real requests.
DAY = 86_400
UTC = dt.UTC


@attrs.define
class Probe:
    """A job that notes when it ran, where, and for which slot."""

    runs: list[tuple[dt.datetime, dt.datetime, int]] = attrs.Factory(list)

    def job(self, name: str, cron: str) -> Job:
        async def run(app: App, slot: dt.datetime) -> str:
            self.runs.append((slot, app.clock.now(), id(app)))
            return "probed"

        return Job(name, cron, run)


def test_cron_slots_follow_the_local_clock_across_dst() -> None:
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo(BERLIN)
    after = dt.datetime(2026, 3, 27, 12, tzinfo=UTC)
    slots = []
    for _ in range(4):
        after = next_slot("0 7 * * *", after, berlin)
        slots.append(after)
    assert slots == [
        dt.datetime(2026, 3, 28, 6, tzinfo=UTC),  # 07:00 CET
        dt.datetime(2026, 3, 29, 5, tzinfo=UTC),  # 07:00 CEST: the clocks went forward
        dt.datetime(2026, 3, 30, 5, tzinfo=UTC),
        dt.datetime(2026, 3, 31, 5, tzinfo=UTC),
    ]
    now = dt.datetime(2026, 3, 29, 5, tzinfo=UTC)
    assert latest_slot("0 7 * * *", now, berlin) == now  # a slot is its own latest
    assert latest_slot("0 7 * * *", now - dt.timedelta(seconds=1), berlin) == slots[0]


async def test_a_daily_job_fires_at_exactly_seven_local_across_dst(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    probe = Probe()
    clock = TrioClock.starting_at(dt.datetime(2026, 3, 27, 12, tzinfo=UTC))
    async with shop_at(
        environ={"TIMEZONE": BERLIN},
        clock=clock,
        jobs=[probe.job("daily", "0 7 * * *")],
        poll_timeout=DAY,
    ):
        await trio.sleep(4 * 86_400)
    assert [(slot, at) for slot, at, _ in probe.runs] == [
        (slot, slot)  # ran at its slot, to the microsecond of mock time
        for slot in (
            dt.datetime(2026, 3, 28, 6, tzinfo=UTC),
            dt.datetime(2026, 3, 29, 5, tzinfo=UTC),
            dt.datetime(2026, 3, 30, 5, tzinfo=UTC),
            dt.datetime(2026, 3, 31, 5, tzinfo=UTC),
        )
    ]


async def test_a_job_missed_while_down_runs_once_at_start(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    probe = Probe()
    jobs = [probe.job("daily", "0 7 * * *")]
    async with fake_telegram(long_poll_max=DAY) as telegram:
        first = TrioClock.starting_at(dt.datetime(2026, 5, 1, 6, tzinfo=UTC))
        async with shop_at(telegram=telegram, clock=first, jobs=jobs, poll_timeout=DAY) as shop:
            await trio.sleep(2 * 3600)  # 07:00 on May 1 runs
        assert [slot for slot, _, _ in probe.runs] == [dt.datetime(2026, 5, 1, 7, tzinfo=UTC)]
        # Down from May 1, 08:00 until May 4, 12:00: three slots were missed.
        later = TrioClock.starting_at(dt.datetime(2026, 5, 4, 12, tzinfo=UTC))
        async with shop_at(telegram=telegram, clock=later, jobs=jobs, poll_timeout=DAY):
            await trio.sleep(60)
    assert [slot for slot, _, _ in probe.runs] == [
        dt.datetime(2026, 5, 1, 7, tzinfo=UTC),
        dt.datetime(2026, 5, 4, 7, tzinfo=UTC),  # the latest missed slot, once
    ]
    runs = shop.query("SELECT slot, outcome FROM job_runs WHERE job = 'daily' ORDER BY slot")
    assert [outcome for _, outcome in runs] == ["first start: not run", "probed", "probed"]


async def test_a_first_start_does_not_catch_up(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    probe = Probe()
    clock = TrioClock.starting_at(dt.datetime(2026, 5, 1, 23, tzinfo=UTC))
    async with shop_at(clock=clock, jobs=[probe.job("daily", "0 10 * * *")]):
        await trio.sleep(60)
    assert probe.runs == []  # no reminders at 23:00 just because the shop is new


async def test_two_instances_run_a_slot_once(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    probe = Probe()
    jobs = [probe.job("hourly", "0 * * * *")]
    clock = TrioClock.starting_at(dt.datetime(2026, 5, 1, 6, 30, tzinfo=UTC))
    async with (
        fake_telegram(long_poll_max=DAY) as one,
        fake_telegram(bot_id=777000222, long_poll_max=DAY) as two,
        shop_at(telegram=one, clock=clock, jobs=jobs, poll_timeout=DAY),
        shop_at(telegram=two, clock=clock, jobs=jobs, poll_timeout=DAY),
    ):
        await trio.sleep(3 * 3600)
    slots = [slot for slot, _, _ in probe.runs]
    assert slots == [dt.datetime(2026, 5, 1, h, tzinfo=UTC) for h in (7, 8, 9)]
    assert len({app for _, _, app in probe.runs}) in (1, 2)  # whichever won each slot


async def test_an_idle_shop_touches_the_database_only_for_its_jobs(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock.starting_at(dt.datetime(2026, 5, 1, 12, 1, tzinfo=UTC))
    async with shop_at(clock=clock) as shop:  # the real jobs, on their default schedules
        await trio.sleep(60)
        before = shop.app.store.units
        await trio.sleep(57 * 60)  # 12:02 to 12:59: nothing is scheduled
        assert shop.app.store.units == before
        await trio.sleep(2 * 60)  # 13:00: the hourly sweep
        sweep = shop.app.store.units - before
        runs = shop.query("SELECT job FROM job_runs WHERE outcome IS NOT NULL AND claimed_at > %s",
                          dt.datetime(2026, 5, 1, 12, 30, tzinfo=UTC))  # fmt: skip
    assert runs == [("sweep",)]
    # claim; the Stars cursor (getStarTransactions finds nothing new); refunds due; expire;
    # recheck; look for notices; the broadcaster looks for owed rows and when to look
    # again; finish
    assert 0 < sweep <= 10
