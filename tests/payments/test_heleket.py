"""Heleket against its fake: signed requests, order_id idempotency, PHP-signed webhooks."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from shop.payments._http import retrying
from shop.payments.base import (
    Checkout,
    MalformedWebhook,
    ProviderRefused,
    ProviderState,
    ProviderUnavailable,
    WebhookRejected,
)
from shop.payments.heleket import Heleket, php_json
from shop.sandbox.providers.heleket import API_KEY, MERCHANT, php_json_encode
from tests.fakes.providers import FakeHeleket, payment_request

#: For verify() and parse(), which make no calls.
OFFLINE = Heleket(httpx.AsyncClient(verify=False), merchant=MERCHANT, api_key=API_KEY)


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeHeleket:
    fake = FakeHeleket()
    await nursery.start(fake.serve)
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30, verify=False) as client:
        yield client


@pytest.fixture
async def heleket(fake: FakeHeleket, http: httpx.AsyncClient) -> Heleket:
    return Heleket(http, merchant=MERCHANT, api_key=API_KEY, api_url=fake.base_url)


async def created(heleket: Heleket, **changes: object) -> str:
    return (await heleket.create(payment_request(**changes))).provider_payment_id


# ----------------------------------------------------------------------------- create


async def test_create_sends_a_signed_invoice(fake: FakeHeleket, heleket: Heleket) -> None:
    checkout = await heleket.create(payment_request())

    (call,) = fake.calls_to("POST", "/v1/payment")
    assert call.headers["merchant"] == MERCHANT
    expected_sign = hashlib.md5(base64.b64encode(call.body) + API_KEY.encode()).hexdigest()
    assert call.headers["sign"] == expected_sign
    assert call.json() == {
        "amount": "299.00",
        "currency": "RUB",
        "order_id": "pay_01HZX3K9Q7",
        "url_callback": "https://shop.example/webhooks/payments/heleket",
        "url_return": "https://t.me/shop_test_bot?start=paid",
        "additional_data": "VPN / 30 дней",
    }
    invoice = fake.invoices[checkout.provider_payment_id]
    assert checkout == Checkout(invoice["uuid"], invoice["url"])


async def test_the_same_order_id_is_one_invoice(fake: FakeHeleket, heleket: Heleket) -> None:
    first = await heleket.create(payment_request())
    again = await heleket.create(payment_request(idempotency_key="another-key"))
    other = await heleket.create(payment_request(reference="pay_other"))

    assert Heleket.idempotent_create
    assert first == again != other
    assert fake.created == 2


async def test_a_create_retried_after_a_lost_answer_is_one_invoice(
    fake: FakeHeleket, heleket: Heleket, autojump_clock: trio.testing.MockClock
) -> None:
    fake.lose_answers()
    checkout = await retrying(lambda: heleket.create(payment_request()), rng=random.Random(1))

    assert [c.status for c in fake.calls] == [504, 200]
    assert fake.created == 1
    assert checkout.provider_payment_id in fake.invoices


async def test_a_refused_repeat_finds_the_invoice_of_the_lost_answer(
    fake: FakeHeleket, heleket: Heleket
) -> None:
    fake.refuse_repeated_order_id = True
    fake.lose_answers()
    with pytest.raises(ProviderUnavailable, match="504"):
        await heleket.create(payment_request())

    checkout = await heleket.create(payment_request())

    assert [c.path for c in fake.calls] == ["/v1/payment", "/v1/payment", "/v1/payment/info"]
    assert fake.calls[-1].json() == {"order_id": "pay_01HZX3K9Q7"}
    assert fake.created == 1
    assert checkout.provider_payment_id in fake.invoices


async def test_a_refused_create_with_nothing_behind_stays_refused(
    fake: FakeHeleket, heleket: Heleket
) -> None:
    fake.refuse_repeated_order_id = True
    await heleket.create(payment_request())
    with pytest.raises(ProviderRefused, match="order_id"):
        await heleket.create(payment_request(amount=100))  # the same order_id, another price
    with pytest.raises(ProviderRefused, match=r"amount: \['validation.min'\]"):
        await heleket.create(payment_request(reference="pay_2", amount=0))
    assert fake.calls[-1].json() == {"order_id": "pay_2"}  # looked for, not found


async def test_a_crypto_amount_loses_trailing_zeros(fake: FakeHeleket, heleket: Heleket) -> None:
    await heleket.create(payment_request(currency="USDT", amount=3_500_000))
    assert fake.calls[-1].json()["amount"] == "3.5"


async def test_a_wrong_key_is_refused_without_showing_it(
    fake: FakeHeleket, http: httpx.AsyncClient
) -> None:
    heleket = Heleket(http, merchant=MERCHANT, api_key="wrong-key", api_url=fake.base_url)
    with pytest.raises(ProviderRefused, match="Wrong sign") as caught:
        await heleket.create(payment_request())
    assert "wrong-key" not in str(caught.value)


async def test_an_outage_is_unavailable(fake: FakeHeleket, heleket: Heleket) -> None:
    fake.outage(500)
    with pytest.raises(ProviderUnavailable, match="500"):
        await heleket.create(payment_request())


# ----------------------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("check", ProviderState.PENDING),
        ("process", ProviderState.PENDING),
        ("confirm_check", ProviderState.PENDING),
        ("wrong_amount_waiting", ProviderState.PENDING),
        ("paid", ProviderState.PAID),
        ("paid_over", ProviderState.PAID),
        ("wrong_amount", ProviderState.FAILED),
        ("fail", ProviderState.FAILED),
        ("system_fail", ProviderState.FAILED),
        ("cancel", ProviderState.CANCELED),
        ("refund_process", ProviderState.PENDING),
        ("refund_paid", ProviderState.REFUNDED),
        ("some_new_status", ProviderState.PENDING),
    ],
)
async def test_status_is_normalised(
    fake: FakeHeleket, heleket: Heleket, status: str, state: ProviderState
) -> None:
    uuid = await created(heleket)
    fake.set_status(uuid, status)

    answer = await heleket.status(uuid)

    assert fake.calls[-1].json() == {"uuid": uuid}
    assert (answer.provider_payment_id, answer.state) == (uuid, state)
    assert (answer.reference, answer.amount, answer.currency) == ("pay_01HZX3K9Q7", 29900, "RUB")


@pytest.mark.parametrize(
    ("paid", "state"),
    [(29900, ProviderState.PAID), (10000, ProviderState.FAILED), (30000, ProviderState.PAID)],
)
async def test_paying_the_wrong_amount(
    fake: FakeHeleket, heleket: Heleket, paid: int, state: ProviderState
) -> None:
    uuid = await created(heleket)
    fake.pay(uuid, amount=paid)
    assert (await heleket.status(uuid)).state is state


async def test_an_unknown_invoice_is_refused(heleket: Heleket) -> None:
    with pytest.raises(ProviderRefused, match="Payment not found"):
        await heleket.status("00000000-0000-0000-0000-000000000000")


async def test_refunds_are_refused_without_a_call(fake: FakeHeleket, heleket: Heleket) -> None:
    uuid = await created(heleket)
    fake.pay(uuid)
    with pytest.raises(ProviderRefused, match="wallet address"):
        await heleket.refund(uuid, 29900, "RUB", "refund-key-1")
    assert len(fake.calls) == 1


# ----------------------------------------------------------------------------- verify


async def test_a_signed_webhook_is_accepted(fake: FakeHeleket, heleket: Heleket) -> None:
    uuid = await created(heleket)
    fake.pay(uuid)
    headers, body = fake.webhook_for(uuid)

    # What makes it a trap: PHP escapes "/", and keeps non-ASCII raw.
    assert b"VPN \\/ 30 \xd0\xb4\xd0\xbd\xd0\xb5\xd0\xb9" in body
    heleket.verify(headers, body, fake.webhook_peer)


async def test_the_trap_is_real(fake: FakeHeleket, heleket: Heleket) -> None:
    """Signing Python's own encoding would not match what Heleket signed."""
    uuid = await created(heleket)
    data = json.loads(fake.webhook_for(uuid)[1])
    given = data.pop("sign")
    naive = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    assert hashlib.md5(base64.b64encode(naive) + API_KEY.encode()).hexdigest() != given


async def test_unescaped_slashes_still_verify(fake: FakeHeleket, heleket: Heleket) -> None:
    """The signature covers the decoded JSON, so how "/" arrived does not matter."""
    uuid = await created(heleket)
    headers, body = fake.webhook_for(uuid)
    heleket.verify(headers, body.replace(b"\\/", b"/"), "")


async def test_a_webhook_signed_with_another_key_is_rejected(
    fake: FakeHeleket, heleket: Heleket
) -> None:
    uuid = await created(heleket)
    fake.api_key = "another-key"
    headers, body = fake.webhook_for(uuid)
    with pytest.raises(WebhookRejected) as caught:
        heleket.verify(headers, body, "")
    assert caught.value.status == 401


async def test_a_tampered_webhook_is_rejected(fake: FakeHeleket, heleket: Heleket) -> None:
    uuid = await created(heleket)
    headers, body = fake.webhook_for(uuid)
    tampered = body.replace(b'"status":"check"', b'"status":"paid"')
    assert tampered != body
    with pytest.raises(WebhookRejected):
        heleket.verify(headers, tampered, "")


@pytest.mark.parametrize("body", [b'{"uuid": "u"}', b'{"uuid": "u", "sign": 5}'])
def test_a_missing_sign_is_rejected(body: bytes) -> None:
    with pytest.raises(WebhookRejected) as caught:
        OFFLINE.verify({}, body, "")
    assert caught.value.status == 401


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[]", b"[" * 50_000, b'{"a":' * 20_000 + b"1" + b"}" * 20_000]
)
def test_a_body_too_broken_to_hold_a_sign_is_malformed(body: bytes) -> None:
    """The sign is inside the body: one that cannot be read is a 400, not a 401 or 500."""
    with pytest.raises(MalformedWebhook):
        OFFLINE.verify({}, body, "")


def test_no_depth_near_the_limit_escapes_as_a_recursion_error() -> None:
    """verify() decodes the body, then re-encodes it (php_json) from a deeper frame.
    Whichever of the two hits the recursion limit first (that depends on the Python
    version), every depth around the limit is a 400 or a 401, never a RecursionError."""
    limit = _deepest_decodable()
    for depth in range(limit - 30, limit + 10):
        body = b'{"a":' + b"[" * depth + b"]" * depth + b',"sign":"00"}'
        with pytest.raises((MalformedWebhook, WebhookRejected)):
            OFFLINE.verify({}, body, "")


def _deepest_decodable() -> int:
    low, high = 1, 100_000
    while high - low > 1:
        middle = (low + high) // 2
        try:
            json.loads(b"[" * middle + b"]" * middle)
            low = middle
        except RecursionError:
            high = middle
    return low


_json_text = st.text(st.characters(codec="utf-8"), max_size=20) | st.sampled_from(
    ["a/b", "https://pay.heleket.com/pay/x", "\u2028", 'quote " and \\ slash', "€ / ₽"]
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=8).filter(lambda k: k != "sign"), _json_text, max_size=6))
def test_any_webhook_signed_the_php_way_verifies(fields: dict[str, str]) -> None:
    signed = php_json_encode(fields)
    data = fields | {"sign": hashlib.md5(base64.b64encode(signed) + API_KEY.encode()).hexdigest()}
    OFFLINE.verify({}, php_json_encode(data), "")
    assert php_json(fields) == signed


# ----------------------------------------------------------------------------- parse


async def test_a_paid_webhook_parses(fake: FakeHeleket, heleket: Heleket) -> None:
    uuid = await created(heleket)
    fake.pay(uuid)

    event = heleket.parse(fake.webhook_for(uuid)[1])

    assert event.event_id == f"{uuid}:paid"
    assert (event.reference, event.provider_payment_id) == ("pay_01HZX3K9Q7", uuid)
    assert (event.state, event.amount, event.currency) == (ProviderState.PAID, 29900, "RUB")


async def test_each_status_is_its_own_event(fake: FakeHeleket, heleket: Heleket) -> None:
    uuid = await created(heleket)
    process = heleket.parse(fake.webhook_for(uuid, "process")[1])
    fake.pay(uuid, amount=100)
    wrong = heleket.parse(fake.webhook_for(uuid)[1])

    assert (process.event_id, process.state) == (f"{uuid}:process", ProviderState.PENDING)
    assert (wrong.event_id, wrong.state) == (f"{uuid}:wrong_amount", ProviderState.FAILED)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"uuid": "u", "status": "paid"}',
        b'{"uuid": "u", "order_id": "o", "status": "paid", "amount": "x", "currency": "DOGE"}',
        b'{"uuid": "u", "order_id": "o", "status": "paid", "amount": 1.5, "currency": "USD"}',
    ],
)
def test_unreadable_webhooks_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        OFFLINE.parse(body)


def test_a_webhook_in_a_currency_the_shop_does_not_use_parses() -> None:
    """Authentic, so it is stored and answered 200: the amount has no minor unit here."""
    body = b'{"uuid": "u", "order_id": "o", "status": "paid", "amount": "1.5", "currency": "doge"}'
    event = OFFLINE.parse(body)
    assert (event.event_id, event.reference, event.provider_payment_id) == ("u:paid", "o", "u")
    assert (event.state, event.amount, event.currency) == (ProviderState.PAID, None, "DOGE")
