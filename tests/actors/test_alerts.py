"""ALERT log lines also reach ADMIN_CHAT_ID: escaped, redacted, batched, rate-limited."""

from __future__ import annotations

import logging
from typing import Any

import trio
import trio.testing

from tests.customer import Customer
from tests.fakes.telegram import TOKEN

ADMINS = -1001000000001
ANN = 1001


def posted(shop: Any) -> list[str]:
    calls = shop.telegram.calls_to("sendMessage", ADMINS)
    return [c.params["text"] for c in calls if c.status == 200]


async def test_alerts_reach_the_admin_chat_batched_and_escaped(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ={"ADMIN_CHAT_ID": str(ADMINS)}, poll_timeout=86_400) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.choose_plan("m1", "stars")
        payment_id, _ = await ann.pay_last_invoice()
        await ann.paid(payment_id, 250, charge_id="second-charge")  # a double charge: ALERT
        texts = posted(shop)
        assert len(texts) == 1, texts
        assert "charged twice" in texts[0]
        assert texts[0].startswith("🚨 <b>Shop alerts</b>")
        log = logging.getLogger("shop.test")
        for n in range(3):  # a burst: one message, not three
            log.error("ALERT: <b>not markup</b> %d, token %s", n, TOKEN)
        log.error("an error that is not an alert")
        await trio.sleep(1)
        texts = posted(shop)
        assert len(texts) == 2
        assert texts[1].count("•") == 3
        assert "&lt;b&gt;not markup&lt;/b&gt; 0" in texts[1]
        assert TOKEN not in texts[1]
        assert "not an alert" not in texts[1]
        log.error("ALERT: one more")
        await trio.sleep(5)
        assert len(posted(shop)) == 2  # the last message went out less than 10 s ago
        await trio.sleep(10)
        assert len(posted(shop)) == 3
        assert "one more" in posted(shop)[2]
