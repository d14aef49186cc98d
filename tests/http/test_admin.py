"""The operator JSON API: bearer token, constant-time check, the customer's state."""

from __future__ import annotations

from typing import Any

import httpx
import trio.testing

from tests.customer import Customer

TOKEN = "op-secret-token-1234"
ANN = 1001


async def test_a_customer_as_the_operator_sees_them(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ={"ADMIN_TOKEN": TOKEN}) as shop:
        ann = Customer(shop, ANN, language="ru")
        await ann.send("/start")
        await ann.press("bal")
        await ann.press("pkg:p100")
        await ann.press("pay:k:p100:stars:XTR")
        topup, _ = await ann.pay_last_invoice()
        await ann.press("buy")
        await ann.press("plan:m1")
        await ann.press("pay:p:m1:stars:XTR")
        pending = ann.invoices()[-1]["payload"]
        async with httpx.AsyncClient(base_url=shop.url) as http:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            answer = await http.get(f"/admin/api/users/{ANN}", headers=auth)
            assert answer.status_code == 200
            body = answer.json()
            assert body["telegram_id"] == ANN
            assert body["language"] == "ru"
            assert body["blocked"] is False
            assert body["balances"] == {"XTR": "110"}
            assert body["subscription"] == {"status": "none", "expires_at": None, "lifetime": False}
            assert [(p["id"], p["status"], p["amount"]) for p in body["payments"]] == [
                (pending, "pending", "250"),
                (topup, "completed", "100"),
            ]
            payment = body["payments"][1]
            assert set(payment) == {"id", "provider", "status", "amount", "currency", "created_at"}
            assert payment["provider"] == "stars"
            assert payment["created_at"].endswith("Z")

            assert (await http.get("/admin/api/users/999", headers=auth)).status_code == 404


async def test_missing_or_wrong_token_is_401_and_nothing_else(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ={"ADMIN_TOKEN": TOKEN}) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        async with httpx.AsyncClient(base_url=shop.url) as http:
            for headers in (
                {},
                {"Authorization": "Bearer wrong"},
                {"Authorization": f"Basic {TOKEN}"},
                {"Authorization": f"Bearer {TOKEN}x"},
            ):
                answer = await http.get(f"/admin/api/users/{ANN}", headers=headers)
                assert answer.status_code == 401
                assert answer.json() == {"error": "unauthorized"}


async def test_without_a_token_configured_the_api_is_off(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop, httpx.AsyncClient(base_url=shop.url) as http:
        answer = await http.get(f"/admin/api/users/{ANN}", headers={"Authorization": "Bearer x"})
        assert answer.status_code == 404
