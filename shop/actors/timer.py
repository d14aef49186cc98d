"""The timer: runs the scheduled jobs at their cron times in the shop's time zone.

Each job has a cron expression (``SCHEDULE_*``). A fire time is a *slot*; a slot is
claimed in SQL before it runs (``store.schedule.claim``), so it never runs twice, also
with two instances on one database. At start, a job whose latest slot passed while the
shop was down runs once for that slot (not once per missed slot). Calendar time comes
only from ``app.clock``, and waiting is ``trio.sleep``, so tests pass days in
milliseconds under a mock clock. Between jobs the timer sleeps and touches nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn
from zoneinfo import ZoneInfo

import attrs
import trio
from croniter import croniter

from ..app import App
from ..errors import StoreUnavailable
from ..store import schedule

log = logging.getLogger(__name__)

JobFn = Callable[[App, dt.datetime], Awaitable[str]]


@attrs.frozen
class Job:
    name: str
    cron: str
    run: JobFn  # (app, slot) -> a short outcome for job_runs


def next_slot(cron: str, after: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The first fire time strictly after ``after``, in UTC."""
    fire: dt.datetime = croniter(cron, after.astimezone(zone)).get_next(dt.datetime)
    return fire.astimezone(dt.UTC)


def latest_slot(cron: str, now: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The last fire time at or before ``now``, in UTC."""
    moment = now.astimezone(zone) + dt.timedelta(microseconds=1)
    fire: dt.datetime = croniter(cron, moment).get_prev(dt.datetime)
    return fire.astimezone(dt.UTC)


async def run_timer(app: App, jobs: Sequence[Job]) -> NoReturn:
    zone = app.config.timezone
    locks = {job.name: trio.Lock() for job in jobs}
    async with trio.open_nursery() as running:
        for job in jobs:
            slot = await _missed_slot(app, job, zone)
            if slot is not None:
                running.start_soon(_run_slot, app, job, slot, locks[job.name])
        while True:
            now = app.clock.now()
            upcoming = [(next_slot(job.cron, now, zone), job) for job in jobs]
            fire = min(slot for slot, _ in upcoming)
            await trio.sleep(max(0.0, (fire - app.clock.now()).total_seconds()))
            for slot, job in upcoming:
                if slot == fire:
                    running.start_soon(_run_slot, app, job, slot, locks[job.name])


async def _missed_slot(app: App, job: Job, zone: ZoneInfo) -> dt.datetime | None:
    """The latest slot, if it passed unrun while the shop was down."""
    now = app.clock.now()
    latest = latest_slot(job.cron, now, zone)
    try:
        last = await app.store.run(schedule.last_slot, job.name)
        if last is None:
            await app.store.run(schedule.mark_seen, job.name, latest, now)
            return None
    except StoreUnavailable as exc:
        log.warning("timer: cannot read %s's last run (%s); no catch-up", job.name, exc)
        return None
    return latest if last < latest else None


async def _run_slot(app: App, job: Job, slot: dt.datetime, lock: trio.Lock) -> None:
    async with lock:  # a slow run of a job delays its next slot; it never overlaps it
        try:
            claimed = await app.store.run(schedule.claim, job.name, slot, app.clock.now())
        except StoreUnavailable as exc:
            log.error("job %s at %s not run: database unreachable (%s)", job.name, slot, exc)
            return
        if not claimed:
            log.info("job %s at %s already ran elsewhere", job.name, slot.isoformat())
            return
        started = trio.current_time()
        try:
            outcome = await job.run(app, slot)
            app.metrics.job_runs.labels(job.name, "ok").inc()
        except Exception as exc:
            log.exception("ALERT: job %s at %s failed", job.name, slot.isoformat())
            outcome = f"failed: {type(exc).__name__}"
            app.metrics.job_runs.labels(job.name, "failed").inc()
        app.metrics.job_seconds.labels(job.name).observe(trio.current_time() - started)
        log.info("job %s at %s: %s", job.name, slot.isoformat(), outcome)
        try:
            await app.store.run(schedule.finish, job.name, slot, outcome, app.clock.now())
        except StoreUnavailable:
            log.warning("job %s at %s: could not record its end", job.name, slot.isoformat())
