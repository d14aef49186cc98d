"""The rouble stand-ins, Platega and YooMoney, as a customer meets them in the web chat: a RUB
price offers both, and each checkout page's buttons do what the provider would. Platega's
callback carries the merchant's X-MerchantId/X-Secret and the shop confirms it with
``GET /transaction/{id}``; YooMoney is asked nothing when the shop makes its Quickpay link, so
the web chat opens the stand-in wallet's page for that link, whose Pay sends the notification
signed with ``sha1_hash``. Pay grants once, Pay twice still once, Fail nothing."""

from __future__ import annotations

from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url

from shop.sandbox.providers import FakePlatega, FakeYooMoney
from shop.sandbox.run import RunningSandbox
from tests.sandbox.conftest import CUSTOMER, ChatPage, callbacks, keys, next_event

#: (provider, button pressed on its page, the webhooks' answers, the page's state after,
#: the payment's status in the shop, its grants)
CASES = [
    ("platega", "pay", [200], "CONFIRMED", "completed", 1),
    ("platega", "twice", [200, 200], "CONFIRMED", "completed", 1),
    ("platega", "fail", [200], "CANCELED", "canceled", 0),
    ("yoomoney", "pay", [200], "paid", "completed", 1),
    ("yoomoney", "twice", [200, 200], "paid", "completed", 1),
    # A declined card: nothing reached the wallet, so YooMoney sends nothing, and the shop,
    # asked by the customer, finds nothing in operation-history: the payment stays pending.
    ("yoomoney", "fail", [], "declined", "pending", 0),
]


async def _pay(sandbox: RunningSandbox, chat: int, case: tuple[Any, ...]) -> str:
    """As a customer: /start, Buy, 1 month, the provider in roubles; then the checkout page's
    button. Returns the id the page is named by."""
    provider, action, answers, state, _, _ = case
    async with (
        open_websocket_url(sandbox.url.replace("http://", "ws://") + "/ws") as ws,
        httpx.AsyncClient(timeout=30) as client,
    ):
        await ws.get_message()  # hello
        page = ChatPage(ws, chat)
        message = await page.say("/start")
        for data in ("buy", "plan:m1"):
            message = await page.press(message, data)
        offered = callbacks(message)
        assert {"pay:p:m1:platega:RUB", "pay:p:m1:yoomoney:RUB"} <= set(offered), offered
        message = await page.press(message, f"pay:p:m1:{provider}:RUB")
        (button,) = [k for k in keys(message) if k["kind"] == "checkout"]
        checkout = str(button["url"])
        assert checkout.startswith(f"{sandbox.url}/checkout/{provider}/")
        payment_id = checkout.rsplit("/", 1)[1]
        assert 'src="/sandbox/static/checkout.js"' in (await client.get(checkout)).text
        api = checkout.replace("/sandbox/checkout/", "/sandbox/api/checkout/")
        shown = (await client.get(api)).json()
        assert (shown["amount"], shown["open"]) == ("299.00 RUB", True)
        done = await client.post(f"{api}/{action}")
        assert done.status_code == 200, done.text
        assert (done.json()["webhooks"], done.json()["state"], done.json()["open"]) == (
            answers,
            state,
            False,
        )
        assert (await client.post(f"{api}/pay")).status_code == 409  # closed: not again
        if action != "fail":
            await page.next()  # the shop's confirmation
        else:  # nothing is sent for a declined payment: the customer asks, and is told
            (check,) = [k["data"] for k in keys(message) if k.get("data", "").startswith("chk:")]
            await page.send({"type": "press", "message": message["id"], "data": check})
            await next_event(ws, lambda e: e["type"] == "answer" and e["chat"] == chat)
    return payment_id


async def test_rouble_stand_ins_grant_once_per_payment(sandbox: RunningSandbox) -> None:
    # One customer for each case (the shop answers each chat at most once a second).
    for offset in range(1, len(CASES)):
        sandbox.telegram.add_person(f"Customer {offset}", "en")
    pages: dict[int, str] = {}

    async def pay(offset: int, case: tuple[Any, ...]) -> None:
        pages[offset] = await _pay(sandbox, CUSTOMER + offset, case)

    async with trio.open_nursery() as nursery:
        for offset, case in enumerate(CASES):
            nursery.start_soon(pay, offset, case)

    expected = [(provider, status, grants) for provider, *_, status, grants in CASES]
    assert await sandbox.app.store.run(_payments) == expected

    platega = sandbox.providers.fakes["platega"]
    assert isinstance(platega, FakePlatega)
    for offset, case in enumerate(CASES):
        if case[0] == "platega":  # every callback confirmed by asking Platega
            assert platega.calls_to("GET", f"/transaction/{pages[offset]}")

    wallet = sandbox.providers.fakes["yoomoney"]
    assert isinstance(wallet, FakeYooMoney)
    for offset, case in enumerate(CASES):
        if case[0] == "yoomoney":  # the page stood in for the shop's own Quickpay link
            link = wallet.pages[pages[offset]]["url"]
            assert link.startswith("https://yoomoney.ru/quickpay/confirm?")
    paid = [op for op in wallet.operations.values() if op["status"] == "success"]
    assert len(paid) == 2  # pay and pay twice; the declined card moved nothing
    # The shop looked the declined one up with the stand-in's token, as it reconciles.
    (declined,) = [pages[i] for i, case in enumerate(CASES) if case[:2] == ("yoomoney", "fail")]
    asked = [call.form()["label"] for call in wallet.calls_to("POST", "/operation-history")]
    assert declined in asked


def _payments(conn):  # type: ignore[no-untyped-def]
    return conn.execute(
        "SELECT p.provider, p.status,"
        " (SELECT count(*) FROM grants g WHERE g.payment_id = p.id)"
        " FROM payments p ORDER BY p.telegram_id, p.created_at"
    ).fetchall()
