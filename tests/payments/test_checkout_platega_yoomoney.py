"""Paying through Platega and YooMoney, end to end: the shop, the fake Bot API and the fake
Platega and YooMoney over real HTTP, real PostgreSQL, mock time.

The same guarantees as the other providers (tests/payments/test_checkout.py): paid once,
forged callbacks refused, authentic ones that say "not paid" stored and answered 200,
amounts checked, missed callbacks found by reconciliation, storms of duplicates harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing

from shop.clock import TrioClock
from tests.conftest import START
from tests.customer import Customer
from tests.fakes.providers import FakePlatega, FakeYooMoney
from tests.fakes.providers import platega as pl
from tests.fakes.providers import yoomoney as ym
from tests.harness import Shop

ANN = 1001
DAY = dt.timedelta(days=1)
PROVIDERS = ("platega", "yoomoney")


@attrs.frozen
class Fakes:
    platega: FakePlatega
    yoomoney: FakeYooMoney

    def environ(self, *, yoomoney_token: bool = True) -> dict[str, str]:
        environ = {
            "PUBLIC_URL": "https://shop.example",
            "PLATEGA_MERCHANT_ID": pl.MERCHANT_ID,
            "PLATEGA_SECRET": pl.SECRET,
            "PLATEGA_API_URL": self.platega.base_url,
            "YOOMONEY_WALLET": ym.WALLET,
            "YOOMONEY_NOTIFICATION_SECRET": ym.NOTIFICATION_SECRET,
            "YOOMONEY_API_URL": self.yoomoney.base_url,
        }
        if yoomoney_token:
            environ["YOOMONEY_TOKEN"] = ym.TOKEN
        return environ


@pytest.fixture
async def fakes(nursery: trio.Nursery) -> Fakes:
    clock = TrioClock.starting_at(START)
    made = Fakes(FakePlatega(clock=clock), FakeYooMoney(clock=clock))
    for fake in attrs.astuple(made, recurse=False):
        await nursery.start(fake.serve)
    return made


@pytest.fixture
def shop_with(shop_at: Any, fakes: Fakes) -> Any:
    @asynccontextmanager
    async def start(*, yoomoney_token: bool = True) -> AsyncIterator[Shop]:
        # Long polls of up to a day: the tests pass hours of mock time cheaply.
        environ = fakes.environ(yoomoney_token=yoomoney_token)
        async with shop_at(environ=environ, poll_timeout=86_400) as shop:
            yield shop

    return start


@attrs.frozen
class Chosen:
    reference: str  # our payment id
    remote: str  # the provider payment id the shop stored
    url: str  # the page the customer was sent to


async def choose(ann: Customer, provider: str, plan: str = "m1") -> Chosen:
    await ann.press("buy")
    await ann.press(f"plan:{plan}")
    await ann.press(f"pay:p:{plan}:{provider}:RUB")
    url = ann.menu()["reply_markup"]["inline_keyboard"][0][0]["url"]
    check = next(b for b in ann.buttons() if b.startswith("chk:"))
    reference = check.split(":")[1]
    (row,) = ann.shop.query("SELECT provider_payment_id FROM payments WHERE id = %s", reference)
    return Chosen(reference, str(row[0]), url)


def pay(fakes: Fakes, provider: str, chosen: Chosen, **how: Any) -> str:
    """The customer pays on the provider's page: the id the provider's callback names."""
    if provider == "platega":
        fakes.platega.pay(chosen.remote, **how)
        return chosen.remote
    return fakes.yoomoney.pay_link(chosen.url, **how)


def callback(fakes: Fakes, provider: str, paid: str, **how: Any) -> tuple[dict[str, str], bytes]:
    fake: Any = getattr(fakes, provider)
    return fake.webhook_for(paid, **how)  # type: ignore[no-any-return]


async def deliver(
    shop: Shop, provider: str, headers: Mapping[str, str], body: bytes
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=shop.url) as http:
        return await http.post(f"/webhooks/{provider}", content=body, headers=dict(headers))


def status(shop: Shop, reference: str) -> str:
    (row,) = shop.query("SELECT status FROM payments WHERE id = %s", reference)
    return str(row[0])


def confirmations(ann: Customer) -> int:
    return sum("Payment received" in text for text in ann.texts())


def stored(shop: Shop) -> list[tuple[object, ...]]:
    return shop.query("SELECT provider, payment_id, outcome FROM provider_events ORDER BY id")


async def customer(shop: Shop) -> Customer:
    ann = Customer(shop, ANN)
    await ann.send("/start")
    return ann


# ----------------------------------------------------------------------------- paying


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_customer_pays_through_each(
    shop_with: Any, fakes: Fakes, provider: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = await customer(shop)
        await ann.press("buy")
        await ann.press("plan:m1")
        assert {"pay:p:m1:platega:RUB", "pay:p:m1:yoomoney:RUB"} <= set(ann.buttons())
        chosen = await choose(ann, provider)
        assert status(shop, chosen.reference) == "pending"
        paid = pay(fakes, provider, chosen)
        answer = await deliver(shop, provider, *callback(fakes, provider, paid))
        assert answer.status_code == 200
        await ann.settle()
        assert status(shop, chosen.reference) == "completed"
        assert confirmations(ann) == 1
        (expiry,) = shop.query("SELECT expires_at FROM subscriptions")
        (granted,) = shop.query("SELECT granted_at FROM grants")
        assert expiry[0] == granted[0] + 30 * DAY
        # Platega's callback is believed only once the API says so.
        outcome = "confirmed" if provider == "platega" else "fulfilled"
        assert stored(shop) == [(provider, chosen.reference, outcome)]


async def test_a_platega_callback_is_granted_only_when_the_api_confirms_it(
    shop_with: Any, fakes: Fakes, autojump_clock: trio.testing.MockClock
) -> None:
    """The secret is static: a callback that says CONFIRMED for a transaction Platega
    still holds as PENDING (a leaked secret, a replay) grants nothing."""
    async with shop_with() as shop:
        ann = await customer(shop)
        chosen = await choose(ann, "platega")
        fakes.platega.set_status(chosen.remote, "CONFIRMED")
        headers, body = callback(fakes, "platega", chosen.remote)
        fakes.platega.set_status(chosen.remote, "PENDING")
        assert (await deliver(shop, "platega", headers, body)).status_code == 200
        await ann.settle()
        assert status(shop, chosen.reference) == "pending"
        assert stored(shop) == [("platega", chosen.reference, "confirmed")]
        assert len(fakes.platega.calls_to("GET", f"/transaction/{chosen.remote}")) == 1


async def test_a_platega_callback_without_payload_finds_its_payment(
    shop_with: Any, fakes: Fakes, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = await customer(shop)
        chosen = await choose(ann, "platega")
        fakes.platega.pay(chosen.remote)
        headers, body = callback(fakes, "platega", chosen.remote, with_payload=False)
        assert (await deliver(shop, "platega", headers, body)).status_code == 200
        await ann.settle()
        assert status(shop, chosen.reference) == "completed"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_duplicate_callback_fulfils_once(
    shop_with: Any, fakes: Fakes, provider: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = await customer(shop)
        chosen = await choose(ann, provider)
        headers, body = callback(fakes, provider, pay(fakes, provider, chosen))
        first = await deliver(shop, provider, headers, body)
        await ann.settle()
        again = await deliver(shop, provider, headers, body)
        await ann.settle()
        assert (first.json(), again.json()) == ({"ok": True}, {"ok": True, "duplicate": True})
        assert status(shop, chosen.reference) == "completed"
        assert confirmations(ann) == 1
        assert shop.query("SELECT count(*) FROM grants") == [(1,)]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_storm_of_duplicates_polls_and_presses_fulfils_once(
    shop_with: Any, fakes: Fakes, provider: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = await customer(shop)
        chosen = await choose(ann, provider)
        check_screen = ann.menu()
        headers, body = callback(fakes, provider, pay(fakes, provider, chosen))
        answers: list[int] = []

        async def one() -> None:
            answers.append((await deliver(shop, provider, headers, body)).status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(one)
            nursery.start_soon(partial(ann.press, f"chk:{chosen.reference}", on=check_screen))
            await trio.sleep(61)  # the first scheduled reconciliation is due after a minute
        await ann.settle()
        assert answers == [200] * 50
        assert status(shop, chosen.reference) == "completed"
        assert confirmations(ann) == 1
        assert shop.query("SELECT count(*) FROM grants") == [(1,)]
        assert shop.query("SELECT count(*) FROM provider_events") == [(1,)]


# ----------------------------------------------------------------------------- amounts


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_underpayment_is_a_problem_and_not_fulfilled(
    shop_with: Any,
    fakes: Fakes,
    provider: str,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Platega's transaction says 1.00; YooMoney's payer edited the link to pay 1.00, and
    ``withdraw_amount`` says so (``amount`` is what reached the wallet, less)."""
    async with shop_with() as shop:
        ann = await customer(shop)
        chosen = await choose(ann, provider)
        paid = pay(fakes, provider, chosen, amount=100)
        answer = await deliver(shop, provider, *callback(fakes, provider, paid))
        assert answer.status_code == 200
        await ann.settle()
        assert status(shop, chosen.reference) == "problem"
        assert shop.query(
            "SELECT problem, problem_amount, problem_currency FROM payments WHERE id = %s",
            chosen.reference,
        ) == [("underpaid", 100, "RUB")]
        assert confirmations(ann) == 0
        assert caplog.text.count("ALERT: payment") == 1


async def test_a_yoomoney_payment_short_by_a_kopeck_is_a_problem(
    shop_with: Any, fakes: Fakes, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = await customer(shop)
        chosen = await choose(ann, "yoomoney")
        paid = pay(fakes, "yoomoney", chosen, amount=29899)
        await deliver(shop, "yoomoney", *callback(fakes, "yoomoney", paid))
        await ann.settle()
        assert status(shop, chosen.reference) == "problem"


# ----------------------------------------------------------------------------- forged


async def test_forged_platega_callbacks_are_401_and_nothing_is_stored(
    shop_with: Any, fakes: Fakes, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = await customer(shop)
        chosen = await choose(ann, "platega")
        fakes.platega.pay(chosen.remote)
        headers, body = callback(fakes, "platega", chosen.remote)
        forgeries = [
            {**headers, "x-secret": "guessed"},
            {**headers, "x-merchantid": "00000000-0000-0000-0000-000000000000"},
            {"content-type": "application/json"},
        ]
        for forged in forgeries:
            assert (await deliver(shop, "platega", forged, body)).status_code == 401
        await ann.settle()
        assert stored(shop) == []
        assert status(shop, chosen.reference) == "pending"
        assert fakes.platega.calls_to("GET", f"/transaction/{chosen.remote}") == []


async def test_platega_checking_the_callback_url_gets_200_and_nothing_else(
    shop_with: Any, fakes: Fakes, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        answer = await deliver(shop, "platega", *FakePlatega.ping())
        assert answer.status_code == 200
        assert stored(shop) == []
        assert fakes.platega.calls == []


@pytest.mark.parametrize(
    "forgery",
    [
        {"secret": "not-the-notification-secret"},
        {"tamper": {"amount": "2990.00"}},  # signed: a change breaks the hash
        {"tamper": {"label": "someone-elses"}},
        {"tamper": {"sha1_hash": "0" * 40}},
    ],
)
async def test_forged_yoomoney_notifications_are_401_and_nothing_is_stored(
    shop_with: Any, fakes: Fakes, forgery: dict[str, Any], autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = await customer(shop)
        chosen = await choose(ann, "yoomoney")
        paid = pay(fakes, "yoomoney", chosen)
        answer = await deliver(shop, "yoomoney", *callback(fakes, "yoomoney", paid, **forgery))
        assert answer.status_code == 401
        await ann.settle()
        assert stored(shop) == []
        assert status(shop, chosen.reference) == "pending"


@pytest.mark.parametrize("held", ["codepro", "unaccepted"])
async def test_a_held_yoomoney_transfer_is_stored_not_fulfilled_until_credited(
    shop_with: Any, fakes: Fakes, held: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = await customer(shop)
        chosen = await choose(ann, "yoomoney")
        paid = pay(fakes, "yoomoney", chosen, **{held: True})
        answer = await deliver(shop, "yoomoney", *callback(fakes, "yoomoney", paid))
        assert answer.status_code == 200  # authentic: YooMoney must not retry it
        await ann.settle()
        assert status(shop, chosen.reference) == "pending"
        assert confirmations(ann) == 0
        fakes.yoomoney.credit(paid)
        await deliver(shop, "yoomoney", *callback(fakes, "yoomoney", paid))
        await ann.settle()
        assert status(shop, chosen.reference) == "completed"
        assert [outcome for _, _, outcome in stored(shop)] == ["pending", "fulfilled"]


async def test_the_yoomoney_test_button_is_stored_and_grants_nothing(
    shop_with: Any, fakes: Fakes, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        answer = await deliver(shop, "yoomoney", *fakes.yoomoney.test_notification())
        assert answer.status_code == 200
        assert stored(shop) == [("yoomoney", None, "unknown payment")]


# ----------------------------------------------------------------------------- reconciliation


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_missed_callback_is_caught_by_reconciliation(
    shop_with: Any, fakes: Fakes, provider: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = await customer(shop)
        chosen = await choose(ann, provider)
        pay(fakes, provider, chosen)  # and the callback never arrives
        await trio.sleep(30)
        assert status(shop, chosen.reference) == "pending"
        await trio.sleep(60)
        assert status(shop, chosen.reference) == "completed"
        assert confirmations(ann) == 1
        if provider == "platega":
            polls = fakes.platega.calls_to("GET", f"/transaction/{chosen.remote}")
        else:
            polls = fakes.yoomoney.calls_to("POST", "/operation-history")
        assert len(polls) == 1
        (paid_amount,) = shop.query(
            "SELECT paid_amount FROM payments WHERE id = %s", chosen.reference
        )
        assert paid_amount == (29900,)


async def test_a_yoomoney_payment_found_short_by_reconciliation_is_a_problem(
    shop_with: Any, fakes: Fakes, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = await customer(shop)
        chosen = await choose(ann, "yoomoney")
        pay(fakes, "yoomoney", chosen, amount=100)  # 0.97 reached the wallet
        await trio.sleep(90)
        assert status(shop, chosen.reference) == "problem"
        assert confirmations(ann) == 0


async def test_without_a_token_yoomoney_waits_for_its_notification_quietly(
    shop_with: Any,
    fakes: Fakes,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No token: no history calls, no failures, no open breaker; the payment expires as
    usual, and a notification that comes late is still honoured."""
    caplog.set_level(logging.INFO)
    async with shop_with(yoomoney_token=False) as shop:
        ann = await customer(shop)
        chosen = await choose(ann, "yoomoney")
        paid = pay(fakes, "yoomoney", chosen)
        await ann.press(f"chk:{chosen.reference}")
        assert ann.answers()[-1] == (
            "No payment yet. If you have just paid, wait a minute and press again."
        )
        await trio.sleep(25 * 3600)
        assert status(shop, chosen.reference) == "expired"
        gateway = shop.app.gateways.get("yoomoney")
        assert gateway is not None
        assert (gateway.available, gateway.breaker.failures) == (True, 0)
        assert fakes.yoomoney.calls == []
        assert "cannot check payment" not in caplog.text
        answer = await deliver(shop, "yoomoney", *callback(fakes, "yoomoney", paid))
        assert answer.status_code == 200
        await ann.settle()
        assert status(shop, chosen.reference) == "completed"
        assert confirmations(ann) == 1
