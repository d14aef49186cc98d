"""The private channel (``FULFILMENT=channel``): a subscription is a place in one channel.

The bot is an administrator of ``CHANNEL_ID`` with ``can_invite_users`` and
``can_restrict_members`` (checked at start by :meth:`ChannelAccess.check`).

**Getting in: a personal link that asks to join, approved by the shop.** The Bot API lets
an invite link either admit a number of people (``member_limit``, 1-99999) or make them
request to join (``creates_join_request``), never both ("If True, member_limit can't be
specified"; the server answers "member limit can't be specified for links requiring
administrator approval"). A ``member_limit=1`` link is a bearer token: whoever taps it
first is in, a forwarded link admits a stranger, and nobody checks a subscription at the
door. A join-request link is checked at the door: every request reaches the shop as a
``chat_join_request`` update and is approved only for a customer whose subscription is
active at that moment (``actors.channel.on_join_request``). So a leaked, replayed or
duplicated link admits nobody who has not paid, and a link created twice by a race is
harmless. The cost is one approval round trip while the shop is running; a request made
while it is down is answered when it is back (Telegram keeps the update for 24 hours).

Each customer gets their own link (named ``shop:<id>``, so an operator sees whose it is),
valid for :data:`LINK_TTL` or until the subscription ends if that is sooner. It is stored
(``store.channel``) before the message that carries it is sent, and marked sent once
Telegram accepted that message: a replayed apply sends nothing while the link works, and
one interrupted before acceptance sends the *same* link. My subscription shows the link,
and makes a fresh one once it has lapsed.

**Getting out: warned, then a grace period, then banned and unbanned.** A member whose
access ended is warned once and removed ``grace`` (``CHANNEL_GRACE_HOURS``) after the
expiry, never sooner than :data:`MIN_NOTICE` after the warning: ``banChatMember``, then
``unbanChatMember`` with ``only_if_banned`` so they can come back after paying. The chat
owner and administrators are never removed (their status is read first). The removal is
begun durably (``removing``), so a failure between ban and unban is finished by the retry.

**Coming back later.** ``apply`` runs when a subscription changes; the end of a grace
period is not such a change. Raising ``FulfilmentFailed`` as "not yet" would count as a
failure: backoff, an operator alert after five attempts, warnings in the log all day,
and My subscription saying "being set up". Instead ``apply`` returns normally and stores
``remove_at``, and the shop's hourly reconciliation (the sweep job's ``sync_everyone``,
also ``shop panel sync``) brings it back: :meth:`ChannelAccess.drift` reports a member
whose ``remove_at`` has passed, and the sweep applies the subscription as it is then.
``drift`` reads the database only (one Bot API call only for a paying customer who was
never sent an invite), because the sync asks it about every subscriber every hour. As the
sync applies outside the queue's lease, a removal or warning first checks the database
once more: someone who renewed meanwhile is never warned or removed.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import attrs

from ..clock import WallClock
from ..errors import (
    BadRequest,
    Forbidden,
    FulfilmentFailed,
    StartupFailed,
    StoreUnavailable,
    TelegramError,
)
from ..store import Store
from ..store import channel as members
from ..store.channel import ChannelRow, Grace
from ..store.pool import Connection
from ..telegram.api import BotClient
from ..telegram.formatting import when
from ..telegram.keyboards import button, keyboard, link
from ..telegram.outbox import Lane, Outbox
from ..telegram.texts import Texts, load_texts
from ..telegram.types import to_json
from .base import Access

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

#: How long a personal invite link works (less if the subscription ends sooner).
LINK_TTL = dt.timedelta(hours=24)
#: The least time between the warning and the removal, whenever the warning goes out.
MIN_NOTICE = dt.timedelta(hours=1)
#: Administrator rights the bot needs in the channel.
RIGHTS = ("can_invite_users", "can_restrict_members")

#: English wording for keys the catalogs do not have yet (``Texts`` echoes a missing key).
DEFAULT_TEXTS = {
    "channel.invite": (
        "🔑 Your personal invite to the channel: {link}\n"
        "Open it and ask to join: subscribers are let in at once. It works until {date};"
        " 📅 My subscription always has a fresh one."
    ),
    "channel.link": "🔑 Your invite to the channel: {link} (works until {date})",
    "channel.member": "✅ You are in the channel.",
    "channel.warning": (
        "⏳ Your subscription has ended. Renew it before {date} to stay in the channel;"
        " after that you will be removed (and let back in once you pay again)."
    ),
    "channel.declined": (
        "🔒 The channel is for subscribers. Buy a subscription here, then ask to join again."
    ),
    "btn.channel": "📢 Open the channel",
}


def say(texts: Texts, language: str, key: str, **params: object) -> str:
    """``texts(language, key, ...)``, in English from :data:`DEFAULT_TEXTS` if no catalog
    has the key yet."""
    text = texts(language, key, **params)
    if text == key and key in DEFAULT_TEXTS:
        return DEFAULT_TEXTS[key].format(**params)
    return text


def is_member(member: dict[str, Any]) -> bool:
    """A ChatMember that is in the chat (``restricted`` says so in ``is_member``)."""
    status = member.get("status")
    return status in ("creator", "administrator", "member") or (
        status == "restricted" and bool(member.get("is_member"))
    )


def is_admin(member: dict[str, Any]) -> bool:
    return member.get("status") in ("creator", "administrator")


class ChannelAccess:
    name = "channel"

    def __init__(
        self,
        bot: BotClient,
        store: Store,
        clock: WallClock,
        *,
        channel_id: int,
        grace: dt.timedelta = dt.timedelta(hours=24),
        timezone: ZoneInfo | None = None,
        texts: Texts | None = None,
    ) -> None:
        self.channel_id = channel_id
        self.grace = grace
        self._bot = bot
        self._store = store
        self._clock = clock
        self._zone = timezone or ZoneInfo("UTC")
        self._texts = texts or load_texts()
        #: set by :meth:`attach` once the shop's outbox exists (it is built after us)
        self.outbox: Outbox | None = None

    def attach(self, outbox: Outbox) -> None:
        """Send customer messages through the shop's outbox (it is built after this)."""
        self.outbox = outbox

    # -- start -----------------------------------------------------------------------

    async def check(self) -> str:
        """Check that the bot may invite and remove members of ``CHANNEL_ID``.

        Raises StartupFailed (exit 2) when it may not, FulfilmentFailed when Telegram does
        not answer (the queue then waits for it).
        """
        me = await self._call("getMe", {})
        where = f"CHANNEL_ID {self.channel_id}"
        fix = (
            "make the bot an administrator of the channel with the rights to add members"
            " (invite users via link) and to ban users"
        )
        try:
            member = await self._bot.call(
                "getChatMember", {"chat_id": self.channel_id, "user_id": int(me["id"])}
            )
        except (BadRequest, Forbidden) as exc:
            raise StartupFailed(
                f"{where}: Telegram says {exc.description!r}; {fix}", code=2
            ) from None
        except TelegramError as exc:
            raise FulfilmentFailed(self.name, f"getChatMember answered {exc.code}") from None
        status = member.get("status")
        if status != "administrator":
            raise StartupFailed(
                f"{where}: the bot is not an administrator there (its status is {status!r}); {fix}",
                code=2,
            )
        missing = [right for right in RIGHTS if not member.get(right)]
        if missing:
            raise StartupFailed(
                f"{where}: the bot is an administrator without {' and '.join(missing)}; {fix}",
                code=2,
            )
        return f"channel {self.channel_id}: the bot may invite and remove members"

    # -- the interface -----------------------------------------------------------------

    async def apply(self, access: Access) -> None:
        who = access.telegram_id
        row = await self._db(members.load, self.channel_id, who)
        member = await self._member(who)
        if member.get("status") == "kicked" and row.removing:
            await self._unban(who)  # a removal whose unban was interrupted
            await self._db(members.removed, self.channel_id, who, self._clock.now())
            member = {"status": "left"}
            row = attrs.evolve(row, inactive_since=None, warned_at=None, remove_at=None)
            row = attrs.evolve(row, removing=False)  # as ``members.removed`` left it
        if access.active:
            await self._let_in(access, row, member)
        else:
            await self._see_out(access, row, member)

    async def access_text(self, telegram_id: int, language: str) -> str | None:
        """The invite (a fresh one once the last has lapsed), or that they are in."""
        member = await self._member(telegram_id)
        if is_member(member):
            return say(self._texts, language, "channel.member")
        row = await self._db(members.load, self.channel_id, telegram_id)
        if member.get("status") == "kicked" and not row.removing:
            return None  # banned by an administrator: their call, not ours
        stored = row.working_link(self._clock.now())
        if stored is None:
            stored = await self._new_link(telegram_id, row.expires_at, row.lifetime)
        invite, until = stored
        if row.link_sent_at is None or invite != row.invite_link:  # shown: as good as sent
            await self._db(
                members.link_sent, self.channel_id, telegram_id, invite, self._clock.now()
            )
        date = when(until, self._zone, language)
        return say(self._texts, language, "channel.link", link=html.escape(invite), date=date)

    async def drift(self, access: Access) -> list[str]:
        """What is left to do for ``access`` ([] when nothing): read-only, and mostly from
        the database, as the hourly sync asks it about every subscriber."""
        row = await self._db(members.load, self.channel_id, access.telegram_id)
        now = self._clock.now()
        if row.removing:
            return ["banned by a removal that was not finished"]
        if access.active:
            if row.link_sent_at is not None:
                return []  # whether they use it is up to them
            member = await self._member(access.telegram_id)
            if is_member(member) or member.get("status") == "kicked":
                return []  # in, or banned by an administrator (left alone)
            return ["not in the channel, and no invite sent"]
        if row.remove_at is not None and row.remove_at <= now:
            return [f"grace period over since {row.remove_at.isoformat(timespec='seconds')}"]
        return []

    # -- in ------------------------------------------------------------------------------

    async def _let_in(self, access: Access, row: ChannelRow, member: dict[str, Any]) -> None:
        who, now = access.telegram_id, self._clock.now()
        if row.grace != Grace():
            await self._db(members.save_grace, self.channel_id, who, Grace(), now)
        if is_member(member):
            return
        if member.get("status") == "kicked":
            log.warning("channel: %s has access but is banned by an administrator; no invite", who)
            return
        stored = row.working_link(now)
        if stored is not None and row.link_sent_at is not None:
            return  # sent already (a replay, or a renewal before they joined)
        invite, until = stored or await self._new_link(who, access.expires_at, access.lifetime)
        date = when(until, self._zone, row.language)
        text = say(self._texts, row.language, "channel.invite", link=html.escape(invite), date=date)
        join = link(say(self._texts, row.language, "btn.channel"), invite)
        await self._send(who, text, to_json(keyboard([join])), Lane.INTERACTIVE)
        await self._db(members.link_sent, self.channel_id, who, invite, self._clock.now())

    async def _new_link(
        self, who: int, expires_at: dt.datetime | None, lifetime: bool
    ) -> tuple[str, dt.datetime]:
        """Create a personal join-request link and store it before anyone is told of it."""
        now = self._clock.now()
        until = now + LINK_TTL
        if not lifetime and expires_at is not None and expires_at < until:
            until = max(expires_at, now + dt.timedelta(minutes=1))
        until = until.replace(microsecond=0)
        created = await self._call(
            "createChatInviteLink",
            {
                "chat_id": self.channel_id,
                "name": f"shop:{who}",
                "expire_date": int(until.timestamp()),
                "creates_join_request": True,
            },
        )
        invite = str(created["invite_link"])
        await self._db(members.remember_link, self.channel_id, who, invite, until, now)
        return invite, until

    # -- out -----------------------------------------------------------------------------

    async def _see_out(self, access: Access, row: ChannelRow, member: dict[str, Any]) -> None:
        who, now = access.telegram_id, self._clock.now()
        if is_admin(member):
            log.info("channel: %s has no access but administers the channel; left in", who)
            if row.grace != Grace():
                await self._db(members.save_grace, self.channel_id, who, Grace(), now)
            return
        if not is_member(member):
            if row.grace != Grace():  # gone by themselves (or never came)
                await self._db(members.save_grace, self.channel_id, who, Grace(), now)
            return
        paying, _ = await self._db(members.standing, who, now)
        if paying:  # renewed since ``access`` was read (the hourly sync applies outside the queue)
            log.info("channel: %s has access again; nothing taken away", who)
            return
        since = row.inactive_since or now
        remove_at = max(
            (access.expires_at or since) + self.grace, (row.warned_at or now) + MIN_NOTICE
        )
        warned_at = row.warned_at
        if warned_at is None:
            await self._warn(who, row.language, remove_at)
            warned_at = self._clock.now()
        if self._clock.now() < remove_at:
            grace = Grace(inactive_since=since, warned_at=warned_at, remove_at=remove_at)
            await self._db(members.save_grace, self.channel_id, who, grace, self._clock.now())
            return
        await self._remove(who, Grace(since, warned_at, None, removing=True))

    async def _warn(self, who: int, language: str, remove_at: dt.datetime) -> None:
        date = when(remove_at, self._zone, language)
        text = say(self._texts, language, "channel.warning", date=date)
        renew = button(say(self._texts, language, "btn.renew"), "buy")
        await self._send(who, text, to_json(keyboard([renew])), Lane.BULK)

    async def _remove(self, who: int, grace: Grace) -> None:
        """Ban, then unban: out of the channel, and free to come back after paying."""
        await self._db(members.save_grace, self.channel_id, who, grace, self._clock.now())
        try:
            await self._bot.call("banChatMember", {"chat_id": self.channel_id, "user_id": who})
        except BadRequest as exc:
            if "administrator" not in exc.description and "owner" not in exc.description:
                raise FulfilmentFailed(self.name, f"banChatMember: {exc.description}") from None
            # Promoted since we looked: an administrator is never removed.
            log.info("channel: %s became an administrator; not removed", who)
        except TelegramError as exc:
            raise FulfilmentFailed(self.name, f"banChatMember answered {exc.code}") from None
        await self._unban(who)
        await self._db(members.removed, self.channel_id, who, self._clock.now())
        log.info("channel: %s removed after the grace period", who)

    async def _unban(self, who: int) -> None:
        params = {"chat_id": self.channel_id, "user_id": who, "only_if_banned": True}
        await self._call("unbanChatMember", params)

    # -- Telegram and the database -------------------------------------------------------

    async def _member(self, who: int) -> dict[str, Any]:
        member = await self._call("getChatMember", {"chat_id": self.channel_id, "user_id": who})
        if not isinstance(member, dict):
            raise FulfilmentFailed(self.name, "getChatMember returned no ChatMember")
        return member

    async def _send(self, who: int, text: str, markup: Any, lane: Lane) -> None:
        """Send a message and wait until Telegram has it (or refused it for good)."""
        if self.outbox is None:
            raise FulfilmentFailed(self.name, "the outbox is not attached yet")
        params = {"chat_id": who, "text": text, "parse_mode": "HTML", "reply_markup": markup}
        try:
            await self.outbox.request("sendMessage", params, lane=lane)
        except (BadRequest, Forbidden) as exc:
            # Blocked, or a text Telegram will never take: retrying changes nothing.
            log.info("channel: message to %s refused for good: %s", who, exc.description)
        except TelegramError as exc:
            raise FulfilmentFailed(
                self.name, f"message to {who} not delivered ({exc.code})"
            ) from None

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        try:
            return await self._bot.call(method, params)
        except TelegramError as exc:
            detail = exc.description if isinstance(exc, BadRequest | Forbidden) else exc.code
            raise FulfilmentFailed(self.name, f"{method}: {detail}") from None

    async def _db(self, fn: Callable[Concatenate[Connection, P], T], *args: Any) -> T:
        try:
            return await self._store.run(fn, *args)
        except StoreUnavailable as exc:
            raise FulfilmentFailed(self.name, f"database unreachable ({exc})") from None
