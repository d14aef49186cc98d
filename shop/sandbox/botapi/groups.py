"""Groups and forums in the fake Telegram Bot API server: supergroups where people write and the
bot posts, optionally with topics.

``add_group`` makes a supergroup (``forum=True``: with topics) with an owner, members,
administrators and the bot (an administrator with ``bot_rights``, or ``bot="member"``, ``"left"``,
``"kicked"``). ``group_message`` is a member writing there, ``group_press`` pressing a button
under the bot's message, ``open_topic`` opening a topic; ``reply_text`` is a user replying in
their private chat. The bot hears what its privacy mode allows: everything as an administrator,
else commands and replies to its own messages.

Methods: sendMessage to a group (``message_thread_id`` and ``reply_parameters`` in any chat),
copyMessage, createForumTopic, closeForumTopic, reopenForumTopic and getChat, checked in the
server's order with its texts (Client.cpp ``check_chat``, ``check_message_topic``,
``check_reply_parameters``, ``check_message``; TDLib's ForumTopicManager; Telegram's own
TOPIC_NOT_MODIFIED, which a bot is told, and TOPIC_CLOSED). A supergroup without topics ignores
``message_thread_id``, as the server does.

``GroupsMixin`` extends ``MessagesMixin`` and comes first in ``FakeTelegram``: sendMessage to a
group goes here, and users' private messages are remembered as they are made (``MessagesMixin``
keeps only the bot's) so copyMessage finds them. Left out: basic groups, channels as targets,
and a negative chat id not given to ``add_group``, which sendMessage still treats as before
(alert tests post to one); copyMessage and the forum methods answer "chat not found" for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .errors import ApiError, Json
from .messages import MessagesMixin
from .params import _chat_id, _inline, _text, _to_int32, _utf16, _visible

CHAT_NOT_FOUND = "Bad Request: chat not found"
THREAD_NOT_FOUND = "Bad Request: message thread not found"
NOT_A_FORUM = "Bad Request: the chat is not a forum"
NO_TOPIC_RIGHTS = "Bad Request: not enough rights to create a topic"
NO_CLOSE_RIGHTS = "Bad Request: not enough rights to close or open the topic"
TOPIC_NOT_MODIFIED = "Bad Request: TOPIC_NOT_MODIFIED"
TOPIC_CLOSED = "Bad Request: TOPIC_CLOSED"
COPY_NOT_FOUND = "Bad Request: message to copy not found"
CANT_COPY = "Bad Request: message can't be copied"
REPLY_NOT_FOUND = "Bad Request: message to be replied not found"
NOT_IN_GROUP = "Forbidden: bot is not a member of the supergroup chat"
KICKED_FROM_GROUP = "Forbidden: bot was kicked from the supergroup chat"

#: A supergroup administrator's rights (ChatAdministratorRights); a right left out is False.
GROUP_RIGHTS = tuple(
    sorted(
        {"can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_pin_messages"}
        | {"can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users"}
        | {"can_post_stories", "can_edit_stories", "can_delete_stories", "can_manage_topics"}
    )
)
#: What a support desk's bot is given unless told otherwise: it may open and close topics.
GROUP_BOT_RIGHTS = {"can_manage_topics": True, "can_delete_messages": True}
_DEFAULT_ICON = 7322096  # 0x6FB9F0, the first documented topic colour
#: Message content copyMessage carries over; a message with none of it (a service message, an
#: invoice) "can't be copied".
_CONTENT = frozenset(
    {"text", "entities", "link_preview_options", "photo", "document", "audio", "voice", "video"}
    | {"video_note", "animation", "sticker", "caption", "caption_entities", "contact"}
    | {"location", "venue", "dice", "show_caption_above_media", "has_media_spoiler"}
)
_MEDIA = frozenset({"photo", "document", "audio", "voice", "video", "animation"})


@attrs.define
class Group:
    """A supergroup: who is in it (``members``: user id -> ChatMember fields) and, in a forum,
    its topics (thread id -> ``name``, ``icon_color``, ``is_closed``, ``creator``)."""

    id: int
    title: str
    forum: bool
    members: dict[int, Json] = attrs.Factory(dict)
    topics: dict[int, Json] = attrs.Factory(dict)

    def status(self, user_id: int) -> str:
        return str(self.members.get(user_id, {}).get("status", "left"))

    def may(self, user_id: int, right: str) -> bool:
        member = self.members.get(user_id, {})
        return member.get("status") == "creator" or bool(
            member.get("status") == "administrator" and member.get(right)
        )

    def chat(self) -> Json:
        """The Chat object of a message here (Client.cpp ``JsonChat``)."""
        forum: Json = {"is_forum": True} if self.forum else {}
        return {"id": self.id, "title": self.title} | forum | {"type": "supergroup"}


class GroupsMixin(MessagesMixin):
    """Supergroups and forums for ``FakeTelegram``; ``groups`` maps chat ids to ``Group``."""

    bot_id: int  # given by FakeTelegram
    blocked: set[int]  # given by BotApiServer

    def _reset_groups(self) -> None:
        self.groups: dict[int, Group] = {}
        self._said: dict[tuple[int, int], Json] = {}  # users' messages, by (chat, message id)
        self._talked: set[int] = set()  # users who wrote to the bot: it may write to them

    def add_group(
        self,
        chat_id: int,
        *,
        owner: int,
        title: str = "Support",
        forum: bool = False,
        members: Iterable[int] = (),
        admins: Mapping[int, Mapping[str, bool]] | None = None,
        bot: str = "administrator",
        bot_rights: Mapping[str, bool] = GROUP_BOT_RIGHTS,
    ) -> Group:
        """A supergroup owned by ``owner``; ``bot`` is the bot's status there ("left": it was
        there and left, so the methods answer 403; a chat never added is "chat not found")."""
        group = Group(chat_id, title, forum)
        group.members[owner] = {"status": "creator", "is_anonymous": False}
        for user_id, rights in (admins or {}).items():
            group.members[user_id] = _administrator(rights)
        for user_id in members:
            group.members[user_id] = {"status": "member"}
        if bot == "administrator":
            group.members[self.bot_id] = _administrator(bot_rights)
        elif bot in ("member", "kicked"):
            group.members[self.bot_id] = {"status": bot}
        elif bot != "left":
            raise ValueError(f"not a status for the bot: {bot!r}")
        self.groups[chat_id] = group
        # Message 1 made the group (and is the General topic's id): real topics start later.
        self._last_message_id[chat_id] = max(self._last_message_id[chat_id], 1)
        return group

    def group_message(
        self,
        chat_id: int,
        user_id: int,
        text: str | None = None,
        *,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
        first_name: str | None = None,
        **content: Any,
    ) -> int:
        """A member writes in the group (in a topic, or replying to a message there); returns
        the update id, or 0 when the bot's privacy mode keeps the message from it."""
        group = self.groups[chat_id]
        if first_name is not None:
            self._users[user_id] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if group.status(user_id) not in ("creator", "administrator", "member"):
            raise ValueError(f"user {user_id} is not in chat {chat_id}")
        command = text is not None and text.startswith("/")
        if text is not None:
            content["text"] = text
        if command and text is not None:
            length = _utf16(text.split(maxsplit=1)[0])
            content["entities"] = [{"offset": 0, "length": length, "type": "bot_command"}]
        replied = None
        if reply_to_message_id is not None:
            replied = self._message_in(chat_id, reply_to_message_id)
            if replied is None:
                raise KeyError(f"no message {reply_to_message_id} in chat {chat_id}")
        thread = self._user_thread(group, user_id, message_thread_id, replied)
        message = self._post(group, self._user(user_id), content, thread, replied)
        self._said[(chat_id, message["message_id"])] = message
        to_bot = replied is not None and replied.get("from", {}).get("id") == self.bot_id
        if group.status(self.bot_id) in ("creator", "administrator") or to_bot or command:
            return self.add_update({"message": message})
        return 0

    def open_topic(self, chat_id: int, user_id: int, name: str) -> int:
        """A member opens a topic in the forum (as the app would); returns its thread id.
        The bot hears nothing of it: it gets no update for forum_topic_created."""
        group = self.groups[chat_id]
        if not group.forum or not group.may(user_id, "can_manage_topics"):
            raise ValueError(f"user {user_id} may not open topics in chat {chat_id}")
        return self._new_topic(group, user_id, name, _DEFAULT_ICON)

    def group_press(self, chat_id: int, user_id: int, data: str, *, message_id: int) -> int:
        """A member presses a callback button under the bot's message ``message_id`` there."""
        message = self._chats.get(chat_id, {}).get(message_id)
        if message is None:
            raise KeyError(f"the bot has no message {message_id} in chat {chat_id}")
        if self.groups[chat_id].status(user_id) not in ("creator", "administrator", "member"):
            raise ValueError(f"user {user_id} is not in chat {chat_id}")
        query_id = str(4_000_000_000_000_000 + next(self._serial))
        self._queries["callback"][query_id] = math.inf
        query: Json = {"id": query_id, "from": self._user(user_id), "message": message}
        query |= {"chat_instance": str(chat_id * 7919), "data": data}
        return self.add_update({"callback_query": query})

    def reply_text(self, user_id: int, text: str, *, reply_to_message_id: int) -> int:
        """The user replies to a message in their private chat with the bot."""
        replied = self._message_in(user_id, reply_to_message_id)
        if replied is None:
            raise KeyError(f"no message {reply_to_message_id} in chat {user_id}")
        message = self._user_message(user_id, text=text, reply_to_message=_alone(replied))
        return self.add_update({"message": message})

    def group_messages(self, chat_id: int, thread_id: int | None = None) -> list[Json]:
        """Everything in a group (the members' messages and the bot's), or in one topic."""
        found = list(self._chats.get(chat_id, {}).values())
        found += [m for (chat, _), m in self._said.items() if chat == chat_id]
        if thread_id is not None:
            found = [m for m in found if m.get("message_thread_id") == thread_id]
        return sorted(found, key=lambda m: int(m["message_id"]))

    def _new_message(self, chat_id: int, sender: Json, content: Json) -> Json:
        message = super()._new_message(chat_id, sender, content)
        if sender.get("id") != self.bot_id:  # a user's message in their private chat
            self._said[(chat_id, message["message_id"])] = message
            self._talked.add(chat_id)
        return message

    def _someone(self, user_id: int) -> Json:
        return self._bot if user_id == self.bot_id else self._user(user_id)

    def _message_in(self, chat_id: int, message_id: int) -> Json | None:
        return self._chats.get(chat_id, {}).get(message_id) or self._said.get((chat_id, message_id))

    def _user_thread(
        self, group: Group, user_id: int, thread: int | None, replied: Json | None
    ) -> int | None:
        if not group.forum:
            return None
        if thread is None and replied is not None:
            thread = replied.get("message_thread_id")
        if thread is None:
            return None
        topic = group.topics[thread]
        if topic["is_closed"] and not group.may(user_id, "can_manage_topics"):
            raise ValueError("TOPIC_CLOSED: only administrators write in a closed topic")
        return thread

    def _post(
        self, group: Group, sender: Json, content: Json, thread: int | None, replied: Json | None
    ) -> Json:
        """A new message in the group; a message in a topic answers the topic's first message
        unless it answers another (Client.cpp ``get_implicit_reply_to_message_id``)."""
        self._last_message_id[group.id] += 1
        message: Json = {"message_id": self._last_message_id[group.id], "from": sender}
        message |= {"chat": group.chat(), "date": self._date()}
        if thread is not None:
            message |= {"message_thread_id": thread, "is_topic_message": True}
            replied = replied or self._message_in(group.id, thread)
        message |= content
        if replied is not None:
            message["reply_to_message"] = _alone(replied)
        return message

    # Bot API methods (FakeTelegram._handlers lists them all)

    def _group(self, chat_id: int) -> Group | None:
        """Client::check_chat_access for a supergroup the bot knows; None for any other chat."""
        group = self.groups.get(chat_id)
        if group is not None and group.status(self.bot_id) == "kicked":
            raise ApiError(403, KICKED_FROM_GROUP)
        if group is not None and group.status(self.bot_id) == "left":
            raise ApiError(403, NOT_IN_GROUP)
        return group

    async def _send_message(self, params: Json) -> Json:
        text = _text(params)
        chat_id = _chat_id(params)
        group = self._group(chat_id)
        if group is None:  # a private chat (or a chat id the fake does not know)
            if chat_id > 0 and _to_int32(params.get("message_thread_id"), 0) > 0:
                raise ApiError(400, THREAD_NOT_FOUND)  # no topics in private chats here
            replied = self._replied(chat_id, params)
            message = await super()._send_message(params)
            if replied is not None:
                message["reply_to_message"] = _alone(replied)
            return message
        return self._send_to_group(group, {"text": text}, params)

    def _send_to_group(self, group: Group, content: Json, params: Json) -> Json:
        thread = self._thread(group, params)
        replied = self._replied(group.id, params)
        if thread is None and replied is not None and group.forum:
            thread = replied.get("message_thread_id")
        closed = thread is not None and group.topics[thread]["is_closed"]
        if closed and not group.may(self.bot_id, "can_manage_topics"):
            raise ApiError(400, TOPIC_CLOSED)
        if markup := _inline(params):
            content["reply_markup"] = markup
        message = self._post(group, self._bot, content, thread, replied)
        self._chats[group.id][message["message_id"]] = message
        return message

    def _thread(self, group: Group, params: Json) -> int | None:
        """Client::check_message_topic: ignored outside forums; in one, a topic that exists."""
        thread = max(_to_int32(params.get("message_thread_id"), 0), 0)
        if not thread or not group.forum:
            return None
        if thread not in group.topics:  # the General topic (1) is no topic of group.topics
            raise ApiError(400, THREAD_NOT_FOUND)
        return thread

    def _replied(self, chat_id: int, params: Json) -> Json | None:
        """The message ``reply_parameters`` (or ``reply_to_message_id``) answers, if any."""
        reply = params.get("reply_parameters")
        if reply is None:
            reply = {"message_id": params.get("reply_to_message_id") or 0}
            reply["allow_sending_without_reply"] = params.get("allow_sending_without_reply")
        if not isinstance(reply, dict):
            raise ApiError(400, "Bad Request: object expected as reply parameters")
        if reply and "message_id" not in reply:
            raise ApiError(400, 'Bad Request: can\'t find field "message_id"')
        message_id = max(_to_int32(reply.get("message_id"), 0), 0)
        if not message_id:
            return None
        replied = self._message_in(chat_id, message_id)
        if replied is None and reply.get("allow_sending_without_reply") not in (True, "true"):
            raise ApiError(400, REPLY_NOT_FOUND)
        return replied

    async def _copy_message(self, params: Json) -> Json:
        if params.get("from_chat_id") in (None, ""):
            raise ApiError(400, 'Bad Request: parameter "from_chat_id" is required')
        from_chat = _chat_id({"chat_id": params["from_chat_id"]})
        if self._group(from_chat) is None and from_chat not in self._talked:
            raise ApiError(400, CHAT_NOT_FOUND)
        original = self._message_in(from_chat, max(_to_int32(params.get("message_id"), 0), 0))
        if original is None:
            raise ApiError(400, COPY_NOT_FOUND)
        chat_id = _chat_id(params)
        group = self._group(chat_id)
        if group is None and chat_id not in self._talked:  # the user never started the bot
            raise ApiError(400, CHAT_NOT_FOUND)
        content = {k: v for k, v in original.items() if k in _CONTENT}
        if not content or "invoice" in original or "successful_payment" in original:
            raise ApiError(400, CANT_COPY)
        if "caption" in params and _MEDIA & content.keys():
            caption = str(params["caption"] or "")
            if _utf16(_visible(caption, params.get("parse_mode"))) > 1024:
                raise ApiError(400, "Bad Request: message caption is too long")
            content["caption"] = caption
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if group is not None:
            return {"message_id": self._send_to_group(group, content, params)["message_id"]}
        if _to_int32(params.get("message_thread_id"), 0) > 0:
            raise ApiError(400, THREAD_NOT_FOUND)
        replied = self._replied(chat_id, params)
        message = self._store(chat_id, content, params)
        if replied is not None:
            message["reply_to_message"] = _alone(replied)
        return {"message_id": message["message_id"]}

    async def _create_forum_topic(self, params: Json) -> Json:
        group = self._forum(params)
        if not group.may(self.bot_id, "can_manage_topics"):
            raise ApiError(400, NO_TOPIC_RIGHTS)
        name = " ".join(str(params.get("name") or "").split())[:128]  # TDLib's clean_name
        if not name:
            raise ApiError(400, "Bad Request: title must be non-empty")
        icon_color = _to_int32(params.get("icon_color"), 0) or _DEFAULT_ICON
        thread = self._new_topic(group, self.bot_id, name, icon_color)
        return {"message_thread_id": thread, "name": name, "icon_color": icon_color}

    def _new_topic(self, group: Group, creator: int, name: str, icon_color: int) -> int:
        """A topic: its id is the id of its first message, ``forum_topic_created``."""
        self._last_message_id[group.id] += 1
        thread = self._last_message_id[group.id]
        message: Json = {"message_id": thread, "from": self._someone(creator), "chat": group.chat()}
        message |= {"date": self._date(), "message_thread_id": thread, "is_topic_message": True}
        message["forum_topic_created"] = {"name": name, "icon_color": icon_color}
        if creator == self.bot_id:
            self._chats[group.id][thread] = message
        else:
            self._said[(group.id, thread)] = message
        group.topics[thread] = {"name": name, "icon_color": icon_color, "is_closed": False}
        group.topics[thread]["creator"] = creator
        return thread

    async def _close_forum_topic(self, params: Json) -> bool:
        return self._toggle_topic(params, closed=True)

    async def _reopen_forum_topic(self, params: Json) -> bool:
        return self._toggle_topic(params, closed=False)

    def _toggle_topic(self, params: Json, *, closed: bool) -> bool:
        group = self._forum(params)
        thread = max(_to_int32(params.get("message_thread_id"), 0), 0)
        if not thread:
            raise ApiError(400, "Bad Request: invalid message thread identifier specified")
        topic = group.topics.get(thread)
        mine = topic is not None and topic["creator"] == self.bot_id
        if not mine and not group.may(self.bot_id, "can_manage_topics"):
            raise ApiError(400, NO_CLOSE_RIGHTS)
        if topic is None:
            raise ApiError(400, "Bad Request: TOPIC_ID_INVALID")
        if topic["is_closed"] == closed:
            raise ApiError(400, TOPIC_NOT_MODIFIED)
        topic["is_closed"] = closed
        service: Json = {"forum_topic_closed" if closed else "forum_topic_reopened": {}}
        message = self._post(group, self._bot, service, thread, None)
        self._chats[group.id][message["message_id"]] = message
        return True

    def _forum(self, params: Json) -> Group:
        """ForumTopicManager::is_forum, after the server's check of the chat."""
        chat_id = _chat_id(params)
        group = self._group(chat_id)
        if group is None and chat_id < 0:
            raise ApiError(400, CHAT_NOT_FOUND)
        if group is None or not group.forum:
            raise ApiError(400, NOT_A_FORUM)
        return group

    async def _get_chat(self, params: Json) -> Json:
        chat_id = _chat_id(params)
        group = self._group(chat_id)
        kinds = ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription")
        gifts = dict.fromkeys((*kinds, "gifts_from_channels"), False)
        full = {"accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": gifts}
        if group is not None:
            return group.chat() | full
        if chat_id in self._talked:
            return self._chat(chat_id) | full
        raise ApiError(400, CHAT_NOT_FOUND)


def _administrator(rights: Mapping[str, bool]) -> Json:
    unknown = set(rights) - set(GROUP_RIGHTS)
    if unknown:
        raise ValueError(f"not supergroup administrator rights: {sorted(unknown)}")
    member: Json = {"status": "administrator", "can_be_edited": False, "is_anonymous": False}
    return member | {right: bool(rights.get(right, False)) for right in GROUP_RIGHTS}


def _alone(message: Json) -> Json:
    """A message as ``reply_to_message`` shows it: without its own reply_to_message."""
    return {k: v for k, v in message.items() if k != "reply_to_message"}
