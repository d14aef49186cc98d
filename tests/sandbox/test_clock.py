"""The sandbox's clock (what a jump does to the shop: ``test_customers``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from shop.clock import UTC
from shop.sandbox.clock import SandboxClock

NOON = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class _Stopped:
    def now(self) -> dt.datetime:
        return NOON


def test_the_clock_moves_forward_only_and_remembers_where_it_is(tmp_path: Path) -> None:
    kept = tmp_path / "clock-offset"
    clock = SandboxClock.kept_in(kept)
    clock = SandboxClock(clock.offset, keep_in=kept, base=_Stopped())
    clock.advance(dt.timedelta(days=30))
    assert clock.now() == NOON + dt.timedelta(days=30)
    for wrong in (dt.timedelta(0), dt.timedelta(hours=-1), dt.timedelta(days=401)):
        with pytest.raises(ValueError, match="a jump is more than 0"):
            clock.advance(wrong)
    assert SandboxClock.kept_in(kept).offset == dt.timedelta(days=30)  # after a restart too
