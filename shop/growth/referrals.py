"""Invite friends: a customer's link, who came by it, and what it earned.

``/start ref_<telegram_id>`` records the referrer once, only for a customer this very
update created (never someone who was here before) and never oneself
(``store.rewards.record_referral``); the reward comes with the referee's first paid
purchase, in its fulfilling transaction (``store.rewards.reward_referral``).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..actors.conversation import Conversation
from ..actors.screens import Screen, back
from ..catalog import Referral
from ..store import rewards
from ..telegram.formatting import money
from ..telegram.keyboards import keyboard
from ..telegram.texts import Texts
from ..telegram.types import Message

PREFIX = "ref_"


def what(t: Texts, lang: str, days: int, credit: Mapping[str, int]) -> str:
    """``7 days``, ``50 ⭐``, or both, in the customer's language."""
    parts = [t(lang, "what.days", days=days)] if days else []
    parts += [money(amount, currency, lang) for currency, amount in sorted(credit.items())]
    return " + ".join(parts)


async def arrived_by_link(conv: Conversation, payload: str, is_new: bool) -> None:
    """``/start ref_<id>``: remember the referrer if this customer has just arrived."""
    referrer = payload.removeprefix(PREFIX)
    if not is_new or not (referrer.isascii() and referrer.isdigit() and len(referrer) < 19):
        return
    await conv.app.store.run_statement(rewards.record_referral, conv.id, int(referrer))


async def show(conv: Conversation, target: Message | None) -> None:
    app, lang = conv.app, conv.lang
    invited, rewarded = await app.store.run_statement(rewards.earned, conv.id)
    referral: Referral = app.catalog.referral
    lines = [conv.t("ref.title", link=app.identity.link(f"{PREFIX}{conv.id}"))]
    if referral.days or referral.credit:
        reward = what(app.texts, lang, referral.days, referral.credit)
        lines.append(conv.t("ref.reward", what=reward))
    if referral.welcome_days or referral.welcome_credit:
        welcome = what(app.texts, lang, referral.welcome_days, referral.welcome_credit)
        lines.append(conv.t("ref.welcome", what=welcome))
    lines.append(conv.t("ref.count", invited=invited, rewarded=rewarded))
    await conv.show(target, Screen("ref", "\n\n".join(lines), keyboard(back(app.texts, lang))))
