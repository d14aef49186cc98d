"""The shop's Redis connection, and what happens when Redis is not there.

Redis is optional (``REDIS_URL``) and never essential: everything kept there is a limit
that an instance can also keep alone for a while, or a half-typed conversation that a
customer can start again. So a call that fails or takes longer
than :attr:`RedisLink.timeout` marks Redis *down* (logged once), every caller then uses
its local fallback at once, without a round trip, and a background probe pings Redis
every :attr:`RedisLink.retry_every` seconds until it answers (logged once again). No
customer's request waits on a reconnect: only the call that finds Redis gone pays its
short timeout.

The client is coredis, which runs natively under trio (it is built on anyio).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import anyio
import coredis
import trio
from coredis.commands.script import Script
from coredis.exceptions import RedisError
from coredis.retry import NoRetryPolicy

log = logging.getLogger(__name__)

#: Seconds a Redis call may take before Redis counts as down.
TIMEOUT = 0.25
#: Seconds between probes while Redis is down.
RETRY_EVERY = 1.0
#: What a call to a Redis that is gone (or too slow) can raise; coredis wraps most of it in
#: its ConnectionError, but a stream closed under it can surface as anyio's own.
_FAILURES = (RedisError, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)


class RedisLink:
    """Runs Lua scripts and keeps values on Redis while it answers; tells callers when it
    does not.

    ``up`` is what callers go by; :meth:`run_script` and :meth:`get` answer None while
    Redis is down, and the caller uses its local fallback. :meth:`run` is the probe that
    brings it back.
    """

    def __init__(
        self,
        client: coredis.Redis[bytes],
        *,
        timeout: float = TIMEOUT,
        retry_every: float = RETRY_EVERY,
    ) -> None:
        self._client = client
        self.timeout = timeout
        self.retry_every = retry_every
        self.up = True
        #: set (and replaced) at every change between up and down (tests wait on it)
        self.changed = trio.Event()
        self._went_down = trio.Event()
        self._scripts: dict[str, Script[bytes]] = {}

    async def run_script(
        self, script: str, keys: Sequence[str], args: Sequence[str | int | float]
    ) -> list[int] | None:
        """The script's answer (a list of integers), or None while Redis is down."""
        registered = self._scripts.get(script)
        if registered is None:
            registered = self._scripts[script] = self._client.register_script(script)
        reply = await self._call(lambda: registered(keys=list(keys), args=list(args)))
        return None if reply is None else [int(value) for value in reply]

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``: None when there is none, or while Redis is down."""
        reply = await self._call(lambda: self._client.get(key))
        return reply if isinstance(reply, bytes) else None

    async def put(self, key: str, value: bytes | None, *, ttl: int) -> None:
        """Keep ``value`` at ``key`` for ``ttl`` seconds, or with None forget it (best
        effort: while Redis is down nothing is kept)."""
        if value is None:
            await self._call(lambda: self._client.delete([key]))
        else:
            await self._call(lambda: self._client.set(key, value, ex=ttl))

    async def _call(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """``call``'s reply, or None (and Redis marked down) if it failed or was slow."""
        if not self.up:
            return None
        try:
            with trio.move_on_after(self.timeout) as waited:
                reply = await call()
            if waited.cancelled_caught:
                raise TimeoutError(f"no answer within {self.timeout:g} s")
            return reply
        except _FAILURES as exc:
            self._went(False, exc)
            return None

    async def ping(self) -> bool:
        """Ask Redis now (``/readyz`` and the probe): True when it answered in time."""
        try:
            with trio.move_on_after(self.timeout) as waited:
                await self._client.ping()
            if waited.cancelled_caught:
                raise TimeoutError(f"no answer within {self.timeout:g} s")
        except _FAILURES as exc:
            self._went(False, exc)
            return False
        self._went(True)
        return True

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """While Redis is down, ping it every ``retry_every`` seconds until it answers."""
        task_status.started()
        while True:
            await self._went_down.wait()
            while not self.up:
                await trio.sleep(self.retry_every)
                await self.ping()

    def _went(self, up: bool, exc: BaseException | None = None) -> None:
        if up == self.up:
            return
        self.up = up
        self.changed.set()
        self.changed = trio.Event()
        if up:
            self._went_down = trio.Event()
            log.warning("Redis answers again: limits and the send budget are shared again")
        else:
            self._went_down.set()
            log.warning(
                "Redis is unreachable (%s): limits and the send budget are this instance's"
                " own until it answers again",
                exc,
            )


@asynccontextmanager
async def open_redis(
    url: str, *, patience: float = TIMEOUT, retry_every: float = RETRY_EVERY
) -> AsyncIterator[RedisLink]:
    """A :class:`RedisLink` to ``url`` with its probe running; a call may take ``patience``
    seconds. Nothing is asked of Redis here: a Redis that is down at start only means
    local limits until it answers."""
    client: coredis.Redis[bytes] = coredis.Redis.from_url(
        url,
        connect_timeout=patience,
        stream_timeout=patience,
        pool_timeout=patience,
        retry_policy=NoRetryPolicy(),  # a failure means "down": the link decides what next
        verify_version=False,
    )
    pool = client.connection_pool
    pool.connection_class = _TIDY.get(pool.connection_class, pool.connection_class)
    async with client, trio.open_nursery() as nursery:
        link = RedisLink(client, timeout=patience, retry_every=retry_every)
        await nursery.start(link.run)
        yield link
        nursery.cancel_scope.cancel()


# coredis 6.9 opens six in-memory streams when it creates a connection and closes them
# only once connected: each connection attempt to a Redis that is down leaves them to be
# collected with a ResourceWarning. These close them whatever happened.


def _close_streams(connection: coredis.BaseConnection) -> None:
    for stream in (
        connection._write_buffer_in,
        connection._write_buffer_out,
        connection._push_message_buffer_in,
        connection._push_message_buffer_out,
        connection._streamed_message_buffer_in,
        connection._streamed_message_buffer_out,
    ):
        stream.close()


class _Tidy(coredis.BaseConnection):
    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            await super().run(task_status=task_status)
        finally:
            _close_streams(self)


class _TidyTCPConnection(_Tidy, coredis.TCPConnection):
    pass


class _TidyUnixConnection(_Tidy, coredis.UnixDomainSocketConnection):
    pass


_TIDY: dict[type[Any], type[Any]] = {
    coredis.TCPConnection: _TidyTCPConnection,
    coredis.UnixDomainSocketConnection: _TidyUnixConnection,
}
