"""The required channel (``REQUIRED_CHANNEL_ID``): buying and the trial wait until the
customer has joined it.

Membership is asked of Telegram (``getChatMember``), which needs the bot to be an
administrator of the channel: that is checked at start and reported as an alert if not.
A positive answer is remembered for :data:`REMEMBER` seconds; a negative one is not, so
"check again" right after joining works. When Telegram cannot answer at all, the
customer is let through: a shop that cannot sell because of a channel check loses more
than the check is worth.
"""

from __future__ import annotations

import logging
import math

import trio

from ..errors import TelegramError
from ..telegram.api import BotClient

log = logging.getLogger(__name__)

REMEMBER = 300.0
#: Statuses of someone in the channel (``restricted`` counts when ``is_member``).
MEMBERS = frozenset({"creator", "administrator", "member"})
_MAX_REMEMBERED = 100_000


class ChannelGate:
    def __init__(self, bot: BotClient, channel_id: int, url: str | None) -> None:
        self._bot = bot
        self.channel_id = channel_id
        self.url = url
        self._members: dict[int, float] = {}  # customer -> trio time the answer expires

    async def prepare(self) -> None:
        """At start: is the bot an administrator there, and what link do customers get."""
        try:
            me = await self._bot.call("getMe")
            mine = await self._bot.call(
                "getChatMember", {"chat_id": self.channel_id, "user_id": me["id"]}
            )
            if mine.get("status") not in ("creator", "administrator"):
                log.error(
                    "ALERT: the bot is not an administrator of REQUIRED_CHANNEL_ID %s, so it"
                    " cannot see who joined: customers are let through until it is",
                    self.channel_id,
                )
                return
            if self.url is None:
                made = await self._bot.call(
                    "createChatInviteLink", {"chat_id": self.channel_id, "name": "shop"}
                )
                self.url = str(made["invite_link"])
        except TelegramError as exc:
            log.error(
                "ALERT: REQUIRED_CHANNEL_ID %s cannot be checked (%s): make the bot an"
                " administrator of the channel; until then customers are let through",
                self.channel_id,
                exc,
            )

    async def is_member(self, user_id: int, *, fresh: bool = False) -> bool:
        now = trio.current_time()
        if not fresh and self._members.get(user_id, -math.inf) > now:
            return True
        try:
            member = await self._bot.call(
                "getChatMember", {"chat_id": self.channel_id, "user_id": user_id}
            )
        except TelegramError as exc:
            log.warning("required channel: membership of %s unknown (%s)", user_id, exc)
            return True
        status = member.get("status")
        joined = status in MEMBERS or (status == "restricted" and bool(member.get("is_member")))
        if joined:
            if len(self._members) >= _MAX_REMEMBERED:
                self._members.clear()
            self._members[user_id] = now + REMEMBER
        else:
            self._members.pop(user_id, None)
        return joined
