"""The sandbox's calendar: the machine's clock plus an offset the operator moves forward.

The shop reads calendar time only through its injected ``WallClock``, so moving this clock a
day or a month ahead makes reminders, expiry and renewals happen now instead of then. The
timer sleeps on trio's clock until its next cron slot, so it would not notice a jump by
itself: :func:`run_timer_across_jumps` starts it again after each jump, and on start the
timer runs once every job whose latest slot passed (as after a shop that was down).

The offset is kept in a file in the sandbox's data directory, so time never runs backwards
over a restart (the database remembers the future it has seen).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import trio

from ..actors.timer import Job, JobFn, run_timer
from ..app import App
from ..clock import SystemClock, WallClock

log = logging.getLogger(__name__)

#: The longest single jump: far enough for a yearly plan, short enough to stay readable.
MAX_JUMP = dt.timedelta(days=400)


class SandboxClock:
    """A ``WallClock``: ``base`` (the machine's clock) plus ``offset``."""

    def __init__(
        self,
        offset: dt.timedelta = dt.timedelta(0),
        *,
        keep_in: Path | None = None,
        base: WallClock | None = None,
    ) -> None:
        self.offset = offset
        self._keep_in = keep_in
        self._base = base or SystemClock()
        self._jumped = trio.Event()

    @classmethod
    def kept_in(cls, path: Path) -> SandboxClock:
        """The clock whose offset ``path`` remembers (none yet: the machine's time)."""
        try:
            seconds = float(path.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            seconds = 0.0
        return cls(dt.timedelta(seconds=max(0.0, seconds)), keep_in=path)

    def now(self) -> dt.datetime:
        return self._base.now() + self.offset

    def advance(self, by: dt.timedelta) -> None:
        """Move time forward (never back: the shop's records assume it only grows)."""
        if not dt.timedelta(0) < by <= MAX_JUMP:
            raise ValueError(f"a jump is more than 0 and at most {MAX_JUMP.days} days")
        self.offset += by
        if self._keep_in is not None:
            self._keep_in.parent.mkdir(parents=True, exist_ok=True)
            self._keep_in.write_text(f"{self.offset.total_seconds():.0f}\n", encoding="ascii")
        log.info("sandbox clock moved %s ahead: now %s", by, self.now().isoformat())
        self._jumped.set()
        self._jumped = trio.Event()

    async def wait_for_jump(self) -> None:
        await self._jumped.wait()


async def run_timer_across_jumps(clock: SandboxClock, app: App, jobs: Sequence[Job]) -> NoReturn:
    """``run_timer``, started again after every jump of ``clock``.

    A job that is running when the clock jumps is let finish first (its slot is claimed in
    the database, so cutting it short could leave that slot half done); the jobs are
    wrapped only to count how many run. (A jump in the milliseconds between a slot's claim
    and its job's start still drops that one slot; the next slot runs as usual.)
    """
    running = _Running()
    counted = [Job(job.name, job.cron, running.counting(job)) for job in jobs]
    while True:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_timer, app, counted)
            await clock.wait_for_jump()
            await running.until_idle()
            nursery.cancel_scope.cancel()  # no checkpoint since the count was 0


class _Running:
    def __init__(self) -> None:
        self.count = 0
        self._idle = trio.Event()
        self._idle.set()

    def counting(self, job: Job) -> JobFn:
        async def run(app: App, slot: dt.datetime) -> str:
            self.count += 1
            self._idle = trio.Event()
            try:
                return await job.run(app, slot)
            finally:
                self.count -= 1
                if self.count == 0:
                    self._idle.set()

        return run

    async def until_idle(self) -> None:
        while self.count:
            await self._idle.wait()
