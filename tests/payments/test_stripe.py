"""Stripe against its fake: Checkout Sessions, Idempotency-Key, signed events."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing

from shop.clock import UTC, TrioClock
from shop.payments._http import retrying
from shop.payments.base import (
    MalformedWebhook,
    ProviderRefused,
    ProviderState,
    ProviderUnavailable,
    WebhookRejected,
)
from shop.payments.stripe import Stripe
from shop.sandbox.providers.stripe import SECRET_KEY, WEBHOOK_SECRET
from tests.fakes.providers import FakeStripe, payment_request

START = dt.datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def clock() -> TrioClock:
    return TrioClock.starting_at(START)  # reads trio's clock: an async (trio) fixture


@pytest.fixture
async def fake(nursery: trio.Nursery, clock: TrioClock) -> FakeStripe:
    fake = FakeStripe(clock=clock)
    await nursery.start(fake.serve)
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30, verify=False) as client:
        yield client


@pytest.fixture
async def stripe(fake: FakeStripe, http: httpx.AsyncClient, clock: TrioClock) -> Stripe:
    return Stripe(
        http,
        secret_key=SECRET_KEY,
        webhook_secret=WEBHOOK_SECRET,
        clock=clock,
        api_url=fake.base_url,
    )


async def created(stripe: Stripe) -> str:
    return (await stripe.create(payment_request())).provider_payment_id


# ----------------------------------------------------------------------------- create


async def test_create_sends_a_checkout_session_form(fake: FakeStripe, stripe: Stripe) -> None:
    checkout = await stripe.create(payment_request(currency="USD", amount=349))

    (call,) = fake.calls_to("POST", "/v1/checkout/sessions")
    assert call.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert call.headers["idempotency-key"] == payment_request().idempotency_key
    assert call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert call.form() == {
        "mode": "payment",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "349",
        "line_items[0][price_data][product_data][name]": "VPN / 30 дней",
        "line_items[0][quantity]": "1",
        "success_url": "https://t.me/shop_test_bot?start=paid",
        "cancel_url": "https://t.me/shop_test_bot?start=paid",
        "client_reference_id": "pay_01HZX3K9Q7",
        "metadata[reference]": "pay_01HZX3K9Q7",
        "payment_intent_data[metadata][reference]": "pay_01HZX3K9Q7",
    }
    session = fake.sessions[checkout.provider_payment_id]
    assert checkout.url == session["url"]
    assert session["amount_total"] == 349


async def test_the_same_idempotency_key_is_one_session(fake: FakeStripe, stripe: Stripe) -> None:
    first = await stripe.create(payment_request())
    again = await stripe.create(payment_request())
    other = await stripe.create(payment_request(idempotency_key="another-key"))

    assert first == again != other
    assert fake.created == 2


async def test_a_create_retried_after_a_lost_answer_is_one_session(
    fake: FakeStripe, stripe: Stripe, autojump_clock: trio.testing.MockClock
) -> None:
    fake.lose_answers()
    checkout = await retrying(lambda: stripe.create(payment_request()), rng=random.Random(1))

    assert [c.status for c in fake.calls] == [504, 200]
    assert fake.created == 1
    assert checkout.provider_payment_id in fake.sessions


async def test_reusing_a_key_for_another_payment_is_refused(stripe: Stripe) -> None:
    await stripe.create(payment_request())
    with pytest.raises(ProviderRefused, match="same parameters"):
        await stripe.create(payment_request(amount=100))


# ----------------------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("command", "state"),
    [(None, ProviderState.PENDING), ("pay", ProviderState.PAID), ("expire", ProviderState.EXPIRED)],
)
async def test_status_is_normalised(
    fake: FakeStripe, stripe: Stripe, command: str | None, state: ProviderState
) -> None:
    session_id = await created(stripe)
    if command:
        getattr(fake, command)(session_id)

    status = await stripe.status(session_id)

    assert (status.provider_payment_id, status.state) == (session_id, state)
    assert (status.reference, status.amount, status.currency) == ("pay_01HZX3K9Q7", 29900, "RUB")


async def test_an_unknown_session_is_refused(stripe: Stripe) -> None:
    with pytest.raises(ProviderRefused, match=r"No such checkout\.session"):
        await stripe.status("cs_test_nope")


async def test_an_outage_is_unavailable(fake: FakeStripe, stripe: Stripe) -> None:
    fake.outage(502)
    with pytest.raises(ProviderUnavailable, match="502"):
        await stripe.status("cs_test_nope")


async def test_a_wrong_key_is_refused_without_showing_it(
    fake: FakeStripe, http: httpx.AsyncClient, clock: TrioClock
) -> None:
    stripe = Stripe(
        http,
        secret_key="sk_test_wrong",
        webhook_secret=WEBHOOK_SECRET,
        clock=clock,
        api_url=fake.base_url,
    )
    with pytest.raises(ProviderRefused, match="401") as caught:
        await stripe.create(payment_request())
    assert "sk_test_wrong" not in str(caught.value)


# ----------------------------------------------------------------------------- refund


async def test_refund_goes_through_the_payment_intent(fake: FakeStripe, stripe: Stripe) -> None:
    session_id = await created(stripe)
    fake.pay(session_id)
    intent = fake.sessions[session_id]["payment_intent"]

    await stripe.refund(session_id, 29900, "RUB", "refund-key-1")
    await stripe.refund(session_id, 29900, "RUB", "refund-key-1")  # a retry: one refund

    calls = fake.calls_to("POST", "/v1/refunds")
    assert [c.headers["idempotency-key"] for c in calls] == ["refund-key-1"] * 2
    assert calls[0].form() == {
        "payment_intent": intent,
        "amount": "29900",
        "metadata[reference]": "pay_01HZX3K9Q7",
    }
    assert len(fake.refunds) == 1
    assert fake.charges[intent]["refunded"]


async def test_an_unpaid_session_has_nothing_to_refund(fake: FakeStripe, stripe: Stripe) -> None:
    session_id = await created(stripe)
    with pytest.raises(ProviderRefused, match="no payment"):
        await stripe.refund(session_id, 29900, "RUB", "refund-key-1")
    assert fake.calls_to("POST", "/v1/refunds") == []


# ----------------------------------------------------------------------------- verify


async def test_a_signed_event_is_accepted(fake: FakeStripe, stripe: Stripe) -> None:
    session_id = await created(stripe)
    fake.pay(session_id)
    headers, body = fake.webhook_for(session_id)
    assert b"\n" in body  # Stripe pretty-prints: the raw bytes are what is signed
    stripe.verify(headers, body, "3.18.12.63")


async def test_one_valid_v1_among_several_is_enough(fake: FakeStripe, stripe: Stripe) -> None:
    headers, body = fake.webhook_for(
        await created(stripe), secrets=["whsec_old_rolled_secret", WEBHOOK_SECRET]
    )
    assert headers["stripe-signature"].count("v1=") == 2
    stripe.verify(headers, body, "")


@pytest.mark.parametrize(
    "secrets", [["whsec_wrong"], []], ids=["wrong secret", "no v1 at all (only v0)"]
)
async def test_without_a_matching_v1_it_is_rejected(
    fake: FakeStripe, stripe: Stripe, secrets: list[str]
) -> None:
    headers, body = fake.webhook_for(await created(stripe), secrets=secrets)
    with pytest.raises(WebhookRejected) as caught:
        stripe.verify(headers, body, "")
    assert caught.value.status == 401


async def test_a_tampered_body_is_rejected(fake: FakeStripe, stripe: Stripe) -> None:
    session_id = await created(stripe)
    headers, body = fake.webhook_for(session_id)
    tampered = body.replace(b'"amount_total": 29900', b'"amount_total": 100')
    assert tampered != body
    with pytest.raises(WebhookRejected):
        stripe.verify(headers, tampered, "")


@pytest.mark.parametrize("header", [None, "", "garbage", "t=abc,v1=00", "v1=00", "t=1772355600,v1"])
async def test_a_missing_or_garbled_header_is_rejected(
    fake: FakeStripe, stripe: Stripe, header: str | None
) -> None:
    headers, body = fake.webhook_for(await created(stripe))
    if header is None:
        del headers["stripe-signature"]
    else:
        headers["stripe-signature"] = header
    with pytest.raises(WebhookRejected) as caught:
        stripe.verify(headers, body, "")
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("age", "accepted"),
    [
        (0, True),
        (300, True),  # exactly the tolerance: stripe-python accepts it too
        (301, False),
        (86_400, False),
        (-300, True),  # signed "in the future": the sender's clock runs ahead of ours
        (-301, True),
        (-86_400, True),
    ],
)
def test_only_a_delivery_older_than_the_tolerance_is_rejected(age: int, accepted: bool) -> None:
    """As stripe-python's WebhookSignature.verify_header: ``timestamp < now - tolerance``
    is refused; a timestamp ahead of our clock is not."""
    now = int(START.timestamp())  # OFFLINE's clock stands at START
    body = b'{"id": "evt_1", "type": "payment_intent.created"}'
    headers = {"stripe-signature": FakeStripe().sign(body, timestamp=now - age)}
    if accepted:
        OFFLINE.verify(headers, body, "")
    else:
        with pytest.raises(WebhookRejected, match="older than the tolerance") as caught:
            OFFLINE.verify(headers, body, "")
        assert caught.value.status == 401


def test_a_fraction_of_a_second_past_the_tolerance_is_rejected() -> None:
    """``now`` is not rounded down to a whole second first (stripe-python compares it
    with ``time.time()``)."""
    stripe = Stripe(
        httpx.AsyncClient(verify=False),
        secret_key=SECRET_KEY,
        webhook_secret=WEBHOOK_SECRET,
        clock=_FixedClock(START + dt.timedelta(seconds=300.5)),
    )
    body = b"{}"
    headers = {"stripe-signature": FakeStripe().sign(body, timestamp=int(START.timestamp()))}
    with pytest.raises(WebhookRejected, match="tolerance"):
        stripe.verify(headers, body, "")


def test_an_old_timestamp_with_a_bad_signature_is_a_signature_failure() -> None:
    """The signature is checked first (as the SDK does): an old, unsigned delivery is not
    told how old is too old."""
    body = b"{}"
    headers = {"stripe-signature": f"t={int(START.timestamp()) - 86_400},v1={'0' * 64}"}
    with pytest.raises(WebhookRejected, match="no signature matches"):
        OFFLINE.verify(headers, body, "")


# ----------------------------------------------------------------------------- parse


@pytest.mark.parametrize(
    ("paid", "kind", "state"),
    [
        (True, "checkout.session.completed", ProviderState.PAID),
        (False, "checkout.session.completed", ProviderState.PENDING),
        (True, "checkout.session.async_payment_succeeded", ProviderState.PAID),
        (False, "checkout.session.async_payment_failed", ProviderState.FAILED),
        (False, "checkout.session.expired", ProviderState.EXPIRED),
    ],
)
async def test_session_events_parse(
    fake: FakeStripe, stripe: Stripe, paid: bool, kind: str, state: ProviderState
) -> None:
    session_id = await created(stripe)
    if paid:
        fake.pay(session_id)
    body = fake.event_for(session_id, kind)

    event = stripe.parse(body)

    assert event.event_id == json.loads(body)["id"]
    assert event.event_id.startswith("evt_")
    assert (event.reference, event.provider_payment_id) == ("pay_01HZX3K9Q7", session_id)
    assert (event.state, event.amount, event.currency) == (state, 29900, "RUB")
    assert not event.needs_confirmation


async def test_charge_refunded_carries_the_reference(fake: FakeStripe, stripe: Stripe) -> None:
    session_id = await created(stripe)
    fake.pay(session_id)
    fake.refund(session_id, 9900)
    partly = stripe.parse(fake.event_for(session_id))
    fake.refund(session_id)
    fully = stripe.parse(fake.event_for(session_id))

    assert (partly.state, partly.amount) == (ProviderState.PENDING, 9900)
    assert (fully.state, fully.amount, fully.currency) == (ProviderState.REFUNDED, 29900, "RUB")
    assert (fully.reference, fully.provider_payment_id) == ("pay_01HZX3K9Q7", None)
    assert partly.event_id != fully.event_id


def test_other_events_are_pending() -> None:
    body = {
        "id": "evt_1",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_1", "metadata": {"reference": "pay_1"}}},
    }
    event = OFFLINE.parse(json.dumps(body).encode())
    assert (event.event_id, event.state, event.reference) == (
        "evt_1",
        ProviderState.PENDING,
        "pay_1",
    )


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"id": "evt_1", "type": "checkout.session.completed"}',
        b'{"type": "checkout.session.completed", "data": {"object": {"id": "cs_1"}}}',
        b'{"id": "evt_1", "type": "checkout.session.completed",'
        b' "data": {"object": {"id": "cs_1", "amount_total": 100, "currency": "x y"}}}',
        b'{"id": "evt_1", "type": "checkout.session.completed",'
        b' "data": {"object": {"id": "cs_1", "amount_total": "100", "currency": "usd"}}}',
    ],
)
def test_unreadable_events_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        OFFLINE.parse(body)


def test_events_in_a_currency_the_shop_does_not_use_parse() -> None:
    """Authentic, so they are stored and answered 200; the amount is not trusted in a
    minor unit the shop does not know."""
    session = {"id": "cs_1", "amount_total": 500, "currency": "jpy", "payment_status": "paid"}
    completed = {"id": "evt_1", "type": "checkout.session.completed", "data": {"object": session}}
    charge = {"amount_refunded": 500, "currency": "jpy", "refunded": True}
    refunded = {"id": "evt_2", "type": "charge.refunded", "data": {"object": charge}}

    paid = OFFLINE.parse(json.dumps(completed).encode())
    back = OFFLINE.parse(json.dumps(refunded).encode())

    assert (paid.event_id, paid.reference, paid.provider_payment_id) == ("evt_1", None, "cs_1")
    assert (paid.state, paid.amount, paid.currency) == (ProviderState.PAID, None, "JPY")
    assert (back.state, back.amount, back.currency) == (ProviderState.REFUNDED, None, "JPY")


def test_an_event_without_data_parses() -> None:
    """A thin event (``v2.core.event``) carries no ``data``: stored, and nothing to do."""
    thin = {"id": "evt_2", "object": "v2.core.event", "type": "v1.billing.meter.no_meter_found"}
    event = OFFLINE.parse(json.dumps(thin).encode())
    assert (event.event_id, event.reference, event.state) == ("evt_2", None, ProviderState.PENDING)


class _FixedClock:
    def __init__(self, at: dt.datetime = START) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at


#: For parse(), which makes no calls.
OFFLINE = Stripe(
    httpx.AsyncClient(verify=False),
    secret_key=SECRET_KEY,
    webhook_secret=WEBHOOK_SECRET,
    clock=_FixedClock(),
)
