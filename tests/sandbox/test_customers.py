"""Every way a customer pays, at once, in the web chat: the stand-in providers' checkout
pages (their buttons send the shop the provider's own signed webhooks, and the shop does with
them what it does with the real ones), Telegram Stars by invoice (and declined) and by
invoice link, what a customer sees after (the subscription's QR code, a photo), and what a
month later brings: the end of a trial, and Telegram renewing a Stars subscription."""

from __future__ import annotations

import httpx
import trio
from trio_websocket import open_websocket_url

from shop.sandbox.run import RunningSandbox
from tests.sandbox.conftest import CUSTOMER, ChatPage, callbacks, keys, next_event

#: (provider, currency, button pressed on its page, the payment's state after, webhook answers)
CASES = [
    ("stripe", "USD", "twice", "completed", [200, 200]),
    ("yookassa", "RUB", "pay", "completed", [200]),
    ("cryptopay", "USD", "pay", "completed", [200]),
    ("heleket", "USD", "fail", "canceled", [200]),
]


async def _buy(
    sandbox: RunningSandbox, chat: int, case: tuple[str, str, str, str, list[int]]
) -> None:
    """As a customer: /start, Buy, 1 month, the provider; then the checkout page's button,
    and what the customer sees after it."""
    provider, currency, action, state, answers = case
    async with (
        open_websocket_url(sandbox.url.replace("http://", "ws://") + "/ws") as ws,
        httpx.AsyncClient(timeout=30) as client,
    ):
        await ws.get_message()  # hello
        page = ChatPage(ws, chat)
        message = await page.say("/start")
        for data in ("buy", "plan:m1", f"pay:p:m1:{provider}:{currency}"):
            message = await page.press(message, data)
        (button,) = [k for k in keys(message) if k["kind"] == "checkout"]
        checkout = str(button["url"])
        assert checkout.startswith(f"{sandbox.url}/checkout/{provider}/")
        shown = await client.get(checkout)
        assert 'src="/sandbox/static/checkout.js"' in shown.text
        api = checkout.replace("/sandbox/checkout/", "/sandbox/api/checkout/")
        assert (await client.get(api)).json()["open"] is True
        done = await client.post(f"{api}/{action}")
        assert done.status_code == 200, done.text
        assert (done.json()["webhooks"], done.json()["open"]) == (answers, False)
        assert (await client.post(f"{api}/pay")).status_code == 409  # closed: not again
        if state == "completed":
            await page.next()  # the shop's confirmation
        else:  # nothing is sent for a declined payment: the customer asks, and is told
            (check,) = [k["data"] for k in keys(message) if k.get("data", "").startswith("chk:")]
            await page.send({"type": "press", "message": message["id"], "data": check})
            await next_event(ws, lambda e: e["type"] == "answer" and e["chat"] == chat)


async def _subscribe_with_stars(sandbox: RunningSandbox, chat: int) -> None:
    """A Stars subscription: the bot sends an invoice link (createInvoiceLink), which the
    page opens as Telegram's payment sheet; the payment is recurring."""
    async with open_websocket_url(sandbox.url.replace("http://", "ws://") + "/ws") as ws:
        await ws.get_message()
        page = ChatPage(ws, chat)
        message = await page.say("/start")
        for data in ("buy", "plan:m1"):
            message = await page.press(message, data)
        await page.send({"type": "press", "message": message["id"], "data": "pay:p:m1:starsub:XTR"})
        link = await page.next()
        (button,) = [k for k in keys(link) if k["kind"] == "invoice"]
        assert button["url"].startswith("https://t.me/$")  # Telegram's own kind of link
        await page.send({"type": "pay", "link": button["url"]})
        paid = await next_event(ws, lambda e: e.get("message", {}).get("from") == "service")
        assert paid["message"]["text"].startswith("You paid 250 ⭐")
        await page.next()  # the shop's confirmation


async def _pay_an_invoice_with_stars(sandbox: RunningSandbox, chat: int) -> None:
    """Telegram's payment sheet for an invoice: paid once; the same invoice again is
    declined by the bot (its pre_checkout_query answered no), and nothing is charged."""
    async with open_websocket_url(sandbox.url.replace("http://", "ws://") + "/ws") as ws:
        await ws.get_message()
        page = ChatPage(ws, chat)
        message = await page.say("/start")
        for data in ("buy", "plan:m1"):
            message = await page.press(message, data)
        await page.send({"type": "press", "message": message["id"], "data": "pay:p:m1:stars:XTR"})
        invoice = await page.next()
        assert invoice["invoice"]["price"] == "250 ⭐"
        assert [k["kind"] for k in keys(invoice)] == ["pay"]  # Telegram's own Pay button
        await page.send({"type": "pay", "message": invoice["id"]})
        paid = await next_event(ws, lambda e: e.get("message", {}).get("from") == "service")
        assert paid["message"]["text"] == "You paid 250 ⭐ for 1 month"
        receipt = await page.next("edit")
        assert (receipt["id"], receipt["invoice"]["paid"]) == (invoice["id"], True)
        await page.next()  # the shop's confirmation
        await page.send({"type": "pay", "message": invoice["id"]})
        declined = await next_event(ws, lambda e: e["type"] == "refused")
        assert (declined["chat"], bool(declined["text"])) == (chat, True)  # the shop's words


async def _see_the_qr_code(sandbox: RunningSandbox, chat: int) -> None:
    """The trial, then My subscription's QR code: a photo the page shows from the sandbox."""
    async with (
        open_websocket_url(sandbox.url.replace("http://", "ws://") + "/ws") as ws,
        httpx.AsyncClient(timeout=30) as client,
    ):
        await ws.get_message()
        page = ChatPage(ws, chat)
        menu = await page.say("/start")
        await page.press(menu, "trial")
        menu = await page.say("/start")
        subscription = await page.press(menu, "sub")
        await page.send({"type": "press", "message": subscription["id"], "data": "qr"})
        photo = await page.next()
        assert photo["photo"].startswith("/sandbox/files/")
        image = await client.get(sandbox.url.removesuffix("/sandbox") + photo["photo"])
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG")


async def test_every_way_to_pay_at_once_and_a_month_later(sandbox: RunningSandbox) -> None:
    # One customer for each way (the shop answers each chat at most once a second).
    others = [_subscribe_with_stars, _pay_an_invoice_with_stars, _see_the_qr_code]
    for offset in range(1, len(CASES) + len(others)):
        sandbox.telegram.add_person(f"Customer {offset}", "en")
    async with trio.open_nursery() as nursery:
        for offset, case in enumerate(CASES):
            nursery.start_soon(_buy, sandbox, CUSTOMER + offset, case)
        for offset, other in enumerate(others, start=len(CASES)):
            nursery.start_soon(other, sandbox, CUSTOMER + offset)

    expected = [(p, state, False, int(state == "completed")) for p, _, _, state, _ in CASES]
    stars = [("stars", "completed", True, 1), ("stars", "completed", False, 1)]
    assert await sandbox.app.store.run(_payments) == [*expected, *stars]
    assert len(sandbox.telegram.star_transactions) == 2  # the declined one charged nothing

    subscriber, on_trial = CUSTOMER + len(CASES), CUSTOMER + len(CASES) + 2
    await _a_month_later(sandbox, subscriber, on_trial)
    renewal = ("stars", "completed", True, 1)
    assert await sandbox.app.store.run(_payments) == [*expected, *stars[:1], renewal, *stars[1:]]


async def _a_month_later(sandbox: RunningSandbox, subscriber: int, on_trial: int) -> None:
    """The clock moves a month: the jobs whose time passed run at once (the trial ends),
    and Telegram charges the Stars subscription for its next period."""
    url = sandbox.url.replace("http://", "ws://") + "/ws"
    async with open_websocket_url(url) as one, open_websocket_url(url) as other:
        for ws in (one, other):
            await ws.get_message()  # hello
        trying, subscribing = ChatPage(one, on_trial), ChatPage(other, subscriber)
        await trying.send({"type": "advance", "by": "month"})
        await next_event(one, lambda e: e["type"] == "clock")
        ended = await trying.next()
        assert "buy" in callbacks(ended)  # "your subscription has ended: renew it"
        renewed = await next_event(other, lambda e: e.get("message", {}).get("from") == "service")
        assert renewed["message"]["text"] == "Renewed: You paid 250 ⭐ for 1 month"
        # The shop handles a customer's updates in order: once /start is answered, the
        # renewal before it has been handled too.
        await subscribing.say("/start")
    statuses = await sandbox.app.store.run(
        lambda conn: conn.execute(
            "SELECT telegram_id, status FROM subscriptions WHERE telegram_id IN (%s, %s)"
            " ORDER BY telegram_id",
            (subscriber, on_trial),
        ).fetchall()
    )
    assert statuses == [(subscriber, "active"), (on_trial, "expired")]


def _payments(conn):  # type: ignore[no-untyped-def]
    return conn.execute(
        "SELECT p.provider, p.status, p.recurring,"
        " (SELECT count(*) FROM grants g WHERE g.payment_id = p.id)"
        " FROM payments p ORDER BY p.telegram_id, p.created_at"
    ).fetchall()
