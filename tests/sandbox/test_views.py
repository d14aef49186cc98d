"""What the web chat is given to draw: the Bot API's entities for the bot's HTML (as tdlib
makes them), and each button's kind. The page builds DOM from these and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from shop.sandbox.botapi import HtmlError
from shop.sandbox.botapi.html import parse_html_entities
from shop.sandbox.views import bot_message, keyboard, price


def test_entities_carry_utf16_offsets_outer_first() -> None:
    text, entities = parse_html_entities(
        '🎉 <b>Bold <i>both</i></b> <u>u</u> <s>s</s> <a href="https://x.example/?a=1&amp;b=2">'
        "link</a> <tg-spoiler>secret</tg-spoiler> <code>c</code> &lt;b&gt;"
    )
    assert text == "🎉 Bold both u s link secret c <b>"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 9},  # 🎉 is two UTF-16 code units
        {"type": "italic", "offset": 8, "length": 4},
        {"type": "underline", "offset": 13, "length": 1},
        {"type": "strikethrough", "offset": 15, "length": 1},
        {"type": "text_link", "offset": 17, "length": 4, "url": "https://x.example/?a=1&b=2"},
        {"type": "spoiler", "offset": 22, "length": 6},
        {"type": "code", "offset": 29, "length": 1},
    ]


def test_pre_with_a_language_and_quotes_become_one_entity_each() -> None:
    text, entities = parse_html_entities(
        '<pre><code class="language-python">x = 1</code></pre>'
        "<blockquote>q</blockquote><blockquote expandable>long</blockquote>"
        '<span class="tg-spoiler">s</span><b></b>'
    )
    assert text == "x = 1qlongs"
    assert entities == [
        {"type": "pre", "offset": 0, "length": 5, "language": "python"},
        {"type": "blockquote", "offset": 5, "length": 1},
        {"type": "expandable_blockquote", "offset": 6, "length": 4},
        {"type": "spoiler", "offset": 10, "length": 1},
    ]


def test_what_tdlib_refuses_is_refused() -> None:
    with pytest.raises(HtmlError, match='Unsupported start tag "script"'):
        parse_html_entities("<script>alert(1)</script>")


def _kind(url: str) -> str:
    return "checkout" if url.startswith("http://127.0.0.1:8080/sandbox/checkout/") else "link"


def test_buttons_are_told_apart_and_unsafe_addresses_are_dead() -> None:
    markup: dict[str, Any] = {
        "inline_keyboard": [
            [{"text": "Buy", "callback_data": "buy"}, {"text": "Pay", "pay": True}],
            [{"text": "Card", "url": "http://127.0.0.1:8080/sandbox/checkout/stripe/cs_1"}],
            [{"text": "Docs", "url": "https://example.com"}],
            [{"text": "Evil", "url": "javascript:alert(1)"}, {"text": "App", "web_app": {}}],
        ]
    }
    assert keyboard(markup, _kind) == [
        [{"text": "Buy", "kind": "callback", "data": "buy"}, {"text": "Pay", "kind": "pay"}],
        [
            {
                "text": "Card",
                "kind": "checkout",
                "url": "http://127.0.0.1:8080/sandbox/checkout/stripe/cs_1",
            }
        ],
        [{"text": "Docs", "kind": "link", "url": "https://example.com"}],
        [{"text": "Evil", "kind": "inert"}, {"text": "App", "kind": "inert"}],
    ]


def test_an_invoice_gets_telegrams_own_pay_button() -> None:
    message = {
        "message_id": 7,
        "date": 1_760_000_000,
        "invoice": {
            "title": "1 month",
            "description": "30 days",
            "currency": "XTR",
            "total_amount": 250,
            "start_parameter": "",
        },
    }
    view = bot_message(message, {}, photo_url=lambda _: None, button_kind=_kind)
    assert view["invoice"] == {
        "title": "1 month",
        "description": "30 days",
        "price": "250 ⭐",
        "paid": False,
    }
    assert view["keyboard"] == [[{"text": "Pay 250 ⭐", "kind": "pay"}]]
    assert price(349, "USD") == "3.49 USD"


def test_text_without_html_parse_mode_is_shown_as_sent() -> None:
    message = {"message_id": 1, "date": 0, "text": "<b>not bold</b>", "edit_date": 1}
    view = bot_message(message, {}, photo_url=lambda _: None, button_kind=_kind)
    assert (view["text"], view["entities"], view["edited"]) == ("<b>not bold</b>", [], True)
