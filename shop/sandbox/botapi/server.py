"""The HTTP side of the fake Telegram Bot API server: serving, recording, failing on cue.

``BotApiServer`` is served on loopback by a lean HTTP/1.1 server (``..http1``). It answers
``POST /bot<token>/<method>`` in the ``{"ok": ...}`` envelope, records every call (``Call``)
and fails, delays or drops calls as a test programs it; ``FakeTelegram`` (in ``emulator``) supplies
the Bot API methods and the control API under ``/_fake/``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import attrs
import trio

from ..http1 import Request, serve_http1
from .errors import BLOCKED, ApiError, Json
from .params import _chat_of, _parse_params

Handler = Callable[[Json], Awaitable[Any]]

log = logging.getLogger(__name__)

# Methods that write into a chat and so fail with 403 once the user has blocked the bot.
_CHAT_WRITES = frozenset(
    {"sendMessage", "sendInvoice", "editMessageText", "editMessageReplyMarkup", "sendChatAction"}
    | {"sendPhoto"}
)


@attrs.define
class Call:
    """One request that reached the fake, recorded in arrival order.

    ``status`` is the HTTP status sent back: 0 while the call is in flight, and also when the
    connection was dropped on purpose (see ``FakeTelegram.drop_connections``).
    """

    method: str
    params: Json
    at: float
    status: int = 0


@attrs.define
class _Failure:
    method: str
    status: int
    description: str
    parameters: Json
    times: int
    chat_id: int | None


class BotApiServer:
    """The transport of a fake Bot API: subclasses give the methods (``_handlers``).

    Attributes that tests may read: ``calls`` (every call, in arrival order), ``counts``
    (calls per method, kept even with ``history=False``), ``blocked`` and ``base_url``.
    """

    def __init__(self, token: str, *, history: bool) -> None:
        self.token = token
        self.history = history
        self.base_url = ""
        self._calls_changed = trio.Event()
        self._methods: dict[str, tuple[str, Handler]] = {}
        for name, handler in self._handlers().items():
            self._methods[name.lower()] = (name, handler)  # the server ignores the case
        self.reset()

    def reset(self) -> None:
        """Forget every call and programmed failure."""
        self.calls: list[Call] = []
        self._by_method: defaultdict[str, list[Call]] = defaultdict(list)
        self.counts: Counter[str] = Counter()
        self.blocked: set[int] = set()
        self._failures: list[_Failure] = []
        self._delays: dict[str, float] = {}
        self._outage: int | None = None
        self._drops = 0
        self._late_drops = 0

    def _handlers(self) -> dict[str, Handler]:
        """The Bot API methods by name, as the server spells them."""
        raise NotImplementedError

    def _control(self, verb: str, name: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        """The control API under ``/_fake/``; this base has none."""
        return 404, ApiError(404, "Not Found").body()

    def _answered(self, method: str, params: Json, result: Any) -> None:
        """Called after each call that succeeded (``shop sandbox`` shows it in the web chat)."""

    # ----------------------------------------------------------------- serving

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled; hands back the base URL, e.g. ``http://127.0.0.1:40123``."""
        async with trio.open_nursery() as nursery:
            self.base_url = await nursery.start(
                partial(serve_http1, self._respond, host=host, port=port)
            )
            task_status.started(self.base_url)

    async def _respond(self, request: Request) -> tuple[int, bytes] | None:
        """One request's answer: status and JSON body, or None to drop the connection."""
        payload: Any
        if request.path.startswith("/_fake/"):
            query = dict(parse_qsl(request.query.decode("latin-1")))
            status, payload = self._control(request.method, request.path[7:], query, request.body)
        elif request.path.startswith("/bot"):
            status, payload = await self._api(request)
        else:
            status, payload = 404, ApiError(404, "Not Found").body()
        if status == 0:
            return None
        return status, json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()

    async def _api(self, request: Request) -> tuple[int, Json]:
        token, _, name = request.path[4:].partition("/")
        method, handler = self._methods.get(name.lower(), (name, None))
        call = Call(method, {}, trio.current_time())
        if self.history:
            self.calls.append(call)
            self._by_method[method].append(call)
        self.counts[method] += 1
        try:
            call.params = _parse_params(request.query, request.headers, request.body)
            if self._drops:
                self._drops -= 1
                status, payload = 0, {}
            else:
                if token != self.token:
                    raise ApiError(401, "Unauthorized")
                if handler is None:
                    raise ApiError(404, "Not Found: method not found")
                result = await self._dispatch(method, handler, call.params)
                self._answered(method, call.params, result)
                status, payload = 200, {"ok": True, "result": result}
        except ApiError as error:
            status, payload = error.status, error.body()
        call.status = status
        self._calls_changed.set()
        self._calls_changed = trio.Event()
        if self._late_drops and status:
            self._late_drops -= 1
            return 0, {}
        return status, payload

    async def _dispatch(self, method: str, handler: Handler, params: Json) -> Any:
        if delay := self._delays.get(method):
            await trio.sleep(delay)
        if self._outage is not None:
            raise ApiError(self._outage, HTTPStatus(self._outage).phrase)
        chat = _chat_of(params)
        for rule in self._failures:
            if rule.method == method and rule.chat_id in (None, chat):
                rule.times -= 1
                if rule.times <= 0:
                    self._failures.remove(rule)
                raise ApiError(rule.status, rule.description, rule.parameters)
        if method in _CHAT_WRITES and chat in self.blocked:
            raise ApiError(403, BLOCKED)
        return await handler(params)

    # ----------------------------------------------------------------- programming

    def fail(
        self,
        method: str,
        *,
        status: int,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (to ``chat_id`` only, if given) fail.

        Without a description you get the server's wording, e.g. ``Too Many Requests: retry
        after 5`` for a 429 with ``retry_after=5``.
        """
        if description is None:
            phrase = HTTPStatus(status).phrase
            description = f"{phrase}: retry after {retry_after}" if retry_after else phrase
        parameters = {} if retry_after is None else {"retry_after": retry_after}
        self._failures.append(_Failure(method, status, description, parameters, times, chat_id))

    def block(self, user_id: int) -> None:
        """Every write to this chat fails with 403 until ``unblock``."""
        self.blocked.add(user_id)

    def unblock(self, user_id: int) -> None:
        self.blocked.discard(user_id)

    def delay(self, method: str, seconds: float) -> None:
        """Each call of ``method`` sleeps this long (trio time) before it is answered."""
        self._delays[method] = seconds

    def outage(self, status: int = 502) -> None:
        """Every method fails with ``status`` (e.g. ``Bad Gateway``) until ``end_outage``."""
        self._outage = status

    def end_outage(self) -> None:
        self._outage = None

    def drop_connections(self, times: int = 1, *, after_processing: bool = False) -> None:
        """Close the connection without an HTTP answer for the next ``times`` requests.

        By default the requests are lost on the way in (``Call.status`` 0, no effect).
        ``after_processing=True`` loses the answer instead: the message is sent and the call
        recorded as a success, but the client sees a network error (so retries duplicate).
        """
        if after_processing:
            self._late_drops += times
        else:
            self._drops += times

    # ----------------------------------------------------------------- inspection

    def calls_to(self, method: str, chat_id: int | None = None) -> list[Call]:
        """All calls of ``method`` (failed ones too), optionally only to one chat or user."""
        calls = self._by_method.get(method, [])
        return [c for c in calls if chat_id is None or _chat_of(c.params) == chat_id]

    async def wait_for(
        self,
        method: str,
        *,
        count: int = 1,
        chat_id: int | None = None,
        where: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Wait until at least ``count`` matching calls have succeeded; return all of them."""
        while True:
            found = [
                c
                for c in self.calls_to(method, chat_id)
                if c.status == 200 and (where is None or where(c))
            ]
            if len(found) >= count:
                return found
            await self._calls_changed.wait()


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # a builder called outside trio.run
        return 0.0
