"""What the shop says when something happens to a customer's money or access.

Every such message is a notice row (``store.notices``) owed in the transaction that
decided it; :func:`render` turns one into ``sendMessage`` parameters from the row alone
(its ``detail`` holds what the message needs, as it was at that moment), so the message
reads the same whether it is sent at once or after a restart. The courier delivers it.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import TYPE_CHECKING, Any

from ..growth.referrals import what
from ..store.notices import Notice
from ..telegram.formatting import money, when
from ..telegram.keyboards import button, keyboard
from ..telegram.types import to_json

if TYPE_CHECKING:
    from ..app import App


def render(app: App, notice: Notice) -> dict[str, Any] | None:
    """The message for a notice; None when there is nothing to say (an unknown kind)."""
    rows: list[list[Any]] = []
    if notice.kind.startswith("panel_"):  # from the VPN panel: traffic running out
        text: str | None = app.texts(notice.language, f"notice.{notice.kind}")
        rows = [[button(app.texts(notice.language, "btn.renew"), "buy")]]
    elif notice.ref:
        text = _about_payment(app, notice)
    else:
        found = _about_subscription(app, notice)
        if found is None:
            return None
        text, rows = found
    if text is None:
        return None
    params: dict[str, Any] = {"chat_id": notice.telegram_id, "text": text, "parse_mode": "HTML"}
    if rows:
        params["reply_markup"] = to_json(keyboard(*rows))
    return params


def _about_payment(app: App, notice: Notice) -> str | None:
    t, lang, detail = app.texts, notice.language, notice.detail
    title = html.escape(str(detail.get("title", "")))
    if notice.kind == "paid":
        lines = [t(lang, "paid.title", title=title)]
        if gift := detail.get("gift_code"):
            lines.append(t(lang, "paid.gift", link=app.identity.link(f"g_{gift}")))
        elif detail.get("lifetime"):
            lines.append(t(lang, "paid.lifetime"))
        elif expires := _moment(detail.get("expires_at")):
            lines.append(t(lang, "paid.until", date=when(expires, app.config.timezone, lang)))
        balances = detail.get("balances", {})
        for currency, amount in sorted(detail.get("credited", {}).items()):
            lines.append(
                t(
                    lang,
                    "paid.credited",
                    amount=money(int(amount), currency, lang),
                    balance=money(int(balances.get(currency, 0)), currency, lang),
                )
            )
        return "\n".join(lines)
    if notice.kind in ("referral_reward", "referral_welcome", "gift_redeemed"):
        credit = {str(c): int(a) for c, a in dict(detail.get("credit") or {}).items()}
        got = what(t, lang, int(detail.get("days") or 0), credit)
        key = {"referral_reward": "ref.rewarded", "referral_welcome": "ref.welcomed"}
        return t(lang, key.get(notice.kind, "gift.redeemed"), what=got)
    amount = money(int(detail.get("amount", 0)), str(detail.get("currency", "")), lang)
    if notice.kind == "refunded":
        lines = [t(lang, "refund.title", amount=amount)]
        expires = _moment(detail.get("expires_at"))
        if detail.get("had_subscription") and expires is not None:
            if expires > app.clock.now():
                lines.append(t(lang, "refund.until", date=when(expires, app.config.timezone, lang)))
            else:
                lines.append(t(lang, "refund.ended"))
        return "\n".join(lines)
    if notice.kind == "duplicate_refunded":
        return t(lang, "dup.refunded", title=title, amount=amount)
    if notice.kind == "duplicate_credited":
        balance = money(int(detail.get("balance", 0)), str(detail.get("currency", "")), lang)
        return t(lang, "dup.credited", title=title, amount=amount, balance=balance)
    return None


def _about_subscription(app: App, notice: Notice) -> tuple[str, list[list[Any]]] | None:
    t, lang, zone = app.texts, notice.language, app.config.timezone
    renew = [button(t(lang, "btn.renew"), "buy")]
    expires = notice.expires_at
    if notice.kind == "expired":
        return t(lang, "notice.expired"), [renew]
    if notice.kind.startswith("remind_") and expires is not None:
        today = app.clock.now().astimezone(zone).date()
        days = (expires.astimezone(zone).date() - today).days
        key = {0: "notice.today", 1: "notice.tomorrow"}.get(days, "notice.days")
        return t(lang, key, days=days, date=when(expires, zone, lang)), [renew]
    if notice.kind == "renew_failed" and expires is not None:
        plan = app.catalog.plan(str(notice.detail.get("plan", "")))
        price = " / ".join(money(a, c, lang) for c, a in plan.prices.items()) if plan else ""
        text = t(lang, "notice.renew_failed", date=when(expires, zone, lang), price=price)
        return text, [[button(t(lang, "btn.balance"), "bal")], renew]
    return None


def _moment(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return dt.datetime.fromisoformat(value)
