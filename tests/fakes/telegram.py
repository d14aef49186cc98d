"""A fake Telegram Bot API server on loopback, for tests and benchmarks.

It speaks the real protocol over real HTTP (``POST /bot<token>/<method>``, the ``{"ok": ...}``
envelope, the server's exact error strings), so the shop's own httpx client is exercised end to
end. All timing goes through trio, so it runs under ``MockClock(autojump_threshold=0)`` in the
test's own trio run::

    fake = FakeTelegram()
    base_url = await nursery.start(fake.serve)
    fake.send_text(42, "/start")
    (reply,) = await fake.wait_for("sendMessage", chat_id=42)

Text sent with parse_mode HTML goes through a port of tdlib's ``parse_html``: malformed HTML
fails with the server's ``can't parse entities`` error, and the visible text is what is
measured against the 4096-character limit (``parse_html`` gives it to tests too).

Channels (``add_channel``) have an owner, administrators with rights, members, invite links
and join requests; ``join`` and ``request_join`` act as the user's app would. The channel
methods (createChatInviteLink, approve/declineChatJoinRequest, answerChatJoinRequestQuery,
ban/unbanChatMember, getChatMember, getChatAdministrators) check the bot's access and rights
in the order and with the texts of the server (``Client::check_chat``) and TDLib
(``can_manage_dialog_invite_links``, ``can_manage_dialog_join_requests``,
``set_channel_participant_status_impl``).

Deliberate simplifications: messages only in private chats (nothing is posted to a channel);
the channel methods know only chats added with ``add_channel`` (any other chat is "chat not
found"), and a user they have never seen is a member who ``left``; message ``text`` is
stored as sent (not as the visible text plus entities); Markdown is not parsed; the server's
anti-busy-loop rules for getUpdates (forced timeout=3 and limit=1 on repeated offsets) and
its 3 s delay on repeated 409s are left out, because they would slow every test down;
updates are never pushed to a webhook; a refund sends no ``refunded_payment`` update (see
``refunded_payment``).

Run ``python -m tests.fakes.telegram --port 8081`` for a standalone server with a control API
under ``/_fake/`` (see ``FakeTelegram._control``).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import email.parser
import email.policy
import itertools
import json
import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from shop.clock import SystemClock, WallClock

TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz"
EPOCH = 1_760_000_000  # Unix time at trio.current_time() == 0 when no WallClock is given

Json = dict[str, Any]
Receive = Callable[[], Awaitable[Json]]
Send = Callable[[Json], Awaitable[None]]
Handler = Callable[[Json], Awaitable[Any]]

log = logging.getLogger(__name__)

TERMINATED = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
BLOCKED = "Forbidden: bot was blocked by the user"

# Update types a bot gets only when it lists them in allowed_updates.
_OPT_IN = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
# Parameters that carry JSON; form and query-string callers send them as JSON text.
_JSON_PARAMS = frozenset(
    {"reply_markup", "allowed_updates", "prices", "entities", "link_preview_options"}
    | {"reply_parameters", "suggested_tip_amounts", "commands", "scope", "menu_button"}
)
# Methods that write into a chat and so fail with 403 once the user has blocked the bot.
_CHAT_WRITES = frozenset(
    {"sendMessage", "sendInvoice", "editMessageText", "editMessageReplyMarkup", "sendChatAction"}
    | {"sendPhoto"}
)
#: What an image file begins with: PNG, JPEG.
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
# Methods the shop may call at start-up that need no state here.
_ALWAYS_TRUE = (
    "setMyCommands",
    "deleteMyCommands",
    "setMyDescription",
    "setMyShortDescription",
    "setChatMenuButton",
    "sendChatAction",
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


class ApiError(Exception):
    """Raised by a handler to answer with the server's ``JsonQueryError`` envelope."""

    def __init__(self, status: int, description: str, parameters: Json | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters or {}

    def body(self) -> Json:
        body: Json = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:  # the real server omits an empty "parameters"
            body["parameters"] = self.parameters
        return body


@attrs.define
class _Failure:
    method: str
    status: int
    description: str
    parameters: Json
    times: int
    chat_id: int | None


# Channel errors: the server's own texts (telegram-bot-api Client.cpp), TDLib's with the first
# letter lowered (DialogInviteLinkManager.cpp, DialogParticipantManager.cpp), and Telegram's
# server errors in capitals, which the Bot API passes on as they are.
NOT_A_MEMBER = "Forbidden: bot is not a member of the channel chat"
KICKED_FROM_CHANNEL = "Forbidden: bot was kicked from the channel chat"
CHAT_NOT_FOUND = "Bad Request: chat not found"
NO_INVITE_RIGHTS = "Bad Request: not enough rights to manage chat invite link"
NO_JOIN_REQUEST_RIGHTS = "Bad Request: not enough rights to manage chat join requests"
NO_RESTRICT_RIGHTS = "Bad Request: not enough rights to restrict/unrestrict chat member"
LIMIT_WITH_REQUESTS = (
    "Bad Request: member limit can't be specified for links requiring administrator approval"
)
OWNER = "Bad Request: can't remove chat owner"
ADMINISTRATOR = "Bad Request: user is an administrator of the chat"  # USER_ADMIN_INVALID
SELF = "Bad Request: can't restrict self"
NO_REQUEST = "Bad Request: HIDE_REQUESTER_MISSING"
ALREADY_PARTICIPANT = "Bad Request: USER_ALREADY_PARTICIPANT"
EXPIRE_DATE_INVALID = "Bad Request: EXPIRE_DATE_INVALID"
USAGE_LIMIT_INVALID = "Bad Request: USAGE_LIMIT_INVALID"

#: Every administrator right of a channel, as getChatMember lists them (Client.cpp's
#: json_store_administrator_rights for a channel); a right not granted is False.
CHANNEL_RIGHTS = (
    "can_manage_chat",
    "can_change_info",
    "can_post_messages",
    "can_edit_messages",
    "can_delete_messages",
    "can_invite_users",
    "can_restrict_members",
    "can_promote_members",
    "can_manage_video_chats",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_manage_direct_messages",
)
#: What the shop's bot needs, and what ``add_channel`` gives it unless told otherwise.
BOT_RIGHTS = {"can_invite_users": True, "can_restrict_members": True}


class JoinRefused(Exception):
    """Raised by ``FakeTelegram.join`` when the user's app would show an error instead
    (``reason`` is Telegram's: INVITE_HASH_EXPIRED, USER_ALREADY_PARTICIPANT...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@attrs.define
class Channel:
    """A channel: who is in it (by user id: ``status`` and, for administrators, rights),
    its invite links and the join requests waiting for an administrator."""

    id: int
    title: str
    owner: int
    members: dict[int, Json] = attrs.Factory(dict)
    links: dict[str, Json] = attrs.Factory(dict)  # invite_link -> ChatInviteLink
    joined_by: dict[int, str] = attrs.Factory(dict)  # user -> the link they joined by
    requests: dict[int, Json] = attrs.Factory(dict)  # user -> their ChatJoinRequest
    queries: dict[str, tuple[int, float]] = attrs.Factory(dict)  # query id -> (user, deadline)

    def status(self, user_id: int) -> str:
        return str(self.members.get(user_id, {}).get("status", "left"))

    def is_member(self, user_id: int) -> bool:
        member = self.members.get(user_id, {})
        status = member.get("status")
        return status in ("creator", "administrator", "member") or bool(
            status == "restricted" and member.get("is_member")
        )


@attrs.define
class _Poll:
    """A getUpdates request that is waiting; another getUpdates or setWebhook aborts it."""

    scope: trio.CancelScope
    aborted: str | None = None


class FakeTelegram:
    """An in-process Bot API server holding one bot's updates, chats and programmed failures.

    Attributes that tests may read: ``calls``, ``pending``, ``confirmed_offset``, ``blocked``,
    ``webhook_url``, ``invoice_links`` (link -> createInvoiceLink params), ``refunded`` (charge
    ids), ``subscriptions`` (charge id -> is_canceled), ``star_transactions`` (the bot's
    Telegram Stars transactions, oldest first, as ``getStarTransactions`` returns them) and
    ``channels`` (chat id -> Channel: members, invite links, waiting join requests).
    ``pre_checkout_timeout`` is the documented 10 s answer deadline for pre-checkout queries
    (set ``math.inf`` to lift it).

    Message dates come from ``clock`` (pass the test's ``TrioClock`` so they agree with the
    shop's), else ``EPOCH`` plus trio's clock. With ``history=False`` calls are only counted,
    not kept (``calls``, ``calls_to`` and ``wait_for`` see nothing), so that a long benchmark
    does not grow without bound.
    """

    def __init__(
        self,
        token: str = TOKEN,
        *,
        bot_id: int = 777000111,
        username: str = "shop_test_bot",
        clock: WallClock | None = None,
        history: bool = True,
        long_poll_max: int = 50,
    ) -> None:
        # Telegram holds a long poll at most 50 s (LONG_POLL_MAX_TIMEOUT); tests that pass
        # days of mock time may allow more, so the shop does not poll thousands of times.
        self.long_poll_max = long_poll_max
        self.token = token
        self.bot_id = bot_id
        self.username = username
        self.clock = clock
        self.history = history
        self.base_url = ""
        self.pre_checkout_timeout = 10.0
        self._updates_changed = trio.Event()
        self._calls_changed = trio.Event()
        self._methods: dict[str, tuple[str, Handler]] = {}
        for name, handler in self._handlers().items():
            self._methods[name.lower()] = (name, handler)  # the server ignores the case
        self.reset()

    def reset(self) -> None:
        """Forget every call, update, message and programmed failure, as for a fresh bot."""
        self.calls: list[Call] = []
        self._by_method: defaultdict[str, list[Call]] = defaultdict(list)
        self.counts: Counter[str] = Counter()
        self.pending: list[Json] = []
        self.confirmed_offset = 0
        self._next_update_id = 1
        self._allowed: frozenset[str] | None = None  # None: the server's default set
        self._poll: _Poll | None = None
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        self._chats: defaultdict[int, dict[int, Json]] = defaultdict(dict)
        self.uploads: list[Upload] = []  # files sent with calls (sendPhoto), in order
        self._last_message_id: defaultdict[int, int] = defaultdict(int)
        self._users: dict[int, Json] = {}
        # Answerable query ids -> answer deadline, for callback and pre-checkout queries.
        self._queries: dict[str, dict[str, float]] = {"callback": {}, "pre_checkout": {}}
        self._serial = itertools.count(1)
        self.invoice_links: dict[str, Json] = {}
        self.refunded: set[str] = set()
        self.star_transactions: list[Json] = []
        self._charges: dict[str, Json] = {}  # charge id -> its incoming StarTransaction
        self.subscriptions: dict[str, bool] = {}
        self.blocked: set[int] = set()
        self.channels: dict[int, Channel] = {}
        self._failures: list[_Failure] = []
        self._delays: dict[str, float] = {}
        self._outage: int | None = None
        self._drops = 0
        self._late_drops = 0

    # ----------------------------------------------------------------- serving

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled; hands back the base URL, e.g. ``http://127.0.0.1:40123``."""
        config = Config()
        config.bind = [f"{host}:{port}"]
        config.accesslog = None
        config.errorlog = log  # a Logger, not "-": pytest swaps sys.stderr between tests
        # Hypercorn's 5 s keep-alive runs on trio's clock; under autojump it would close idle
        # connections in virtual time and race httpx's reuse of them.
        config.keep_alive_timeout = 1e9
        async with trio.open_nursery() as nursery:
            # Our Json-typed ASGI signature is looser than hypercorn's TypedDicts.
            app: Any = self
            binds = await nursery.start(partial(hypercorn_serve, app, config, mode="asgi"))
            self.base_url = binds[0]
            task_status.started(self.base_url)

    async def __call__(self, scope: Json, receive: Receive, send: Send) -> None:
        """The ASGI entry point: a raw app, because it must keep up with ~1500 requests/s."""
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = bytearray()
        while (message := await receive()).get("more_body"):
            body += message.get("body", b"")
        body += message.get("body", b"")
        path: str = scope["path"]
        payload: Any
        if path.startswith("/_fake/"):
            query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
            status, payload = self._control(scope["method"], path[7:], query, bytes(body))
        elif path.startswith("/bot"):
            status, payload = await self._api(scope, bytes(body))
        else:
            status, payload = 404, ApiError(404, "Not Found").body()
        if status == 0:
            # Dropping without an answer: an exception here would become a 500, so send an
            # informational (1xx) head and stop. Hypercorn then closes the connection because
            # the response never completed, and httpx, which skips 1xx heads, raises
            # RemoteProtocolError("Server disconnected without sending a response.").
            await send({"type": "http.response.start", "status": 199, "headers": []})
            return
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _api(self, scope: Json, body: bytes) -> tuple[int, Json]:
        token, _, name = scope["path"][4:].partition("/")
        method, handler = self._methods.get(name.lower(), (name, None))
        call = Call(method, {}, trio.current_time())
        if self.history:
            self.calls.append(call)
            self._by_method[method].append(call)
        self.counts[method] += 1
        try:
            call.params = _parse_params(scope, body)
            if self._drops:
                self._drops -= 1
                status, payload = 0, {}
            else:
                if token != self.token:
                    raise ApiError(401, "Unauthorized")
                if handler is None:
                    raise ApiError(404, "Not Found: method not found")
                result = await self._dispatch(method, handler, call.params)
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

    def _control(self, verb: str, name: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        """The control API for a fake in its own process (``python -m tests.fakes.telegram``).

        ``POST updates`` (a list of updates, or ``{"start_storm": {"users", "first_id"}}``),
        ``GET stats``, ``POST reset``, ``POST delay`` (``{"method", "seconds"}``: as ``delay``)
        and ``GET messages?chat_id=N`` (the bot's messages in that chat, as ``messages``).
        """
        if (verb, name) == ("GET", "stats"):
            stats = {"calls": dict(self.counts), "pending": len(self.pending)}
            return 200, stats | {"confirmed_offset": self.confirmed_offset}
        if (verb, name) == ("POST", "reset"):
            self.reset()
            return 200, {"ok": True, "result": True}
        if (verb, name) == ("POST", "updates"):
            data = json.loads(body or b"[]")
            if isinstance(data, dict) and "start_storm" in data:
                storm = data["start_storm"]
                first = int(storm.get("first_id", 1_000_000))
                users = range(first, first + int(storm["users"]))
                return 200, {"ok": True, "result": [self.send_text(u, "/start") for u in users]}
            return 200, {"ok": True, "result": [self.add_update(u) for u in data]}
        if (verb, name) == ("POST", "delay"):
            try:
                data = json.loads(body)
                method, seconds = str(data["method"]), float(data["seconds"])
            except (ValueError, TypeError, KeyError):
                return 400, ApiError(400, 'Bad Request: expected {"method", "seconds"}').body()
            if not math.isfinite(seconds) or seconds < 0:
                return 400, ApiError(400, "Bad Request: seconds must be 0 or more").body()
            self.delay(method, seconds)
            return 200, {"ok": True, "result": True}
        if (verb, name) == ("GET", "messages"):
            try:
                chat_id = int(query["chat_id"])
            except (KeyError, ValueError):
                return 400, ApiError(400, "Bad Request: chat_id is required").body()
            return 200, self.messages(chat_id)
        return 404, ApiError(404, "Not Found").body()

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

    def messages(self, chat_id: int) -> list[Json]:
        """The bot's messages in a chat as they are now (after edits, without deleted ones)."""
        return list(self._chats.get(chat_id, {}).values())

    def last_message(self, chat_id: int) -> Json | None:
        messages = self.messages(chat_id)
        return messages[-1] if messages else None

    # ----------------------------------------------------------------- injecting updates

    def add_update(self, update: Json) -> int:
        """Queue an update (numbering it when it has no ``update_id``) and wake a long poll.

        Like the server, it drops an update whose type the bot's allowed_updates exclude.
        """
        update = {"update_id": self._next_update_id, **update}
        update_id = int(update["update_id"])
        self._next_update_id = max(self._next_update_id, update_id + 1)
        if self._allows(next((k for k in update if k != "update_id"), "")):
            bisect.insort(self.pending, update, key=_update_id)
            self._updates_changed.set()
            self._updates_changed = trio.Event()
        return update_id

    def _allows(self, kind: str) -> bool:
        return kind not in _OPT_IN if self._allowed is None else kind in self._allowed

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Ann",
        language_code: str = "en",
        username: str | None = None,
    ) -> int:
        """The user writes ``text`` in the private chat; a leading /command gets its entity."""
        user = {"id": user_id, "is_bot": False, "first_name": first_name}
        user["language_code"] = language_code
        if username is not None:
            user["username"] = username
        self._users[user_id] = user
        message = self._user_message(user_id, text=text)
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            message["entities"] = [{"offset": 0, "length": _utf16(command), "type": "bot_command"}]
        return self.add_update({"message": message})

    def press(self, user_id: int, data: str, *, message_id: int) -> int:
        """The user presses a callback button under the bot's message ``message_id``."""
        message = self._chats.get(user_id, {}).get(message_id)
        if message is None:
            raise KeyError(f"the bot has no message {message_id} in chat {user_id}")
        query_id = str(4_000_000_000_000_000 + next(self._serial))
        self._queries["callback"][query_id] = math.inf  # the answer deadline is undocumented
        query: Json = {"id": query_id, "from": self._user(user_id), "message": message}
        query |= {"chat_instance": str(-user_id * 7919), "data": data}
        return self.add_update({"callback_query": query})

    def pre_checkout(
        self, user_id: int, *, payload: str, total_amount: int, currency: str = "XTR"
    ) -> int:
        """The user confirms an invoice; the bot must answer within ``pre_checkout_timeout``."""
        query_id = str(9_000_000_000_000_000 + next(self._serial))
        self._queries["pre_checkout"][query_id] = _now() + self.pre_checkout_timeout
        query: Json = {"id": query_id, "from": self._user(user_id), "currency": currency}
        query |= {"total_amount": total_amount, "invoice_payload": payload}
        return self.add_update({"pre_checkout_query": query})

    def successful_payment(
        self,
        user_id: int,
        *,
        payload: str,
        total_amount: int,
        currency: str = "XTR",
        charge_id: str,
        is_recurring: bool | None = None,
        is_first_recurring: bool | None = None,
        subscription_expiration_date: int | None = None,
    ) -> int:
        """The service message Telegram sends after charging the user.

        A payment in Stars is also recorded as the bot's incoming transaction (once per
        charge id, so a redelivered update adds none); a recurring one has a 30-day period.
        """
        if currency == "XTR" and charge_id not in self._charges:
            period = 2592000 if is_recurring else None
            self.charge_silently(
                user_id,
                payload=payload,
                total_amount=total_amount,
                charge_id=charge_id,
                subscription_period=period,
            )
        payment = {"currency": currency, "total_amount": total_amount, "invoice_payload": payload}
        payment |= {"telegram_payment_charge_id": charge_id, "provider_payment_charge_id": ""}
        optional = {
            "subscription_expiration_date": subscription_expiration_date,
            "is_recurring": is_recurring,
            "is_first_recurring": is_first_recurring,
        }
        payment |= {k: v for k, v in optional.items() if v is not None}
        return self.add_update({"message": self._user_message(user_id, successful_payment=payment)})

    def charge_silently(
        self,
        user_id: int,
        *,
        payload: str,
        total_amount: int,
        charge_id: str,
        subscription_period: int | None = None,
    ) -> Json:
        """Telegram charges the user in Stars but the bot never gets ``successful_payment``.

        Only the transaction is recorded (and returned), as when the update expired after
        24 h undelivered; ``getStarTransactions`` is then the only trace of the payment.
        """
        if charge_id in self._charges:
            raise ValueError(f"charge {charge_id} is already recorded")
        source: Json = {"type": "user", "transaction_type": "invoice_payment"}
        source |= {"user": self._user(user_id), "invoice_payload": payload}
        if subscription_period is not None:
            source["subscription_period"] = subscription_period
        transaction = {"id": charge_id, "amount": total_amount, "date": self._date()}
        transaction["source"] = source
        self._charges[charge_id] = transaction
        self.star_transactions.append(transaction)
        return transaction

    def share_stars(self, other: FakeTelegram) -> None:
        """Make ``other`` keep its Stars charges, transactions and refunds in this fake's.

        For one bot served by two fakes (two shop processes): Telegram keeps one Stars
        account per bot, whichever process calls it. Undone by ``other.reset()``.
        """
        other._charges = self._charges
        other.star_transactions = self.star_transactions
        other.refunded = self.refunded

    def refunded_payment(
        self,
        user_id: int,
        *,
        payload: str,
        total_amount: int,
        charge_id: str,
        currency: str = "XTR",
    ) -> int:
        """The service message about a refund (not sent by ``refundStarPayment`` itself)."""
        refund = {"currency": currency, "total_amount": total_amount, "invoice_payload": payload}
        refund["telegram_payment_charge_id"] = charge_id
        return self.add_update({"message": self._user_message(user_id, refunded_payment=refund)})

    def chat_member(self, user_id: int, status: str) -> int:
        """The user blocks (``"kicked"``) or unblocks (``"member"``) the bot.

        It also blocks or unblocks the chat, because that is what the user just did.
        """
        if status == "kicked":
            self.blocked.add(user_id)
        else:
            self.blocked.discard(user_id)
        old: Json = {"status": "member" if status == "kicked" else "kicked", "user": self._bot}
        new: Json = {"status": status, "user": self._bot}
        for member in (old, new):
            if member["status"] == "kicked":
                member["until_date"] = 0
        update = {"chat": self._chat(user_id), "from": self._user(user_id), "date": self._date()}
        update |= {"old_chat_member": old, "new_chat_member": new}
        return self.add_update({"my_chat_member": update})

    # ----------------------------------------------------------------- channels

    def add_channel(
        self,
        chat_id: int,
        *,
        owner: int,
        title: str = "Shop channel",
        admins: Mapping[int, Mapping[str, bool]] | None = None,
        members: Iterable[int] = (),
        bot_rights: Mapping[str, bool] | None = BOT_RIGHTS,
    ) -> Channel:
        """A private channel owned by ``owner``. ``admins`` maps user ids to their rights
        (a right left out is False), as ``bot_rights`` does for the bot; ``bot_rights=None``
        is a bot that is no longer in the channel (every method answers 403)."""
        channel = Channel(chat_id, title, owner)
        channel.members[owner] = {"status": "creator", "is_anonymous": False}
        for user_id, rights in (admins or {}).items():
            channel.members[user_id] = _administrator(rights)
        for user_id in members:
            channel.members[user_id] = {"status": "member"}
        if bot_rights is not None:
            channel.members[self.bot_id] = _administrator(bot_rights)
        self.channels[chat_id] = channel
        return channel

    def promote(self, chat_id: int, user_id: int, **rights: bool) -> None:
        """Someone makes ``user_id`` an administrator (as the owner could in the app)."""
        channel = self.channels[chat_id]
        self._set_member(channel, user_id, _administrator(rights), by=channel.owner)

    def join(self, user_id: int, invite_link: str) -> str:
        """The user opens an invite link in their app.

        Returns "joined", or "requested" for a link that asks to join (the bot then gets a
        ``chat_join_request``); raises JoinRefused where the app would show an error: an
        unknown link, one revoked, past its ``expire_date`` or holding ``member_limit``
        members who joined by it (INVITE_HASH_EXPIRED), a member already, a banned user.
        """
        found = [c for c in self.channels.values() if invite_link in c.links]
        if not found:
            raise JoinRefused("INVITE_HASH_INVALID")
        channel = found[0]
        link = channel.links[invite_link]
        if link["is_revoked"] or 0 < link.get("expire_date", 0) <= self._date():
            raise JoinRefused("INVITE_HASH_EXPIRED")
        if channel.is_member(user_id):
            raise JoinRefused("USER_ALREADY_PARTICIPANT")
        if channel.status(user_id) == "kicked":
            raise JoinRefused("USER_BANNED_IN_CHANNEL")
        if link["creates_join_request"]:
            self._join_request(channel, user_id, invite_link)
            return "requested"
        joined = [u for u, by in channel.joined_by.items() if by == invite_link]
        if link.get("member_limit") and sum(map(channel.is_member, joined)) >= link["member_limit"]:
            raise JoinRefused("INVITE_HASH_EXPIRED")
        shown = self._link(channel, link)
        self._set_member(channel, user_id, {"status": "member"}, by=user_id, invite_link=shown)
        channel.joined_by[user_id] = invite_link
        return "joined"

    def request_join(
        self, user_id: int, chat_id: int, *, invite_link: str | None = None, query: bool = False
    ) -> int:
        """The user asks to join (from the channel's page, or by ``invite_link``); returns the
        ``chat_join_request`` update's id, 0 if the bot may not hear of it (no
        ``can_invite_users``). ``query=True``: the bot is the one assigned to process join
        requests, and must answer the query within 10 seconds."""
        return self._join_request(self.channels[chat_id], user_id, invite_link, query=query)

    def leave(self, user_id: int, chat_id: int) -> None:
        channel = self.channels[chat_id]
        if channel.is_member(user_id):
            self._set_member(channel, user_id, {"status": "left"}, by=user_id)

    def channel_status(self, chat_id: int, user_id: int) -> str:
        """``creator``, ``administrator``, ``member``, ``kicked`` or ``left``."""
        return self.channels[chat_id].status(user_id)

    def _join_request(
        self, channel: Channel, user_id: int, invite_link: str | None, *, query: bool = False
    ) -> int:
        request: Json = {"chat": _channel_chat(channel), "from": self._user(user_id)}
        request |= {"user_chat_id": user_id, "date": self._date()}
        channel.requests[user_id] = request  # a repeated request replaces the waiting one
        if invite_link is not None:
            request["invite_link"] = link = channel.links[invite_link]
            request["invite_link"] = self._link(channel, link)  # counting this request too
        if query:
            query_id = str(7_000_000_000_000_000 + next(self._serial))
            channel.queries[query_id] = (user_id, _now() + 10.0)
            request["query_id"] = query_id
        if not _may(channel, self.bot_id, "can_invite_users"):
            return 0  # "The bot must have the can_invite_users administrator right"
        return self.add_update({"chat_join_request": request})

    def _set_member(
        self,
        channel: Channel,
        user_id: int,
        new: Json,
        *,
        by: int,
        invite_link: Json | None = None,
        via_join_request: bool = False,
    ) -> None:
        """Change a member's status; a ``chat_member`` update for bots that opted in."""
        old = self._chat_member(channel, user_id)
        if new["status"] == "left":
            channel.members.pop(user_id, None)
            channel.joined_by.pop(user_id, None)
        else:
            channel.members[user_id] = new
        change: Json = {"chat": _channel_chat(channel), "from": self._someone(by)}
        change |= {"date": self._date(), "old_chat_member": old}
        change["new_chat_member"] = self._chat_member(channel, user_id)
        if invite_link is not None:
            change["invite_link"] = invite_link
        if via_join_request:
            change["via_join_request"] = True
        self.add_update({"chat_member": change})

    def _chat_member(self, channel: Channel, user_id: int) -> Json:
        return {"user": self._someone(user_id)} | channel.members.get(user_id, {"status": "left"})

    def _someone(self, user_id: int) -> Json:
        return self._bot if user_id == self.bot_id else self._user(user_id)

    def _link(self, channel: Channel, link: Json) -> Json:
        """A ChatInviteLink as the Bot API shows it (with its waiting requests counted)."""
        waiting = sum(
            1
            for r in channel.requests.values()
            if r.get("invite_link", {}).get("invite_link") == link["invite_link"]
        )
        return link | ({"pending_join_request_count": waiting} if waiting else {})

    @property
    def _bot(self) -> Json:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Shop", "username": self.username}

    def _user(self, user_id: int) -> Json:
        return self._users.get(user_id) or {"id": user_id, "is_bot": False, "first_name": "Ann"}

    def _date(self) -> int:
        if self.clock is not None:
            return int(self.clock.now().timestamp())
        return EPOCH + int(_now())

    def _chat(self, chat_id: int) -> Json:
        chat: Json = {"id": chat_id, "type": "private"}
        if user := self._users.get(chat_id):
            chat |= {k: user[k] for k in ("first_name", "username") if k in user}
        return chat

    def _new_message(self, chat_id: int, sender: Json, content: Json) -> Json:
        # User and bot messages share one counter per private chat, as on Telegram.
        self._last_message_id[chat_id] += 1
        head = {"message_id": self._last_message_id[chat_id], "from": sender}
        return head | {"chat": self._chat(chat_id), "date": self._date()} | content

    def _user_message(self, user_id: int, **content: Any) -> Json:
        return self._new_message(user_id, self._user(user_id), content)

    # ----------------------------------------------------------------- Bot API methods

    def _handlers(self) -> dict[str, Handler]:
        handlers: dict[str, Handler] = {name: _return_true for name in _ALWAYS_TRUE}
        return handlers | {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "answerPreCheckoutQuery": self._answer_pre_checkout_query,
            "sendInvoice": self._send_invoice,
            "createInvoiceLink": self._create_invoice_link,
            "refundStarPayment": self._refund_star_payment,
            "getStarTransactions": self._get_star_transactions,
            "editUserStarSubscription": self._edit_user_star_subscription,
            "getChatMember": self._get_chat_member,
            "getChatAdministrators": self._get_chat_administrators,
            "createChatInviteLink": self._create_chat_invite_link,
            "approveChatJoinRequest": self._approve_chat_join_request,
            "declineChatJoinRequest": self._decline_chat_join_request,
            "answerChatJoinRequestQuery": self._answer_chat_join_request_query,
            "banChatMember": self._ban_chat_member,
            "unbanChatMember": self._unban_chat_member,
        }

    async def _get_me(self, params: Json) -> Json:
        return self._bot | {"can_join_groups": True, "can_read_all_group_messages": False}

    async def _get_updates(self, params: Json) -> list[Json]:
        if self.webhook_url:
            raise ApiError(409, WEBHOOK_ACTIVE)
        self._abort_poll(TERMINATED)
        offset = _int(params, "offset", 0)
        limit = min(max(_int(params, "limit", 100), 1), 100)
        timeout = min(max(_int(params, "timeout", 0), 0), self.long_poll_max)
        self._set_allowed(params)
        if offset > 0:
            self.confirmed_offset = max(self.confirmed_offset, offset)
            del self.pending[: bisect.bisect_left(self.pending, offset, key=_update_id)]
        elif offset < 0:  # keep only the last -offset updates
            del self.pending[: max(0, len(self.pending) + offset)]
        poll = self._poll = _Poll(trio.CancelScope(deadline=trio.current_time() + timeout))
        try:
            with poll.scope:
                while not self._take(offset, limit):
                    await self._updates_changed.wait()
        finally:
            if self._poll is poll:
                self._poll = None
        if poll.aborted:
            raise ApiError(409, poll.aborted)
        return self._take(offset, limit)

    def _take(self, offset: int, limit: int) -> list[Json]:
        ready = (u for u in self.pending if u["update_id"] >= offset)
        return list(itertools.islice(ready, limit))

    def _abort_poll(self, reason: str) -> None:
        if self._poll is not None:
            self._poll.aborted = reason
            self._poll.scope.cancel()
            self._poll = None

    def _set_allowed(self, params: Json) -> None:
        allowed = params.get("allowed_updates")
        if allowed is not None:  # omitted: keep the previous setting, like the server
            self._allowed = frozenset(allowed) if allowed else None

    async def _set_webhook(self, params: Json) -> bool:
        url = str(params.get("url") or "")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if url:
            self._abort_poll("Conflict: terminated by setWebhook request")
        self.webhook_url, self.webhook_secret = url, secret
        self._set_allowed(params)
        if _bool(params, "drop_pending_updates"):
            self.pending.clear()
        return True

    async def _delete_webhook(self, params: Json) -> bool:
        return await self._set_webhook({"drop_pending_updates": params.get("drop_pending_updates")})

    async def _get_webhook_info(self, params: Json) -> Json:
        info = {"url": self.webhook_url, "has_custom_certificate": False}
        info["pending_update_count"] = len(self.pending)
        if self.webhook_url:
            info["max_connections"] = 40
        if self._allowed is not None:
            info["allowed_updates"] = sorted(self._allowed)
        return info

    async def _send_message(self, params: Json) -> Json:
        chat_id, text = _chat_id(params), _text(params)
        return self._store(chat_id, {"text": text}, params)

    async def _send_photo(self, params: Json) -> Json:
        """An uploaded PNG or JPEG, or a file_id/URL string; a caption of up to 1024."""
        chat_id = _chat_id(params)
        photo = params.get("photo")
        if photo is None or photo == "":
            raise ApiError(400, "Bad Request: there is no photo in the request")
        if isinstance(photo, Upload) and not photo.content.startswith(_IMAGE_SIGNATURES):
            raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        content: Json = {"photo": [{"file_id": f"photo{next(self._serial)}", "width": 1}]}
        caption = params.get("caption")
        if caption:
            visible = _visible(str(caption), params.get("parse_mode"))
            if _utf16(visible) > 1024:
                raise ApiError(400, "Bad Request: message caption is too long")
            content["caption"] = str(caption)
        if isinstance(photo, Upload):
            self.uploads.append(photo)
        return self._store(chat_id, content, params)

    async def _edit_message_text(self, params: Json) -> Json:
        chat_id, old = self._find(params, "edit")
        text = _text(params)
        if "text" not in old:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        return self._edit(chat_id, old, {"text": text, "reply_markup": _inline(params)})

    async def _edit_message_reply_markup(self, params: Json) -> Json:
        chat_id, old = self._find(params, "edit")
        return self._edit(chat_id, old, {"reply_markup": _inline(params)})

    async def _delete_message(self, params: Json) -> bool:
        chat_id, old = self._find(params, "delete")
        del self._chats[chat_id][old["message_id"]]
        return True

    async def _answer_callback_query(self, params: Json) -> bool:
        return self._answer("callback", params.get("callback_query_id"))

    def _answer(self, kind: str, query_id: object) -> bool:
        deadline = self._queries[kind].pop(str(query_id), None)
        if deadline is None or trio.current_time() > deadline:
            raise ApiError(400, QUERY_INVALID)
        return True

    async def _answer_pre_checkout_query(self, params: Json) -> bool:
        if "ok" not in params:
            raise ApiError(400, "Bad Request: ok is empty")
        if not _bool(params, "ok") and not params.get("error_message"):
            raise ApiError(400, "Bad Request: error_message is empty")
        return self._answer("pre_checkout", params.get("pre_checkout_query_id"))

    async def _send_invoice(self, params: Json) -> Json:
        chat_id, invoice = _chat_id(params), _invoice(params)
        return self._store(chat_id, {"invoice": invoice}, params)

    async def _create_invoice_link(self, params: Json) -> str:
        invoice = _invoice(params)
        period = params.get("subscription_period")
        if period is not None and (int(period) != 2592000 or invoice["currency"] != "XTR"):
            raise ApiError(400, "Bad Request: SUBSCRIPTION_PERIOD_INVALID")
        link = f"https://t.me/$inv_{next(self._serial)}"
        self.invoice_links[link] = params
        return link

    async def _refund_star_payment(self, params: Json) -> bool:
        # Telegram documents CHARGE_ALREADY_REFUNDED for payments.refundStarsCharge; for a
        # charge it does not know, or one of another user, the server's CHARGE_NOT_FOUND.
        user_id = _user_id(params)
        charge_id = params.get("telegram_payment_charge_id")
        if charge_id in (None, ""):
            raise ApiError(400, 'Bad Request: parameter "telegram_payment_charge_id" is required')
        charge = self._charges.get(str(charge_id))
        if charge is None or charge["source"]["user"]["id"] != user_id:
            raise ApiError(400, "Bad Request: CHARGE_NOT_FOUND")
        if charge["id"] in self.refunded:
            raise ApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")
        self.refunded.add(charge["id"])
        # The refund is an outgoing transaction with the id and partner of the original.
        refund = {"id": charge["id"], "amount": charge["amount"], "date": self._date()}
        self.star_transactions.append(refund | {"receiver": dict(charge["source"])})
        return True

    async def _get_star_transactions(self, params: Json) -> Json:
        # Client::get_integer_arg clamps rather than refusing: limit 1..100, offset >= 0.
        offset = max(_to_int32(params.get("offset"), 0), 0)
        limit = min(max(_to_int32(params.get("limit"), 100), 1), 100)
        return {"transactions": self.star_transactions[offset : offset + limit]}

    async def _edit_user_star_subscription(self, params: Json) -> bool:
        _int(params, "user_id")
        charge_id = _required(params, "telegram_payment_charge_id")
        _required(params, "is_canceled")
        self.subscriptions[charge_id] = _bool(params, "is_canceled")
        return True

    # Channel methods. Each checks, in the server's order: the arguments it parses first
    # (user_id), the bot's access to the chat (Client::check_chat: a private channel needs
    # the bot in it), then TDLib's checks of rights, then Telegram's.

    def _channel(self, params: Json) -> Channel:
        channel = self.channels.get(_chat_id(params))
        if channel is None:
            raise ApiError(400, CHAT_NOT_FOUND)
        if channel.status(self.bot_id) == "kicked":
            raise ApiError(403, KICKED_FROM_CHANNEL)
        if not channel.is_member(self.bot_id):
            raise ApiError(403, NOT_A_MEMBER)
        return channel

    async def _get_chat_member(self, params: Json) -> Json:
        user_id = _user_id(params)
        return self._chat_member(self._channel(params), user_id)

    async def _get_chat_administrators(self, params: Json) -> list[Json]:
        channel = self._channel(params)
        admins = [
            self._chat_member(channel, user_id)
            for user_id, member in channel.members.items()
            if member["status"] in ("creator", "administrator")
        ]
        # "By default, bots other than the current bot are omitted" (no other bots here).
        return admins

    async def _create_chat_invite_link(self, params: Json) -> Json:
        # Client::get_integer_arg clamps: expire_date to >= 0, member_limit to 0..100000.
        expire_date = max(_to_int32(params.get("expire_date"), 0), 0)
        member_limit = min(max(_to_int32(params.get("member_limit"), 0), 0), 100000)
        creates_join_request = _bool(params, "creates_join_request")
        channel = self._channel(params)
        if creates_join_request and member_limit > 0:
            raise ApiError(400, LIMIT_WITH_REQUESTS)
        if not _may(channel, self.bot_id, "can_invite_users"):
            raise ApiError(400, NO_INVITE_RIGHTS)
        if 0 < expire_date <= self._date():
            raise ApiError(400, EXPIRE_DATE_INVALID)
        if member_limit > 99999:
            raise ApiError(400, USAGE_LIMIT_INVALID)
        link: Json = {"invite_link": f"https://t.me/+fAkE{next(self._serial):012d}"}
        if name := str(params.get("name") or "")[:32]:  # TDLib cuts it to 32 characters
            link["name"] = name
        link["creator"] = self._bot
        if expire_date:
            link["expire_date"] = expire_date
        if member_limit:
            link["member_limit"] = member_limit
        link |= {"creates_join_request": creates_join_request, "is_primary": False}
        link["is_revoked"] = False
        channel.links[link["invite_link"]] = link
        return link

    async def _approve_chat_join_request(self, params: Json) -> bool:
        user_id = _user_id(params)
        channel = self._channel(params)
        if not _may(channel, self.bot_id, "can_invite_users"):
            raise ApiError(400, NO_JOIN_REQUEST_RIGHTS)
        return self._decide(channel, user_id, approve=True)

    async def _decline_chat_join_request(self, params: Json) -> bool:
        user_id = _user_id(params)
        channel = self._channel(params)
        if not _may(channel, self.bot_id, "can_invite_users"):
            raise ApiError(400, NO_JOIN_REQUEST_RIGHTS)
        return self._decide(channel, user_id, approve=False)

    async def _answer_chat_join_request_query(self, params: Json) -> bool:
        query_id = _required(params, "chat_join_request_query_id")
        result = _required(params, "result")
        if result not in ("approve", "decline", "queue"):
            raise ApiError(400, "Bad Request: invalid result specified")
        for channel in self.channels.values():
            if query_id in channel.queries:
                user_id, deadline = channel.queries.pop(query_id)
                if trio.current_time() > deadline:
                    break
                if result == "queue":
                    return True  # left to the administrators: the request stays
                return self._decide(channel, user_id, approve=result == "approve")
        raise ApiError(400, QUERY_INVALID)

    def _decide(self, channel: Channel, user_id: int, *, approve: bool) -> bool:
        request = channel.requests.get(user_id)
        if request is None:
            raise ApiError(400, NO_REQUEST)
        if approve and channel.is_member(user_id):
            raise ApiError(400, ALREADY_PARTICIPANT)
        del channel.requests[user_id]
        for query_id, (who, _) in list(channel.queries.items()):
            if who == user_id:
                del channel.queries[query_id]
        if approve:
            link = request.get("invite_link")
            self._set_member(
                channel,
                user_id,
                {"status": "member"},
                by=self.bot_id,
                invite_link=link,
                via_join_request=link is None,
            )
            if link is not None:
                channel.joined_by[user_id] = link["invite_link"]
        return True

    async def _ban_chat_member(self, params: Json) -> bool:
        user_id = _user_id(params)
        until_date = _to_int32(params.get("until_date"), 0)
        channel = self._channel(params)
        self._may_restrict(channel, user_id)
        # "banned for more than 366 days or less than 30 seconds ... banned forever"
        if not 30 <= until_date - self._date() <= 366 * 86400:
            until_date = 0
        channel.requests.pop(user_id, None)
        self._set_member(
            channel, user_id, {"status": "kicked", "until_date": until_date}, by=self.bot_id
        )
        return True

    async def _unban_chat_member(self, params: Json) -> bool:
        user_id = _user_id(params)
        channel = self._channel(params)
        if _bool(params, "only_if_banned") and channel.status(user_id) != "kicked":
            return True  # the server looks first and does nothing (not even check rights)
        if user_id == self.bot_id:  # the bot's own status made "left": it leaves
            self._set_member(channel, user_id, {"status": "left"}, by=self.bot_id)
            return True
        self._may_restrict(channel, user_id)
        if channel.status(user_id) in ("member", "restricted", "kicked"):
            self._set_member(channel, user_id, {"status": "left"}, by=self.bot_id)
        return True

    def _may_restrict(self, channel: Channel, user_id: int) -> None:
        """TDLib's set_channel_participant_status_impl, then Telegram's own refusal."""
        if channel.status(user_id) == "creator":
            raise ApiError(400, OWNER)
        if user_id == self.bot_id:
            raise ApiError(400, SELF)
        if not _may(channel, self.bot_id, "can_restrict_members"):
            raise ApiError(400, NO_RESTRICT_RIGHTS)
        if channel.status(user_id) == "administrator":
            raise ApiError(400, ADMINISTRATOR)

    def _store(self, chat_id: int, content: Json, params: Json) -> Json:
        # Only inline keyboards show up in a Message; reply keyboards live in the client.
        if markup := _inline(params):
            content["reply_markup"] = markup
        message = self._new_message(chat_id, self._bot, content)
        self._chats[chat_id][message["message_id"]] = message
        return message

    def _find(self, params: Json, verb: str) -> tuple[int, Json]:
        chat_id = _chat_id(params)
        if params.get("message_id") in (None, ""):
            raise ApiError(400, "Bad Request: message identifier is not specified")
        message = self._chats.get(chat_id, {}).get(_int(params, "message_id"))
        if message is None:
            raise ApiError(400, f"Bad Request: message to {verb} not found")
        return chat_id, message

    def _edit(self, chat_id: int, old: Json, changes: Json) -> Json:
        if all(old.get(k) == v for k, v in changes.items()):
            raise ApiError(400, NOT_MODIFIED)
        # A new dict, never a mutation: updates from ``press`` hold the old one.
        new = old | changes | {"edit_date": self._date()}
        if new["reply_markup"] is None:
            del new["reply_markup"]
        self._chats[chat_id][new["message_id"]] = new
        return new


def _administrator(rights: Mapping[str, bool]) -> Json:
    """A channel administrator's ChatMember fields, as Client::JsonChatMember writes them."""
    unknown = set(rights) - set(CHANNEL_RIGHTS)
    if unknown:
        raise ValueError(f"not channel administrator rights: {sorted(unknown)}")
    member: Json = {"status": "administrator", "can_be_edited": False}
    member |= {right: bool(rights.get(right, False)) for right in CHANNEL_RIGHTS}
    member["is_anonymous"] = False
    member["can_manage_voice_chats"] = member["can_manage_video_chats"]
    return member


def _may(channel: Channel, user_id: int, right: str) -> bool:
    member = channel.members.get(user_id, {})
    return member.get("status") == "creator" or bool(
        member.get("status") == "administrator" and member.get(right)
    )


def _channel_chat(channel: Channel) -> Json:
    return {"id": channel.id, "title": channel.title, "type": "channel"}


async def _return_true(params: Json) -> bool:
    return True


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # a builder called outside trio.run
        return 0.0


def _update_id(update: Json) -> int:
    return int(update["update_id"])


def _utf16(text: str) -> int:
    """Telegram measures text in UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _parse_params(scope: Json, body: bytes) -> Json:
    """Query string, then a JSON or form body; JSON-typed fields sent as text are decoded."""
    params: Json = dict(parse_qsl(scope["query_string"].decode("latin-1")))
    if body:
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if content_type.startswith("application/json"):
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise ApiError(400, "Bad Request: can't parse JSON object")
            params.update(data)
        elif content_type.startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode()))
        elif content_type.startswith("multipart/form-data"):
            params.update(_multipart(content_type, body))
        else:
            raise ApiError(400, f"Bad Request: unsupported content type {content_type!r}")
    for name in _JSON_PARAMS & params.keys():
        if isinstance(params[name], str):
            try:
                params[name] = json.loads(params[name])
            except ValueError:
                raise ApiError(400, f"Bad Request: can't parse {name} JSON object") from None
    return params


@attrs.frozen
class Upload:
    """A file part of a multipart call (what ``InputFile`` becomes on the wire)."""

    filename: str
    content: bytes
    content_type: str


def _multipart(content_type: str, body: bytes) -> Json:
    """Form fields as text and file parts as :class:`Upload` (RFC 7578)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ApiError(400, "Bad Request: can't parse multipart/form-data")
    fields: Json = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode("utf-8")
        else:
            fields[name] = Upload(filename, data, part.get_content_type())
    return fields


def _chat_of(params: Json) -> int | None:
    """The chat or user a call is about, for filters; None when it names none."""
    try:
        return int(params.get("chat_id", params.get("user_id")))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _required(params: Json, name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise ApiError(400, f"Bad Request: {name} is empty")
    return str(value)


def _int(params: Json, name: str, default: int | None = None) -> int:
    if params.get(name) in (None, "") and default is not None:
        return default
    try:
        return int(_required(params, name))
    except ValueError:
        raise ApiError(400, f"Bad Request: invalid {name} specified") from None


def _to_int32(value: object, default: int) -> int:
    """tdlib's ``to_integer<int32>``: optional "-", the leading digits, wrapping; no errors."""
    text = "" if value is None else str(value)
    if not text:
        return default
    digits = re.match(r"-?([0-9]*)", text)
    assert digits is not None
    number = int(digits[1] or 0) % 2**32
    if text.startswith("-"):
        number = -number % 2**32
    return number - 2**32 if number >= 2**31 else number


def _user_id(params: Json) -> int:
    """Client::get_user_id: a positive integer, else "invalid user_id specified"."""
    match = re.match(r"-?[0-9]*", str(params.get("user_id", "")))
    user_id = int(match[0]) if match and match[0] not in ("", "-") else 0
    if user_id <= 0:
        raise ApiError(400, "Bad Request: invalid user_id specified")
    return user_id


def _bool(params: Json, name: str) -> bool:
    return params.get(name) in (True, 1, "true", "True", "1")


def _chat_id(params: Json) -> int:
    try:
        return int(_required(params, "chat_id"))
    except ValueError:  # @username: no channels or groups here
        raise ApiError(400, "Bad Request: chat not found") from None


def _text(params: Json) -> str:
    """Checks ``text`` as the Bot API and tdlib do for sendMessage and editMessageText."""
    text = params.get("text")
    text = "" if text is None else str(text)
    if not text:  # Client::get_input_message_text, before any parsing
        raise ApiError(400, "Bad Request: message text is empty")
    visible = _visible(text, params.get("parse_mode"))
    if not visible.strip():  # tdlib's fix_formatted_text, after parsing
        raise ApiError(400, "Bad Request: text must be non-empty")
    if _utf16(visible) > 4096:
        raise ApiError(400, "Bad Request: message is too long")
    return text


def _visible(text: str, parse_mode: object) -> str:
    """The text a reader sees, after the parse mode (the Bot API's ``get_formatted_text``).

    Markdown is not parsed (the shop sends HTML only): its text is measured as sent.
    """
    if len(text.encode("utf-8", "surrogatepass")) > 1 << 15:
        raise ApiError(400, "Bad Request: text is too long")
    mode = "" if parse_mode is None else str(parse_mode).lower()
    if mode == "html":
        try:
            return parse_html(text)
        except HtmlError as error:
            raise ApiError(400, f"Bad Request: can't parse entities: {error}") from None
    if mode not in ("", "none", "markdown", "markdownv2"):
        raise ApiError(400, "Bad Request: unsupported parse_mode")
    return text


def _inline(params: Json) -> Json | None:
    markup = params.get("reply_markup")
    if isinstance(markup, dict) and markup.get("inline_keyboard"):
        return markup
    return None  # an empty inline keyboard is no keyboard


def _invoice(params: Json) -> Json:
    """Checks sendInvoice/createInvoiceLink fields; returns the Message's ``invoice``."""
    fields = {k: _required(params, k) for k in ("title", "description", "payload", "currency")}
    prices = params.get("prices")
    if not isinstance(prices, list) or not prices:
        raise ApiError(400, "Bad Request: prices is empty")
    if fields["currency"] == "XTR" and len(prices) != 1:
        raise ApiError(400, "Bad Request: STARS_INVOICE_INVALID")
    total = sum(int(price["amount"]) for price in prices)
    invoice = {"title": fields["title"], "description": fields["description"]}
    invoice["start_parameter"] = str(params.get("start_parameter", ""))
    return invoice | {"currency": fields["currency"], "total_amount": total}


# ----------------------------------------------------------------- HTML parse mode
#
# A port of tdlib's ``parse_html`` (td/telegram/MessageEntity.cpp), which the Bot API runs for
# parse_mode=HTML: the same scanning rules over the UTF-8 bytes, the same byte offsets and the
# same error texts, so that whatever the real server refuses is refused here too. Entities are
# not kept, only the visible text. Scanning stops at a NUL byte as in C (``is_space`` counts
# it), hence the NUL appended to the bytes.

_HTML_TAGS = frozenset(
    {"a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler"}
    | {"tg-emoji", "tg-time", "span", "pre", "code", "blockquote"}
)
_SPACE = b" \t\r\n\v\0"  # tdlib's is_space
_DIGITS = b"0123456789"
_HEX_DIGITS = _DIGITS + b"abcdefABCDEF"
_LETTERS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NAME_TOKEN = _LETTERS + _DIGITS + b".-"
_NAMED_ENTITIES = {b"lt": ord("<"), b"gt": ord(">"), b"amp": ord("&"), b"quot": ord('"')}
_DATE_FORMAT = re.compile("[rR]|[tTdDwW]*")  # FormattedDate::get_date_flags


class HtmlError(ValueError):
    """Raised when tdlib's parse_html would refuse a text; ``str(error)`` is tdlib's message."""


def parse_html(text: str) -> str:
    """The visible text of ``text`` in parse_mode HTML, as tdlib parses it.

    Raises ``HtmlError`` where tdlib fails: an unsupported, unclosed or mismatched tag, a bad
    attribute, an invalid custom emoji id or date format, or a surrogate from an entity. Bare
    ``&`` and unknown entities such as ``&foo;`` stay as they are, as in tdlib.
    """
    return _HtmlParser(text).run()


@attrs.define
class _OpenTag:
    name: str
    argument: str
    start: int  # the length of the visible text (in bytes) where the tag opened


class _HtmlParser:
    def __init__(self, text: str) -> None:
        self.data = text.encode("utf-8", "surrogatepass") + b"\0"
        self.size = len(self.data) - 1
        self.i = 0
        self.out = bytearray()
        self.open: list[_OpenTag] = []
        self.surrogates = False

    def run(self) -> str:
        data = self.data
        while self.i < self.size:
            c = data[self.i]
            if c == ord("&"):
                code, end = _html_entity(data, self.i)
                if code:
                    self.out += chr(code).encode("utf-8", "surrogatepass")
                    self.surrogates |= 0xD800 <= code <= 0xDFFF
                    self.i = end
                    continue
            if c != ord("<"):
                self.out.append(c)
                self.i += 1
            elif data[self.i + 1] == ord("/"):
                self._end_tag()
            else:
                self._start_tag()
        if self.open:
            name = self.open[-1].name
            raise HtmlError(f'Can\'t find end tag corresponding to start tag "{name}"')
        if self.surrogates:
            raise HtmlError(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            )
        return self.out.decode("utf-8", "surrogatepass")

    def _start_tag(self) -> None:
        data, begin = self.data, self.i
        self.i += 1
        while data[self.i] not in _SPACE and data[self.i] != ord(">"):
            self.i += 1
        if data[self.i] == 0:
            raise HtmlError(f"Unclosed start tag at byte offset {begin}")
        name = _ascii_lower(data[begin + 1 : self.i])
        if name not in _HTML_TAGS:
            raise HtmlError(f'Unsupported start tag "{name}" at byte offset {begin}')
        argument = self._attributes(name, begin)
        if name == "span" and argument != "spoiler":
            raise HtmlError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
        self.open.append(_OpenTag(name, argument, len(self.out)))
        self.i += 1  # the ">"

    def _attributes(self, tag: str, begin: int) -> str:
        """Reads attributes up to the closing ``>``; returns the tag's argument (href...)."""
        data, argument = self.data, ""
        while data[self.i] != ord(">"):
            self._skip_spaces()
            if data[self.i] == ord(">"):
                break
            start = self.i
            while data[self.i] not in _SPACE and data[self.i] not in b"=>/\"'":
                self.i += 1
            name = data[start : self.i]
            if not name:
                raise HtmlError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
            self._skip_spaces()
            if data[self.i] != ord("="):
                if data[self.i] == 0:
                    raise HtmlError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                if tag == "blockquote" and name == b"expandable":
                    argument = "1"
                continue
            self.i += 1
            self._skip_spaces()
            if data[self.i] == 0:
                raise HtmlError(f'Unclosed start tag "{tag}" at byte offset {begin}')
            value = self._attribute_value()
            if data[self.i] == 0:
                raise HtmlError(f"Unclosed start tag at byte offset {begin}")
            argument = _tag_argument(tag, name, value, argument)
        return argument

    def _attribute_value(self) -> str:
        data, quote = self.data, self.data[self.i]
        if quote not in b"'\"":  # a name token: letters, digits, "." and "-", case-insensitive
            start = self.i
            while data[self.i] in _NAME_TOKEN:
                self.i += 1
            if data[self.i] not in _SPACE and data[self.i] != ord(">"):
                raise HtmlError(f"Unexpected end of name token at byte offset {start}")
            return _ascii_lower(data[start : self.i])
        self.i += 1
        value = bytearray()
        while data[self.i] != quote and data[self.i] != 0:
            if data[self.i] == ord("&"):
                code, end = _html_entity(data, self.i)
                if code:
                    value += chr(code).encode("utf-8", "surrogatepass")
                    self.i = end
                    continue
            value.append(data[self.i])
            self.i += 1
        if data[self.i] == quote:
            self.i += 1
        return value.decode("utf-8", "surrogatepass")

    def _end_tag(self) -> None:
        data, begin = self.data, self.i
        if not self.open:
            raise HtmlError(f"Unexpected end tag at byte offset {begin}")
        self.i += 1
        while data[self.i] not in _SPACE and data[self.i] != ord(">"):
            self.i += 1
        name = _ascii_lower(data[begin + 2 : self.i])
        while data[self.i] in _SPACE and data[self.i] != 0:
            self.i += 1
        if data[self.i] != ord(">"):
            raise HtmlError(f"Unclosed end tag at byte offset {begin}")
        tag = self.open.pop()
        if name and name != tag.name:
            raise HtmlError(
                f'Unmatched end tag at byte offset {begin}, expected "</{tag.name}>", '
                f'found "</{name}>"'
            )
        if len(self.out) > tag.start:  # tdlib checks only entities that cover some text
            _check_entity(tag)
        self.i += 1  # the ">"

    def _skip_spaces(self) -> None:
        while self.data[self.i] != 0 and self.data[self.i] in _SPACE:
            self.i += 1


def _html_entity(data: bytes, pos: int) -> tuple[int, int]:
    """tdlib's decode_html_entity: (code point, end) of the entity at ``pos``, or (0, pos)."""
    end = pos + 1
    if data[end] == ord("#"):
        end += 1
        base, digits = (16, _HEX_DIGITS) if data[end] == ord("x") else (10, _DIGITS)
        end += base == 16
        start = end
        while data[end] in digits:
            end += 1
        if end - pos >= 10 or end == start:
            return 0, pos
        code = int(data[start:end], base)
        if code == 0 or code >= 0x10FFFF:
            return 0, pos
    else:
        while data[end] in _LETTERS:
            end += 1
        code = _NAMED_ENTITIES.get(data[pos + 1 : end], 0)
        if not code:
            return 0, pos
    return code, end + (data[end] == ord(";"))


def _tag_argument(tag: str, name: bytes, value: str, argument: str) -> str:
    """The attributes tdlib keeps; attribute names are matched case-sensitively."""
    if (tag, name) in (("a", b"href"), ("tg-emoji", b"emoji-id"), ("tg-time", b"format")):
        return value
    if tag == "code" and name == b"class" and value.startswith("language-"):
        return value[len("language-") :]
    if tag == "span" and name == b"class" and value.startswith("tg-"):
        return value[len("tg-") :]
    if tag == "blockquote" and name == b"expandable":
        return "1"
    return argument  # unknown attributes are ignored


def _check_entity(tag: _OpenTag) -> None:
    if tag.name == "tg-emoji":
        # to_integer_safe<int64>: the canonical decimal form of a non-zero 64-bit integer
        number = re.fullmatch(r"-?[1-9][0-9]*", tag.argument)
        if number is None or not -(2**63) <= int(tag.argument) < 2**63:
            raise HtmlError("Invalid custom emoji identifier specified")
    elif tag.name == "tg-time" and not _DATE_FORMAT.fullmatch(tag.argument):
        raise HtmlError("Invalid date format used")


def _ascii_lower(data: bytes) -> str:
    return data.lower().decode("utf-8", "surrogatepass")  # bytes.lower() is ASCII-only, as tdlib


def main(argv: list[str] | None = None) -> None:
    """Serve the fake in its own process, e.g. for ``bench/``."""
    parser = argparse.ArgumentParser(description="A fake Telegram Bot API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=TOKEN)
    parser.add_argument("--history", action="store_true", help="keep every call in memory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    fake = FakeTelegram(args.token, clock=SystemClock(), history=args.history)
    log.info("fake Bot API for token %s on http://%s:%d", args.token, args.host, args.port)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C is the way to stop it
        trio.run(partial(fake.serve, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
