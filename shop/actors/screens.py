"""The screens a customer sees: text plus inline keyboard, in the customer's language.

Rendering only: every function takes what it shows and returns a :class:`Screen`.
Callback data is short and positional (``verb`` or ``verb:arg:...``); whatever a button
names is checked again by its handler, because callback data is customer input.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

import attrs

from ..catalog import Catalog, Package, Plan
from ..store.payments import PaymentRow
from ..store.subscriptions import SubscriptionRow
from ..telegram.formatting import money, when
from ..telegram.keyboards import button, keyboard, link
from ..telegram.texts import LANGUAGES, Texts
from ..telegram.types import InlineKeyboardButton, InlineKeyboardMarkup

LANGUAGE_NAMES = {"en": "English", "ru": "Русский", "uk": "Українська"}
PROVIDER_NAMES = {
    "stars": "Telegram Stars",
    "yookassa": "YooKassa",
    "stripe": "Stripe",
    "cryptopay": "Crypto Pay",
    "heleket": "Heleket",
    "platega": "Platega",
    "yoomoney": "YooMoney",
}


@attrs.frozen
class Screen:
    name: str
    text: str
    keyboard: InlineKeyboardMarkup | None = None


@attrs.frozen
class Method:
    """A way to pay for one item: ``key`` goes into callback data."""

    key: str  # stars | starsub | balance | a provider name
    currency: str
    amount: int


def main_menu(
    t: Texts,
    lang: str,
    *,
    greet: str | None = None,
    trial_days: int = 0,
    invite: bool = False,
    closed: bool = False,
) -> Screen:
    """``closed``: maintenance, so a notice instead of the buying buttons."""
    text = t(lang, "menu.greeting", name=html.escape(greet)) if greet else t(lang, "menu.title")
    rows = [] if closed else [[button(t(lang, "btn.buy"), "buy")]]
    if closed:
        text += "\n\n" + t(lang, "maintenance.notice")
    elif trial_days:
        rows.append([button(t(lang, "btn.trial", days=trial_days), "trial")])
    rows += [
        [button(t(lang, "btn.subscription"), "sub"), button(t(lang, "btn.balance"), "bal")],
        [button(t(lang, "btn.invite"), "ref")] if invite else [],
        [button(t(lang, "btn.promo"), "promo")],
        [button(t(lang, "btn.help"), "help"), button(t(lang, "btn.language"), "lang")],
    ]
    return Screen("main", text, keyboard(*rows))


def back(t: Texts, lang: str, to: str = "menu") -> list[InlineKeyboardButton]:
    return [button(t(lang, "btn.back"), to)]


def help_screen(t: Texts, lang: str, *, faq: bool = False, support: bool = False) -> Screen:
    """``faq``: the catalog has questions; ``support``: tickets have somewhere to go."""
    rows = [[button(t(lang, "btn.faq"), "faq")] if faq else []]
    rows.append([button(t(lang, "btn.write_support"), "sup")] if support else [])
    return Screen("help", t(lang, "help.text"), keyboard(*rows, back(t, lang)))


def language_screen(t: Texts, lang: str) -> Screen:
    choices = [
        button(("• " if code == lang else "") + LANGUAGE_NAMES[code], f"lang:{code}")
        for code in LANGUAGES
    ]
    return Screen("lang", t(lang, "language.choose"), keyboard(choices, back(t, lang)))


# -- buying ------------------------------------------------------------------------------


def prices_text(prices: Mapping[str, int], lang: str) -> str:
    return " / ".join(money(amount, currency, lang) for currency, amount in prices.items())


def plans_screen(t: Texts, lang: str, catalog: Catalog) -> Screen:
    rows = [
        [
            button(
                t(
                    lang,
                    "buy.plan_button",
                    title=plan.title(lang),
                    price=prices_text(plan.prices, lang),
                ),
                f"plan:{plan.id}",
            )
        ]
        for plan in catalog.plans
    ]
    return Screen("buy", t(lang, "buy.title"), keyboard(*rows, back(t, lang)))


def plan_screen(
    t: Texts, lang: str, plan: Plan, methods: Sequence[Method], discount: int | None = None
) -> Screen:
    text = t(
        lang,
        "plan.title",
        title=html.escape(plan.title(lang)),
        days=plan.days,
        prices=prices_text(plan.prices, lang),
    )
    if discount:
        text += "\n\n" + t(lang, "plan.discount", percent=discount)
    screen = _item_screen(t, lang, f"plan:{plan.id}", text, f"p:{plan.id}", methods, "buy")
    assert screen.keyboard is not None
    gift = ((button(t(lang, "btn.gift"), f"gift:{plan.id}"),),)
    rows = screen.keyboard.inline_keyboard
    return attrs.evolve(screen, keyboard=keyboard(*rows[:-1], *gift, rows[-1]))


def gift_screen(t: Texts, lang: str, plan: Plan, methods: Sequence[Method]) -> Screen:
    text = t(lang, "gift.title", title=html.escape(plan.title(lang)), days=plan.days)
    return _item_screen(
        t, lang, f"gift:{plan.id}", text, f"g:{plan.id}", methods, f"plan:{plan.id}"
    )


def package_screen(t: Texts, lang: str, package: Package, methods: Sequence[Method]) -> Screen:
    text = t(
        lang,
        "pkg.title",
        title=html.escape(package.title(lang)),
        credit=prices_text(package.credit, lang),
        prices=prices_text(package.prices, lang),
    )
    return _item_screen(t, lang, f"pkg:{package.id}", text, f"k:{package.id}", methods, "bal")


def _item_screen(
    t: Texts, lang: str, name: str, text: str, item: str, methods: Sequence[Method], parent: str
) -> Screen:
    rows = [
        [
            button(
                t(
                    lang,
                    f"method.{m.key}" if m.key in _OWN_METHODS else "method.provider",
                    provider=PROVIDER_NAMES.get(m.key, m.key),
                    price=money(m.amount, m.currency, lang),
                ),
                f"pay:{item}:{m.key}:{m.currency}",
            )
        ]
        for m in methods
    ]
    if not methods:
        text += "\n\n" + t(lang, "method.none")
    return Screen(name, text, keyboard(*rows, back(t, lang, parent)))


_OWN_METHODS = ("stars", "starsub", "balance")


def confirm_balance_screen(t: Texts, lang: str, payment: PaymentRow, balance: int) -> Screen:
    price = money(payment.amount, payment.currency, lang)
    text = t(
        lang,
        "confirm.title",
        title=html.escape(payment.title),
        price=price,
        balance=money(balance, payment.currency, lang),
    )
    return Screen(
        "confirm",
        text,
        keyboard(
            [button(t(lang, "confirm.button", price=price), f"conf:{payment.id}")],
            back(t, lang, f"plan:{payment.product_id}"),
        ),
    )


def checkout_screen(t: Texts, lang: str, payment: PaymentRow, url: str, back_to: str) -> Screen:
    price = money(payment.amount, payment.currency, lang)
    provider = PROVIDER_NAMES.get(payment.provider, payment.provider)
    text = t(
        lang, "checkout.text", title=html.escape(payment.title), price=price, provider=provider
    )
    return Screen(
        "checkout",
        text,
        keyboard(
            [link(t(lang, "checkout.pay", price=price), url)],
            [button(t(lang, "checkout.check"), f"chk:{payment.id}")],
            back(t, lang, back_to),
        ),
    )


# -- subscription, balance, history --------------------------------------------------------


def subscription_screen(
    t: Texts,
    lang: str,
    subscription: SubscriptionRow | None,
    now: dt.datetime,
    zone: ZoneInfo,
    access: str | None,
    plan_title: str | None,
    auto_renew: bool = False,
    can_qr: bool = False,
    can_relink: bool = False,
) -> Screen:
    if subscription is None:
        text = t(lang, "sub.none")
    elif subscription.lifetime:
        text = t(lang, "sub.lifetime")
    elif subscription.expires_at is not None and subscription.active(now):
        date = when(subscription.expires_at, zone, lang)
        text = t(lang, "sub.active", date=date, plan=html.escape(plan_title or ""))
    else:
        expired = subscription.expires_at or now
        text = t(lang, "sub.expired", date=when(expired, zone, lang))
    if access:
        text += "\n\n" + access
    action = "btn.renew" if subscription is not None else "btn.buy"
    rows = [[button(t(lang, action), "buy")]]
    if subscription is not None and not subscription.lifetime:
        toggle = ("btn.autorenew_on", "auto:0") if auto_renew else ("btn.autorenew_off", "auto:1")
        rows.append([button(t(lang, toggle[0]), toggle[1])])
    tools = [button(t(lang, "btn.qr"), "qr")] if can_qr else []
    if can_relink:
        tools.append(button(t(lang, "btn.relink"), "relink"))
    if tools:
        rows.append(tools)
    return Screen("sub", text, keyboard(*rows, back(t, lang)))


def relink_screen(t: Texts, lang: str) -> Screen:
    """Are you sure? A new link means setting up every device again."""
    rows = [[button(t(lang, "btn.relink_yes"), "relink:yes")]]
    return Screen("relink", t(lang, "relink.confirm"), keyboard(*rows, back(t, lang, "sub")))


def balance_screen(
    t: Texts,
    lang: str,
    balances: Mapping[str, int],
    packages: Sequence[Package],
    custom_topup: bool = False,
) -> Screen:
    amounts = {c: a for c, a in balances.items() if a} or {"XTR": 0}
    lines = "\n".join(f"• {money(a, c, lang)}" for c, a in sorted(amounts.items()))
    text = t(lang, "bal.title", lines=lines)
    if packages:
        text += "\n\n" + t(lang, "bal.topup")
    rows = [
        [
            button(
                t(lang, "bal.package", title=p.title(lang), price=prices_text(p.prices, lang)),
                f"pkg:{p.id}",
            )
        ]
        for p in packages
    ]
    if custom_topup:
        rows.append([button(t(lang, "btn.topup_other"), "topup")])
    rows.append([button(t(lang, "btn.history"), "hist:0")])
    return Screen("bal", text, keyboard(*rows, back(t, lang)))


HISTORY_PAGE = 10
HISTORY_DAYS = 30


def history_screen(
    t: Texts, lang: str, entries: Sequence[PaymentRow], page: int, total: int, zone: ZoneInfo
) -> Screen:
    pages = max(1, -(-total // HISTORY_PAGE))
    if not entries:
        return Screen("hist", t(lang, "hist.empty"), keyboard(back(t, lang, "bal")))
    rows = [
        [
            button(
                t(
                    lang,
                    "hist.entry",
                    date=e.created_at.astimezone(zone).strftime("%d.%m %H:%M"),
                    title=e.title,
                    amount=money(e.amount, e.currency, lang),
                    mark="↩️ " if e.status == "refunded" else "",
                ),
                f"tx:{e.id}",
            )
        ]
        for e in entries
    ]
    nav = []
    if page > 0:
        nav.append(button(t(lang, "btn.newer"), f"hist:{page - 1}"))
    if page + 1 < pages:
        nav.append(button(t(lang, "btn.older"), f"hist:{page + 1}"))
    text = t(lang, "hist.title", page=page + 1, pages=pages)
    return Screen("hist", text, keyboard(*rows, nav, back(t, lang, "bal")))


def entry_screen(t: Texts, lang: str, payment: PaymentRow, zone: ZoneInfo) -> Screen:
    provider = (
        t(lang, "method.name.balance")
        if payment.provider == "balance"
        else (PROVIDER_NAMES.get(payment.provider, payment.provider))
    )
    text = t(
        lang,
        "tx.title",
        title=html.escape(payment.title),
        date=when(payment.completed_at or payment.created_at, zone, lang),
        amount=money(payment.amount, payment.currency, lang),
        method=provider,
        status=t(lang, f"status.{payment.status}"),
        id=payment.id,
    )
    return Screen("tx", text, keyboard(back(t, lang, "hist:0")))
