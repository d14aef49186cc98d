"""The Bot API types the shop uses, as attrs classes, and one cattrs converter.

Only the fields the shop reads are declared; unknown fields are ignored, so a newer
Bot API never breaks parsing. Ids are Python ints (64-bit in the database). The JSON
key ``from`` is the attribute ``from_user``.
"""

from __future__ import annotations

from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override


@attrs.frozen
class User:
    id: int
    is_bot: bool = False
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None


@attrs.frozen
class Chat:
    id: int
    type: str = "private"
    title: str | None = None
    username: str | None = None
    first_name: str | None = None


@attrs.frozen
class MessageEntity:
    type: str
    offset: int  # in UTF-16 code units
    length: int
    url: str | None = None  # text_link
    language: str | None = None  # pre


@attrs.frozen
class SuccessfulPayment:
    currency: str
    total_amount: int
    invoice_payload: str
    telegram_payment_charge_id: str
    provider_payment_charge_id: str = ""
    subscription_expiration_date: int | None = None
    is_recurring: bool = False
    is_first_recurring: bool = False


@attrs.frozen
class RefundedPayment:
    currency: str
    total_amount: int
    invoice_payload: str
    telegram_payment_charge_id: str
    provider_payment_charge_id: str | None = None


@attrs.frozen
class PhotoSize:
    file_id: str
    file_unique_id: str = ""
    width: int = 0
    height: int = 0


@attrs.frozen
class File:
    """A document, a voice note, a video, a sticker...: the shop relays them as they are."""

    file_id: str
    file_unique_id: str = ""
    file_name: str | None = None
    mime_type: str | None = None


@attrs.frozen
class MessageOrigin:
    """Where a forwarded message came from: ``sender_user`` for a user who allows it."""

    type: str  # user | hidden_user | chat | channel
    date: int = 0
    sender_user: User | None = None
    sender_user_name: str | None = None


@attrs.frozen
class Message:
    message_id: int
    chat: Chat
    date: int = 0  # 0 for an inaccessible message
    from_user: User | None = None
    text: str | None = None
    entities: tuple[MessageEntity, ...] = ()
    caption: str | None = None
    caption_entities: tuple[MessageEntity, ...] = ()
    photo: tuple[PhotoSize, ...] = ()  # sizes, smallest first
    document: File | None = None
    audio: File | None = None
    voice: File | None = None
    video: File | None = None
    video_note: File | None = None
    animation: File | None = None
    sticker: File | None = None
    forward_origin: MessageOrigin | None = None
    message_thread_id: int | None = None  # the forum topic it is in
    is_topic_message: bool = False
    #: the message it answers (a message in a forum topic answers the topic's first one);
    #: Telegram leaves out this one's own reply_to_message
    reply_to_message: Message | None = None
    successful_payment: SuccessfulPayment | None = None
    refunded_payment: RefundedPayment | None = None


@attrs.frozen
class CallbackQuery:
    id: str
    from_user: User
    chat_instance: str = ""
    message: Message | None = None
    data: str | None = None


@attrs.frozen
class PreCheckoutQuery:
    id: str
    from_user: User
    currency: str
    total_amount: int
    invoice_payload: str


@attrs.frozen
class ChatMember:
    status: str
    user: User


@attrs.frozen
class ChatMemberUpdated:
    chat: Chat
    from_user: User
    date: int
    old_chat_member: ChatMember
    new_chat_member: ChatMember


@attrs.frozen
class ChatInviteLink:
    invite_link: str
    creates_join_request: bool = False
    is_primary: bool = False
    is_revoked: bool = False
    name: str | None = None
    expire_date: int | None = None
    member_limit: int | None = None


@attrs.frozen
class ChatJoinRequest:
    """Someone asks to join a chat where the bot may approve members (the private channel)."""

    chat: Chat
    from_user: User
    #: a private chat with the requester: the bot may write there for 5 minutes, until the
    #: request is processed, even if they never started the bot
    user_chat_id: int
    date: int
    bio: str | None = None
    invite_link: ChatInviteLink | None = None
    #: set only for a bot assigned to process join requests: it must then answer the query
    #: (answerChatJoinRequestQuery) within 10 seconds instead of approving or declining
    query_id: str | None = None


@attrs.frozen
class Update:
    update_id: int
    message: Message | None = None
    edited_message: Message | None = None
    callback_query: CallbackQuery | None = None
    pre_checkout_query: PreCheckoutQuery | None = None
    my_chat_member: ChatMemberUpdated | None = None
    chat_join_request: ChatJoinRequest | None = None

    @property
    def sender(self) -> User | None:
        """Who caused the update: the customer whose actor handles it."""
        if self.message is not None:
            return self.message.from_user
        for part in (
            self.callback_query,
            self.pre_checkout_query,
            self.my_chat_member,
            self.chat_join_request,
        ):
            if part is not None:
                return part.from_user
        return None


#: What the poller asks Telegram for: what the shop handles, and nothing else.
ALLOWED_UPDATES = (
    "message",
    "callback_query",
    "pre_checkout_query",
    "my_chat_member",
    "chat_join_request",
)


# -- keyboards (outgoing) -----------------------------------------------------------


@attrs.frozen
class InlineKeyboardButton:
    text: str
    callback_data: str | None = None
    url: str | None = None
    pay: bool | None = None


@attrs.frozen
class InlineKeyboardMarkup:
    inline_keyboard: tuple[tuple[InlineKeyboardButton, ...], ...]


# -- the converter --------------------------------------------------------------------


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=False)
    for cls in (Message, CallbackQuery, PreCheckoutQuery, ChatMemberUpdated, ChatJoinRequest):
        converter.register_structure_hook(
            cls, make_dict_structure_fn(cls, converter, from_user=override(rename="from"))
        )
    converter.register_unstructure_hook(InlineKeyboardButton, _button_json)
    converter.register_unstructure_hook(InlineKeyboardMarkup, _keyboard_json)
    return converter


# Keyboards go out with almost every reply; written by hand they cost a fifth of what
# cattrs' generated functions did, a tenth of the shop's CPU per /start (issue #15).
def _button_json(button: InlineKeyboardButton) -> dict[str, Any]:
    """A button's JSON: its text and the fields that are set (None is left out)."""
    data: dict[str, Any] = {"text": button.text}
    if button.callback_data is not None:
        data["callback_data"] = button.callback_data
    if button.url is not None:
        data["url"] = button.url
    if button.pay is not None:
        data["pay"] = button.pay
    return data


def _keyboard_json(markup: InlineKeyboardMarkup) -> dict[str, Any]:
    return {"inline_keyboard": [[_button_json(b) for b in row] for row in markup.inline_keyboard]}


converter = _make_converter()


def parse_update(raw: dict[str, Any]) -> Update:
    """Structure one update; raises cattrs errors on a malformed one."""
    return converter.structure(raw, Update)


def to_json(value: Any) -> Any:
    """Unstructure outgoing values (keyboards) into JSON-ready data."""
    return converter.unstructure(value)
