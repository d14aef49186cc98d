"""The bot's private chats in the fake Telegram Bot API server: messages and button presses.

Users write to the bot (``send_text``) and press its callback buttons (``press``); the bot
sends, edits and deletes its messages (sendMessage, sendPhoto, editMessageText,
editMessageReplyMarkup, deleteMessage) and answers callback queries, with the server's
checks and texts. Message ``text`` is stored as sent, not as the visible text plus entities.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import trio

from .errors import NOT_MODIFIED, QUERY_INVALID, ApiError, Json
from .params import Upload, _chat_id, _inline, _int, _text, _utf16, _visible

#: What an image file begins with: PNG, JPEG.
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


class MessagesMixin:
    """The bot's messages, chat by chat, and the queries it may answer, for ``FakeTelegram``.

    Tests read a chat with ``messages`` or ``last_message``, and the files sent with
    sendPhoto in ``uploads``.
    """

    if TYPE_CHECKING:  # given by FakeTelegram
        _serial: Iterator[int]
        _users: dict[int, Json]

        @property
        def _bot(self) -> Json: ...
        def _user(self, user_id: int) -> Json: ...
        def _date(self) -> int: ...
        def add_update(self, update: Json) -> int: ...

    def _reset_messages(self) -> None:
        self._chats: defaultdict[int, dict[int, Json]] = defaultdict(dict)
        self.uploads: list[Upload] = []  # files sent with calls (sendPhoto), in order
        self._last_message_id: defaultdict[int, int] = defaultdict(int)
        # Answerable query ids -> answer deadline, for callback and pre-checkout queries.
        self._queries: dict[str, dict[str, float]] = {"callback": {}, "pre_checkout": {}}

    def messages(self, chat_id: int) -> list[Json]:
        """The bot's messages in a chat as they are now (after edits, without deleted ones)."""
        return list(self._chats.get(chat_id, {}).values())

    def last_message(self, chat_id: int) -> Json | None:
        messages = self.messages(chat_id)
        return messages[-1] if messages else None

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

    def send_content(self, user_id: int, **content: Any) -> int:
        """The user sends a message with other content than plain text, given as the Bot
        API's Message fields: ``photo`` (sizes) and ``caption``, ``forward_origin``,
        ``text`` with ``entities``..."""
        return self.add_update({"message": self._user_message(user_id, **content)})

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

    # Bot API methods (FakeTelegram._handlers lists them all)

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
