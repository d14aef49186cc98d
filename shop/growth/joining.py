"""The screens of the required channel: join it, then "check again" (see ``channel_gate``)."""

from __future__ import annotations

from ..actors.conversation import Conversation
from ..actors.screens import Screen
from ..telegram.keyboards import button, keyboard, link
from ..telegram.types import CallbackQuery, Message
from .channel_gate import ChannelGate


async def show_join(conv: Conversation, target: Message | None, url: str | None) -> None:
    rows = [[link(conv.t("btn.join"), url)]] if url else []
    rows.append([button(conv.t("btn.check_again"), "chan")])
    rows.append([button(conv.t("btn.back"), "menu")])
    await conv.show(target, Screen("chan", conv.t("channel.join"), keyboard(*rows)))


async def check_again(
    conv: Conversation, gate: ChannelGate, query: CallbackQuery, target: Message | None
) -> bool:
    """The "check again" button; True when the customer may go on (shown the plans)."""
    if await gate.is_member(conv.id, fresh=True):
        await conv.answer(query, conv.t("channel.thanks"))
        return True
    await conv.answer(query, conv.t("channel.not_yet"), alert=True)
    return False
