"""What the web chat draws for a message: the Bot API's Message, as a Telegram client sees it.

A view is plain JSON for the page: the visible text with its MessageEntity list (the page
builds DOM nodes from them and never parses the bot's HTML), a photo's address, an invoice,
a service line, and the inline keyboard with each button's kind:

- ``callback``: sends its ``callback_data`` back as a button press;
- ``pay``: opens Telegram's payment sheet for the invoice it is attached to;
- ``invoice``: a ``t.me/$…`` invoice link the bot made with createInvoiceLink (opens the sheet);
- ``checkout``: a stand-in provider's checkout page (opens inside the chat, as Telegram's
  in-app browser would);
- ``link``: any other http(s) address, opened in a new tab only when the person clicks it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .botapi.html import HtmlError, parse_html_entities

Json = dict[str, Any]

#: Schemes a URL button may have; anything else (javascript:, data:) is shown as dead text.
_SAFE_SCHEMES = ("https://", "http://", "tg://")


def formatted(text: str, parse_mode: object) -> tuple[str, list[Json]]:
    """The visible text and its entities, as the Bot API turns ``text`` into a Message."""
    if str(parse_mode or "").lower() == "html":
        try:
            return parse_html_entities(text)
        except HtmlError:  # the emulator refused it already; never here, but stay readable
            return text, []
    return text, []


def bot_message(
    message: Json,
    params: Json,
    *,
    photo_url: Callable[[str], str | None],
    button_kind: Callable[[str], str],
) -> Json:
    """The view of a message the bot sent or edited; ``params`` are the call's (parse_mode)."""
    view: Json = {"id": message["message_id"], "from": "bot", "date": message["date"]}
    if "edit_date" in message:
        view["edited"] = True
    if "text" in message:
        view["text"], view["entities"] = formatted(message["text"], params.get("parse_mode"))
    if "photo" in message:
        view["photo"] = photo_url(message["photo"][-1]["file_id"])
        caption = message.get("caption") or ""
        view["text"], view["entities"] = formatted(caption, params.get("parse_mode"))
    if "invoice" in message:
        invoice = message["invoice"]
        view["invoice"] = {
            "title": invoice["title"],
            "description": invoice["description"],
            "price": price(invoice["total_amount"], invoice["currency"]),
            "paid": False,
        }
    view["keyboard"] = keyboard(message.get("reply_markup"), button_kind)
    if "invoice" in message and not view["keyboard"]:
        # Without a keyboard the client shows its own Pay button under an invoice.
        label = f"Pay {view['invoice']['price']}"
        view["keyboard"] = [[{"text": label, "kind": "pay"}]]
    return view


def keyboard(markup: Json | None, button_kind: Callable[[str], str]) -> list[list[Json]]:
    rows = []
    for row in (markup or {}).get("inline_keyboard", []):
        buttons = []
        for button in row:
            view: Json = {"text": str(button.get("text", ""))}
            if "callback_data" in button:
                view |= {"kind": "callback", "data": str(button["callback_data"])}
            elif button.get("pay"):
                view["kind"] = "pay"
            elif "url" in button and str(button["url"]).startswith(_SAFE_SCHEMES):
                view |= {"kind": button_kind(str(button["url"])), "url": str(button["url"])}
            else:  # login_url, web_app, switch_inline_query...: not in the sandbox
                view["kind"] = "inert"
            buttons.append(view)
        rows.append(buttons)
    return rows


def user_message(message: Json) -> Json:
    """The view of what a person wrote (commands keep their bot_command entity)."""
    view: Json = {"id": message["message_id"], "from": "user", "date": message["date"]}
    view["text"] = message.get("text", "")
    view["entities"] = list(message.get("entities", []))
    view["keyboard"] = []
    return view


def payment_line(message: Json, title: str) -> Json:
    """The service line a successful payment shows in the chat."""
    payment = message["successful_payment"]
    total = price(payment["total_amount"], payment["currency"])
    view: Json = {"id": message["message_id"], "from": "service", "date": message["date"]}
    view |= {"text": f"You paid {total} for {title}", "entities": [], "keyboard": []}
    return view


def price(amount: int, currency: str) -> str:
    """``250 ⭐`` for Stars; other currencies in their major unit (two decimals)."""
    if currency == "XTR":
        return f"{amount} ⭐"
    return f"{amount / 100:.2f} {currency}"
