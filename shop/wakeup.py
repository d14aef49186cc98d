"""A wake-up call for a task that sleeps until a time or until someone has news."""

from __future__ import annotations

import math

import trio


class Wakeup:
    def __init__(self) -> None:
        self._event = trio.Event()

    def poke(self) -> None:
        """Wake the sleeper now (for instance: something is due sooner than it thought)."""
        self._event.set()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` (``math.inf``: until poked) or until poked, whichever first."""
        if not self._event.is_set():
            with trio.move_on_after(seconds if seconds < math.inf else math.inf):
                await self._event.wait()
        self._event = trio.Event()
