"""The operator JSON API: bearer token, constant-time check, the customer's state."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import psycopg
import pytest
import trio
import trio.testing

from shop.store import problems
from tests.customer import Customer

TOKEN = "op-secret-token-1234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
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


@pytest.mark.parametrize(
    "telegram_id",
    [
        "²",  # str.isdigit() says yes, int() says no: this was a 500
        "1²",
        "１２３",  # fullwidth digits: int() reads 123
        "٣",  # Arabic-Indic three
        "12a",
        "--1",
        "+5",
        "%205",  # " 5"
        "5%0A",  # "5\n"
        "99999999999999999999",
        "9223372036854775808",  # one past BIGINT
        "-9223372036854775809",
    ],
)
async def test_an_id_that_is_not_ascii_digits_is_400(
    shop_at: Any, autojump_clock: trio.testing.MockClock, telegram_id: str
) -> None:
    async with shop_at(environ={"ADMIN_TOKEN": TOKEN}) as shop:
        await trio.sleep(1)  # the first long poll under way (see tests/http/test_webhooks.py)
        async with httpx.AsyncClient(base_url=shop.url) as http:
            answer = await http.get(f"/admin/api/users/{telegram_id}", headers=AUTH)
        assert (answer.status_code, answer.json()) == (
            400,
            {"error": "telegram_id must be an integer"},
        )


@pytest.mark.parametrize("telegram_id", ["0", "-1", "9223372036854775807", "-9223372036854775808"])
async def test_ids_within_bigint_are_looked_up(
    shop_at: Any, autojump_clock: trio.testing.MockClock, telegram_id: str
) -> None:
    async with shop_at(environ={"ADMIN_TOKEN": TOKEN}) as shop:
        await trio.sleep(1)
        async with httpx.AsyncClient(base_url=shop.url) as http:
            answer = await http.get(f"/admin/api/users/{telegram_id}", headers=AUTH)
        assert answer.status_code == 404


# ----------------------------------------------------------------------------- problems

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def add_payment(
    conn: psycopg.Connection[Any],
    payment_id: str,
    telegram_id: int = ANN,
    *,
    problem: str | None = None,
    amount: int | None = None,
    currency: str | None = None,
    at: dt.datetime | None = None,
) -> None:
    conn.execute(
        "INSERT INTO payments (id, telegram_id, provider, product_kind, product_id, title,"
        " amount, currency, status, created_at, updated_at, expires_at, idempotency_key,"
        " problem, problem_amount, problem_currency, problem_at)"
        " VALUES (%s, %s, 'stripe', 'plan', 'm1', '1 month', 349, 'USD', 'problem',"
        " %s, %s, %s, %s, %s, %s, %s, %s)",
        (payment_id, telegram_id, T0, T0, T0 + dt.timedelta(days=1), f"key-{payment_id}",
         problem, amount, currency, at),
    )  # fmt: skip


async def test_problems_newest_first(shop_at: Any, autojump_clock: trio.testing.MockClock) -> None:
    async with shop_at(environ={"ADMIN_TOKEN": TOKEN}) as shop:
        await trio.sleep(1)
        hour = dt.timedelta(hours=1)
        with psycopg.connect(shop.database_url, autocommit=True) as conn:
            for telegram_id in (ANN, 1002):
                conn.execute(
                    "INSERT INTO customers (telegram_id, first_seen, last_seen)"
                    " VALUES (%s, %s, %s)",
                    (telegram_id, T0, T0),
                )
            add_payment(conn, "p-fine")  # no problem: not listed
            add_payment(conn, "p-over", problem="overpaid", amount=1000, currency="USD", at=T0)
            add_payment(
                conn, "p-short", problem="underpaid", amount=100, currency="USD", at=T0 + hour
            )
            add_payment(  # the same moment: by id
                conn, "p-another", 1002, problem="underpaid", amount=5, currency="RUB",
                at=T0 + hour,
            )  # fmt: skip
            add_payment(  # a currency the shop does not know: no amount it could misstate
                conn, "p-doge", problem="other currency", amount=12345, currency="DOGE",
                at=T0 + 2 * hour,
            )  # fmt: skip
            add_payment(conn, "p-failed", problem="failed at the provider")  # no time: last
        async with httpx.AsyncClient(base_url=shop.url) as http:
            answer = await http.get("/admin/api/problems", headers=AUTH)
            refused = await http.get("/admin/api/problems")
        assert answer.status_code == 200
        assert answer.json() == [
            {"payment_id": "p-doge", "telegram_id": ANN, "problem": "other currency",
             "amount": None, "currency": "DOGE", "at": "2026-11-01T14:00:00Z"},
            {"payment_id": "p-another", "telegram_id": 1002, "problem": "underpaid",
             "amount": "0.05", "currency": "RUB", "at": "2026-11-01T13:00:00Z"},
            {"payment_id": "p-short", "telegram_id": ANN, "problem": "underpaid",
             "amount": "1.00", "currency": "USD", "at": "2026-11-01T13:00:00Z"},
            {"payment_id": "p-over", "telegram_id": ANN, "problem": "overpaid",
             "amount": "10.00", "currency": "USD", "at": "2026-11-01T12:00:00Z"},
            {"payment_id": "p-failed", "telegram_id": ANN, "problem": "failed at the provider",
             "amount": None, "currency": None, "at": None},
        ]  # fmt: skip
        assert (refused.status_code, refused.json()) == (401, {"error": "unauthorized"})


async def test_no_problems_is_an_empty_list(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ={"ADMIN_TOKEN": TOKEN}) as shop:
        await trio.sleep(1)
        async with httpx.AsyncClient(base_url=shop.url) as http:
            answer = await http.get("/admin/api/problems", headers=AUTH)
        assert (answer.status_code, answer.json()) == (200, [])


async def test_problems_are_off_without_a_token(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop:
        await trio.sleep(1)
        async with httpx.AsyncClient(base_url=shop.url) as http:
            answer = await http.get("/admin/api/problems", headers=AUTH)
        assert answer.status_code == 404


def test_open_problems_keeps_to_its_limit(clean_database: str) -> None:
    with psycopg.connect(clean_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO customers (telegram_id, first_seen, last_seen) VALUES (%s, %s, %s)",
            (ANN, T0, T0),
        )
        for n in range(5):
            add_payment(conn, f"p-{n}", problem="underpaid", amount=1, currency="USD",
                        at=T0 + dt.timedelta(minutes=n))  # fmt: skip
        found = problems.open_problems(conn, limit=3)
    assert [p.payment_id for p in found] == ["p-4", "p-3", "p-2"]
