"""A TCP proxy on loopback that can cut the line, to take a real database "down"."""

from __future__ import annotations

from functools import partial

import trio


class TcpProxy:
    """Forwards connections to ``target``; while down, drops every connection at once."""

    def __init__(self, target: tuple[str, int] | str) -> None:
        self.target = target  # (host, port), or a Unix socket path
        self.port = 0
        self.is_down = False
        self._links: set[trio.CancelScope] = set()

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.serve_listeners, self._link, listeners))
            task_status.started(self.port)

    def down(self) -> None:
        self.is_down = True
        for scope in self._links:
            scope.cancel()

    def up(self) -> None:
        self.is_down = False

    async def _connect(self) -> trio.SocketStream:
        if isinstance(self.target, str):
            return await trio.open_unix_socket(self.target)
        return await trio.open_tcp_stream(*self.target)

    async def _link(self, client: trio.SocketStream) -> None:
        async with client:
            if self.is_down:
                return
            with trio.CancelScope() as scope:
                self._links.add(scope)
                try:
                    upstream = await self._connect()
                    async with upstream, trio.open_nursery() as nursery:
                        nursery.start_soon(_pump, client, upstream, nursery.cancel_scope)
                        nursery.start_soon(_pump, upstream, client, nursery.cancel_scope)
                finally:
                    self._links.discard(scope)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    done.cancel()
