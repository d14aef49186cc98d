"""Catalog titles reach the customer as written, whatever HTML characters they contain.

The shop formats its messages with parse_mode HTML, so a title such as ``VPN <3 months>``
must be escaped wherever it goes into a message; the fake Bot API refuses malformed HTML as
Telegram does (``can't parse entities``), so a missing escape loses the message here too.
Runs the whole shop on mock time, like ``test_selling``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio.testing

from tests.customer import Customer
from tests.fakes.telegram import Call, parse_html
from tests.harness import Shop

ANN = 1001
TITLE = 'VPN <3 months> & Q&A "plan"'
CATALOG = """
[[plans]]
id = "v3"
days = 90
title = { en = 'VPN <3 months> & Q&A "plan"' }
prices = { XTR = 650 }
stars_subscription = true
"""


def catalog(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG, encoding="utf-8")
    return {"SHOP_CATALOG": str(path)}


def shown(shop: Shop, method: str) -> list[str]:
    """What the customer sees of each message the bot sent or edited (and Telegram took)."""
    calls = shop.telegram.calls_to(method, ANN)
    return [parse_html(c.params["text"]) for c in calls if c.status == 200]


def refused(shop: Shop) -> list[Call]:
    return [c for c in shop.telegram.calls if c.status == 400]


async def test_a_title_with_html_characters_is_shown_as_written(
    shop_at: Any, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with shop_at(environ=catalog(tmp_path)) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("buy")
        await ann.press("plan:v3")
        assert shown(shop, "editMessageText")[-1].startswith(f"{TITLE}\n90 days of access.")

        await ann.press("pay:p:v3:stars:XTR")
        (invoice,) = ann.invoices()
        assert invoice["title"] == TITLE  # invoices are plain text: no escaping there
        payment_id, _ = await ann.pay_last_invoice()
        (confirmation,) = [t for t in shown(shop, "sendMessage") if "Payment received" in t]
        assert confirmation.split("\n")[0] == f"✅ Payment received: {TITLE}"

        await ann.press("sub")
        assert shown(shop, "editMessageText")[-1].split("\n")[2] == TITLE
        await ann.press("bal")
        await ann.press("hist:0")
        await ann.press(f"tx:{payment_id}")
        assert shown(shop, "editMessageText")[-1].startswith(f"{TITLE}\nDate: ")

        await ann.press("buy")
        await ann.press("plan:v3")
        await ann.press("pay:p:v3:starsub:XTR")
        assert shown(shop, "sendMessage")[-1].startswith(f"{TITLE}: 650 ⭐ every 30 days.")
        assert refused(shop) == []
