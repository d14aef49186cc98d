"""The actor runtime, under trio's mock clock: serialisation, passivation, supervision."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

from shop.actors import Kind, open_registry
from shop.errors import AskTimeout, ShuttingDown


@attrs.define
class Boom:
    pass


@attrs.define
class Slow:
    seconds: float


@attrs.define
class Counter:
    """A stand-in for a store: what actors persist, and how often they were activated."""

    saved: dict[Any, int] = attrs.Factory(dict)
    activations: int = 0
    running: dict[Any, int] = attrs.Factory(dict)
    max_running: dict[Any, int] = attrs.Factory(dict)
    gate: trio.Event | None = None


@attrs.define(eq=False)
class CountingActor:
    key: Any
    world: Counter
    count: int

    async def handle(self, message: Any) -> Any:
        world = self.world
        world.running[self.key] = world.running.get(self.key, 0) + 1
        world.max_running[self.key] = max(
            world.max_running.get(self.key, 0), world.running[self.key]
        )
        try:
            if isinstance(message, Boom):
                raise ValueError("boom")
            if isinstance(message, Slow):
                await trio.sleep(message.seconds)
            if world.gate is not None:
                await world.gate.wait()
            self.count += 1
            world.saved[self.key] = self.count  # money-style: written while handling
            return self.count
        finally:
            world.running[self.key] -= 1

    async def passivate(self) -> None:
        self.world.saved[self.key] = self.count


def counting_kind(world: Counter, **limits: Any) -> Kind:
    async def activate(key: Any) -> CountingActor:
        world.activations += 1
        return CountingActor(key, world, world.saved.get(key, 0))

    return Kind("counter", activate, **limits)


async def test_one_key_is_never_handled_concurrently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    world = Counter()
    async with open_registry([counting_kind(world)]) as actors, trio.open_nursery() as senders:
        for _ in range(50):
            senders.start_soon(actors.ask, "counter", "a", Slow(0.01))
    assert world.max_running["a"] == 1
    assert world.saved["a"] == 50


async def test_different_keys_run_in_parallel(autojump_clock: trio.testing.MockClock) -> None:
    world = Counter()
    async with open_registry([counting_kind(world)]) as actors:
        started = trio.current_time()
        async with trio.open_nursery() as senders:
            for key in range(10):
                senders.start_soon(actors.ask, "counter", key, Slow(1.0))
        assert trio.current_time() - started == pytest.approx(1.0)
    assert world.saved == {key: 1 for key in range(10)}


async def test_idle_actor_passivates_and_reactivates_from_stored_state(
    autojump_clock: trio.testing.MockClock,
) -> None:
    world = Counter()
    async with open_registry([counting_kind(world, idle_timeout=600)]) as actors:
        assert await actors.ask("counter", "a", "hi") == 1
        assert await actors.ask("counter", "a", "hi") == 2
        await trio.sleep(599)
        assert actors.is_live("counter", "a")
        await trio.sleep(2)
        assert not actors.is_live("counter", "a")
        assert actors.stats()["counter"].live == 0
        world.saved["a"] = 40  # state changed in the store while passive
        assert await actors.ask("counter", "a", "hi") == 41
    assert world.activations == 2


async def test_beyond_max_live_those_idle_longest_passivate_and_busy_ones_stay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    world = Counter()
    async with open_registry([counting_kind(world, max_live=3)]) as actors:
        for key in "abc":
            await actors.ask("counter", key, "hi")
        await actors.ask("counter", "a", "hi")  # a is now the most recently used
        world.gate = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(actors.ask, "counter", "b", "held")  # busy: not evictable
            await trio.testing.wait_all_tasks_blocked()
            await actors.tell("counter", "d", "hi")  # a fourth: one must go
            await trio.testing.wait_all_tasks_blocked()
            # c was idle longest (b is busy): it passivated, its count saved, its task ended
            assert [actors.is_live("counter", k) for k in "abcd"] == [True, True, False, True]
            assert world.saved["c"] == 1
            assert actors.stats()["counter"].live == 3
            world.gate.set()
        world.gate = None
        assert await actors.ask("counter", "c", "hi") == 2  # reactivated from stored state
        assert not actors.is_live("counter", "a")  # and a, now idle longest, made room
    assert world.activations == 5  # a, b, c, d, then c again


async def test_message_arriving_during_passivation_is_not_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    world = Counter()
    flushing = trio.Event()
    release = trio.Event()

    @attrs.define(eq=False)
    class SlowFlush(CountingActor):
        async def passivate(self) -> None:
            flushing.set()
            await release.wait()
            await super().passivate()

    async def activate(key: Any) -> CountingActor:
        world.activations += 1
        return SlowFlush(key, world, world.saved.get(key, 0))

    async with open_registry([Kind("counter", activate, idle_timeout=10)]) as actors:
        await actors.ask("counter", "a", "hi")
        await flushing.wait()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(actors.tell, "counter", "a", "late")
            await trio.testing.wait_all_tasks_blocked()
            release.set()
        await actors.drain()
    assert world.saved["a"] == 2


@pytest.mark.allows_actor_errors
async def test_raising_handler_fails_the_asker_and_the_actor_carries_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    world = Counter()
    async with open_registry([counting_kind(world)]) as actors:
        assert await actors.ask("counter", "a", "hi") == 1
        assert await actors.ask("counter", "b", "hi") == 1
        with pytest.raises(ValueError, match="boom"):
            await actors.ask("counter", "a", Boom())
        # Restarted from stored state: the count written before the failure survives.
        assert await actors.ask("counter", "a", "hi") == 2
        assert await actors.ask("counter", "b", "hi") == 2
        assert actors.stats()["counter"].failed == 1
    assert world.activations == 3  # a, b, then a again after the failure


@pytest.mark.allows_actor_errors
async def test_messages_queued_behind_a_failure_are_still_handled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    world = Counter(gate=trio.Event())
    async with open_registry([counting_kind(world)]) as actors:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(actors.tell, "counter", "a", "first")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(actors.tell, "counter", "a", Boom())
            nursery.start_soon(actors.tell, "counter", "a", "after")
            await trio.testing.wait_all_tasks_blocked()
            assert world.gate is not None
            world.gate.set()
        await actors.drain()
    assert world.saved["a"] == 2


async def test_ask_times_out(autojump_clock: trio.testing.MockClock) -> None:
    world = Counter()
    async with open_registry([counting_kind(world)]) as actors:
        with pytest.raises(AskTimeout) as caught:
            await actors.ask("counter", "a", Slow(10), timeout=1.5)
        assert trio.current_time() == pytest.approx(1.5)
        assert caught.value.kind == "counter"
        await actors.drain()  # the message is still handled, only the answer was dropped
    assert world.saved["a"] == 1


async def test_full_mailbox_makes_the_sender_wait(autojump_clock: trio.testing.MockClock) -> None:
    world = Counter(gate=trio.Event())
    delivered = []

    async with open_registry([counting_kind(world, mailbox_size=1)]) as actors:

        async def send(n: int) -> None:
            await actors.tell("counter", "a", n)
            delivered.append(n)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, 1)  # taken by the actor, which blocks on the gate
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(send, 2)  # fills the mailbox
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(send, 3)  # must wait
            await trio.testing.wait_all_tasks_blocked()
            assert sorted(delivered) == [1, 2]
            assert actors.stats()["counter"].mailbox_depth == 1
            assert world.gate is not None
            world.gate.set()
        await actors.drain()
    assert sorted(delivered) == [1, 2, 3]
    assert world.saved["a"] == 3


async def test_drain_waits_for_queued_work_then_stop_refuses_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    world = Counter()
    async with open_registry([counting_kind(world)]) as actors:
        for key in range(5):
            for _ in range(3):
                await actors.tell("counter", key, Slow(1))
        await actors.drain()
        assert trio.current_time() == pytest.approx(3)
        assert all(world.saved[key] == 3 for key in range(5))
        actors.stop()
        with pytest.raises(ShuttingDown):
            await actors.tell("counter", 1, "too late")
    # Leaving the block passivated every actor.
    assert world.saved == {key: 3 for key in range(5)}


async def test_a_new_actor_does_not_keep_its_first_senders_carried_values() -> None:
    import contextvars
    import gc
    import weakref

    carried: contextvars.ContextVar[object | None] = contextvars.ContextVar("c", default=None)

    class Work:
        pass

    world = Counter()

    async def activate(key: Any) -> CountingActor:
        return CountingActor(key, world, 0)

    async with open_registry([Kind("k", activate)], carried=(carried,)) as registry:
        work = Work()
        token = carried.set(work)
        assert await registry.ask("k", 1, "hi") == 1  # spawns the actor from this context
        carried.reset(token)
        gone = weakref.ref(work)
        del work
        gc.collect()
        assert registry.is_live("k", 1)
        assert gone() is None  # the live actor's task does not hold it
        registry.stop()
