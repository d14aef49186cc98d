"""A fake Hiddify panel (hiddifypanel 12.3.0, user API v2) on loopback, as strict as the real one.

Written from the panel's sources (``hiddify/hiddifypanel`` tag v12.3.0 = 1ec6f5be; the user
API is unchanged since 10.80.11), never from the shop's client::

    panel = FakeHiddify()
    base_url = await nursery.start(panel.serve)   # http://127.0.0.1:40123/<proxy_path_admin>
    # the client calls f"{base_url}/api/v2/admin/user/" with the Hiddify-API-Key header
    panel.use_traffic(user_uuid, 27)              # GB

What a request meets, in Flask's order (``hiddifypanel/base.py``: ``APIFlask(...,
json_errors=False)``; ``panel/common.py``; ``auth.py``; ``hutils/flask.py``):

1. ``base_middleware`` (before_request, so before routing is resolved): a User-Agent that
   ``user_agents`` calls a bot gets 400 "invalid"; then ``proxy_path_validator``: a first
   path segment that is neither proxy path gets 400 "invalid request", and so does an
   ``/api/v2/admin/`` path under the client proxy path. Then ``auth_before_request``: a
   ``Hiddify-API-Key`` header is looked up among admins on the admin proxy path (users on the
   client path; "api_key equals uuid for now"); no match is 403 ``'Unathorized'`` (sic, from
   ``redirect_to_login`` on API paths). With no key the request goes on as anonymous.
2. Routing (``restapi/v2/admin/__init__.py``, ``restapi/v2/panel/__init__.py``): the routes
   end in ``/``; a request without it gets werkzeug's 308 redirect (HTML, ``Location``) when
   the slashed route takes the method. No route: werkzeug's NotFound, which the catch-all
   ``errorhandler(Exception)`` turns into **500** ``{"msg": "404 Not Found: ..."}`` on API
   paths; a wrong method likewise 500 ``{"msg": "405 Method Not Allowed: ..."}``. ``<uuid:
   uuid>`` is werkzeug's UUIDConverter (any case; a non-uuid segment does not match).
3. ``login_required``: an anonymous caller (or a user, not an admin) gets 403 'Unathorized'.
4. apiflask ``@app.input`` with marshmallow (``restapi/v2/admin/schema.py``): unknown fields,
   wrong types, a missing ``name`` on POST, null where not allowed -> **422**. A body that is
   not JSON by content type counts as ``{}``; malformed JSON is werkzeug's BadRequest -> 500.
5. The views (``user_api.py``, ``users_api.py``) and ``User.add_or_update``
   (``models/user.py``, ``models/base_account.py``).

Error bodies (``panel/common.py`` HTTPError handler): if the ``Accept`` header accepts HTML
in werkzeug's sense (``*/*`` does; httpx sends that by default) API paths answer
``{"msg": message}``; otherwise apiflask's ``{"detail": ..., "message": ...}``.

Checked by running the pinned libraries (apiflask 3.0.2, marshmallow 4.2.2, werkzeug
3.1.5, flask 3.1.2, user-agents 2.2.0 from the panel's uv.lock) against a copy of the
schema, the error handlers and the route table: the 422/308/500 shapes, marshmallow's
coercions (``"50"`` is a float, ``5.5`` an Integer 5, ``true`` not a number) and the
``Accept`` rule.

Deliberate simplifications: one super admin (``api_key``), so sub-admin ownership (403
"You don't have permission to access this user") is not modelled; the panel's "today" is
the fake's clock in UTC (the real one is the server's local date); ``mode`` resets
(monthly/weekly/daily) and the usage job's ``is_active`` bookkeeping are not modelled
beyond ``start_date`` being set at first use; the bot test approximates ua-parser's
Spider rule with a regex. Not modelled (stricter than the panel): Basic auth (the panel
takes the admin uuid as username), OPTIONS/HEAD, and the other admin routes (``me/``,
``admin_user/``, ... answer like unknown routes).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import re
import secrets
import uuid as uuid_module
from http import HTTPStatus
from typing import Any

import trio

from shop.clock import UTC, WallClock

from ..providers._base import Call, FakeProvider, Json, Receive, Send

API_KEY = "4f1d2c3b-9a8e-4b7c-8d6e-5f4a3b2c1d0e"  # the super admin's uuid
PROXY_PATH_ADMIN = "Xq7adminPath3k"
PROXY_PATH_CLIENT = "Zr9clientPath2m"
VERSION = "12.3.0"
ONE_GIG = 1024**3
#: ``User.usage_limit_GB``/``current_usage_GB`` setters clamp to this (models/user.py).
MAX_GB = 1_000_000
MODES = ("no_reset", "monthly", "weekly", "daily")  # UserMode
LANGS = ("en", "fa", "ru", "pt", "zh", "my")  # Lang, models/config_enum.py
#: werkzeug's UUIDConverter.regex
_UUID_PATH = re.compile(
    r"[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}"
)
#: ua-parser's generic Spider device rule, approximated (``shop-bot/1`` and
#: ``ShopBot/1`` are bots; ``python-httpx/0.28`` is not).
_BOT = re.compile(r"bot|spider|crawl", re.IGNORECASE)
_NOT_FOUND = (
    "404 Not Found: The requested URL was not found on the server. If you entered the URL"
    " manually please check your spelling and try again."
)
_NOT_ALLOWED = "405 Method Not Allowed: The method is not allowed for the requested URL."
_BAD_JSON = (
    "400 Bad Request: The browser (or proxy) sent a request that this server could not understand."
)
# marshmallow field kinds of UserSchema: name -> (kind, allow_none)
_FIELDS: dict[str, tuple[str, bool]] = {
    "uuid": ("uuid", True),
    "name": ("str", True),
    "usage_limit_GB": ("float", True),
    "package_days": ("int", True),
    "mode": ("mode", True),
    "last_online": ("friendly_time", True),
    "start_date": ("date", True),
    "current_usage_GB": ("float", True),
    "last_reset_time": ("friendly_time", True),
    "comment": ("str", True),
    "added_by_uuid": ("uuid", True),
    "telegram_id": ("int", True),
    "ed25519_private_key": ("str", True),
    "ed25519_public_key": ("str", True),
    "wg_pk": ("str", True),
    "wg_pub": ("str", True),
    "wg_psk": ("str", True),
    "lang": ("lang", True),
    "enable": ("bool", False),
    "is_active": ("bool", False),
}
_TRUTHY = {"t", "T", "true", "True", "TRUE", "on", "On", "ON", "y", "Y", "yes", "Yes", "YES", "1"}
_FALSY = {"f", "F", "false", "False", "FALSE", "off", "Off", "OFF", "n", "N", "no", "No", "NO", "0"}


class HiddifyError(Exception):
    """An apiflask ``HTTPError`` (``abort(status, message)``), rendered by Accept."""

    def __init__(self, status: int, message: str, detail: Json | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail or {}


class ServerError(Exception):
    """Any other exception: ``errorhandler(Exception)`` answers 500 ``{"msg": str(e)}``."""


class FakeHiddify(FakeProvider):
    """The panel: users in memory, answering over real HTTP.

    Attributes tests read: ``calls`` (paths relative to the admin proxy path, e.g.
    ``/api/v2/admin/user/``), ``calls_to(method, path)``, ``created`` (users really
    created), ``users`` (uuid -> the user as the API shows it), ``base_url`` (the admin
    URL the client takes) and ``client_url`` (``http://host/<proxy_path_client>``).
    """

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        proxy_path_admin: str = PROXY_PATH_ADMIN,
        proxy_path_client: str = PROXY_PATH_CLIENT,
        version: str = VERSION,
        clock: WallClock | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self.api_key = api_key
        self.admin_path = proxy_path_admin
        self.client_path = proxy_path_client
        self.prefix = f"/{proxy_path_admin}"
        self.version = version
        self._rows: dict[str, Json] = {}  # uuid -> the row, in the panel's own types
        self._next_id = 1
        self._holds: dict[str, tuple[int, list[trio.Event]]] = {}
        self._lost_method: str | None = None

    @property
    def client_url(self) -> str:
        return self.base_url[: -len(self.prefix)] + f"/{self.client_path}"

    # ----------------------------------------------------------------- test controls

    @property
    def users(self) -> dict[str, Json]:
        """Every user as ``GET /user/<uuid>/`` would show it now."""
        return {key: self._render(row) for key, row in self._rows.items()}

    def use_traffic(self, user_uuid: str, gb: float) -> None:
        """The nodes report ``gb`` GB more traffic. Like the usage SQL in
        ``panel/init_db.py`` (l.141) it sets ``start_date`` at first use."""
        row = self._rows[user_uuid]
        row["current_usage"] = min(MAX_GB * ONE_GIG, row["current_usage"] + round(gb * ONE_GIG))
        row["last_online"] = self.now().astimezone(UTC).replace(tzinfo=None, microsecond=0)
        if row["start_date"] is None:
            row["start_date"] = self._today()

    def lose_answers(self, times: int = 1, *, method: str | None = None) -> None:
        """Carry out the next ``times`` requests (of ``method``, if given) but answer 504,
        as the reverse proxy in front does when it gave up waiting."""
        self._lost += times
        self._lost_method = method

    def hold(self, method: str, count: int) -> None:
        """Hold requests of ``method`` until ``count`` of them are waiting, then let them
        all through (to make concurrent clients meet in a chosen step)."""
        self._holds[method] = (count, [])

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
        path: str = scope["path"]
        call = Call(scope["method"], path, headers, bytes(body), trio.current_time())
        if path.startswith(self.prefix + "/"):
            call.path = path[len(self.prefix) :]
        self.calls.append(call)
        await self._wait_for_hold(call.method)
        status, content_type, data, extra = self._answer(call, path, scope)
        if self._outage is None and self._lost and self._lost_method in (None, call.method):
            self._lost -= 1  # carried out, but the proxy in front gave up waiting
            status, content_type, data, extra = 504, "text/plain", b"Gateway Timeout", []
        call.status = status
        out = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(data))]
        if self._outage is None and status != 504:
            # panel/common.py ``apply_no_robot`` (after_request)
            out += [(b"x-robots-tag", b"noindex, nofollow"), (b"referrer-policy", b"same-origin")]
        out += extra
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": data})

    async def _wait_for_hold(self, method: str) -> None:
        if method not in self._holds:
            return
        count, waiting = self._holds[method]
        event = trio.Event()
        waiting.append(event)
        if len(waiting) >= count:
            del self._holds[method]
            for other in waiting:
                other.set()
        await event.wait()

    def _answer(
        self, call: Call, path: str, scope: Json
    ) -> tuple[int, str, bytes, list[tuple[bytes, bytes]]]:
        if self._outage is not None:
            phrase = HTTPStatus(self._outage).phrase.encode()
            return self._outage, "text/plain", phrase, []
        html = _accepts_html(call.headers.get("accept", ""))
        try:
            account = self._before_request(call, path)
            route = self._route(call.method, path)
            if isinstance(route, str):  # werkzeug's strict-slashes redirect
                query = scope.get("query_string", b"").decode("latin-1")
                host = call.headers.get("host", "localhost")
                location = f"http://{host}{route}" + (f"?{query}" if query else "")
                return (
                    308,
                    "text/html; charset=utf-8",
                    _redirect_page(location),
                    [(b"location", location.encode())],
                )
            if account != "admin":  # login_required({super_admin, admin, agent})
                raise HiddifyError(403, "Unathorized")
            handler, args = route
            status, payload = handler(call, *args)
        except HiddifyError as error:
            if html:
                status, payload = error.status, {"msg": error.message}
            else:
                status, payload = error.status, {"detail": error.detail, "message": error.message}
        except ServerError as error:
            status, payload = 500, {"msg": str(error)}
        # Flask's JSON provider sorts keys and ends with a newline
        data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        return status, "application/json", data, []

    def _before_request(self, call: Call, path: str) -> str | None:
        """``base_middleware`` + ``auth_before_request``: who is calling ("admin", "user"
        or None for anonymous); raises 400/403 as those do."""
        if _BOT.search(call.headers.get("user-agent", "")):
            raise HiddifyError(400, "invalid")
        first = path.lstrip("/").split("/")[0]
        if not first or first not in (self.admin_path, self.client_path):
            raise HiddifyError(400, "invalid request")
        if "/api/v2/admin/" in path and first != self.admin_path:
            raise HiddifyError(400, "invalid request")
        admin_path = first == self.admin_path
        key = call.headers.get("hiddify-api-key")
        if key:
            return self._account(key, admin_path) or _unauthorized()
        return None

    def _account(self, key: str, admin_path: bool) -> str | None:
        if admin_path:
            return "admin" if key == self.api_key else None
        return "user" if key in self._rows else None

    def _route(self, method: str, path: str) -> Any:
        """The handler and its arguments, a redirect target, or werkzeug's errors."""
        # the rules are ``/<proxy_path>/api/v2/...``: any first segment matches them
        rest = "/" + path.lstrip("/").partition("/")[2]
        found = self._match(rest)
        if found is not None:
            methods, handler, args = found
            if method not in methods:
                raise ServerError(_NOT_ALLOWED)
            return handler.get(method), args
        slashed = self._match(rest + "/") if not rest.endswith("/") else None
        if slashed is not None and method in slashed[0]:
            return path + "/"
        raise ServerError(_NOT_FOUND)

    def _match(self, rest: str) -> tuple[tuple[str, ...], dict[str, Any], tuple[Any, ...]] | None:
        if rest == "/api/v2/admin/user/":
            return ("GET", "POST"), {"GET": self._list, "POST": self._create}, ()
        match = re.fullmatch(r"/api/v2/admin/user/([^/]+)/", rest)
        if match and _UUID_PATH.fullmatch(match[1]):
            key = str(uuid_module.UUID(match[1]))
            handlers = {"GET": self._get, "PATCH": self._patch, "DELETE": self._delete}
            return ("GET", "PATCH", "DELETE"), handlers, (key,)
        if rest == "/api/v2/panel/info/":
            return ("GET",), {"GET": self._info}, ()
        return None

    # ----------------------------------------------------------------- the API

    def _info(self, call: Call) -> tuple[int, Json]:
        return 200, {"version": self.version}  # restapi/v2/panel/info.py

    def _list(self, call: Call) -> tuple[int, Any]:
        if not self._rows:
            raise HiddifyError(404, "You have no user")
        return 200, [self._render(row) for row in self._rows.values()]

    def _get(self, call: Call, key: str) -> tuple[int, Json]:
        row = self._rows.get(key) or _abort(404, "User not found")
        return 200, self._render(row)

    def _create(self, call: Call) -> tuple[int, Json]:
        """``UsersApi.post``: 400 "The user exists" for a known uuid; an invalid uuid is
        *silently replaced* by a new uuid4 (``FriendlyUUID`` loads it as None)."""
        data = _load(call, post=True)
        if data.get("uuid") and data["uuid"] in self._rows:
            raise HiddifyError(400, "The user exists")
        key = data.get("uuid") or str(uuid_module.uuid4())
        row = self._new_row(key)
        self._update(row, data)
        self._rows[key] = row
        self.created += 1
        return 200, self._render(row)

    def _patch(self, call: Call, key: str) -> tuple[int, Json]:
        row = self._rows.get(key) or _abort(404, "user not found")  # lower case, as in source
        data = _load(call, post=False)
        new_key = data.get("uuid")
        if new_key and new_key != key:  # add_or_update moves the account to a valid uuid
            if new_key in self._rows:
                raise ServerError("(IntegrityError) UNIQUE constraint failed: user.uuid")
            self._rows[new_key] = self._rows.pop(key)
            row["uuid"] = new_key
        self._update(row, data)
        return 200, self._render(row)

    def _delete(self, call: Call, key: str) -> tuple[int, Json]:
        self._rows.get(key) or _abort(404, "user not found")
        del self._rows[key]
        return 200, {"msg": "ok", "status": 200}

    # ----------------------------------------------------------------- the model

    def _new_row(self, key: str) -> Json:
        """``User.by_uuid(..., create=True)``: the column defaults of models/user.py."""
        row = {
            "id": self._next_id,
            "uuid": key,
            "name": "unknown",
            "comment": "",
            "telegram_id": None,
            "lang": None,
            "usage_limit": 1000 * ONE_GIG,
            "current_usage": 0,
            "package_days": 90,
            "mode": "no_reset",
            "start_date": None,
            "last_reset_time": self._today(),
            "last_online": dt.datetime.min,
            "enable": True,
            "ed25519_private_key": secrets.token_hex(16),
            "ed25519_public_key": secrets.token_hex(16),
            "wg_pk": secrets.token_hex(16),
            "wg_pub": secrets.token_hex(16),
            "wg_psk": secrets.token_hex(16),
        }
        self._next_id += 1
        return row

    def _update(self, row: Json, data: Json) -> None:
        """``User.add_or_update`` (and ``BaseAccount.add_or_update``): only keys that are
        not None change; ``start_date`` only together with ``package_days``."""
        for field in ("name", "comment", "lang"):
            if data.get(field) is not None:
                row[field] = data[field]
        if data.get("telegram_id") is not None:
            row["telegram_id"] = data["telegram_id"] or None  # hutils.convert.to_int
            if row["telegram_id"] is not None and not -(2**63) <= row["telegram_id"] < 2**63:
                raise ServerError("(DataError) telegram_id out of range for BIGINT")
        if data.get("package_days") is not None:
            if not -(2**31) <= data["package_days"] < 2**31:
                raise ServerError("(DataError) package_days out of range for INTEGER")
            row["package_days"] = data["package_days"]
            if data.get("start_date"):
                row["start_date"] = data["start_date"]
            elif "start_date" in data and data["start_date"] is None:
                row["start_date"] = None
        if data.get("current_usage_GB") is not None:
            row["current_usage"] = _bytes(data["current_usage_GB"])
        if data.get("usage_limit_GB") is not None:
            row["usage_limit"] = _bytes(data["usage_limit_GB"])
        if data.get("enable") is not None:
            row["enable"] = data["enable"]
        for key in ("wg_pk", "wg_pub", "wg_psk"):
            if data.get(key) is not None:
                row[key] = data[key]
        if data.get("ed25519_private_key") and data.get("ed25519_public_key"):
            row["ed25519_private_key"] = data["ed25519_private_key"]
            row["ed25519_public_key"] = data["ed25519_public_key"]
        if data.get("mode") is not None:
            row["mode"] = data["mode"]
        if data.get("last_online") is not None:
            moment = data["last_online"]
            row["last_online"] = moment if isinstance(moment, dt.datetime) else dt.datetime.min

    def _render(self, row: Json) -> Json:
        """``User.to_schema()`` dumped through ``UserSchema`` (``to_dict`` + marshmallow)."""
        today = self._today()
        if row["package_days"] is None:
            remaining = -1
        elif row["start_date"] is not None:
            remaining = row["package_days"] - (today - row["start_date"]).days
        else:
            remaining = row["package_days"]
        remaining = min(remaining, 10000)
        active = row["enable"] and row["usage_limit"] >= row["current_usage"] and remaining >= 0
        start = row["start_date"]
        user = {
            "added_by_uuid": self.api_key,
            "comment": row["comment"],
            "current_usage_GB": row["current_usage"] / ONE_GIG,
            "enable": row["enable"],
            "id": row["id"],
            "is_active": active,
            "lang": row["lang"] or "en",  # hconfig(ConfigEnum.lang) when unset
            "last_online": _time_to_json(row["last_online"]),
            "last_reset_time": f"{row['last_reset_time'].isoformat()} 00:00:00",
            "mode": row["mode"],
            "name": row["name"],
            "package_days": row["package_days"],
            "start_date": start.isoformat() if start is not None else None,
            "telegram_id": row["telegram_id"],
            "usage_limit_GB": row["usage_limit"] / ONE_GIG,
            "uuid": row["uuid"],
        }
        for key in ("ed25519_private_key", "ed25519_public_key", "wg_pk", "wg_pub", "wg_psk"):
            user[key] = row[key]
        return copy.deepcopy(user)

    def _today(self) -> dt.date:
        return self.now().astimezone(UTC).date()


# ----------------------------------------------------------------------- marshmallow


def _load(call: Call, *, post: bool) -> Json:
    """apiflask ``@app.input(PostUserSchema | PatchUserSchema)``: the loaded data or 422."""
    content_type = call.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )
    raw: Any = {}
    if is_json and call.body.strip():
        try:
            raw = json.loads(call.body)
        except (ValueError, UnicodeDecodeError):
            raise ServerError(_BAD_JSON) from None
    if not isinstance(raw, dict):
        raise _invalid({"_schema": ["Invalid input type."]})
    errors: dict[str, list[str]] = {}
    data: Json = {"comment": None}  # comment has load_default=None
    for name, value in raw.items():
        if name not in _FIELDS:
            errors[name] = ["Unknown field."]
            continue
        kind, allow_none = _FIELDS[name]
        if value is None:
            if allow_none and not (post and name == "name"):
                data[name] = None
            else:
                errors[name] = ["Field may not be null."]
            continue
        try:
            data[name] = _field(kind, value)
        except ValueError as error:
            errors[name] = [str(error)]
    if post and "name" not in raw:
        errors["name"] = ["Missing data for required field."]
    if errors:
        raise _invalid(errors)
    return data


def _field(kind: str, value: Any) -> Any:
    """One marshmallow field's ``deserialize`` (4.2.2), raising ValueError(message)."""
    if kind == "uuid":  # FriendlyUUID: an invalid uuid loads as None, without an error
        return value if _is_uuid_valid(value) else None
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError("Not a valid string.")
        return value
    if kind == "float":
        return _number(value, float, "Not a valid number.")
    if kind == "int":
        return _number(value, int, "Not a valid integer.")
    if kind == "bool":
        if value is True or value is False:
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and (value in _TRUTHY or value in _FALSY):
            return value in _TRUTHY
        raise ValueError("Not a valid boolean.")
    if kind in ("mode", "lang"):
        names = MODES if kind == "mode" else LANGS
        if isinstance(value, str) and value in names:
            return value
        raise ValueError(f"Must be one of: {', '.join(names)}.")
    if kind == "date":
        try:
            return dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            raise ValueError("Not a valid date.") from None
    # FriendlyDateTime: hutils.convert.json_to_time, which never fails
    try:
        return dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return value


def _number(value: Any, kind: type, invalid: str) -> Any:
    if value is True or value is False or not isinstance(value, int | float | str):
        raise ValueError(invalid)
    try:
        if kind is float:
            number = float(value)
            if math.isnan(number) or math.isinf(number):
                raise ValueError("Special numeric values (nan or infinity) are not permitted.")
            return number
        return int(value)  # non-strict Integer: 5.5 -> 5, "5" -> 5, "5.5" fails
    except OverflowError:
        raise ValueError("Number too large.") from None
    except ValueError as error:
        if "Special" in str(error):
            raise
        raise ValueError(invalid) from None


def _is_uuid_valid(value: Any) -> bool:
    """``hutils.auth.is_uuid_valid``: a canonical lower-case version-4 uuid string."""
    try:
        return bool(str(uuid_module.UUID(value, version=4)) == value)
    except Exception:
        return False


def _invalid(errors: dict[str, list[str]]) -> HiddifyError:
    return HiddifyError(422, "Validation error", {"json": errors})


# ----------------------------------------------------------------------- helpers


def _abort(status: int, message: str) -> Any:
    raise HiddifyError(status, message)


def _unauthorized() -> Any:
    raise HiddifyError(403, "Unathorized")


def _accepts_html(accept: str) -> bool:
    """werkzeug ``MIMEAccept.accept_html``: text/html or (x)html/xml by any wildcard
    (q values are not consulted); no Accept header at all is False."""
    ranges = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    html = {"*/*", "text/*", "text/html", "application/*", "application/xhtml+xml"}
    return bool(ranges & (html | {"application/xml"}))


def _bytes(gb: float) -> int:
    """The ``*_GB`` setters: ``min(1000000 * ONE_GIG, (value or 0) * ONE_GIG)``."""
    return round(min(MAX_GB * ONE_GIG, (gb or 0) * ONE_GIG))


def _time_to_json(moment: dt.datetime) -> str:
    """``hutils.convert.time_to_json`` with its zero-padded year."""
    return f"{moment.year:04d}" + moment.strftime("-%m-%d %H:%M:%S")


def _redirect_page(location: str) -> bytes:
    """werkzeug's ``redirect()`` body."""
    return (
        "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n"
        "<h1>Redirecting...</h1>\n<p>You should be redirected automatically to the target"
        f' URL: <a href="{location}">{location}</a>. If not, click the link.\n'
    ).encode()


__all__ = ["API_KEY", "ONE_GIG", "VERSION", "FakeHiddify"]
