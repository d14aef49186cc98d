"""Hiddify Manager (hiddifypanel user API v2, 10.80 to 12.x): one panel user per customer.

Facts from the panel's sources (EXTERNAL-APIS.md §C.1b, §C.1d):

- ``url`` is the panel's admin address including the admin proxy path
  (``https://panel.example/<proxy_path_admin>``). The user API lives under
  ``{url}/api/v2/admin/`` and every route ends in ``/`` (without it the panel answers a
  308 redirect, which we do not follow). Requests carry ``Hiddify-API-Key`` (an admin's
  uuid); a wrong key is 403 ``'Unathorized'``. ``{url}/api/v2/panel/info/`` says the version.
- A user is keyed by a uuid the client may choose, and that uuid *is the customer's
  credential* (the subscription link is ``https://<host>/<proxy_path_client>/<uuid>/``).
  So it is a random ``uuid4``, stored in ``panel_accounts`` **before** the create call, never
  derived from the telegram id. A create that timed out after the panel stored it is
  retried with the same uuid: ``GET /user/<uuid>/`` finds it, or the create is answered
  400 "The user exists" and the user is read and adopted (if its ``telegram_id`` is ours).
  Two shops on one database agree on one uuid (``panel_accounts.account_for``).
- Hiddify has no absolute expiry: a user is active while ``package_days - (today -
  start_date) >= 0``, so the **end day itself is included** and access stops at the
  midnight after ``start_date + package_days``. We send ``start_date`` = today (UTC) and
  ``package_days`` = days from today to the *last day*, the UTC date of the last instant
  before ``expires_at``. In other words the panel's end is ``expires_at`` rounded up to the
  next midnight UTC: never an hour less than paid, less than a day more (an expiry at
  exactly midnight is not rounded). A lifetime subscription ends on 2099-12-31 (the panel
  shows 1000 days or more as "No Time Limit"). The panel's "today" is its server's local
  date; a panel not on UTC shifts the end by its offset. What is compared is the end day
  ``start_date + package_days``, so a repeat on a later day changes nothing. ``start_date``
  is sent with ``package_days`` always: the panel applies it only in the same body.
- Traffic: ``usage_limit_GB`` (GB = 1024³ bytes) against ``current_usage_GB``; ``mode`` is
  always ``no_reset``. The ``comment`` records how many grants the limit counts
  (``shop:grants=N``). With ``TRAFFIC_ON_RENEWAL=carry`` each new grant raises the limit by
  the plan's traffic, so what was left carries over (50 GB bought, 27 used, renew 50: 73
  left); with ``reset`` a new grant sets ``current_usage_GB: 0`` and the plan's limit. The
  limit, the usage and the record change in one PATCH, so a repeat adds nothing.
- Unlimited traffic: Hiddify has no "unlimited" value (0 GB means "nothing": a user is
  inactive once ``usage_limit < current_usage``). We send **1 000 000 GB**, the largest
  value its setter keeps (``min(1000000 * ONE_GIG, value * ONE_GIG)``), which the panel
  shows as "No Usage Limit" (100 000 GB or more).
- Devices and squads have no field in the user API v2; they are not applied.
- Revocation is ``enable: false``; the user, its uuid and its link stay.
- ``access_text`` needs no panel call: the link comes from the stored uuid and
  ``client_url`` (``https://<host>/<proxy_path_client>``), which the admin URL does not
  reveal. Without ``client_url`` it only says that access is active.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import attrs
import httpx

from ..clock import UTC, WallClock
from ..errors import FulfilmentFailed, StartupFailed
from ..store import panel_accounts
from ..store.pool import Store
from .base import Access, Adoptable

log = logging.getLogger(__name__)

#: The largest usage_limit_GB the panel keeps; it shows "No Usage Limit" from 100 000.
UNLIMITED_GB = 1_000_000
UNLIMITED_FROM = 100_000
#: The last day of a lifetime subscription (the panel has no "never").
LIFETIME_LAST_DAY = dt.date(2099, 12, 31)
_GRANTS = re.compile(r"shop:grants=(\d+)")
_VERSION = re.compile(r"v?(\d+)\.(\d+)")
_ACTIVE = {
    "en": "✅ Your access is active.",
    "ru": "✅ Доступ активен.",
    "uk": "✅ Доступ активний.",
}
# The panel answers 400 "invalid" to a User-Agent that looks like a bot (user_agents's
# Spider rule): a Telegram shop's client might well say "…Bot…", so we say who we are.
_USER_AGENT = "shop-hiddify/1.0"


def username(telegram_id: int) -> str:
    return f"tg_{telegram_id}"


@attrs.frozen
class PanelUser:
    """What the shop reads of a Hiddify user."""

    uuid: str
    telegram_id: int | None
    comment: str
    enable: bool
    usage_limit_gb: float
    current_usage_gb: float
    package_days: int | None
    start_date: dt.date | None
    mode: str | None
    grants: int  # from the comment's record; 0 when it has none

    @property
    def last_day(self) -> dt.date | None:
        """The last day the panel lets the user in (None: it counts from first use)."""
        if self.package_days is None or self.start_date is None:
            return None
        return self.start_date + dt.timedelta(days=self.package_days)


class Hiddify:
    name = "hiddify"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        url: str,
        api_key: str,
        store: Store,
        clock: WallClock,
        traffic_on_renewal: str = "carry",
        client_url: str | None = None,
    ) -> None:
        self._http = http
        self._base = url.rstrip("/")
        self._headers = {
            "Hiddify-API-Key": api_key,
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        self._store = store
        self._clock = clock
        self._carry = traffic_on_renewal == "carry"
        self._client_url = client_url.rstrip("/") if client_url else None
        self.version = "unknown"

    # -- start -----------------------------------------------------------------------

    async def check(self) -> str:
        """Read and check the panel's version; raises FulfilmentFailed if it does not
        answer, StartupFailed if the version is not one whose API we know."""
        status, body = await self._request("GET", "/api/v2/panel/info/", "version check")
        if status != 200 or not isinstance(body, dict):
            raise FulfilmentFailed(self.name, f"version check answered {status} {_message(body)}")
        self.version = str(body.get("version", ""))
        match = _VERSION.match(self.version)
        known = match is not None and (10, 80) <= (int(match[1]), int(match[2])) < (13, 0)
        if not known:
            raise StartupFailed(
                f"Hiddify {self.version or '?'} is not supported (10.80 to 12.x)", code=2
            )
        return self.version

    # -- the interface -----------------------------------------------------------------

    async def apply(self, access: Access) -> None:
        if not access.active:
            await self._disable(access.telegram_id)
            return
        account = await self._store.run(
            panel_accounts.account_for,
            access.telegram_id,
            self.name,
            str(uuid.uuid4()),
            self._clock.now(),
        )
        user = await self._get(account)
        if user is None:
            user = await self._create(account, access)
        await self._update(user, access)

    async def access_text(self, telegram_id: int, language: str) -> str | None:
        account = await self._store.run(panel_accounts.find, telegram_id, self.name)
        if account is None:
            return None
        if self._client_url is None:
            return _ACTIVE.get(language, _ACTIVE["en"])
        return f"🔑 <code>{html.escape(f'{self._client_url}/{account}/')}</code>"

    async def adoptable(self) -> AsyncIterator[Adoptable]:
        """Every user on the panel (``GET /user/``), for ``shop panel import``."""
        status, body = await self._request("GET", "/api/v2/admin/user/", "listing")
        if status == 404 and _message(body) == "You have no user":
            return
        if status != 200 or not isinstance(body, list):
            raise FulfilmentFailed(self.name, f"listing answered {status} {_message(body)}")
        today = self._clock.now().astimezone(UTC).date()
        for data in body:
            user = _user(data)
            # Access ends after its last day; one never used counts from today.
            last = user.last_day or today + dt.timedelta(days=user.package_days or 0)
            ends = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=UTC)
            yield Adoptable(
                telegram_id=user.telegram_id,
                account=user.uuid,
                label=str(data.get("name") or user.uuid) if isinstance(data, dict) else user.uuid,
                expires_at=ends,
                usable=user.enable,
            )

    async def subscription_link(self, telegram_id: int) -> str | None:
        """The customer's subscription URL (None without an account or a client URL)."""
        account = await self._store.run(panel_accounts.find, telegram_id, self.name)
        if account is None or self._client_url is None:
            return None
        return f"{self._client_url}/{account}/"

    # -- users -------------------------------------------------------------------------

    async def _disable(self, telegram_id: int) -> None:
        account = await self._store.run(panel_accounts.find, telegram_id, self.name)
        if account is None:
            return  # never had an account: nothing to take away
        user = await self._get(account)
        if user is not None and user.enable:
            await self._patch(account, {"enable": False})

    async def _get(self, account: str) -> PanelUser | None:
        status, body = await self._request("GET", f"/api/v2/admin/user/{account}/", "lookup")
        if status == 404 and _message(body) == "User not found":
            return None
        if status != 200:
            raise FulfilmentFailed(self.name, f"lookup answered {status} {_message(body)}")
        return _user(body)

    async def _create(self, account: str, access: Access) -> PanelUser:
        body: dict[str, Any] = {
            "uuid": account,
            "name": username(access.telegram_id),
            "telegram_id": access.telegram_id,
            "comment": _record("", access.grants),
            "enable": True,
            "mode": "no_reset",
            "usage_limit_GB": self._first_limit(access),
            **self._schedule(access),
        }
        status, answer = await self._request("POST", "/api/v2/admin/user/", "create", body)
        if status == 200:
            created = _user(answer)
            if created.uuid != account:  # the panel replaces a uuid it finds invalid
                log.error("ALERT: Hiddify created a user under another uuid than the stored one")
                raise FulfilmentFailed(self.name, "the panel did not keep our uuid")
            return created
        if status == 400 and _message(answer) == "The user exists":
            # Stored by an earlier create whose answer was lost, or by another instance.
            found = await self._get(account)
            if found is not None and found.telegram_id == access.telegram_id:
                return found
            log.error(
                "ALERT: the Hiddify user stored for telegram_id %s belongs to telegram_id %s;"
                " not adopted",
                access.telegram_id,
                found.telegram_id if found else "?",
            )
            raise FulfilmentFailed(self.name, "the stored user belongs to another telegram_id")
        raise FulfilmentFailed(self.name, f"create answered {status} {_message(answer)}")

    async def drift(self, access: Access) -> list[str]:
        """How the panel differs from ``access`` (``shop panel sync``); [] when it matches."""
        account = await self._store.run(panel_accounts.find, access.telegram_id, self.name)
        user = await self._get(account) if account is not None else None
        if user is None:
            return ["no account"] if access.active else []
        if not access.active:
            return ["enable: true -> false"] if user.enable else []
        return [f"{key}: -> {value}" for key, value in self._changes(user, access).items()]

    async def _update(self, user: PanelUser, access: Access) -> None:
        changes = self._changes(user, access)
        if changes:
            await self._patch(user.uuid, changes)

    def _changes(self, user: PanelUser, access: Access) -> dict[str, Any]:
        """The PATCH fields that make an active customer's user match ``access``."""
        changes: dict[str, Any] = {}
        if not user.enable:
            changes["enable"] = True
        if user.mode != "no_reset":
            changes["mode"] = "no_reset"
        if user.last_day != _last_day(access):
            changes |= self._schedule(access)
        if access.grants > user.grants and access.limits is not None:
            changes |= self._traffic(user, access)  # no plan in the catalog: limit stays
        return changes

    async def _patch(self, account: str, changes: dict[str, Any]) -> None:
        path = f"/api/v2/admin/user/{account}/"
        status, body = await self._request("PATCH", path, "update", changes)
        if status != 200:
            raise FulfilmentFailed(self.name, f"update answered {status} {_message(body)}")

    # -- mapping -----------------------------------------------------------------------

    def _schedule(self, access: Access) -> dict[str, Any]:
        """``start_date`` (today) and ``package_days`` (to the last day), always together."""
        today = self._clock.now().astimezone(UTC).date()
        days = (_last_day(access) - today).days
        return {"start_date": today.isoformat(), "package_days": days}

    def _first_limit(self, access: Access) -> float:
        plan = access.limits.traffic_gb if access.limits is not None else None
        if plan is None:
            return UNLIMITED_GB
        return plan * (max(access.grants, 1) if self._carry else 1)

    def _traffic(self, user: PanelUser, access: Access) -> dict[str, Any]:
        """The traffic fields for grants not counted yet (see the module docstring)."""
        assert access.limits is not None
        plan = access.limits.traffic_gb
        record = {"comment": _record(user.comment, access.grants)}
        if plan is None:
            return record | {"usage_limit_GB": UNLIMITED_GB}
        if not self._carry:
            return record | {"current_usage_GB": 0, "usage_limit_GB": plan}
        if user.usage_limit_gb >= UNLIMITED_FROM:  # was unlimited: count from here
            return record | {"usage_limit_GB": _gb(user.current_usage_gb + plan)}
        added = (access.grants - user.grants) * plan
        return record | {"usage_limit_GB": _gb(user.usage_limit_gb + added)}

    # -- transport ---------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, what: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """One call; ``what`` names it in errors, which never carry the URL (its path holds
        the customer's uuid and the admin proxy path) nor the panel's 5xx text."""
        try:
            answer = await self._http.request(
                method, self._base + path, json=body, headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise FulfilmentFailed(self.name, f"{what}: no answer ({type(exc).__name__})") from None
        if answer.status_code >= 500:
            raise FulfilmentFailed(self.name, f"{what} answered {answer.status_code}")
        if answer.status_code == 403:
            raise FulfilmentFailed(self.name, f"{what}: the panel refused the API key (403)")
        try:
            return answer.status_code, answer.json()
        except ValueError:
            raise FulfilmentFailed(
                self.name, f"{what} answered {answer.status_code} without JSON"
            ) from None


def _last_day(access: Access) -> dt.date:
    """The last day of access: the UTC date of the last instant before ``expires_at``."""
    if access.lifetime or access.expires_at is None:
        return LIFETIME_LAST_DAY
    return (access.expires_at.astimezone(UTC) - dt.timedelta(microseconds=1)).date()


def _record(comment: str, grants: int) -> str:
    """The comment with ``shop:grants=N`` put in (an operator's own text is kept)."""
    record = f"shop:grants={grants}"
    if _GRANTS.search(comment):
        return _GRANTS.sub(record, comment, count=1)
    return f"{comment} {record}".strip()


def _gb(value: float) -> float:
    """A GB amount without float noise (the panel stores bytes)."""
    return round(value, 6)


def _message(body: Any) -> str:
    """The panel's error text: ``message`` (JSON Accept) or ``msg`` (HTML Accept), plus
    the names of fields a 422 refused."""
    if not isinstance(body, dict):
        return ""
    text = str(body.get("message") or body.get("msg") or "")
    detail = body.get("detail")
    fields = detail.get("json") if isinstance(detail, dict) else None
    if isinstance(fields, dict) and fields:
        text += f" ({', '.join(sorted(map(str, fields)))})"
    return text


def _user(data: Any) -> PanelUser:
    try:
        comment = str(data.get("comment") or "")
        grants = _GRANTS.search(comment)
        start = data.get("start_date")
        days = data.get("package_days")
        telegram_id = data.get("telegram_id")
        return PanelUser(
            uuid=str(data["uuid"]),
            telegram_id=int(telegram_id) if telegram_id is not None else None,
            comment=comment,
            enable=bool(data["enable"]),
            usage_limit_gb=float(data.get("usage_limit_GB") or 0),
            current_usage_gb=float(data.get("current_usage_GB") or 0),
            package_days=int(days) if days is not None else None,
            start_date=dt.date.fromisoformat(start) if start else None,
            mode=str(data["mode"]) if data.get("mode") is not None else None,
            grants=int(grants.group(1)) if grants else 0,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FulfilmentFailed("hiddify", f"an unreadable user ({type(exc).__name__})") from None
