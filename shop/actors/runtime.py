"""The actor runtime: one trio task and one bounded mailbox per (kind, key).

An actor handles one message at a time, so two events about the same customer or the
same payment are never handled concurrently; actors with different keys run in
parallel. What the runtime gives:

- ``tell`` (fire and forget) and ``ask`` (await the handler's result, with a timeout);
- activation on the first message: ``Kind.activate(key)`` loads state from the store;
- passivation after ``idle_timeout`` without messages: ``Behaviour.passivate()``
  flushes write-behind state, the task ends, and the next message activates afresh;
  beyond ``Kind.max_live`` live actors of a kind, the ones idle longest passivate at
  once, so memory stays bounded however many customers came by (issue #15);
- supervision: a handler that raises is logged with kind, key and message type, the
  asker gets the exception, and the actor restarts from stored state at its next
  message; the messages queued behind it stay queued;
- back-pressure: a full mailbox makes the sender wait;
- drain: :meth:`Registry.drain` waits until every mailbox is empty and no handler runs;
- context: the values of the ``carried`` context variables at an ``ask`` are set while
  the asked actor handles that message (so the outbox's receipts follow the work from
  actor to actor); a ``tell`` carries none.
"""

from __future__ import annotations

import contextvars
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import attrs
import outcome
import trio

from ..errors import AskTimeout, ShuttingDown, StoreUnavailable

log = logging.getLogger(__name__)


class Behaviour(Protocol):
    """What an actor does with its messages; built by ``Kind.activate``."""

    async def handle(self, message: Any) -> Any: ...

    async def passivate(self) -> None: ...


@attrs.frozen
class Kind:
    """A kind of actor: its name, how to activate one, and its limits."""

    name: str
    activate: Callable[[Any], Awaitable[Behaviour]]
    idle_timeout: float = 600.0
    mailbox_size: int = 16
    max_live: int | None = None


@attrs.define(eq=False)
class _Reply:
    done: trio.Event = attrs.Factory(trio.Event)
    result: outcome.Outcome[Any] | None = None


@attrs.define(eq=False)
class _Envelope:
    message: Any
    reply: _Reply | None
    context: tuple[Any, ...] = ()  # values of the registry's carried variables


@attrs.define(eq=False)
class _Cell:
    kind: Kind
    key: Hashable
    send: trio.MemorySendChannel[_Envelope]
    inbox: trio.MemoryReceiveChannel[_Envelope]
    # Cancelled to passivate at once; set only while the actor waits with an empty mailbox.
    idle: trio.CancelScope | None = None
    evicted: bool = False  # passivating to make room: no longer counted as live


@attrs.define
class KindStats:
    live: int = 0
    mailbox_depth: int = 0
    handled: int = 0
    failed: int = 0
    handling_seconds: float = 0.0


HandledHook = Callable[[str, float, bool], None]


class Registry:
    """Finds or starts the actor for a (kind, key) and delivers messages to it."""

    def __init__(
        self,
        nursery: trio.Nursery,
        kinds: Iterable[Kind],
        *,
        on_handled: HandledHook | None = None,
        carried: Sequence[contextvars.ContextVar[Any]] = (),
    ) -> None:
        self._nursery = nursery
        self._carried = tuple(carried)
        self._kinds = {kind.name: kind for kind in kinds}
        self._cells: dict[tuple[str, Hashable], _Cell] = {}
        # Per kind, the actors waiting on an empty mailbox, longest idle first.
        self._idle: defaultdict[str, dict[Hashable, _Cell]] = defaultdict(dict)
        self._live: defaultdict[str, int] = defaultdict(int)  # tasks, less those evicted
        self._on_handled = on_handled
        self._totals: dict[str, KindStats] = defaultdict(KindStats)
        self._pending = 0  # messages accepted and not yet fully handled
        self._quiet = trio.Event()
        self._quiet.set()
        self._stopped = False

    def register(self, kind: Kind) -> None:
        """Add a kind of actor (kinds are usually built after the App that they use)."""
        self._kinds[kind.name] = kind

    # -- sending -------------------------------------------------------------------

    async def tell(self, kind: str, key: Hashable, message: Any) -> None:
        """Queue ``message`` for the actor; waits while its mailbox is full."""
        await self._deliver(kind, key, _Envelope(message, None))

    async def ask(
        self,
        kind: str,
        key: Hashable,
        message: Any,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - part of the contract: raises AskTimeout
    ) -> Any:
        """Queue ``message`` and return what the handler returns (or raise what it raised)."""
        reply = _Reply()
        context = tuple(var.get(None) for var in self._carried)
        with trio.move_on_after(timeout) as scope:
            await self._deliver(kind, key, _Envelope(message, reply, context))
            await reply.done.wait()
        if reply.result is None:
            assert scope.cancelled_caught
            raise AskTimeout(kind, key, message, timeout)
        return reply.result.unwrap()

    async def _deliver(self, kind: str, key: Hashable, envelope: _Envelope) -> None:
        if self._stopped:
            raise ShuttingDown(f"not taking {type(envelope.message).__name__} for {kind}[{key}]")
        self._accept()
        try:
            while True:
                cell = self._cells.get((kind, key)) or self._spawn(kind, key)
                try:
                    await cell.send.send(envelope)
                    return
                except trio.BrokenResourceError:
                    # The actor passivated between lookup and send: start a fresh one.
                    continue
                except trio.ClosedResourceError:
                    raise ShuttingDown(f"{kind}[{key}] stopped") from None
        except BaseException:
            self._finish()
            raise

    def _spawn(self, kind_name: str, key: Hashable) -> _Cell:
        kind = self._kinds[kind_name]
        send, inbox = trio.open_memory_channel[_Envelope](kind.mailbox_size)
        cell = _Cell(kind, key, send, inbox)
        self._cells[(kind_name, key)] = cell
        self._live[kind_name] += 1
        if kind.max_live is not None:
            self._evict(kind_name, self._live[kind_name] - kind.max_live)
        # The task copies the sender's context: without the carried values, or it would
        # keep the first sender's (an update's receipts) alive for its whole life.
        tokens = [var.set(None) for var in self._carried]
        try:
            self._nursery.start_soon(self._run, cell, name=f"{kind_name}[{key}]")
        finally:
            for var, token in zip(reversed(self._carried), reversed(tokens), strict=True):
                var.reset(token)
        return cell

    def _evict(self, kind_name: str, excess: int) -> None:
        """Passivate up to ``excess`` of the kind's actors, those idle longest first."""
        idle = self._idle[kind_name]
        while excess > 0 and idle:
            cell = idle.pop(next(iter(idle)))
            assert cell.idle is not None
            cell.idle.cancel()  # seen by the actor as its idle timeout
            cell.evicted = True
            self._live[kind_name] -= 1
            excess -= 1

    def _keep(self, cell: _Cell) -> None:
        """An evicted actor that has a message after all stays, and counts as live again."""
        if cell.evicted:
            cell.evicted = False
            self._live[cell.kind.name] += 1

    # -- the actor task ------------------------------------------------------------

    async def _run(self, cell: _Cell) -> None:
        try:
            await self._live_through(cell)
        finally:
            if not cell.evicted:
                self._live[cell.kind.name] -= 1

    async def _live_through(self, cell: _Cell) -> None:
        behaviour: Behaviour | None = None
        idle = self._idle[cell.kind.name]
        async with cell.inbox:
            while True:
                envelope = None
                with trio.move_on_after(cell.kind.idle_timeout) as cell.idle:
                    try:
                        if not cell.inbox.statistics().current_buffer_used:
                            idle[cell.key] = cell  # newest last: evicted after the older
                        envelope = await cell.inbox.receive()
                    except trio.EndOfChannel:
                        break  # the registry stopped; the mailbox is empty
                    finally:
                        idle.pop(cell.key, None)
                        cell.idle = None
                if envelope is not None:
                    self._keep(cell)  # evicted as the message came: it stays after all
                    behaviour = await self._handle(cell, behaviour, envelope)
                    continue
                # Idle: flush first, while still registered, so that a successor
                # activated later cannot load state older than ours.
                if behaviour is not None:
                    await self._passivate(cell, behaviour)
                    behaviour = None
                if cell.inbox.statistics().current_buffer_used:
                    self._keep(cell)  # a message came while it passivated: it stays
                    continue
                # No checkpoint from here to the close: a sender either got its message
                # in before, or sees BrokenResourceError and starts a successor.
                del self._cells[(cell.kind.name, cell.key)]
                cell.inbox.close()
                return
        if behaviour is not None:
            await self._passivate(cell, behaviour)

    async def _handle(
        self, cell: _Cell, behaviour: Behaviour | None, envelope: _Envelope
    ) -> Behaviour | None:
        started = trio.current_time()
        failed = False
        values = envelope.context or (None,) * len(self._carried)
        tokens = [var.set(value) for var, value in zip(self._carried, values, strict=True)]
        try:
            if behaviour is None:
                behaviour = await cell.kind.activate(cell.key)
            result: outcome.Outcome[Any] = outcome.Value(await behaviour.handle(envelope.message))
        except Exception as exc:
            failed = True
            # The database away is no bug (the asker retries): a line, not a traceback.
            away = isinstance(exc, StoreUnavailable)
            log.log(
                logging.WARNING if away else logging.ERROR,
                "actor %s[%s] failed handling %s%s",
                cell.kind.name,
                cell.key,
                type(envelope.message).__name__,
                f": database unreachable ({exc})" if away else "",
                exc_info=not away,
                extra={
                    "kind": cell.kind.name,
                    "key": cell.key,
                    "message_type": type(envelope.message).__name__,
                },
            )
            result = outcome.Error(exc)
            behaviour = None  # restart from stored state at the next message
        finally:
            for var, token in zip(reversed(self._carried), reversed(tokens), strict=True):
                var.reset(token)
            self._record(cell.kind.name, trio.current_time() - started, failed)
            self._finish()
        if envelope.reply is not None:
            envelope.reply.result = result
            envelope.reply.done.set()
        return behaviour

    async def _passivate(self, cell: _Cell, behaviour: Behaviour) -> None:
        try:
            await behaviour.passivate()
        except Exception:
            log.exception("actor %s[%s] failed to passivate", cell.kind.name, cell.key)

    # -- bookkeeping, drain and stop ---------------------------------------------------

    def _accept(self) -> None:
        if self._pending == 0:
            self._quiet = trio.Event()
        self._pending += 1

    def _finish(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self._quiet.set()

    def _record(self, kind: str, seconds: float, failed: bool) -> None:
        totals = self._totals[kind]
        totals.handled += 1
        totals.failed += failed
        totals.handling_seconds += seconds
        if self._on_handled is not None:
            self._on_handled(kind, seconds, failed)

    async def drain(self) -> None:
        """Wait until every accepted message has been handled."""
        while self._pending:
            await self._quiet.wait()

    def stop(self) -> None:
        """Refuse new messages and close every mailbox; actors end once theirs is empty."""
        self._stopped = True
        for cell in list(self._cells.values()):
            cell.send.close()

    def stats(self) -> dict[str, KindStats]:
        """Live actors, queued messages and handling totals per kind."""
        out: dict[str, KindStats] = {}
        for name in self._kinds:
            out[name] = attrs.evolve(self._totals[name], live=0, mailbox_depth=0)
        for (name, _), cell in self._cells.items():
            out[name].live += 1
            out[name].mailbox_depth += cell.inbox.statistics().current_buffer_used
        return out

    def is_live(self, kind: str, key: Hashable) -> bool:
        return (kind, key) in self._cells


@asynccontextmanager
async def open_registry(
    kinds: Iterable[Kind],
    *,
    on_handled: HandledHook | None = None,
    carried: Sequence[contextvars.ContextVar[Any]] = (),
) -> AsyncIterator[Registry]:
    """Run actors for the lifetime of the block.

    Leaving the block stops intake and waits for the actors to empty their mailboxes
    and passivate; wrap it in a cancel scope to bound that wait.
    """
    async with trio.open_nursery() as nursery:
        registry = Registry(nursery, kinds, on_handled=on_handled, carried=carried)
        try:
            yield registry
        finally:
            registry.stop()
