"""Paying through external providers, end to end: the shop, the fake Bot API and fake
provider APIs over real HTTP, real PostgreSQL, mock time."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing

from shop.clock import TrioClock
from tests.conftest import START, server_address, via_proxy
from tests.customer import Customer
from tests.fakes.providers import FakeCryptoPay, FakeHeleket, FakeStripe, FakeYooKassa
from tests.fakes.providers import cryptopay as cp
from tests.fakes.providers import heleket as hk
from tests.fakes.providers import stripe as st
from tests.fakes.providers import yookassa as yk
from tests.fakes.tcp_proxy import TcpProxy
from tests.harness import Shop, running_shop

ANN = 1001
DAY = dt.timedelta(days=1)


@attrs.frozen
class Providers:
    yookassa: FakeYooKassa
    stripe: FakeStripe
    cryptopay: FakeCryptoPay
    heleket: FakeHeleket

    def environ(self) -> dict[str, str]:
        return {
            "PUBLIC_URL": "https://shop.example",
            "TRUSTED_PROXIES": "127.0.0.1/32",
            "YOOKASSA_SHOP_ID": yk.SHOP_ID,
            "YOOKASSA_SECRET_KEY": yk.SECRET_KEY,
            "YOOKASSA_API_URL": self.yookassa.base_url,
            "STRIPE_SECRET_KEY": st.SECRET_KEY,
            "STRIPE_WEBHOOK_SECRET": st.WEBHOOK_SECRET,
            "STRIPE_API_URL": self.stripe.base_url,
            "CRYPTOPAY_TOKEN": cp.TOKEN,
            "CRYPTOPAY_API_URL": self.cryptopay.base_url,
            "HELEKET_MERCHANT": hk.MERCHANT,
            "HELEKET_API_KEY": hk.API_KEY,
            "HELEKET_API_URL": self.heleket.base_url,
        }


@pytest.fixture
async def providers(nursery: trio.Nursery) -> Providers:
    clock = TrioClock.starting_at(START)
    fakes = Providers(
        FakeYooKassa(clock=clock),
        FakeStripe(clock=clock),
        FakeCryptoPay(clock=clock),
        FakeHeleket(clock=clock),
    )
    for fake in attrs.astuple(fakes, recurse=False):
        await nursery.start(fake.serve)
    return fakes


@pytest.fixture
def shop_with(shop_at: Any, providers: Providers) -> Any:
    @asynccontextmanager
    async def start(**environ: str) -> AsyncIterator[Shop]:
        # Long polls of up to a day: the tests pass hours of mock time cheaply.
        async with shop_at(environ=providers.environ() | environ, poll_timeout=86_400) as shop:
            yield shop

    return start


FAKES = {"yookassa": "RUB", "stripe": "USD", "cryptopay": "USD", "heleket": "USD"}
PEERS = {"yookassa": yk.WEBHOOK_PEER, "heleket": hk.WEBHOOK_PEER}


async def choose(ann: Customer, provider: str, plan: str = "m1") -> tuple[str, str]:
    """Buy ``plan`` with ``provider``: (our payment id, the provider's payment id)."""
    await ann.press("buy")
    await ann.press(f"plan:{plan}")
    await ann.press(f"pay:p:{plan}:{provider}:{FAKES[provider]}")
    check = next(b for b in ann.buttons() if b.startswith("chk:"))
    reference = check.split(":")[1]
    (row,) = ann.shop.query("SELECT provider_payment_id FROM payments WHERE id = %s", reference)
    return reference, str(row[0])


async def deliver(
    shop: Shop, provider: str, headers: dict[str, str], body: bytes
) -> httpx.Response:
    headers = dict(headers)
    if provider in PEERS:  # as if forwarded by our own proxy from the provider's address
        headers["x-forwarded-for"] = PEERS[provider]
    async with httpx.AsyncClient(base_url=shop.url) as http:
        return await http.post(f"/webhooks/{provider}", content=body, headers=headers)


def fake(providers: Providers, name: str) -> Any:
    return getattr(providers, name)


def status(shop: Shop, reference: str) -> str:
    (row,) = shop.query("SELECT status FROM payments WHERE id = %s", reference)
    return str(row[0])


def confirmations(ann: Customer) -> int:
    return sum("Payment received" in text for text in ann.texts())


@pytest.mark.parametrize("provider", sorted(FAKES))
async def test_a_customer_pays_through_each_provider(
    shop_with: Any, providers: Providers, provider: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        reference, remote = await choose(ann, provider)
        menu = ann.menu()
        assert menu["reply_markup"]["inline_keyboard"][0][0]["url"].startswith("http")
        assert status(shop, reference) == "pending"
        fake(providers, provider).pay(remote)
        headers, body = fake(providers, provider).webhook_for(remote)
        answer = await deliver(shop, provider, headers, body)
        assert answer.status_code == 200
        await ann.settle()
        assert status(shop, reference) == "completed"
        assert confirmations(ann) == 1
        (expiry,) = shop.query("SELECT expires_at FROM subscriptions")
        (granted,) = shop.query("SELECT granted_at FROM grants")
        assert expiry[0] == granted[0] + 30 * DAY
        stored = shop.query("SELECT provider, outcome FROM provider_events")
        assert stored == [(provider, "confirmed" if provider == "yookassa" else "fulfilled")]


async def test_a_storm_of_duplicates_polls_and_presses_fulfils_once(
    shop_with: Any, providers: Providers, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        reference, session = await choose(ann, "stripe")
        check_screen = ann.menu()
        providers.stripe.pay(session)
        headers, body = providers.stripe.webhook_for(session)
        answers: list[int] = []

        async def one() -> None:
            answers.append((await deliver(shop, "stripe", headers, body)).status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(one)
            nursery.start_soon(partial(ann.press, f"chk:{reference}", on=check_screen))
            await trio.sleep(61)  # the first scheduled reconciliation is due after a minute
        await ann.settle()
        assert answers == [200] * 50
        assert status(shop, reference) == "completed"
        assert confirmations(ann) == 1
        assert shop.query("SELECT count(*) FROM grants") == [(1,)]
        assert shop.query("SELECT count(*) FROM provider_events") == [(1,)]


async def test_a_missed_webhook_is_caught_by_reconciliation(
    shop_with: Any, providers: Providers, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        reference, remote = await choose(ann, "yookassa")
        providers.yookassa.pay(remote)  # and the notification never arrives
        await trio.sleep(30)
        assert status(shop, reference) == "pending"
        await trio.sleep(60)
        assert status(shop, reference) == "completed"
        assert confirmations(ann) == 1
        polls = providers.yookassa.calls_to("GET", f"/payments/{remote}")
        assert len(polls) == 1


async def test_a_late_success_after_expiry_is_honoured(
    shop_with: Any, providers: Providers, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        reference, invoice = await choose(ann, "cryptopay")
        await trio.sleep(25 * 3600)
        assert status(shop, reference) == "expired"
        polls = providers.cryptopay.calls_to("POST", "/getInvoices")
        assert len(polls) == 5 + 22 + 1  # 1, 2, 5, 15, 60 min; hourly from 2 h; at 24 h
        providers.cryptopay.pay(invoice)
        headers, body = providers.cryptopay.webhook_for(invoice)
        assert (await deliver(shop, "cryptopay", headers, body)).status_code == 200
        await ann.settle()
        assert status(shop, reference) == "completed"
        assert confirmations(ann) == 1


async def test_a_provider_outage_opens_the_breaker_and_no_payment_is_made_twice(
    shop_with: Any, providers: Providers, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("buy")
        await ann.press("plan:m1")
        providers.yookassa.outage()
        await ann.press("pay:p:m1:yookassa:RUB")  # three attempts: retried with backoff
        assert ann.answers()[-1] == "This payment method is temporarily unavailable, try another."
        assert "pay:p:m1:yookassa:RUB" in ann.buttons()  # 3 failures: not open yet
        await ann.press("pay:p:m1:yookassa:RUB")
        assert "pay:p:m1:yookassa:RUB" not in ann.buttons()  # 5 failures: open, hidden
        assert "pay:p:m1:stars:XTR" in ann.buttons()  # the others are offered
        assert "pay:p:m1:stripe:USD" in ann.buttons()
        providers.yookassa.end_outage()
        await trio.sleep(60)
        await ann.press("plan:m1")
        await ann.press("pay:p:m1:yookassa:RUB")
        assert any(b.startswith("chk:") for b in ann.buttons())
        creates = providers.yookassa.calls_to("POST", "/payments")
        assert len(creates) == 6
        assert len({c.headers["idempotence-key"] for c in creates}) == 1
        assert providers.yookassa.created == 1
        assert shop.query("SELECT count(*) FROM payments WHERE provider = 'yookassa'") == [(1,)]


async def test_amounts_are_checked_against_the_payment(
    shop_with: Any,
    providers: Providers,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with shop_with() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        short, short_session = await choose(ann, "stripe")
        providers.stripe.pay(short_session, amount=100)  # 1.00 of 3.49 USD
        assert (
            await deliver(shop, "stripe", *providers.stripe.webhook_for(short_session))
        ).status_code == 200
        await ann.settle()
        # Money was taken: its own state, listed for operators, never expired.
        assert status(shop, short) == "problem"
        assert shop.query(
            "SELECT problem, paid_amount, problem_amount, problem_currency FROM payments"
            " WHERE id = %s",
            short,
        ) == [("underpaid", 100, 100, "USD")]
        await ann.press(f"chk:{short}")  # the provider is asked again: still short
        assert status(shop, short) == "problem"
        assert caplog.text.count("ALERT: payment") == 1  # alerted once
        await trio.sleep(2 * 86_400)  # past its payable time: the sweep leaves it alone
        assert status(shop, short) == "problem"
        more, more_session = await choose(ann, "stripe", plan="m3")
        providers.stripe.pay(more_session, amount=1000)
        await deliver(shop, "stripe", *providers.stripe.webhook_for(more_session))
        await ann.settle()
        assert status(shop, more) == "completed"
        assert shop.query("SELECT problem FROM payments WHERE id = %s", more) == [("overpaid",)]


async def test_a_provider_refund_reverses_the_grant(
    shop_with: Any, providers: Providers, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        reference, uuid = await choose(ann, "heleket")
        providers.heleket.pay(uuid)
        await deliver(shop, "heleket", *providers.heleket.webhook_for(uuid))
        await ann.settle()
        assert status(shop, reference) == "completed"
        providers.heleket.refund(uuid)
        await deliver(shop, "heleket", *providers.heleket.webhook_for(uuid))
        await ann.settle()
        assert status(shop, reference) == "refunded"
        (expiry,) = shop.query("SELECT expires_at, status FROM subscriptions")
        assert expiry[1] == "expired"


@pytest.mark.parametrize("provider", sorted(FAKES))
async def test_forged_webhooks_are_refused_and_nothing_is_stored(
    shop_with: Any, providers: Providers, provider: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        reference, remote = await choose(ann, provider)
        fake(providers, provider).pay(remote)
        headers, body = fake(providers, provider).webhook_for(remote)
        tampered = body.replace(b"paid", b"pa1d") if provider != "yookassa" else body
        cases: list[tuple[dict[str, str], bytes, int]] = []
        if provider == "yookassa":
            outsider = {**headers, "x-forwarded-for": "203.0.113.7"}
            cases.append((outsider, body, 403))
        else:
            signature = {"stripe": "stripe-signature", "cryptopay": "crypto-pay-api-signature"}
            if provider in signature:
                name = signature[provider]
                missing = {k: v for k, v in headers.items() if k != name}
                cases += [(missing, body, 401), ({**headers, name: "00" * 32}, body, 401)]
            cases.append((headers, tampered, 401))
        for forged_headers, forged_body, expected in cases:
            answer = await deliver_raw(shop, provider, forged_headers, forged_body)
            assert answer.status_code == expected
        await ann.settle()
        assert shop.query("SELECT count(*) FROM provider_events") == [(0,)]
        assert status(shop, reference) == "pending"


async def deliver_raw(
    shop: Shop, provider: str, headers: dict[str, str], body: bytes
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=shop.url) as http:
        return await http.post(f"/webhooks/{provider}", content=body, headers=headers)


async def test_a_stale_stripe_signature_is_refused(
    shop_with: Any, providers: Providers, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        _, session = await choose(ann, "stripe")
        providers.stripe.pay(session)
        old = int(shop.app.clock.now().timestamp()) - 301
        headers, body = providers.stripe.webhook_for(session, timestamp=old)
        assert (await deliver(shop, "stripe", headers, body)).status_code == 401
        assert shop.query("SELECT count(*) FROM provider_events") == [(0,)]


async def test_bad_requests_get_clear_answers(
    shop_with: Any,
    providers: Providers,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    async with shop_with() as shop, httpx.AsyncClient(base_url=shop.url) as http:
        signed = providers.cryptopay.sign(b"{not json")
        malformed = await http.post(
            "/webhooks/cryptopay",
            content=b"{not json",
            headers={"crypto-pay-api-signature": signed},
        )
        assert malformed.status_code == 400
        assert (await http.post("/webhooks/cryptopay", content=b"x" * 70_000)).status_code == 413
        assert (await http.get("/webhooks/cryptopay")).status_code == 405
        assert (await http.post("/webhooks/paypal", content=b"{}")).status_code == 404
        # A genuine event for a payment we never made: 200, stored, logged.
        invoice = await providers_create(providers)
        providers.cryptopay.pay(invoice)
        headers, body = providers.cryptopay.webhook_for(invoice)
        answer = await http.post("/webhooks/cryptopay", content=body, headers=headers)
        assert answer.status_code == 200
        assert shop.query("SELECT outcome FROM provider_events") == [("unknown payment",)]
        assert "names no payment of ours" in caplog.text


async def providers_create(providers: Providers) -> str:
    from shop.payments.cryptopay import CryptoPay
    from tests.fakes.providers import payment_request

    async with httpx.AsyncClient() as http:
        client = CryptoPay(http, token=cp.TOKEN, api_url=providers.cryptopay.base_url)
        checkout = await client.create(
            payment_request(reference="not-ours", currency="USD", amount=349)
        )
    return checkout.provider_payment_id


@pytest.mark.allows_actor_errors
async def test_a_webhook_gets_503_while_the_database_is_down(
    clean_database: str,
    providers: Providers,
    nursery: trio.Nursery,
    busy_hook: Any,
    autojump_clock: trio.testing.MockClock,
) -> None:
    proxy = TcpProxy(server_address(clean_database))
    port = await nursery.start(proxy.serve)
    clock = TrioClock.starting_at(START)
    async with running_shop(
        via_proxy(clean_database, port),
        providers.environ(),
        clock=clock,
        on_busy=busy_hook,
        store_timeout=1.0,
    ) as proxied:
        # The test reads the database directly: a blocking query through the proxy, which
        # runs in this very trio loop, would wait on itself.
        shop = attrs.evolve(proxied, database_url=clean_database)
        ann = Customer(shop, ANN)
        await ann.send("/start")
        reference, session = await choose(ann, "stripe")
        providers.stripe.pay(session)
        headers, body = providers.stripe.webhook_for(session)
        proxy.down()
        answer = await deliver(shop, "stripe", headers, body)
        assert answer.status_code == 503  # so that Stripe delivers it again later
        assert shop.query("SELECT count(*) FROM provider_events") == [(0,)]
        assert status(shop, reference) == "pending"
        proxy.up()


async def test_a_payment_is_never_closed_while_its_provider_does_not_answer(
    shop_with: Any, providers: Providers, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_with() as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        reference, invoice = await choose(ann, "cryptopay")
        providers.cryptopay.pay(invoice)  # paid, the webhook lost, and then the outage
        providers.cryptopay.outage()
        await trio.sleep(25 * 3600)
        assert status(shop, reference) == "pending"  # not expired on silence
        providers.cryptopay.end_outage()
        await trio.sleep(2 * 3600)  # asked again hourly until it answers
        assert status(shop, reference) == "completed"
        assert confirmations(ann) == 1
