"""Platega against its fake: the create body, statuses, cancel, the header check, callbacks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from shop.payments.base import (
    Checkout,
    MalformedWebhook,
    ProviderRefused,
    ProviderState,
    ProviderUnavailable,
    VerificationPing,
    WebhookRejected,
)
from shop.payments.platega import Platega
from shop.sandbox.providers.platega import MERCHANT_ID, SECRET
from tests.fakes.providers import FakePlatega, payment_request

#: For verify() and parse(), which make no calls.
OFFLINE = Platega(httpx.AsyncClient(), merchant_id=MERCHANT_ID, secret=SECRET)
REFERENCE = "pay_01HZX3K9Q7"


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakePlatega:
    fake = FakePlatega()
    await nursery.start(fake.serve)
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture
async def platega(fake: FakePlatega, http: httpx.AsyncClient) -> Platega:
    return Platega(http, merchant_id=MERCHANT_ID, secret=SECRET, api_url=fake.base_url)


async def created(platega: Platega, **changes: object) -> str:
    return (await platega.create(payment_request(**changes))).provider_payment_id


# ----------------------------------------------------------------------------- create


async def test_create_sends_the_documented_request(fake: FakePlatega, platega: Platega) -> None:
    checkout = await platega.create(payment_request())

    (call,) = fake.calls_to("POST", "/v2/transaction/process")
    assert (call.headers["x-merchantid"], call.headers["x-secret"]) == (MERCHANT_ID, SECRET)
    assert call.headers["content-type"] == "application/json"
    assert call.json() == {
        "paymentDetails": {"amount": 299, "currency": "RUB"},
        "description": "VPN / 30 дней",
        "return": "https://t.me/shop_test_bot?start=paid",
        "failedUrl": "https://t.me/shop_test_bot?start=paid",
        "payload": REFERENCE,
    }
    transaction_id = checkout.provider_payment_id
    assert checkout == Checkout(
        transaction_id, f"https://pay.platega.io/?id={transaction_id}&mh={MERCHANT_ID}"
    )
    assert fake.transactions[transaction_id]["payload"] == REFERENCE


async def test_kopecks_are_written_as_an_exact_json_number(
    fake: FakePlatega, platega: Platega
) -> None:
    transaction_id = await created(platega, amount=29950)
    assert b'"amount":299.5,' in fake.calls[-1].body  # a number, never "299.5" or 299.49999
    assert (await platega.status(transaction_id)).amount == 29950


async def test_long_descriptions_are_cut_to_64_bytes_on_a_character(
    fake: FakePlatega, platega: Platega
) -> None:
    await platega.create(payment_request(description="д" * 100))
    assert fake.calls[-1].json()["description"] == "д" * 32


async def test_every_create_is_a_new_transaction(fake: FakePlatega, platega: Platega) -> None:
    """No idempotency key at Platega: the gateway must never repeat a create."""
    first = await created(platega)
    again = await created(platega)
    assert first != again
    assert fake.created == 2
    assert Platega.idempotent_create is False


# ----------------------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("PENDING", ProviderState.PENDING),
        ("INPROGRESS", ProviderState.PENDING),
        ("CONFIRMED", ProviderState.PAID),
        ("CANCELED", ProviderState.CANCELED),
        ("FAILED", ProviderState.CANCELED),
        ("EXPIRED", ProviderState.EXPIRED),
        ("CHARGEBACKED", ProviderState.REFUNDED),
    ],
)
async def test_status_is_normalised(
    fake: FakePlatega, platega: Platega, status: str, state: ProviderState
) -> None:
    transaction_id = await created(platega)
    fake.set_status(transaction_id, status)

    answer = await platega.status(transaction_id)

    assert (answer.provider_payment_id, answer.state) == (transaction_id, state)
    assert (answer.reference, answer.amount, answer.currency) == (REFERENCE, 29900, "RUB")
    (call,) = fake.calls_to("GET", f"/transaction/{transaction_id}")
    assert (call.headers["x-merchantid"], call.headers["x-secret"]) == (MERCHANT_ID, SECRET)


async def test_status_reports_the_amount_paid(fake: FakePlatega, platega: Platega) -> None:
    transaction_id = await created(platega)
    fake.pay(transaction_id, amount=100)
    assert (await platega.status(transaction_id)).amount == 100


async def test_status_reads_payment_details_written_as_text(
    fake: FakePlatega, platega: Platega
) -> None:
    """The create answer writes ``paymentDetails`` as ``"100 RUB"``; accept it here too."""
    transaction_id = await created(platega)
    fake.transactions[transaction_id]["paymentDetails"] = "100 RUB"
    assert (await platega.status(transaction_id)).amount == 10000


async def test_an_unknown_transaction_is_refused(platega: Platega) -> None:
    with pytest.raises(ProviderRefused, match="404"):
        await platega.status("00000000-0000-0000-0000-000000000000")


# ----------------------------------------------------------------------------- refund


async def test_refund_cancels_the_transaction(fake: FakePlatega, platega: Platega) -> None:
    transaction_id = await created(platega)
    fake.pay(transaction_id)

    await platega.refund(transaction_id, 29900, "RUB", "refund-key-1")

    assert len(fake.calls_to("POST", f"/transaction/{transaction_id}/cancel")) == 1
    assert (await platega.status(transaction_id)).state is ProviderState.REFUNDED


async def test_a_refund_platega_leaves_to_a_person_is_refused(
    fake: FakePlatega, platega: Platega
) -> None:
    transaction_id = await created(platega)
    fake.pay(transaction_id)
    fake.manual_refunds = True
    with pytest.raises(ProviderRefused, match="not accepted"):
        await platega.refund(transaction_id, 29900, "RUB", "refund-key-1")
    assert (await platega.status(transaction_id)).state is ProviderState.PAID


# ----------------------------------------------------------------------------- failures


async def test_wrong_credentials_are_refused_without_showing_them(
    fake: FakePlatega, http: httpx.AsyncClient
) -> None:
    platega = Platega(http, merchant_id=MERCHANT_ID, secret="wrong-secret", api_url=fake.base_url)
    with pytest.raises(ProviderRefused) as caught:
        await platega.create(payment_request())
    assert "401" in str(caught.value)
    assert "secret key is not correct" in str(caught.value)
    assert "wrong-secret" not in str(caught.value)
    assert fake.created == 0


async def test_an_outage_is_unavailable(fake: FakePlatega, platega: Platega) -> None:
    fake.outage()
    with pytest.raises(ProviderUnavailable, match="503"):
        await platega.create(payment_request())
    with pytest.raises(ProviderUnavailable, match="503"):
        await platega.status("any")


async def test_a_currency_platega_does_not_take_is_refused(
    fake: FakePlatega, platega: Platega
) -> None:
    with pytest.raises(ProviderRefused, match="400"):
        await platega.create(payment_request(currency="USD", amount=349))
    assert fake.created == 0


# ----------------------------------------------------------------------------- verify


async def test_an_authentic_callback_passes(fake: FakePlatega, platega: Platega) -> None:
    transaction_id = await created(platega)
    fake.pay(transaction_id)
    headers, body = fake.webhook_for(transaction_id)
    platega.verify(headers, body, "203.0.113.7")


@pytest.mark.parametrize(
    "forged",
    [
        {"merchant_id": MERCHANT_ID, "secret": SECRET[:-1] + "x"},
        {"merchant_id": MERCHANT_ID.replace("7", "8"), "secret": SECRET},
        {"merchant_id": "", "secret": ""},
        {"merchant_id": MERCHANT_ID, "secret": ""},
    ],
)
async def test_a_callback_with_wrong_credentials_is_401(
    fake: FakePlatega, platega: Platega, forged: dict[str, str]
) -> None:
    transaction_id = await created(platega)
    fake.pay(transaction_id)
    headers, body = fake.webhook_for(transaction_id, **forged)
    with pytest.raises(WebhookRejected) as caught:
        platega.verify(headers, body, "203.0.113.7")
    assert caught.value.status == 401
    assert SECRET not in caught.value.reason


def test_the_empty_url_check_is_a_ping() -> None:
    headers, body = FakePlatega.ping()
    with pytest.raises(VerificationPing):
        OFFLINE.verify(headers, body, "203.0.113.7")


def test_an_authentic_empty_callback_is_a_ping_and_a_forged_one_401() -> None:
    authentic = {"x-merchantid": MERCHANT_ID, "x-secret": SECRET}
    with pytest.raises(VerificationPing):
        OFFLINE.verify(authentic, b"  ", "203.0.113.7")
    with pytest.raises(WebhookRejected):
        OFFLINE.verify({**authentic, "x-secret": "guess"}, b"", "203.0.113.7")


def test_a_body_without_credentials_is_401() -> None:
    with pytest.raises(WebhookRejected):
        OFFLINE.verify({}, b'{"id": "x", "status": "CONFIRMED"}', "203.0.113.7")


# ----------------------------------------------------------------------------- parse


async def test_a_confirmed_callback_parses_and_asks_for_confirmation(
    fake: FakePlatega, platega: Platega
) -> None:
    transaction_id = await created(platega)
    fake.pay(transaction_id)

    event = platega.parse(fake.webhook_for(transaction_id)[1])

    assert event.event_id == f"{transaction_id}:CONFIRMED"
    assert (event.reference, event.provider_payment_id) == (REFERENCE, transaction_id)
    assert (event.state, event.amount, event.currency) == (ProviderState.PAID, 29900, "RUB")
    assert event.needs_confirmation


async def test_a_callback_without_payload_is_found_by_its_transaction(
    fake: FakePlatega, platega: Platega
) -> None:
    transaction_id = await created(platega)
    fake.cancel(transaction_id)
    event = platega.parse(fake.webhook_for(transaction_id, with_payload=False)[1])
    assert (event.event_id, event.reference) == (f"{transaction_id}:CANCELED", None)
    assert (event.provider_payment_id, event.state) == (transaction_id, ProviderState.CANCELED)


def test_pascal_case_callbacks_parse_the_same() -> None:
    camel = {"id": "t-1", "amount": 299.5, "currency": "RUB", "status": "CONFIRMED"}
    pascal = {"Id": "t-1", "Amount": 299.5, "Currency": "RUB", "Status": "CONFIRMED"}
    assert OFFLINE.parse(json.dumps(camel).encode()) == OFFLINE.parse(json.dumps(pascal).encode())
    assert OFFLINE.parse(json.dumps(camel).encode()).amount == 29950


def test_a_subscription_charge_callback_with_an_empty_payload_parses() -> None:
    """The documented PascalCase charge callback: not ours, but authentic, so it must be
    read (and stored, answered 200), not refused as malformed."""
    body = {
        "Id": "33333333-3333-3333-3333-333333333333",
        "Amount": 100,
        "Currency": "RUB",
        "Status": "CONFIRMED",
        "PaymentMethod": 6,
        "Payload": "",
        "SubscriptionId": "11111111-1111-1111-1111-111111111111",
        "NextChargeAt": "2026-08-09T09:10:00Z",
    }
    event = OFFLINE.parse(json.dumps(body).encode())
    assert (event.reference, event.provider_payment_id) == (None, body["Id"])
    assert (event.amount, event.currency) == (10000, "RUB")


def test_a_callback_in_a_currency_the_shop_does_not_know_has_no_amount() -> None:
    body = {"id": "t-2", "amount": 10, "currency": "CNY", "status": "CONFIRMED"}
    event = OFFLINE.parse(json.dumps(body).encode())
    assert (event.amount, event.currency) == (None, "CNY")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"status": "CONFIRMED", "amount": 1, "currency": "RUB"}',
        b'{"id": "t", "amount": 1, "currency": "RUB"}',
        b'{"id": "t", "status": "CONFIRMED", "amount": "lots", "currency": "RUB"}',
        b'{"id": "t", "status": "CONFIRMED", "amount": 1.001, "currency": "RUB"}',
        b'{"id": "t", "status": "CONFIRMED", "amount": true, "currency": "RUB"}',
        b'{"id":' + b"[" * 30_000 + b"]" * 30_000 + b"}",  # deeper than json decodes
    ],
)
def test_unreadable_callbacks_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        OFFLINE.parse(body)
