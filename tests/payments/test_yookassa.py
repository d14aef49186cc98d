"""YooKassa against its fake: Idempotence-Key, statuses, refunds, the IP allowlist."""

from __future__ import annotations

import base64
import ipaddress
import json
import random
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing

from shop.payments._http import retrying
from shop.payments.base import (
    Checkout,
    MalformedWebhook,
    ProviderRefused,
    ProviderState,
    ProviderUnavailable,
    WebhookRejected,
)
from shop.payments.yookassa import DEFAULT_ALLOWED_IPS, YooKassa
from shop.sandbox.providers.yookassa import SECRET_KEY, SHOP_ID
from tests.fakes.providers import FakeYooKassa, payment_request

#: For verify() and parse(), which make no calls.
OFFLINE = YooKassa(httpx.AsyncClient(verify=False), shop_id=SHOP_ID, secret_key=SECRET_KEY)


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeYooKassa:
    fake = FakeYooKassa()
    await nursery.start(fake.serve)
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30, verify=False) as client:
        yield client


@pytest.fixture
async def yookassa(fake: FakeYooKassa, http: httpx.AsyncClient) -> YooKassa:
    return YooKassa(http, shop_id=SHOP_ID, secret_key=SECRET_KEY, api_url=fake.base_url)


async def created(yookassa: YooKassa) -> str:
    return (await yookassa.create(payment_request())).provider_payment_id


# ----------------------------------------------------------------------------- create


async def test_create_sends_the_documented_request(fake: FakeYooKassa, yookassa: YooKassa) -> None:
    checkout = await yookassa.create(payment_request())

    (call,) = fake.calls_to("POST", "/payments")
    assert call.headers["idempotence-key"] == payment_request().idempotency_key
    credentials = base64.b64encode(f"{SHOP_ID}:{SECRET_KEY}".encode()).decode()
    assert call.headers["authorization"] == f"Basic {credentials}"
    assert call.json() == {
        "amount": {"value": "299.00", "currency": "RUB"},
        "capture": True,
        "confirmation": {"type": "redirect", "return_url": "https://t.me/shop_test_bot?start=paid"},
        "description": "VPN / 30 дней",
        "metadata": {"reference": "pay_01HZX3K9Q7"},
    }
    payment_id = checkout.provider_payment_id
    assert checkout == Checkout(
        payment_id, fake.payments[payment_id]["confirmation"]["confirmation_url"]
    )


async def test_the_same_idempotence_key_is_one_payment(
    fake: FakeYooKassa, yookassa: YooKassa
) -> None:
    first = await yookassa.create(payment_request())
    again = await yookassa.create(payment_request())
    other = await yookassa.create(payment_request(idempotency_key="another-key"))

    assert first == again != other
    assert len(fake.calls_to("POST", "/payments")) == 3
    assert fake.created == 2


async def test_long_descriptions_are_cut_to_what_yookassa_takes(
    fake: FakeYooKassa, yookassa: YooKassa
) -> None:
    await yookassa.create(payment_request(description="д" * 300))
    assert fake.calls[-1].json()["description"] == "д" * 128


async def test_a_create_retried_after_a_lost_answer_is_one_payment(
    fake: FakeYooKassa, yookassa: YooKassa, autojump_clock: trio.testing.MockClock
) -> None:
    fake.lose_answers()
    checkout = await retrying(lambda: yookassa.create(payment_request()), rng=random.Random(1))

    assert [c.status for c in fake.calls] == [504, 200]
    assert fake.created == 1
    assert checkout.provider_payment_id in fake.payments


# ----------------------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("commands", "state"),
    [
        ((), ProviderState.PENDING),
        (("pay",), ProviderState.PAID),
        (("cancel",), ProviderState.CANCELED),
        (("expire",), ProviderState.EXPIRED),
        (("pay", "refund"), ProviderState.REFUNDED),
    ],
)
async def test_status_is_normalised(
    fake: FakeYooKassa, yookassa: YooKassa, commands: tuple[str, ...], state: ProviderState
) -> None:
    payment_id = await created(yookassa)
    for command in commands:
        getattr(fake, command)(payment_id)

    status = await yookassa.status(payment_id)

    assert (status.provider_payment_id, status.state) == (payment_id, state)
    assert (status.reference, status.amount, status.currency) == ("pay_01HZX3K9Q7", 29900, "RUB")


async def test_a_partly_refunded_payment_is_still_paid(
    fake: FakeYooKassa, yookassa: YooKassa
) -> None:
    payment_id = await created(yookassa)
    fake.pay(payment_id)
    fake.refund(payment_id, 10000)
    assert (await yookassa.status(payment_id)).state is ProviderState.PAID


async def test_status_reports_the_amount_paid(fake: FakeYooKassa, yookassa: YooKassa) -> None:
    payment_id = await created(yookassa)
    fake.pay(payment_id, amount=100)
    assert (await yookassa.status(payment_id)).amount == 100


async def test_an_unknown_payment_is_refused(yookassa: YooKassa) -> None:
    with pytest.raises(ProviderRefused, match="404"):
        await yookassa.status("no-such-payment")


# ----------------------------------------------------------------------------- refund


async def test_refund_posts_with_its_own_idempotence_key(
    fake: FakeYooKassa, yookassa: YooKassa
) -> None:
    payment_id = await created(yookassa)
    fake.pay(payment_id)

    await yookassa.refund(payment_id, 29900, "RUB", "refund-key-1")
    await yookassa.refund(payment_id, 29900, "RUB", "refund-key-1")  # a retry: one refund

    calls = fake.calls_to("POST", "/refunds")
    assert [c.headers["idempotence-key"] for c in calls] == ["refund-key-1"] * 2
    assert calls[0].json() == {
        "payment_id": payment_id,
        "amount": {"value": "299.00", "currency": "RUB"},
    }
    assert len(fake.refunds) == 1
    assert (await yookassa.status(payment_id)).state is ProviderState.REFUNDED


async def test_refunding_an_unpaid_payment_is_refused(
    fake: FakeYooKassa, yookassa: YooKassa
) -> None:
    payment_id = await created(yookassa)
    with pytest.raises(ProviderRefused, match="not succeeded"):
        await yookassa.refund(payment_id, 29900, "RUB", "refund-key-1")


# ----------------------------------------------------------------------------- failures


async def test_an_outage_is_unavailable_and_creates_nothing(
    fake: FakeYooKassa, yookassa: YooKassa
) -> None:
    fake.outage()
    with pytest.raises(ProviderUnavailable, match="503"):
        await yookassa.create(payment_request())
    fake.end_outage()
    await yookassa.create(payment_request())
    assert fake.created == 1


async def test_wrong_credentials_are_refused_without_showing_them(
    fake: FakeYooKassa, http: httpx.AsyncClient
) -> None:
    yookassa = YooKassa(http, shop_id=SHOP_ID, secret_key="test_wrong", api_url=fake.base_url)
    with pytest.raises(ProviderRefused) as caught:
        await yookassa.create(payment_request())
    assert "401" in str(caught.value)
    assert "incorrect" in str(caught.value)
    assert "test_wrong" not in str(caught.value)


async def test_no_server_is_unavailable(http: httpx.AsyncClient) -> None:
    with trio.socket.socket() as sock:  # a port that nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yookassa = YooKassa(
        http, shop_id=SHOP_ID, secret_key=SECRET_KEY, api_url=f"http://127.0.0.1:{port}/v3"
    )
    with pytest.raises(ProviderUnavailable, match="ConnectError") as caught:
        await yookassa.status("x")
    assert SECRET_KEY not in str(caught.value)


# ----------------------------------------------------------------------------- verify


@pytest.mark.parametrize(
    "peer",
    [
        FakeYooKassa.webhook_peer,
        "185.71.77.31",
        "77.75.153.127",
        "77.75.154.200",
        "77.75.156.11",
        "77.75.156.35",
        "2a02:5180:0:1509::15",
        "2a02:5180::1",
        "::ffff:185.71.76.10",  # IPv4 seen through a dual-stack socket
    ],
)
def test_notifications_from_yookassa_addresses_pass(peer: str) -> None:
    OFFLINE.verify({}, b"{}", peer)


@pytest.mark.parametrize(
    "peer",
    ["185.71.76.32", "77.75.156.12", "77.75.153.128", "2a02:5181::1", "127.0.0.1", "", "x"],
)
def test_notifications_from_elsewhere_are_forbidden(peer: str) -> None:
    with pytest.raises(WebhookRejected) as caught:
        OFFLINE.verify({}, b"{}", peer)
    assert caught.value.status == 403


def test_the_allowlist_can_be_replaced() -> None:
    local = [ipaddress.ip_network("127.0.0.0/8")]
    yookassa = YooKassa(
        httpx.AsyncClient(verify=False), shop_id=SHOP_ID, secret_key=SECRET_KEY, allowed_ips=local
    )
    yookassa.verify({}, b"{}", "127.0.0.1")
    with pytest.raises(WebhookRejected):
        yookassa.verify({}, b"{}", FakeYooKassa.webhook_peer)


def test_the_default_allowlist_has_both_families() -> None:
    assert {network.version for network in DEFAULT_ALLOWED_IPS} == {4, 6}


# ----------------------------------------------------------------------------- parse


async def test_payment_succeeded_parses_and_asks_for_confirmation(
    fake: FakeYooKassa, yookassa: YooKassa
) -> None:
    payment_id = await created(yookassa)
    fake.pay(payment_id)
    headers, body = fake.webhook_for(payment_id)
    yookassa.verify(headers, body, fake.webhook_peer)

    event = yookassa.parse(body)

    assert event.event_id == f"{payment_id}:payment.succeeded"
    assert (event.reference, event.provider_payment_id) == ("pay_01HZX3K9Q7", payment_id)
    assert (event.state, event.amount, event.currency) == (ProviderState.PAID, 29900, "RUB")
    assert event.needs_confirmation


async def test_canceled_and_waiting_parse(fake: FakeYooKassa, yookassa: YooKassa) -> None:
    payment_id = await created(yookassa)
    waiting = yookassa.parse(fake.webhook_for(payment_id)[1])
    fake.cancel(payment_id)
    canceled = yookassa.parse(fake.webhook_for(payment_id)[1])

    assert (waiting.event_id, waiting.state) == (
        f"{payment_id}:payment.waiting_for_capture",
        ProviderState.PENDING,
    )
    assert (canceled.event_id, canceled.state) == (
        f"{payment_id}:payment.canceled",
        ProviderState.CANCELED,
    )


async def test_refund_succeeded_parses(fake: FakeYooKassa, yookassa: YooKassa) -> None:
    payment_id = await created(yookassa)
    fake.pay(payment_id)
    refund = fake.refund(payment_id, 10000)

    event = yookassa.parse(fake.webhook_for(payment_id, "refund.succeeded")[1])

    assert event.event_id == f"{refund['id']}:refund.succeeded"
    assert (event.provider_payment_id, event.reference) == (payment_id, None)
    assert (event.state, event.amount, event.currency) == (ProviderState.REFUNDED, 10000, "RUB")


def test_events_the_shop_does_not_use_are_pending() -> None:
    body = {"type": "notification", "event": "payout.succeeded", "object": {"id": "po-1"}}
    event = OFFLINE.parse(json.dumps(body).encode())
    assert (event.event_id, event.state, event.reference) == (
        "po-1:payout.succeeded",
        ProviderState.PENDING,
        None,
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"type": "notification", "event": "payment.succeeded"}',
        b'{"event": "payment.succeeded", "object": {"id": "p", "status": "succeeded"}}',
        json.dumps(
            {
                "event": "payment.succeeded",
                "object": {
                    "id": "p",
                    "status": "succeeded",
                    "amount": {"value": "one", "currency": "XYZ"},
                },
            }
        ).encode(),
        json.dumps(
            {
                "event": "payment.succeeded",
                "object": {
                    "id": "p",
                    "status": "succeeded",
                    "amount": {"value": "1.001", "currency": "RUB"},
                },
            }
        ).encode(),
    ],
)
def test_unreadable_notifications_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        OFFLINE.parse(body)


def test_a_payment_in_a_currency_the_shop_does_not_use_parses() -> None:
    """Authentic once confirmed, so it is stored and answered 200; no amount in a minor
    unit the shop does not know. A full refund is still seen (compared as decimals)."""
    payment = {
        "id": "p-1",
        "status": "succeeded",
        "amount": {"value": "10.00", "currency": "CNY"},
        "refunded_amount": {"value": "10.00", "currency": "CNY"},
    }
    body = {"type": "notification", "event": "payment.succeeded", "object": payment}
    event = OFFLINE.parse(json.dumps(body).encode())
    assert (event.event_id, event.reference) == ("p-1:payment.succeeded", None)
    assert (event.state, event.amount, event.currency) == (ProviderState.REFUNDED, None, "CNY")
