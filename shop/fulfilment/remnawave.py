"""Remnawave (2.x from 2.2, and 3.x): one VPN panel account per customer.

Facts from the panel's sources (EXTERNAL-APIS.md §C.1, §C.1d):

- Every request carries ``Authorization: Bearer``, and ``X-Forwarded-For`` plus
  ``X-Forwarded-Proto: https`` (without them the panel drops the connection unanswered);
  behind Caddy's auth also ``X-Api-Key``.
- ``GET /api/system/metadata`` says the version (from 2.5.0; older panels answer 404).
- A customer's account is the username ``tg_<telegram_id>`` (or, for an account adopted
  from another bot by ``shop panel import``, the name stored in ``panel_accounts``), found with
  ``GET /api/users/by-username/{u}`` (404 ``A063`` when absent) on both majors, and
  changed with ``PATCH /api/users {username, ...}`` (by username since 2.2.0). Actions
  that need a path key (``reset-traffic``) take ``uuid`` on 2.x and ``id`` on 3.x.
- Create is looked up first; a create answered ``A019`` (the username exists: a create
  that timed out after the panel stored it, or another shop on the same database) is
  looked up again and adopted only if its ``telegramId`` is this customer's.
- Expiry is always an absolute ``expireAt`` (never ``actions/extend``, which adds days
  again on a retry); revocation sets ``DISABLED`` (a past ``expireAt`` is refused).
- Traffic: the account's ``description`` records how many grants its traffic counts
  (``shop:grants=N``). With ``TRAFFIC_ON_RENEWAL=carry`` each new grant raises
  ``trafficLimitBytes`` by the plan's traffic, so what was left carries over (50 GB
  bought, 27 used, renew 50: 73 left); the limit and the record change in one PATCH, so
  a repeat adds nothing. With ``reset`` a new grant resets the used traffic first, then
  sets the plan's limit and the record.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import attrs
import httpx

from ..errors import FulfilmentFailed, StartupFailed
from ..store import Store, panel_accounts
from ..telegram.texts import Texts
from .base import Access, Adoptable

log = logging.getLogger(__name__)

GB = 1024**3
#: expireAt of a lifetime subscription (Remnawave has no "never").
LIFETIME_EXPIRY = dt.datetime(2099, 12, 31, tzinfo=dt.UTC)
_GRANTS = re.compile(r"shop:grants=(\d+)")
#: What we send as the client address; any value satisfies the panel's proxy check.
_FORWARDED = {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https"}


def username(telegram_id: int) -> str:
    return f"tg_{telegram_id}"


@attrs.frozen
class PanelUser:
    """What the shop reads of a panel account."""

    key: str  # the path key of actions: uuid (2.x) or id (3.x)
    username: str
    telegram_id: int | None
    status: str
    expire_at: dt.datetime | None
    traffic_limit: int
    used_traffic: int
    devices: int | None
    squads: tuple[str, ...]
    grants: int  # from the description's record; 0 when it has none
    subscription_url: str


class Remnawave:
    name = "remnawave"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        url: str,
        token: str,
        caddy_token: str | None = None,
        traffic_on_renewal: str = "carry",
        texts: Texts | None = None,
        store: Store | None = None,
    ) -> None:
        self._http = http
        self._texts = texts
        self._store = store  # names of accounts adopted from another bot
        self._base = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", **_FORWARDED}
        if caddy_token:
            self._headers["X-Api-Key"] = caddy_token
        self._carry = traffic_on_renewal == "carry"
        self.version = "unknown"

    # -- start -----------------------------------------------------------------------

    async def check(self) -> str:
        """Read and check the panel's version; raises FulfilmentFailed if unsupported."""
        status, body = await self._request("GET", "/api/system/metadata")
        if status == 404:
            self.version = "2.2-2.4"  # metadata came with 2.5.0
        elif status == 200:
            self.version = str(_response(body).get("version", ""))
        else:
            raise FulfilmentFailed(self.name, f"version check answered {status}")
        major = self.version.split(".")[0]
        if major not in ("2", "3") or self.version.startswith(("2.0.", "2.1.")):
            raise StartupFailed(
                f"REMNAWAVE_URL: Remnawave {self.version} is not supported (2.2 or later, or 3.x)",
                code=2,
            )
        return self.version

    # -- the interface -----------------------------------------------------------------

    async def apply(self, access: Access) -> None:
        user = await self.find(access.telegram_id)
        if user is None:
            if not access.active:
                return  # no account, no access: nothing to take away
            user = await self._create(access)
        self._check_owner(user, access.telegram_id)
        await self._update(user, access)

    async def access_text(self, telegram_id: int, language: str) -> str | None:
        """The subscription link, traffic used and left, and the device limit."""
        user = await self.find(telegram_id)
        if user is None or user.status != "ACTIVE":
            return None
        link = html.escape(user.subscription_url)
        if self._texts is None:
            return f"🔑 <code>{link}</code>"
        t = partial(self._texts, language)
        lines = [t("access.link", url=link)]
        used = _gigabytes(user.used_traffic)
        if user.traffic_limit:
            left = _gigabytes(max(0, user.traffic_limit - user.used_traffic))
            lines.append(
                t("access.traffic", used=used, left=left, limit=_gigabytes(user.traffic_limit))
            )
        else:
            lines.append(t("access.traffic_unlimited", used=used))
        if user.devices:
            lines.append(t("access.devices", count=user.devices))
        return "\n".join(lines)

    async def subscription_link(self, telegram_id: int) -> str | None:
        """The customer's subscription URL (None without an active account)."""
        user = await self.find(telegram_id)
        return user.subscription_url if user is not None and user.status == "ACTIVE" else None

    async def reset_link(self, telegram_id: int) -> bool:
        """A new subscription link (``actions/revoke``); the old one stops working."""
        user = await self.find(telegram_id)
        if user is None:
            return False
        self._check_owner(user, telegram_id)
        await self._action(user, "revoke")
        return True

    # -- users -------------------------------------------------------------------------

    async def everyone(self) -> AsyncIterator[PanelUser]:
        """Every account on the panel (``GET /api/users/stream``, keyset pages by id; in
        2.8 and 3.x), for ``shop panel import``."""
        cursor: str | None = None
        while True:
            query = "?size=500" + (f"&cursor={cursor}" if cursor else "")
            status, body = await self._request("GET", f"/api/users/stream{query}")
            if status != 200:
                raise FulfilmentFailed(self.name, f"listing answered {status} {_code(body)}")
            page = _response(body)
            for data in page.get("users") or []:
                yield _user(data)
            cursor = page.get("nextCursor")
            if not page.get("hasMore") or not cursor:
                return

    async def adoptable(self) -> AsyncIterator[Adoptable]:
        """Every account as ``shop panel import`` reads it."""
        async for user in self.everyone():
            yield Adoptable(
                telegram_id=user.telegram_id,
                account=user.username,
                label=user.username,
                expires_at=user.expire_at,
                usable=user.status in ("ACTIVE", "LIMITED"),
            )

    async def find(self, telegram_id: int) -> PanelUser | None:
        name = username(telegram_id)
        if self._store is not None:  # an account adopted by ``shop panel import``
            stored: str | None = await self._store.run(panel_accounts.find, telegram_id, self.name)
            name = stored or name
        status, body = await self._request("GET", f"/api/users/by-username/{name}")
        if status == 404:
            return None
        if status != 200:
            raise FulfilmentFailed(self.name, f"lookup answered {status} {_code(body)}")
        return _user(_response(body))

    async def _create(self, access: Access) -> PanelUser:
        body: dict[str, Any] = {
            "username": username(access.telegram_id),
            "expireAt": _iso(_expiry(access)),
            "status": "ACTIVE",
            "telegramId": access.telegram_id,
            "trafficLimitStrategy": "NO_RESET",
            "description": f"shop:grants={access.grants}",
        }
        limits = access.limits
        if limits is not None:  # otherwise the panel's defaults
            plan_bytes = (limits.traffic_gb or 0) * GB
            body |= {
                "trafficLimitBytes": plan_bytes * (access.grants if self._carry else 1),
                "hwidDeviceLimit": limits.devices or 0,
                "activeInternalSquads": list(limits.squads),
            }
        status, answer = await self._request("POST", "/api/users", body)
        if status == 201:
            return _user(_response(answer))
        if status == 400 and _code(answer) == "A019":
            # Stored by an earlier create whose answer was lost, or by another instance;
            # adopted only if it is this customer's (see _check_owner).
            found = await self.find(access.telegram_id)
            if found is not None:
                return found
        raise FulfilmentFailed(self.name, f"create answered {status} {_code(answer)}")

    def _check_owner(self, user: PanelUser, telegram_id: int) -> None:
        """Never change an account that is someone else's (another bot's, made by hand)."""
        if user.telegram_id == telegram_id:
            return
        log.error(
            "ALERT: Remnawave user %s belongs to telegramId %s, not %s; left alone",
            user.username,
            user.telegram_id,
            telegram_id,
        )
        raise FulfilmentFailed(self.name, f"{user.username} belongs to another telegramId")

    async def drift(self, access: Access) -> list[str]:
        """How the panel differs from ``access`` (``shop panel sync``); [] when it matches."""
        user = await self.find(access.telegram_id)
        if user is None:
            return ["no account"] if access.active else []
        if user.telegram_id != access.telegram_id:
            return [f"{user.username} belongs to telegramId {user.telegram_id}: left alone"]
        changes, action = self._plan(user, access)
        found = [f"{key}: {_shown(user, key)} -> {value}" for key, value in changes.items()]
        return found + ([f"action {action}"] if action else [])

    async def _update(self, user: PanelUser, access: Access) -> None:
        changes, action = self._plan(user, access)
        if action is not None:
            # PATCH disables only an ACTIVE user (updateUser); an action does the rest.
            await self._action(user, action, ok_codes=("A029",) if action == "disable" else ())
        if not changes:
            return  # the panel already matches: no call
        status, body = await self._request(
            "PATCH", "/api/users", {"username": user.username, **changes}
        )
        if status != 200:
            raise FulfilmentFailed(self.name, f"update answered {status} {_code(body)}")

    def _plan(self, user: PanelUser, access: Access) -> tuple[dict[str, Any], str | None]:
        """The PATCH fields and the action (``disable``, ``reset-traffic``) that make the
        account match ``access``; nothing when it does."""
        if not access.active:
            if user.status == "ACTIVE":
                return {"status": "DISABLED"}, None
            if user.status in ("EXPIRED", "LIMITED"):
                return {}, "disable"
            return {}, None
        changes: dict[str, Any] = {}
        action = None
        expiry = _expiry(access)
        if user.expire_at is None or user.expire_at.replace(microsecond=0) != expiry:
            changes["expireAt"] = _iso(expiry)
        if user.status != "ACTIVE":
            changes["status"] = "ACTIVE"
        limits = access.limits
        if limits is None:
            return changes, None  # a plan the catalog no longer has: its limits stay
        if access.grants > user.grants:
            traffic, action = self._traffic(user, limits.traffic_gb, access.grants)
            changes |= traffic
        devices = limits.devices or 0
        if user.devices != devices:
            changes["hwidDeviceLimit"] = devices
        if sorted(user.squads) != sorted(limits.squads):
            changes["activeInternalSquads"] = list(limits.squads)
        return changes, action

    def _traffic(
        self, user: PanelUser, traffic_gb: int | None, grants: int
    ) -> tuple[dict[str, Any], str | None]:
        """The traffic fields for grants not counted yet (see the module docstring)."""
        plan_bytes = (traffic_gb or 0) * GB
        record = {"description": f"shop:grants={grants}"}
        if not plan_bytes:
            return record | {"trafficLimitBytes": 0}, None  # unlimited
        if not self._carry:  # used traffic starts again: reset first, then the limit
            return record | {"trafficLimitBytes": plan_bytes}, "reset-traffic"
        if user.traffic_limit == 0:  # was unlimited: start counting from here
            return record | {"trafficLimitBytes": user.used_traffic + plan_bytes}, None
        added = (grants - user.grants) * plan_bytes
        return record | {"trafficLimitBytes": user.traffic_limit + added}, None

    async def _action(self, user: PanelUser, action: str, ok_codes: tuple[str, ...] = ()) -> None:
        """``POST /api/users/{uuid|id}/actions/<action>``; ``ok_codes``: errors that mean done."""
        status, body = await self._request("POST", f"/api/users/{user.key}/actions/{action}")
        if status not in (200, 201) and _code(body) not in ok_codes:
            raise FulfilmentFailed(self.name, f"{action} answered {status} {_code(body)}")

    # -- transport ---------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        try:
            answer = await self._http.request(
                method, self._base + path, json=body, headers=self._headers
            )
        except httpx.HTTPError as exc:
            # The class name only: httpx's text can carry the URL.
            raise FulfilmentFailed(self.name, f"no answer ({type(exc).__name__})") from None
        if answer.status_code >= 500:
            raise FulfilmentFailed(
                self.name, f"{method} {path.split('/')[2]} answered {answer.status_code}"
            )
        try:
            return answer.status_code, answer.json() if answer.content else None
        except ValueError:
            raise FulfilmentFailed(
                self.name, f"answered {answer.status_code} without JSON"
            ) from None


def _response(body: Any) -> dict[str, Any]:
    inner = body.get("response") if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        raise FulfilmentFailed("remnawave", "an answer without a response object")
    return inner


def _code(body: Any) -> str:
    return str(body.get("errorCode") or body.get("message") or "") if isinstance(body, dict) else ""


def _user(data: dict[str, Any]) -> PanelUser:
    try:
        traffic = data.get("userTraffic")
        used = traffic.get("usedTrafficBytes") if isinstance(traffic, dict) else None
        if used is None:
            used = data.get("usedTrafficBytes", 0)  # 2.0-2.2 kept it at the top
        key = data.get("uuid") or data.get("id")  # 2.x: uuid; 3.x: numeric id
        grants = _GRANTS.search(str(data.get("description") or ""))
        expire = data.get("expireAt")
        return PanelUser(
            key=str(key),
            username=str(data["username"]),
            telegram_id=int(data["telegramId"]) if data.get("telegramId") is not None else None,
            status=str(data["status"]),
            expire_at=dt.datetime.fromisoformat(expire.replace("Z", "+00:00")) if expire else None,
            traffic_limit=int(data.get("trafficLimitBytes") or 0),
            used_traffic=int(used or 0),
            devices=int(data["hwidDeviceLimit"])
            if data.get("hwidDeviceLimit") is not None
            else None,
            squads=tuple(str(s["uuid"]) for s in data.get("activeInternalSquads") or []),
            grants=int(grants.group(1)) if grants else 0,
            subscription_url=str(data.get("subscriptionUrl") or ""),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FulfilmentFailed("remnawave", f"an unreadable user ({type(exc).__name__})") from None


def _gigabytes(count: int) -> str:
    return f"{count / GB:.1f}".removesuffix(".0")


def _shown(user: PanelUser, key: str) -> object:
    """The account's current value of a PATCH field, for a drift report."""
    fields = {
        "expireAt": user.expire_at,
        "status": user.status,
        "trafficLimitBytes": user.traffic_limit,
        "hwidDeviceLimit": user.devices,
        "activeInternalSquads": list(user.squads),
        "description": f"shop:grants={user.grants}",
    }
    return fields.get(key, "?")


def _expiry(access: Access) -> dt.datetime:
    if access.lifetime or access.expires_at is None:
        return LIFETIME_EXPIRY
    return access.expires_at.astimezone(dt.UTC).replace(microsecond=0)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
