"""Private channels in the fake Telegram Bot API server: members, invite links, join requests.

Channels (``add_channel``) have an owner, administrators with rights, members, invite links
and join requests; ``join`` and ``request_join`` act as the user's app would. The channel
methods (createChatInviteLink, approve/declineChatJoinRequest, answerChatJoinRequestQuery,
ban/unbanChatMember, getChatMember, getChatAdministrators) check the bot's access and rights
in the order and with the texts of the server (``Client::check_chat``) and TDLib
(``can_manage_dialog_invite_links``, ``can_manage_dialog_join_requests``,
``set_channel_participant_status_impl``). Nothing is posted to a channel; the methods know
only chats added with ``add_channel``, and a user they have never seen is a member who
``left``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import attrs
import trio

from .errors import (
    ADMINISTRATOR,
    ALREADY_PARTICIPANT,
    CHAT_NOT_FOUND,
    EXPIRE_DATE_INVALID,
    KICKED_FROM_CHANNEL,
    LIMIT_WITH_REQUESTS,
    NO_INVITE_RIGHTS,
    NO_JOIN_REQUEST_RIGHTS,
    NO_REQUEST,
    NO_RESTRICT_RIGHTS,
    NOT_A_MEMBER,
    OWNER,
    QUERY_INVALID,
    SELF,
    USAGE_LIMIT_INVALID,
    ApiError,
    Json,
)
from .params import _bool, _chat_id, _required, _to_int32, _user_id
from .server import _now

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


class ChannelsMixin:
    """The private channels the bot administers, for ``FakeTelegram``.

    ``channels`` maps chat ids to ``Channel`` (members, invite links, waiting join requests).
    """

    if TYPE_CHECKING:  # given by FakeTelegram
        bot_id: int
        _serial: Iterator[int]

        @property
        def _bot(self) -> Json: ...
        def _user(self, user_id: int) -> Json: ...
        def _date(self) -> int: ...
        def add_update(self, update: Json) -> int: ...

    def _reset_channels(self) -> None:
        self.channels: dict[int, Channel] = {}

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

    # Bot API methods (FakeTelegram._handlers lists them all). Each checks, in the server's
    # order: the arguments it parses first (user_id), the bot's access to the chat
    # (Client::check_chat: a private channel needs the bot in it), then TDLib's checks of
    # rights, then Telegram's.

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
