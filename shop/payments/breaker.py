"""A circuit breaker per payment provider, on trio's clock.

When a provider stops answering, every customer who picks it would wait for a timeout.
The breaker notices ``failure_threshold`` failures in a row and then refuses calls at
once with :class:`CircuitOpen`, so the shop can hide the method instead::

    breaker = CircuitBreaker("yookassa")
    checkout = await breaker.call(provider.create, request)

States::

    closed --(failure_threshold consecutive failures)--> open
    open --(reset_after seconds pass)--> half-open: the next call is the one trial
    trial succeeds --> closed;  trial fails --> open for another reset_after

Only :class:`ProviderUnavailable` counts as a failure. Any other :class:`ProviderError`
(a 4xx) means the provider answered, so it counts as a success. Any other exception
(a bug in the caller, cancellation) leaves the state as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar, TypeVarTuple

import trio

from .base import ProviderError, ProviderUnavailable

T = TypeVar("T")
Args = TypeVarTuple("Args")

log = logging.getLogger(__name__)


class CircuitOpen(ProviderError):
    """Raised instead of calling a provider whose breaker is open (or busy with its trial)."""

    def __init__(self, provider: str, retry_at: float) -> None:
        self.retry_at = retry_at  # trio time from which a trial may be let through
        super().__init__(provider, "circuit open: the provider failed repeatedly")


class CircuitBreaker:
    """Guards the calls to one provider. See the module docstring for the states."""

    def __init__(self, name: str, *, failure_threshold: int = 5, reset_after: float = 60.0) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self.failures = 0  # consecutive failures while closed
        self._opened_at: float | None = None  # None while closed
        self._trial = False  # a half-open trial call is in flight

    @property
    def is_open(self) -> bool:
        """True when a call made now would raise :class:`CircuitOpen`.

        That is: open and ``reset_after`` has not passed yet, or half-open with the trial
        call still running. Once ``reset_after`` has passed and no trial runs it is False
        again, because the next caller would be let through as the trial.
        """
        if self._opened_at is None:
            return False
        return self._trial or trio.current_time() < self._opened_at + self.reset_after

    async def call(self, fn: Callable[[*Args], Awaitable[T]], *args: *Args) -> T:
        """``await fn(*args)`` unless the breaker is open; record how it went."""
        trial = self._admit()
        settled = False
        try:
            result = await fn(*args)
        except ProviderUnavailable:
            settled = True
            self._failed(trial)
            raise
        except ProviderError:
            settled = True
            self._succeeded(trial)
            raise
        else:
            settled = True
            self._succeeded(trial)
            return result
        finally:
            if trial and not settled:
                self._trial = False  # cancelled, or a bug: the next caller may try instead

    def _admit(self) -> bool:
        """Let a call through or raise; True when this call is the half-open trial."""
        if self._opened_at is None:
            return False
        retry_at = self._opened_at + self.reset_after
        if self._trial or trio.current_time() < retry_at:
            raise CircuitOpen(self.name, retry_at)
        self._trial = True
        log.info("%s: circuit half-open, trying one call", self.name)
        return True

    def _succeeded(self, trial: bool) -> None:
        if trial:
            self._trial = False
            self._opened_at = None
            log.info("%s: circuit closed", self.name)
        if self._opened_at is None:
            self.failures = 0
        # else: a call let through before the breaker opened; its late news is ignored.

    def _failed(self, trial: bool) -> None:
        if trial:
            self._trial = False
            self._opened_at = trio.current_time()
            log.warning("%s: trial call failed, circuit open again", self.name)
        elif self._opened_at is None:
            self.failures += 1
            if self.failures >= self.failure_threshold:
                self._opened_at = trio.current_time()
                log.warning("%s: %d failures in a row, circuit open", self.name, self.failures)
