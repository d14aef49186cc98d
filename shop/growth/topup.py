"""A top-up of any amount: Balance → "Other amount" → (the currency) → the customer types
the amount → how to pay.

The amount is checked against the catalog's ``[topup]`` bounds for its currency: letters,
decimals where the currency has none (Stars), too little, too much or a negative get a
clear answer and the same question again. The amount then travels in the payment
buttons (``pay:t:<amount>:<method>:<currency>``), which are customer input: the payment
is created only after the amount is checked again (``shopping.start_payment``). What is
credited is the amount plus the catalog's bonus percent, fixed on the payment.
"""

from __future__ import annotations

import re

from ..actors.conversation import Awaiting, Conversation, resumable
from ..actors.screens import PROVIDER_NAMES, Method, Screen, back
from ..catalog import TopUp
from ..money import MoneyError, exponent, to_minor
from ..telegram.formatting import money
from ..telegram.keyboards import button, keyboard
from ..telegram.types import Message

_AMOUNT = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,9})?")

#: The product id of a top-up of a typed amount (``payments.product_id``).
PRODUCT = "topup"


def checked_amount(topup: TopUp, text: str, currency: str) -> int | str:
    """The amount in minor units, or the text key of what is wrong with it."""
    if currency not in topup.minimum:
        return "topup.not_offered"
    cleaned = text.strip().replace(",", ".").replace(" ", "")
    if not _AMOUNT.fullmatch(cleaned):  # plain digits only: no "1e3", no "∞", no "٣"
        return "topup.not_a_number"
    try:
        amount = to_minor(cleaned, currency)
    except MoneyError:
        return "topup.whole" if exponent(currency) == 0 else "topup.not_a_number"
    if not topup.minimum[currency] <= amount <= topup.maximum[currency]:
        return "topup.range"
    return amount


async def start(conv: Conversation, target: Message | None) -> None:
    """Balance → Other amount: the currency first when several are offered."""
    currencies = list(conv.app.catalog.topup.minimum)
    if len(currencies) == 1:
        await _ask(conv, target, currencies[0])
        return
    rows = [[button(currency, f"topup:{currency}")] for currency in currencies]
    rows.append(back(conv.app.texts, conv.lang, "bal"))
    await conv.show(target, Screen("topup", conv.t("topup.currency"), keyboard(*rows)))


async def choose_currency(conv: Conversation, target: Message | None, currency: str) -> None:
    if currency not in conv.app.catalog.topup.minimum:
        raise ValueError(currency)
    await _ask(conv, target, currency)


async def _ask(conv: Conversation, target: Message | None, currency: str) -> None:
    conv.awaiting = Awaiting(_typed, currency)
    question = _question(conv, currency)
    screen = Screen("topup", question, keyboard(back(conv.app.texts, conv.lang, "bal")))
    await conv.show(target, screen)


def _question(conv: Conversation, currency: str) -> str:
    topup, lang = conv.app.catalog.topup, conv.lang
    return conv.t(
        "topup.ask",
        currency=currency,
        min=money(topup.minimum[currency], currency, lang),
        max=money(topup.maximum[currency], currency, lang),
    )


@resumable(str)
async def _typed(conv: Conversation, message: Message, currency: object) -> None:
    assert isinstance(currency, str)
    checked = checked_amount(conv.app.catalog.topup, message.text or "", currency)
    if isinstance(checked, str):
        conv.awaiting = Awaiting(_typed, currency)  # the same question again
        topup, lang = conv.app.catalog.topup, conv.lang
        problem = conv.t(
            checked,
            min=money(topup.minimum[currency], currency, lang),
            max=money(topup.maximum[currency], currency, lang),
        )
        await conv.send_text(f"{problem}\n{_question(conv, currency)}")
        return
    methods = methods_for(conv, checked, currency)
    await conv.show_new(methods_screen(conv, checked, currency, methods))


def methods_for(conv: Conversation, amount: int, currency: str) -> list[Method]:
    """Stars for a Stars amount; the enabled providers that charge this currency."""
    methods = [Method("stars", currency, amount)] if currency == "XTR" else []
    methods += [
        Method(gateway.name, currency, amount)
        for gateway in conv.app.gateways
        if currency in gateway.currencies and gateway.available
    ]
    return methods


def methods_screen(conv: Conversation, amount: int, currency: str, methods: list[Method]) -> Screen:
    lang, topup = conv.lang, conv.app.catalog.topup
    bonus = topup.bonus(amount)
    extra = conv.t("topup.bonus", bonus=money(bonus, currency, lang)) if bonus else ""
    text = conv.t("topup.methods", amount=money(amount, currency, lang), bonus=extra)
    rows = [
        [
            button(
                conv.t("method.stars", price=money(amount, currency, lang))
                if m.key == "stars"
                else conv.t(
                    "method.provider",
                    provider=PROVIDER_NAMES.get(m.key, m.key),
                    price=money(amount, currency, lang),
                ),
                f"pay:t:{amount}:{m.key}:{currency}",
            )
        ]
        for m in methods
    ]
    if not methods:
        text += "\n\n" + conv.t("method.none")
    return Screen("topup", text, keyboard(*rows, back(conv.app.texts, lang, "bal")))
