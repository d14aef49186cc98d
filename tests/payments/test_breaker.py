"""The circuit breaker, and the shared helpers in ``shop.payments._http`` (failure
mapping, retries), all on trio's virtual clock."""

from __future__ import annotations

import random
from contextlib import nullcontext

import httpx
import pytest
import trio
import trio.testing

from shop.payments._http import call_api, retrying
from shop.payments.base import ProviderError, ProviderRefused, ProviderUnavailable
from shop.payments.breaker import CircuitBreaker, CircuitOpen


async def ok() -> str:
    return "ok"


async def down() -> str:
    raise ProviderUnavailable("fake", "HTTP 503")


async def refused() -> str:
    raise ProviderRefused("fake", "HTTP 400")


async def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        with pytest.raises(ProviderUnavailable):
            await breaker.call(down)


# ----------------------------------------------------------------------------- breaker


async def test_five_failures_in_a_row_open_it(autojump_clock: trio.testing.MockClock) -> None:
    breaker = CircuitBreaker("fake")
    for _ in range(4):
        with pytest.raises(ProviderUnavailable):
            await breaker.call(down)
    assert not breaker.is_open
    with pytest.raises(ProviderUnavailable):
        await breaker.call(down)
    assert breaker.is_open

    called = []

    async def never() -> None:
        called.append(True)

    with pytest.raises(CircuitOpen) as caught:
        await breaker.call(never)
    assert not called
    assert isinstance(caught.value, ProviderError)
    assert caught.value.retry_at == 60.0


async def test_a_success_or_a_refusal_resets_the_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker("fake")
    for between in (ok, refused):
        for _ in range(4):
            with pytest.raises(ProviderUnavailable):
                await breaker.call(down)
        with pytest.raises(ProviderRefused) if between is refused else nullcontext():
            await breaker.call(between)
        assert breaker.failures == 0
    assert not breaker.is_open


async def test_half_open_after_exactly_reset_after_lets_one_trial_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker("fake")
    await trio.sleep(10)
    await trip(breaker)  # opens at t=10

    await trio.sleep_until(69.999)
    assert breaker.is_open
    with pytest.raises(CircuitOpen):
        await breaker.call(ok)

    await trio.sleep_until(70)
    assert not breaker.is_open  # the next caller will be the trial
    release = trio.Event()
    results: list[str] = []

    async def slow_trial() -> str:
        await release.wait()
        return "trial"

    async def trial() -> None:
        results.append(await breaker.call(slow_trial))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trial)
        await trio.testing.wait_all_tasks_blocked()
        assert breaker.is_open  # while the trial runs, others are refused
        with pytest.raises(CircuitOpen):
            await breaker.call(ok)
        release.set()

    assert results == ["trial"]
    assert not breaker.is_open
    assert await breaker.call(ok) == "ok"
    assert trio.current_time() == 70


async def test_a_failed_trial_opens_it_for_another_reset_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker("fake", failure_threshold=2, reset_after=30)
    await trip(breaker)  # opens at t=0
    await trio.sleep(30)
    with pytest.raises(ProviderUnavailable):
        await breaker.call(down)  # the trial, at t=30
    assert breaker.is_open

    await trio.sleep_until(59.5)
    with pytest.raises(CircuitOpen) as caught:
        await breaker.call(ok)
    assert caught.value.retry_at == 60

    await trio.sleep_until(60)
    assert await breaker.call(ok) == "ok"
    assert not breaker.is_open
    assert breaker.failures == 0


async def test_a_cancelled_trial_lets_the_next_caller_try(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker("fake")
    await trip(breaker)
    await trio.sleep(60)

    async def hangs() -> str:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    with trio.move_on_after(5):
        await breaker.call(hangs)
    assert trio.current_time() == 65
    assert not breaker.is_open
    assert await breaker.call(ok) == "ok"


async def test_late_answers_from_before_it_opened_change_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker("fake")
    release = trio.Event()

    async def slow_ok() -> str:
        await release.wait()
        return "late"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(breaker.call, slow_ok)  # let through while closed
        await trio.testing.wait_all_tasks_blocked()
        await trip(breaker)
        release.set()  # finishes while open: must not close it
    assert breaker.is_open


# ----------------------------------------------------------------------------- retrying


async def test_retrying_backs_off_exponentially_with_jitter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    times: list[float] = []

    async def flaky() -> str:
        times.append(trio.current_time())
        if len(times) < 3:
            raise ProviderUnavailable("fake", "HTTP 503")
        return "ok"

    assert await retrying(flaky, rng=random.Random(7)) == "ok"

    jitter = random.Random(7)
    first = 1.0 * (0.5 + jitter.random() / 2)
    second = first + 2.0 * (0.5 + jitter.random() / 2)
    assert times == [0, pytest.approx(first), pytest.approx(second)]
    assert 0.5 <= times[1] < 1
    assert 1 <= times[2] - times[1] < 2


async def test_retrying_gives_up_after_the_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = 0

    async def always_down() -> None:
        nonlocal calls
        calls += 1
        raise ProviderUnavailable("fake", "HTTP 503")

    with pytest.raises(ProviderUnavailable):
        await retrying(always_down, attempts=4, rng=random.Random(1))
    assert calls == 4


@pytest.mark.parametrize("error", [ProviderRefused("fake", "HTTP 400"), CircuitOpen("fake", 60)])
async def test_retrying_passes_other_errors_at_once(
    autojump_clock: trio.testing.MockClock, error: ProviderError
) -> None:
    calls = 0

    async def fails() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)):
        await retrying(fails, rng=random.Random(1))
    assert (calls, trio.current_time()) == (1, 0)


# ----------------------------------------------------------------------------- call_api


def _answering(status: int, body: bytes) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (500, b'{"type": "error", "description": "Internal error"}', ProviderUnavailable, "500"),
        (502, b"<html>Bad Gateway</html>", ProviderUnavailable, "Bad Gateway"),
        (429, b'{"code": "too_many_requests"}', ProviderUnavailable, "too_many_requests"),
        (
            400,
            b'{"code": "invalid_request", "description": "Bad amount"}',
            ProviderRefused,
            "Bad amount",
        ),
        (402, b'{"error": {"message": "Your card was declined."}}', ProviderRefused, "declined"),
        (
            400,
            b'{"ok": false, "error": {"code": 400, "name": "AMOUNT_INVALID"}}',
            ProviderRefused,
            "AMOUNT_INVALID",
        ),
        (
            422,
            b'{"state": 1, "errors": {"amount": ["validation.required"]}}',
            ProviderRefused,
            "amount",
        ),
        (200, b"<html>", ProviderUnavailable, "not JSON"),
        (200, b"[1, 2]", ProviderUnavailable, "not a JSON object"),
    ],
)
async def test_answers_map_to_provider_errors(
    status: int, body: bytes, error: type[ProviderError], text: str
) -> None:
    async with _answering(status, body) as http:
        with pytest.raises(error, match=text) as caught:
            await call_api(http, "fake", "GET", "https://api.example/x")
    assert type(caught.value) is error
    assert caught.value.provider == "fake"


async def test_no_answer_is_unavailable_and_names_no_secret() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out talking to https://api.example/?key=SECRET")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(ProviderUnavailable, match="ConnectTimeout") as caught:
            await call_api(http, "fake", "POST", "https://api.example/x?key=SECRET")
    assert "SECRET" not in str(caught.value)


async def test_a_good_answer_reads_as_fields() -> None:
    async with _answering(201, b'{"id": "p1", "n": 3}') as http:
        answer = await call_api(http, "fake", "POST", "https://api.example/x", json_body={})
    assert (answer.text("id"), answer.integer("n")) == ("p1", 3)
    with pytest.raises(ProviderUnavailable, match="missing"):
        answer.text("url")
