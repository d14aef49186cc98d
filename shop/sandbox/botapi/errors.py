"""The fake Telegram Bot API server's error envelope, and the error texts tests compare with.

``ApiError`` is what a method handler raises to answer with the server's ``JsonQueryError``
envelope. The texts are the real server's, word for word; tests import them from
``shop.sandbox.botapi`` to compare with what the shop was told.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


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
