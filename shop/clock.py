"""Calendar time, from one injected object.

trio's clock is monotonic and has no calendar, and ``MockClock`` does not move
``datetime.now()``. So every calendar reading in the shop goes through a
:class:`WallClock`: production uses :class:`SystemClock`; tests use
:class:`TrioClock`, which derives the date from trio's (mock) clock so that days
pass in milliseconds under ``autojump_clock``.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import attrs
import trio

UTC = dt.UTC


class WallClock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware, in UTC."""
        ...


@attrs.frozen
class SystemClock:
    """The machine's clock. The only place the shop reads real calendar time."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


@attrs.frozen
class TrioClock:
    """Calendar time that moves with trio's clock (for tests and the sandbox)."""

    anchor: dt.datetime
    trio_anchor: float

    @classmethod
    def starting_at(cls, anchor: dt.datetime) -> TrioClock:
        if anchor.tzinfo is None:
            raise ValueError("the anchor must be timezone-aware")
        return cls(anchor=anchor.astimezone(UTC), trio_anchor=trio.current_time())

    def now(self) -> dt.datetime:
        return self.anchor + dt.timedelta(seconds=trio.current_time() - self.trio_anchor)
