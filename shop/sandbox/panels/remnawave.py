"""A fake Remnawave panel (2.8.1 or 3.3.2) on loopback, as strict as the real one.

It is written from the panel's sources (``remnawave/backend`` at 2.8.1 = ba518681 and
3.3.2 = 347e6de1), never from the shop's client::

    panel = FakeRemnawave(version="3.3.2", token=TOKEN)
    base_url = await nursery.start(panel.serve)      # e.g. http://127.0.0.1:40123
    # the client calls f"{base_url}/api/users" with Bearer token and X-Forwarded-* headers
    panel.use_traffic("tg_42", 10 * GB)
    headers, body = panel.webhook("user.modified", "tg_42", secret=WEBHOOK_SECRET)

What it keeps from the sources, in the order a request meets it:

- ``src/main.ts`` registers ``express.json()`` and then ``proxyCheckMiddleware``
  (``src/common/middlewares/proxy-check.middleware.ts``): without ``X-Forwarded-For`` and
  ``X-Forwarded-Proto: https`` the server calls ``res.socket.destroy()``, so the client sees
  the connection close with no HTTP answer (here ``httpx.RemoteProtocolError``).
- An unknown route gets Nest's ``{"message": "Cannot GET /api/x", "error": "Not Found",
  "statusCode": 404}`` before any guard runs. Routes the real panel has but the fake does not
  model (bulk actions, the user list, tags, resolve, ...) answer 501 so a test notices.
- ``JwtDefaultGuard`` (``src/common/guards/jwt-guards/def-jwt-guard.ts``, passport-jwt
  ``fromAuthHeaderAsBearerToken``): a missing or wrong Bearer token is Nest's default
  ``{"message": "Unauthorized", "statusCode": 401}`` (the controllers' ``HttpExceptionFilter``
  catches only its own and zod exceptions). Scopes are not modelled: the token has ``*``.
- Then nestjs-zod validation (see ``_zod.py`` and ``_remnawave_contract.py``), then the
  users service: ``src/modules/users/users.service.ts``, ``users.controller.ts`` and
  ``repositories/users.repository.ts`` at each tag. Domain errors go through
  ``src/common/helpers/error-handler.helper.ts`` and ``src/common/exception/
  http-exception.filter.ts``: ``{"timestamp", "path", "message", "errorCode"}``.
- The 30 s watchdog jobs (``src/queue/_users/processors/users-watchdog.processor.ts``,
  ``src/scheduler/intervals.ts``) run before every request here: ACTIVE or LIMITED users
  whose ``expireAt`` has passed become EXPIRED; ACTIVE users with a limit and
  ``usedTrafficBytes >= trafficLimitBytes`` become LIMITED.

``caddy_token`` models remnawave/caddy-with-auth in front (``examples/minimal-security-
setup-with-mfa/Caddyfile``: ``authorize with panelpolicy`` ... ``with api key auth``): the
``X-Api-Key`` header must match, else a plain-text ``401 Unauthorized`` (caddy-security's
gatekeeper answers exactly that for a failed API key; with no key at all it would redirect
to the portal, 302, which the fake simplifies to the same 401). The real Caddy also sets
``X-Forwarded-*`` itself; the fake still demands them from the client, which is stricter.

Deliberate simplifications: squads are a dict you pass in (unknown squad uuids fail the
foreign key as in the panel); there are no external squads, so any non-null
``externalSquadUuid`` fails the same way; a ``Date`` with no offset is read as UTC; Express's
case-insensitive routing is not copied; an invalid JSON body gets Nest's usual 400 shape
(not confirmed in the sources).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
import math
import random
import re
import uuid as uuid_module
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote

import attrs
import trio

from shop.clock import UTC, WallClock

from ..providers._base import ApiError, Call, FakeProvider, Json, Receive, Send, compact
from . import _remnawave_contract as contract
from . import _zod as z

TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.fake-remnawave-api-token.c2lnbmF0dXJl"
VERSIONS = {  # tag -> backend commit, shown in /api/system/metadata
    "2.8.1": ("ba51868149362d0b9ac0e23133d0532176ccb5a2", "2026-07-13T19:38:57.000Z"),
    "3.3.2": ("347e6de129f0289a3831dfbb7452d36b49528f3c", "2026-08-20T03:01:47.000Z"),
}
DEFAULT_SQUAD = ("8f3c1e2a-5b6d-4c7e-9f80-1a2b3c4d5e6f", "Default-Squad")
#: ``EVENTS.USER`` in ``libs/contract/constants/events/events.ts`` (same list at both tags).
USER_EVENTS = (
    "user.created",
    "user.modified",
    "user.deleted",
    "user.revoked",
    "user.disabled",
    "user.enabled",
    "user.limited",
    "user.expired",
    "user.traffic_reset",
    "user.first_connected",
    "user.bandwidth_usage_threshold_reached",
    "user.not_connected",
    "user.expiration",
)
# ``createNanoId`` / ``createPassword`` in users.service.ts; SHORT_UUID_LENGTH defaults to 16.
_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ_abcdefghjkmnopqrstuvwxyz-"
_INT64 = 2**63


@attrs.define
class PanelCall(Call):
    """A request as it reached the panel: ``path`` is the decoded path (``/api/users``),
    ``query`` the raw query string; ``status`` 0 means the connection was dropped."""

    query: str = ""


class FakeRemnawave(FakeProvider):
    """The panel: users in memory, answering over real HTTP.

    Attributes tests read: ``calls``, ``calls_to(method, path)``, ``created`` (users really
    created), ``users`` (username -> the user as the API shows it), ``squads`` (uuid -> name,
    editable) and ``base_url``.
    """

    prefix = ""

    def __init__(
        self,
        *,
        version: str = "3.3.2",
        token: str = TOKEN,
        caddy_token: str | None = None,
        clock: WallClock | None = None,
        squads: dict[str, str] | None = None,
        sub_domain: str = "sub.example",
        seed: int = 0,
    ) -> None:
        if version not in VERSIONS:
            raise ValueError(f"FakeRemnawave models {sorted(VERSIONS)}, not {version!r}")
        super().__init__(clock=clock)
        self.version = version
        self.major = int(version.split(".")[0])
        self.zod = 3 if self.major < 3 else 4  # package.json: zod 3.25.76 / 4.4.3
        self.token = token
        self.caddy_token = caddy_token
        self.sub_domain = sub_domain
        self.squads = dict(squads) if squads is not None else dict([DEFAULT_SQUAD])
        self._rows: dict[int, Json] = {}  # id -> the row, in the panel's own types
        self._gone: dict[str, Json] = {}  # username -> the row as it was when deleted
        self._next_id = 1
        self._rng = random.Random(seed)
        self._resets = 0
        self._lost_status: int | None = None

    # ----------------------------------------------------------------- test controls

    @property
    def users(self) -> dict[str, Json]:
        """Every user as the API would show it now (after the watchdog jobs)."""
        self._watchdog()
        return {row["username"]: self._render(row) for row in self._rows.values()}

    def use_traffic(self, username: str, nbytes: int) -> None:
        """The user's nodes report ``nbytes`` more traffic; the panel marks an ACTIVE user
        LIMITED once ``used >= limit`` (``updateExceededTrafficUsers``)."""
        row = self._row(username)
        row["usedTrafficBytes"] += nbytes
        row["lifetimeUsedTrafficBytes"] += nbytes
        row["onlineAt"] = self._now()
        row["firstConnectedAt"] = row["firstConnectedAt"] or row["onlineAt"]
        self._watchdog()

    def reset_connections(self, times: int = 1) -> None:
        """Drop the next ``times`` requests before the panel sees them (no answer)."""
        self._resets += times

    def lose_answers(self, times: int = 1, *, status: int | None = None) -> None:
        """Carry out the next ``times`` requests, then lose the answer: the connection is
        closed with no response, or (``status``) a proxy answers that status instead."""
        self._lost += times
        self._lost_status = status

    def delete_by_hand(self, username: str) -> None:
        """An admin deleted the user in the panel's UI."""
        row = self._row(username)
        del self._rows[row["id"]]
        self._gone[username] = row

    def disable_by_hand(self, username: str) -> None:
        """An admin disabled the user in the panel's UI."""
        row = self._row(username)
        row["status"], row["updatedAt"] = "DISABLED", self._now()

    def webhook(
        self, event: str, username: str, secret: str, meta: Json | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The delivery the panel would POST for a user event, signed as it signs it.

        ``src/integration-modules/notifications/webhook-module/events/webhook.events.ts``
        builds ``{scope: "user", event, timestamp: dayjs().toISOString(), data:
        GetFullUserResponseModel, meta}`` (an absent meta serialises as null through
        superjson) and ``src/queue/notifications/webhook-logger/webhook-logger.processor.ts``
        posts ``JSON.stringify`` of it with ``X-Remnawave-Signature`` = hex HMAC-SHA256 of
        those bytes keyed with WEBHOOK_SECRET_HEADER, ``X-Remnawave-Timestamp`` (not
        signed) and ``User-Agent: Remnawave``. A deleted user is sent as it was.
        """
        if event not in USER_EVENTS:
            raise ValueError(f"not a user event: {event!r}")
        row = self._find("username", username) or self._gone[username]
        timestamp = _stamp(self._now())
        payload = {
            "scope": "user",
            "event": event,
            "timestamp": timestamp,
            "data": self._render(row),
            "meta": meta,
        }
        body = compact(payload)
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Remnawave-Signature": signature,
            "X-Remnawave-Timestamp": timestamp,
            "User-Agent": "Remnawave",
        }
        return headers, body

    # ----------------------------------------------------------------- serving

    async def __call__(self, scope: Json, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await super().__call__(scope, receive, send)
            return
        body = bytearray()
        while (message := await receive()).get("more_body"):
            body += message.get("body", b"")
        body += message.get("body", b"")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope["query_string"].decode("latin-1")
        path = unquote(scope["path"])
        call = PanelCall(scope["method"], path, headers, bytes(body), trio.current_time())
        call.query = query
        self.calls.append(call)
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        answer = self._answer(call, raw_path)
        if answer is None:
            # As in the Telegram fake: an informational head and no final response makes
            # hypercorn close the connection, and httpx raises RemoteProtocolError.
            await send({"type": "http.response.start", "status": 199, "headers": []})
            return
        status, content_type, data = answer
        call.status = status
        out = [(b"x-robots-tag", b"noindex, nofollow, noarchive, nosnippet, noimageindex")]
        if status != 204:
            out += [(b"content-type", content_type), (b"content-length", b"%d" % len(data))]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": data})

    def _answer(self, call: PanelCall, raw_path: str) -> tuple[int, bytes, bytes] | None:
        if self._resets:
            self._resets -= 1
            return None  # close the connection without an answer
        if self._outage is not None:
            return self._outage, b"text/plain", HTTPStatus(self._outage).phrase.encode()
        if self.caddy_token is not None and call.headers.get("x-api-key") != self.caddy_token:
            return 401, b"text/plain; charset=utf-8", b"401 Unauthorized"
        url = raw_path + (f"?{call.query}" if call.query else "")
        try:
            body = _json_body(call)
        except ValueError as error:
            return _json(400, {"message": str(error), "error": "Bad Request", "statusCode": 400})
        headers = call.headers
        if not headers.get("x-forwarded-for") or headers.get("x-forwarded-proto") != "https":
            return None  # close the connection without an answer
        handler = self._route(call.method, _segments(raw_path))
        if handler is None:
            message = f"Cannot {call.method} {url}"
            return _json(404, {"message": message, "error": "Not Found", "statusCode": 404})
        if not self._authorized(headers.get("authorization", "")):
            return _json(401, {"message": "Unauthorized", "statusCode": 401})
        self._watchdog()
        try:
            status, payload = handler(_Request(url, body, _query(call.query)))
        except ApiError as error:
            status, payload = error.status, error.body
        if self._lost:
            self._lost -= 1
            if self._lost_status is None:
                return None  # close the connection without an answer
            return self._lost_status, b"text/plain", HTTPStatus(self._lost_status).phrase.encode()
        return _json(status, payload)

    def _authorized(self, header: str) -> bool:
        match = re.match(r"(\S+)\s+(\S+)", header)  # passport-jwt parseAuthHeader
        return bool(match and match[1].lower() == "bearer" and match[2] == self.token)

    def _route(self, method: str, parts: list[str]) -> Callable[[_Request], _Result] | None:
        """Nest's route table for ``/api/...``, in the controllers' declaration order."""
        if parts[:2] == ["system", "metadata"] and len(parts) == 2 and method == "GET":
            return self._metadata
        if parts[:1] == ["system"]:
            return _unmodelled if method == "GET" and len(parts) > 1 else None
        if parts[:1] != ["users"]:
            return None
        rest, v2 = parts[1:], self.major < 3
        if not rest:
            table = {"POST": self._create, "PATCH": self._update, "GET": _unmodelled}
            return table.get(method)
        unmodelled = (
            (rest == ["tags"] and method == "GET")
            or (rest == ["resolve"] and method == "POST")
            or (rest[:1] == ["bulk"] and method in ("POST", "PATCH"))
        )
        if unmodelled:
            return _unmodelled
        if rest == ["stream"] and method == "GET":
            return self._stream
        if len(rest) == 2 and method == "GET":
            return self._get_by(rest[0], rest[1], v2)
        if len(rest) == 1 and method in ("GET", "DELETE"):
            handler = self._get if method == "GET" else self._delete
            return partial(handler, key=rest[0])
        if len(rest) == 3 and rest[1] == "actions" and method == "POST":
            return self._action(rest[0], rest[2])
        return None

    def _get_by(self, kind: str, value: str, v2: bool) -> Callable[[_Request], _Result] | None:
        if kind in ("by-username", "by-short-uuid"):
            field = "username" if kind == "by-username" else "shortUuid"
            return lambda r: self._get_unique(r, field, value)
        if v2 and kind == "by-telegram-id":
            return lambda r: self._by_telegram_id(r, value)
        if v2 and kind == "by-id":
            return lambda r: self._by_tid(r, value)
        if v2 and kind in ("by-email", "by-tag"):
            return _unmodelled
        if value in ("accessible-nodes", "subscription-request-history"):
            return _unmodelled
        return None

    def _action(self, key: str, name: str) -> Callable[[_Request], _Result] | None:
        actions: dict[str, Callable[[_Request, str], _Result]] = {
            "enable": lambda r, k: self._set_status(r, k, "ACTIVE"),
            "disable": lambda r, k: self._set_status(r, k, "DISABLED"),
            "reset-traffic": self._reset_traffic,
            "revoke": self._revoke,
        }
        if self.major >= 3:
            actions["extend"] = self._extend
        handler = actions.get(name)
        return None if handler is None else (lambda r: handler(r, key))

    # ----------------------------------------------------------------- handlers

    def _metadata(self, request: _Request) -> _Result:
        """``GET /api/system/metadata`` (``commands/system/get-metadata.command.ts``)."""
        commit, built = VERSIONS[self.version]
        git = {
            "backend": {
                "commitSha": commit,
                "branch": "main",
                "commitUrl": f"https://github.com/remnawave/backend/commit/{commit}",
            },
            "frontend": {
                "commitSha": "0" * 40,
                "commitUrl": f"https://github.com/remnawave/frontend/commit/{'0' * 40}",
            },
        }
        build = {"time": built, "number": "1"}
        return 200, {"response": {"version": self.version, "build": build, "git": git}}

    def _create(self, request: _Request) -> _Result:
        """``POST /api/users`` -> 201; ``createUser`` maps Prisma's P2002 on username to
        A019 and on shortUuid to A020; any other failure (a fraction where BigInt() is
        needed, a taken 2.x ``uuid``, an unknown squad) is A018 and stores nothing."""
        data = self._validate(request, contract.create_user(self.major), request.body)
        try:
            limit = _bigint(data.get("trafficLimitBytes", 0))
            telegram_id = _bigint(data.get("telegramId"))
        except ValueError:
            raise self._error(request, "CREATE_USER_ERROR") from None
        if self._find("username", data["username"]):
            raise self._error(request, "USER_USERNAME_ALREADY_EXISTS")
        short_uuid = data.get("shortUuid") or self._nanoid(16)
        if self._find("shortUuid", short_uuid):
            raise self._error(request, "USER_SHORT_UUID_ALREADY_EXISTS")
        squads = data.get("activeInternalSquads", [])
        unknown = any(s.lower() not in self._squad_keys() for s in squads)
        duplicate = len({s.lower() for s in squads}) != len(squads)
        taken = "uuid" in data and self._find("uuid", data["uuid"].lower())
        if unknown or duplicate or taken or data.get("externalSquadUuid"):
            raise self._error(request, "CREATE_USER_ERROR")
        now = self._now()
        row = {
            "id": self._next_id,
            "uuid": data.get("uuid", "").lower() or self._uuid4(),
            "shortUuid": short_uuid,
            "username": data["username"],
            "status": data["status"],
            "trafficLimitBytes": limit,
            "trafficLimitStrategy": data["trafficLimitStrategy"],
            "expireAt": data["expireAt"],
            "telegramId": telegram_id,
            "email": data.get("email"),
            "description": data.get("description"),
            "tag": data.get("tag"),
            "hwidDeviceLimit": data.get("hwidDeviceLimit"),
            "externalSquadUuid": None,
            "trojanPassword": data.get("trojanPassword") or self._nanoid(32),
            "vlessUuid": data.get("vlessUuid") or self._uuid4(),
            "ssPassword": data.get("ssPassword") or self._nanoid(32),
            "lastTriggeredThreshold": 0,
            "subRevokedAt": None,
            "lastTrafficResetAt": data.get("lastTrafficResetAt"),
            "createdAt": data.get("createdAt") or now,
            "updatedAt": now,
            "squads": [self._squad_keys()[s.lower()] for s in squads],
            "usedTrafficBytes": 0,
            "lifetimeUsedTrafficBytes": 0,
            "onlineAt": None,
            "firstConnectedAt": None,
            "lastConnectedNodeUuid": None,
        }
        self._rows[row["id"]] = row
        self._next_id += 1
        self.created += 1
        return 201, {"response": self._render(row)}

    def _update(self, request: _Request) -> _Result:
        """``PATCH /api/users``: ``updateUser`` in users.service.ts, which has no transaction:
        the field update lands before the squads are replaced, so an unknown squad leaves the
        fields changed, the old squads removed and answers A039."""
        schema = contract.update_user(self.major, self._now)
        data = self._validate(request, schema, request.body)
        try:
            if self.major < 3 and data.get("uuid"):  # ``uuid ? {uuid} : {username}``
                row = self._find("uuid", data["uuid"].lower())
            elif self.major >= 3 and "id" in data:  # the repository looks by id first
                row = self._find("id", _bigint(data["id"]))
            else:
                row = self._find("username", data.get("username"))
            if row is None:
                raise self._error(request, "USER_NOT_FOUND")
            changes = self._changes(row, data)
        except ValueError:
            raise self._error(request, "UPDATE_USER_ERROR") from None
        row |= changes
        squads = data.get("activeInternalSquads")
        if squads is not None and {s.lower() for s in squads} != {s.lower() for s in row["squads"]}:
            row["squads"] = []
            if any(s.lower() not in self._squad_keys() for s in squads):
                raise self._error(request, "UPDATE_USER_ERROR")
            row["squads"] = list(dict.fromkeys(self._squad_keys()[s.lower()] for s in squads))
        return 200, {"response": self._render(row)}

    def _changes(self, row: Json, data: Json) -> Json:
        """The columns ``updateUser`` writes, with its status rules. Raises ValueError where
        the panel's BigInt() or the database would throw."""
        changes: Json = {"updatedAt": self._now()}
        for field in ("trafficLimitStrategy", "expireAt", "description", "tag", "email"):
            if field in data:
                changes[field] = data[field]
        if "hwidDeviceLimit" in data:
            changes["hwidDeviceLimit"] = data["hwidDeviceLimit"]
        if "telegramId" in data:
            changes["telegramId"] = _bigint(data["telegramId"])
        if data.get("externalSquadUuid"):
            raise ValueError("no such external squad")  # the foreign key fails
        if "externalSquadUuid" in data:
            changes["externalSquadUuid"] = None
        status, wanted = row["status"], data.get("status")
        if status != "ACTIVE" and wanted == "ACTIVE":
            changes["status"] = "ACTIVE"
        if status == "ACTIVE" and wanted == "DISABLED":
            changes["status"] = "DISABLED"
        if "trafficLimitBytes" in data:
            limit = _bigint(data["trafficLimitBytes"])
            changes |= {"trafficLimitBytes": limit, "lastTriggeredThreshold": 0}
            if status == "LIMITED" and (limit > row["trafficLimitBytes"] or limit == 0):
                changes["status"] = "ACTIVE"
        expire = data.get("expireAt")
        renewed = expire is not None and expire != row["expireAt"] and expire > self._now()
        if status == "EXPIRED" and not wanted and renewed:
            changes["status"] = "ACTIVE"
        return changes

    def _get(self, request: _Request, key: str) -> _Result:
        """``GET /api/users/{uuid}`` (2.x) or ``/{id}`` (3.x): 404 A063 when absent; in 3.x a
        fractional id passes zod and then fails ``BigInt()`` in the controller (a bare 500)."""
        row = self._resolve(request, key, None)
        if row is None:
            raise self._error(request, "GET_USER_BY_UNIQUE_FIELDS_NOT_FOUND")
        return 200, {"response": self._render(row)}

    def _get_unique(self, request: _Request, field: str, value: str) -> _Result:
        """``by-username/{u}`` and ``by-short-uuid/{s}``: one user or 404 A063."""
        row = self._find(field, value) if value else None
        if row is None:
            raise self._error(request, "GET_USER_BY_UNIQUE_FIELDS_NOT_FOUND")
        return 200, {"response": self._render(row)}

    def _by_telegram_id(self, request: _Request, value: str) -> _Result:
        """2.x ``by-telegram-id/{id}``: a list, newest first, ``[]`` when nobody matches;
        ``BigInt(value)`` failing is A026; ``0`` matches nobody (no condition at all)."""
        try:
            wanted = _js_bigint(value)
        except ValueError:
            raise self._error(request, "GET_USER_BY_ERROR") from None
        rows = [r for r in self._rows.values() if wanted and r["telegramId"] == wanted]
        rows.sort(key=lambda r: r["id"], reverse=True)
        return 200, {"response": [self._render(r) for r in rows]}

    def _by_tid(self, request: _Request, value: str) -> _Result:
        """2.x ``by-id/{id}``: ``z.coerce.bigint()``."""
        try:
            wanted = _js_bigint(value)
        except ValueError:
            issues = z.Issues(self.zod)
            issues.invalid_type(["id"], "bigint", value)
            raise _validation(issues.items) from None
        row = self._find("id", wanted) if wanted else None
        if row is None:
            raise self._error(request, "GET_USER_BY_UNIQUE_FIELDS_NOT_FOUND")
        return 200, {"response": self._render(row)}

    def _stream(self, request: _Request) -> _Result:
        """``GET /api/users/stream``: keyset pages ordered by id (``getUsersStream`` in
        users.repository.ts). 3.x filters on telegramId, status, ...; 2.8.1 has no filters."""
        query = self._validate(request, contract.stream_query(self.major), request.query)
        rows = sorted(self._rows.values(), key=lambda r: r["id"])
        try:
            if query.get("cursor"):
                cursor = _bigint(float(query["cursor"]))
                rows = [r for r in rows if r["id"] > cursor]
            if "telegramId" in query:
                wanted = _bigint(query["telegramId"])
                rows = [r for r in rows if r["telegramId"] == wanted]
            size = _bigint(query["size"])
        except ValueError:
            raise self._error(request, "GET_ALL_USERS_ERROR") from None
        for field in ("status", "trafficLimitStrategy", "email", "tag", "externalSquadUuid"):
            if query.get(field):
                rows = [r for r in rows if r[field] == query[field]]
        page, more = rows[:size], len(rows) > size
        cursor_out = str(page[-1]["id"]) if more else None
        users = [self._render(r) for r in page]
        return 200, {"response": {"users": users, "nextCursor": cursor_out, "hasMore": more}}

    def _delete(self, request: _Request, key: str) -> _Result:
        """2.x: 200 ``{"response": {"isDeleted": true}}``; 3.x: 204 and no body."""
        row = self._resolve(request, key, "DELETE_USER_ERROR")
        if row is None:
            raise self._error(request, "USER_NOT_FOUND")
        del self._rows[row["id"]]
        self._gone[row["username"]] = row
        if self.major < 3:
            return 200, {"response": {"isDeleted": True}}
        return 204, None

    def _set_status(self, request: _Request, key: str, status: str) -> _Result:
        """``actions/enable`` and ``actions/disable``: a repeat is 400 A030 / A029 at both
        tags; enabling works from any other status (LIMITED and EXPIRED included)."""
        failure = "ENABLE_USER_ERROR" if status == "ACTIVE" else "DISABLE_USER_ERROR"
        row = self._resolve(request, key, failure)
        if row is None:
            raise self._error(request, "USER_NOT_FOUND")
        if row["status"] == status:
            name = "USER_ALREADY_ENABLED" if status == "ACTIVE" else "USER_ALREADY_DISABLED"
            raise self._error(request, name)
        row["status"], row["updatedAt"] = status, self._now()
        return 200, {"response": self._render(row)}

    def _reset_traffic(self, request: _Request, key: str) -> _Result:
        row = self._resolve(request, key, "RESET_USER_TRAFFIC_ERROR")
        if row is None:
            raise self._error(request, "USER_NOT_FOUND")
        now = self._now()
        if row["status"] == "LIMITED":
            row["status"] = "ACTIVE"
        row |= {"usedTrafficBytes": 0, "lastTrafficResetAt": now, "lastTriggeredThreshold": 0}
        row["updatedAt"] = now
        return 200, {"response": self._render(row)}

    def _revoke(self, request: _Request, key: str) -> _Result:
        """New passwords and vlessUuid, and a new shortUuid (so a new subscriptionUrl)
        unless ``revokeOnlyPasswords``; a shortUuid another user has is A027."""
        key = self._key(request, key)  # Nest runs the pipes for @Param() before @Body()
        data = self._validate(request, contract.revoke(self.major), request.body)
        row = self._lookup(request, key, "REVOKE_USER_SUBSCRIPTION_ERROR")
        if row is None:
            raise self._error(request, "USER_NOT_FOUND")
        short_uuid = row["shortUuid"]
        if not data["revokeOnlyPasswords"]:
            short_uuid = data.get("shortUuid") or self._nanoid(16)
        other = self._find("shortUuid", short_uuid)
        if other is not None and other is not row:
            raise self._error(request, "REVOKE_USER_SUBSCRIPTION_ERROR")
        now = self._now()
        row |= {"shortUuid": short_uuid, "trojanPassword": self._nanoid(32)}
        row |= {"vlessUuid": self._uuid4(), "ssPassword": self._nanoid(32)}
        row |= {"subRevokedAt": now, "updatedAt": now}
        return 200, {"response": self._render(row)}

    def _extend(self, request: _Request, key: str) -> _Result:
        """3.x ``actions/extend {days}``: ``max(now, expireAt) + days`` (dayjs rounds a
        fraction), EXPIRED becomes ACTIVE. Not idempotent."""
        key = self._key(request, key)
        data = self._validate(request, contract.extend(), request.body)
        row = self._lookup(request, key, "UPDATE_USER_ERROR")
        if row is None:
            raise self._error(request, "USER_NOT_FOUND")
        now = self._now()
        days = math.floor(data["days"] + 0.5)  # dayjs add(n, 'day') uses Math.round
        row["expireAt"] = max(row["expireAt"], now) + dt.timedelta(days=days)
        if row["status"] == "EXPIRED":
            row["status"] = "ACTIVE"
        row["updatedAt"] = now
        return 200, {"response": self._render(row)}

    # ----------------------------------------------------------------- helpers

    def _key(self, request: _Request, key: str) -> Any:
        """The validated path key: a uuid (2.x) or a positive number (3.x)."""
        param = "uuid" if self.major < 3 else "userId"
        return self._validate(request, contract.user_key(self.major), {param: key})[param]

    def _lookup(self, request: _Request, key: Any, failure: str | None) -> Json | None:
        """Find the user by a validated key. In 3.x ``numberParamSchema`` lets a fraction
        through and ``BigInt()`` throws later: inside the service's try (the ``failure``
        code) or, for GET, in the controller (Nest's bare 500)."""
        if self.major < 3:
            return self._find("uuid", key.lower())
        if not float(key).is_integer():
            if failure is None:
                raise ApiError(500, {"statusCode": 500, "message": "Internal server error"})
            raise self._error(request, failure)
        return self._find("id", int(key))

    def _resolve(self, request: _Request, key: str, failure: str | None) -> Json | None:
        return self._lookup(request, self._key(request, key), failure)

    def _validate(self, request: _Request, schema: z.Schema, value: Any) -> Any:
        parsed, issues = z.validate(self.zod, schema, value)
        if issues:
            raise _validation(issues)
        return parsed

    def _error(self, request: _Request, name: str) -> ApiError:
        code, message, status = contract.ERRORS[name]
        body = {"timestamp": _stamp(self._now()), "path": request.url, "message": message}
        return ApiError(status, body | {"errorCode": code})

    def _watchdog(self) -> None:
        now = self._now()
        for row in self._rows.values():
            if row["status"] in ("ACTIVE", "LIMITED") and row["expireAt"] < now:
                row["status"] = "EXPIRED"
            limit = row["trafficLimitBytes"]
            if row["status"] == "ACTIVE" and limit and row["usedTrafficBytes"] >= limit:
                row["status"] = "LIMITED"

    def _render(self, row: Json) -> Json:
        """``GetFullUserResponseModel`` at the tag, in its field order (2.x adds ``uuid``)."""
        user: Json = {"uuid": row["uuid"]} if self.major < 3 else {}
        user |= {key: row[key] for key in ("id", "shortUuid", "username", "status")}
        user |= {key: row[key] for key in ("trafficLimitBytes", "trafficLimitStrategy")}
        user["expireAt"] = _iso(row["expireAt"])
        user["telegramId"] = row["telegramId"] or None  # ``telegramId ? Number(...) : null``
        for key in ("email", "description", "tag", "hwidDeviceLimit", "externalSquadUuid"):
            user[key] = row[key]
        for key in ("trojanPassword", "vlessUuid", "ssPassword", "lastTriggeredThreshold"):
            user[key] = row[key]
        for key in ("subRevokedAt", "lastTrafficResetAt", "createdAt", "updatedAt"):
            user[key] = _iso(row[key])
        user["subscriptionUrl"] = f"https://{self.sub_domain}/{row['shortUuid']}"
        user["activeInternalSquads"] = [
            {"uuid": squad, "name": self.squads[squad]}
            for squad in row["squads"]
            if squad in self.squads
        ]
        user["userTraffic"] = {
            "usedTrafficBytes": row["usedTrafficBytes"],
            "lifetimeUsedTrafficBytes": row["lifetimeUsedTrafficBytes"],
            "onlineAt": _iso(row["onlineAt"]),
            "lastConnectedNodeUuid": row["lastConnectedNodeUuid"],
            "firstConnectedAt": _iso(row["firstConnectedAt"]),
        }
        return copy.deepcopy(user)

    def _row(self, username: str) -> Json:
        row = self._find("username", username)
        if row is None:
            raise KeyError(username)
        return row

    def _find(self, field: str, value: Any) -> Json | None:
        if value is None:
            return None
        return next((r for r in self._rows.values() if r[field] == value), None)

    def _squad_keys(self) -> dict[str, str]:
        return {squad.lower(): squad for squad in self.squads}

    def _now(self) -> dt.datetime:
        now = self.now().astimezone(UTC)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def _nanoid(self, size: int) -> str:
        return "".join(self._rng.choice(_ALPHABET) for _ in range(size))

    def _uuid4(self) -> str:
        return str(uuid_module.UUID(int=self._rng.getrandbits(128), version=4))


@attrs.frozen
class _Request:
    url: str  # as Express's request.url: the raw path and query
    body: Any  # the parsed JSON body, or z.MISSING
    query: dict[str, Any]


_Result = tuple[int, Any]


def _unmodelled(request: _Request) -> _Result:
    raise ApiError(501, {"message": "FakeRemnawave does not model this route", "statusCode": 501})


def _validation(issues: list[Json]) -> ApiError:
    return ApiError(400, {"statusCode": 400, "message": "Validation failed", "errors": issues})


def _json(status: int, payload: Any) -> tuple[int, bytes, bytes]:
    if status == 204:
        return 204, b"", b""
    return status, b"application/json; charset=utf-8", compact(payload)


def _json_body(call: PanelCall) -> Any:
    """What ``express.json()`` leaves in ``req.body``: undefined unless the content type
    is JSON; ``{}`` for an empty JSON body; only objects and arrays (``strict``)."""
    content_type = call.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return z.MISSING
    if not call.body.strip():
        return {}
    try:
        body = json.loads(call.body)
    except json.JSONDecodeError as error:
        raise ValueError(f"Unexpected token in JSON at position {error.pos}") from None
    except UnicodeDecodeError:
        raise ValueError("Unexpected token in JSON at position 0") from None
    if not isinstance(body, dict | list):  # body-parser's strict mode
        raise ValueError("Unexpected token in JSON at position 0")
    return body


def _segments(raw_path: str) -> list[str]:
    parts = [unquote(part) for part in raw_path.split("/")[1:]]
    if parts and parts[-1] == "":
        parts.pop()  # Express's non-strict routing ignores one trailing slash
    return parts[1:] if parts[:1] == ["api"] else ["-"]


def _query(query: str) -> dict[str, Any]:
    """Express 5's "simple" query parser: a repeated key gives a list."""
    result: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in result:
            previous = result[key]
            result[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            result[key] = value
    return result


def _bigint(value: Any) -> Any:
    """``BigInt(value)`` followed by a PostgreSQL BIGINT column: None and MISSING pass."""
    if value is None or value is z.MISSING:
        return None
    if not float(value).is_integer() or not -_INT64 <= int(value) < _INT64:
        raise ValueError(value)
    return int(value)


def _js_bigint(text: str) -> int:
    """``BigInt(string)``: decimal (optionally signed) or 0x/0o/0b, whitespace trimmed."""
    text = text.strip()
    if not text:
        return 0
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if re.fullmatch(r"0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+", text):
        return int(text, 0)
    raise ValueError(text)


def _stamp(moment: dt.datetime) -> str:
    """``Date.prototype.toJSON``: UTC with milliseconds and a ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else _stamp(moment)
