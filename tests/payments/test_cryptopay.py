"""Crypto Pay against its fake: invoices in fiat and crypto, signed updates."""

from __future__ import annotations

import datetime as dt
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
    WebhookRejected,
)
from shop.payments.cryptopay import CryptoPay
from shop.sandbox.providers.cryptopay import TOKEN
from tests.fakes.providers import FakeCryptoPay, payment_request

#: For verify() and parse(), which make no calls.
OFFLINE = CryptoPay(httpx.AsyncClient(verify=False), token=TOKEN)


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeCryptoPay:
    fake = FakeCryptoPay()
    await nursery.start(fake.serve)
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30, verify=False) as client:
        yield client


@pytest.fixture
async def cryptopay(fake: FakeCryptoPay, http: httpx.AsyncClient) -> CryptoPay:
    return CryptoPay(http, token=TOKEN, api_url=fake.base_url)


async def created(cryptopay: CryptoPay, **changes: object) -> str:
    return (await cryptopay.create(payment_request(**changes))).provider_payment_id


# ----------------------------------------------------------------------------- create


async def test_a_fiat_invoice(fake: FakeCryptoPay, cryptopay: CryptoPay) -> None:
    checkout = await cryptopay.create(payment_request())

    (call,) = fake.calls_to("POST", "/createInvoice")
    assert call.headers["crypto-pay-api-token"] == TOKEN
    assert call.json() == {
        "amount": "299.00",
        "currency_type": "fiat",
        "fiat": "RUB",
        "payload": "pay_01HZX3K9Q7",
        "description": "VPN / 30 дней",
        "paid_btn_name": "callback",
        "paid_btn_url": "https://t.me/shop_test_bot?start=paid",
    }
    invoice = fake.invoices[int(checkout.provider_payment_id)]
    assert checkout == Checkout(str(invoice["invoice_id"]), invoice["bot_invoice_url"])


@pytest.mark.parametrize(
    ("currency", "amount", "text"), [("USDT", 3_500_000, "3.5"), ("TON", 2 * 10**9, "2")]
)
async def test_a_crypto_invoice(
    fake: FakeCryptoPay, cryptopay: CryptoPay, currency: str, amount: int, text: str
) -> None:
    await cryptopay.create(payment_request(currency=currency, amount=amount))

    sent = fake.calls[-1].json()
    assert (sent["currency_type"], sent["asset"], sent["amount"]) == ("crypto", currency, text)
    assert "fiat" not in sent


class _FixedClock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at


NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("lifetime", "sent"),
    [
        (dt.timedelta(hours=24), 86_400),
        (dt.timedelta(hours=24, milliseconds=999), 86_400),  # rounded down: never outlives
        (dt.timedelta(seconds=1), 1),
        (dt.timedelta(milliseconds=500), 1),  # due within the second: the least allowed
        (dt.timedelta(0), 1),
        (-dt.timedelta(hours=1), 1),  # already due
        (dt.timedelta(days=31), 2_678_400),
        (dt.timedelta(days=90), 2_678_400),  # Crypto Pay's longest
    ],
)
async def test_the_invoice_lives_as_long_as_the_payment(
    fake: FakeCryptoPay, http: httpx.AsyncClient, lifetime: dt.timedelta, sent: int
) -> None:
    cryptopay = CryptoPay(http, token=TOKEN, api_url=fake.base_url, clock=_FixedClock(NOW))

    await cryptopay.create(payment_request(expires_at=NOW + lifetime))

    (call,) = fake.calls_to("POST", "/createInvoice")
    assert call.json()["expires_in"] == sent
    assert call.status == 200  # and the fake, checking as Crypto Pay does, took it
    assert fake.created == 1


async def test_without_an_expiry_no_lifetime_is_sent(
    fake: FakeCryptoPay, cryptopay: CryptoPay
) -> None:
    await cryptopay.create(payment_request())
    assert "expires_in" not in fake.calls[-1].json()


@pytest.mark.parametrize("value", [0, -1, 2_678_401, 1.5, "", "abc", "１２", True])
async def test_the_fake_refuses_a_lifetime_crypto_pay_refuses(
    fake: FakeCryptoPay, http: httpx.AsyncClient, value: object
) -> None:
    body = {"currency_type": "fiat", "fiat": "RUB", "amount": "1.00", "expires_in": value}
    answer = await http.post(
        f"{fake.base_url}/createInvoice", json=body, headers={"Crypto-Pay-API-Token": TOKEN}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["name"] == "EXPIRES_IN_INVALID"
    assert fake.created == 0


@pytest.mark.parametrize("value", [1, 2_678_400, "3600"])
async def test_the_fake_takes_a_lifetime_crypto_pay_takes(
    fake: FakeCryptoPay, http: httpx.AsyncClient, value: object
) -> None:
    body = {"currency_type": "fiat", "fiat": "RUB", "amount": "1.00", "expires_in": value}
    answer = await http.post(
        f"{fake.base_url}/createInvoice", json=body, headers={"Crypto-Pay-API-Token": TOKEN}
    )
    assert answer.status_code == 200
    assert fake.created == 1


async def test_creates_are_not_idempotent(fake: FakeCryptoPay, cryptopay: CryptoPay) -> None:
    """Crypto Pay takes no idempotency key: the class says so, and the fake behaves so."""
    first = await cryptopay.create(payment_request())
    again = await cryptopay.create(payment_request())

    assert CryptoPay.idempotent_create is False
    assert first != again
    assert fake.created == 2
    assert all("idempotency-key" not in call.headers for call in fake.calls)


async def test_a_lost_answer_leaves_an_invoice_behind(
    fake: FakeCryptoPay, cryptopay: CryptoPay
) -> None:
    """Why creates must not be retried here: the lost call did make an invoice."""
    fake.lose_answers()
    with pytest.raises(ProviderUnavailable, match="504"):
        await cryptopay.create(payment_request())
    assert fake.created == 1


async def test_a_wrong_token_is_refused_without_showing_it(
    fake: FakeCryptoPay, http: httpx.AsyncClient
) -> None:
    cryptopay = CryptoPay(http, token="999:wrong", api_url=fake.base_url)
    with pytest.raises(ProviderRefused, match="UNAUTHORIZED") as caught:
        await cryptopay.create(payment_request())
    assert "999:wrong" not in str(caught.value)


async def test_an_outage_is_unavailable(fake: FakeCryptoPay, cryptopay: CryptoPay) -> None:
    fake.outage()
    with pytest.raises(ProviderUnavailable):
        await cryptopay.create(payment_request())
    assert fake.created == 0


# ----------------------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("command", "state"),
    [(None, ProviderState.PENDING), ("pay", ProviderState.PAID), ("expire", ProviderState.EXPIRED)],
)
async def test_status_is_normalised(
    fake: FakeCryptoPay, cryptopay: CryptoPay, command: str | None, state: ProviderState
) -> None:
    await created(cryptopay)  # another invoice, which must not be confused with ours
    invoice_id = await created(cryptopay)
    if command:
        getattr(fake, command)(invoice_id)

    status = await cryptopay.status(invoice_id)

    assert fake.calls[-1].json() == {"invoice_ids": invoice_id}
    assert (status.provider_payment_id, status.state) == (invoice_id, state)
    assert (status.reference, status.amount, status.currency) == ("pay_01HZX3K9Q7", 29900, "RUB")


async def test_status_of_a_crypto_invoice(fake: FakeCryptoPay, cryptopay: CryptoPay) -> None:
    invoice_id = await created(cryptopay, currency="USDT", amount=3_500_000)
    status = await cryptopay.status(invoice_id)
    assert (status.amount, status.currency) == (3_500_000, "USDT")


async def test_an_unknown_invoice_is_refused(cryptopay: CryptoPay) -> None:
    with pytest.raises(ProviderRefused, match="no invoice 404"):
        await cryptopay.status("404")


async def test_refunds_are_refused_without_a_call(
    fake: FakeCryptoPay, cryptopay: CryptoPay
) -> None:
    invoice_id = await created(cryptopay)
    fake.pay(invoice_id)
    with pytest.raises(ProviderRefused, match="no refund"):
        await cryptopay.refund(invoice_id, 29900, "RUB", "refund-key-1")
    assert len(fake.calls) == 1


# ----------------------------------------------------------------------------- verify


async def test_a_signed_update_is_accepted(fake: FakeCryptoPay, cryptopay: CryptoPay) -> None:
    invoice_id = await created(cryptopay)
    fake.pay(invoice_id)
    headers, body = fake.webhook_for(invoice_id)
    cryptopay.verify(headers, body, "")


async def test_a_signature_made_with_another_token_is_rejected(
    fake: FakeCryptoPay, cryptopay: CryptoPay
) -> None:
    invoice_id = await created(cryptopay)
    headers, body = fake.webhook_for(invoice_id)
    headers["crypto-pay-api-signature"] = fake.sign(body, token="12345:other")
    with pytest.raises(WebhookRejected) as caught:
        cryptopay.verify(headers, body, "")
    assert caught.value.status == 401


async def test_a_tampered_body_is_rejected(fake: FakeCryptoPay, cryptopay: CryptoPay) -> None:
    invoice_id = await created(cryptopay)
    headers, body = fake.webhook_for(invoice_id)
    tampered = body.replace(b'"299.00"', b'"2.99"')
    assert tampered != body
    with pytest.raises(WebhookRejected):
        cryptopay.verify(headers, tampered, "")


@pytest.mark.parametrize("signature", [None, "", "zz", "é" * 64])
def test_a_missing_or_garbled_signature_is_rejected(signature: str | None) -> None:
    headers = {} if signature is None else {"crypto-pay-api-signature": signature}
    with pytest.raises(WebhookRejected) as caught:
        OFFLINE.verify(headers, b"{}", "")
    assert caught.value.status == 401


# ----------------------------------------------------------------------------- parse


async def test_invoice_paid_parses(fake: FakeCryptoPay, cryptopay: CryptoPay) -> None:
    invoice_id = await created(cryptopay)
    fake.pay(invoice_id)
    first = cryptopay.parse(fake.webhook_for(invoice_id)[1])
    resent = cryptopay.parse(fake.webhook_for(invoice_id)[1])  # another update_id

    assert first.event_id == resent.event_id == f"{invoice_id}:paid"
    assert (first.reference, first.provider_payment_id) == ("pay_01HZX3K9Q7", invoice_id)
    assert (first.state, first.amount, first.currency) == (ProviderState.PAID, 29900, "RUB")


async def test_a_crypto_invoice_paid_parses(fake: FakeCryptoPay, cryptopay: CryptoPay) -> None:
    invoice_id = await created(cryptopay, currency="TON", amount=1_500_000_000)
    fake.pay(invoice_id)
    event = cryptopay.parse(fake.webhook_for(invoice_id)[1])
    assert (event.amount, event.currency) == (1_500_000_000, "TON")


def _update(**invoice: object) -> bytes:
    payload = {"invoice_id": 7, "status": "paid", "payload": "pay_1"} | invoice
    return json.dumps({"update_id": 1, "update_type": "invoice_paid", "payload": payload}).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"update_type": "invoice_paid"}',
        _update(currency_type="fiat", fiat="RUB"),  # no amount
        _update(currency_type="fiat", fiat="RUB", amount="1.005"),  # finer than kopecks
    ],
)
def test_unreadable_updates_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        OFFLINE.parse(body)


@pytest.mark.parametrize(
    ("invoice", "currency"),
    [
        ({"currency_type": "crypto", "asset": "BTC", "amount": "0.001"}, "BTC"),
        ({"currency_type": "fiat", "fiat": "CNY", "amount": "10.00"}, "CNY"),
    ],
)
def test_an_update_in_a_currency_the_shop_does_not_use_parses(
    invoice: dict[str, str], currency: str
) -> None:
    """Authentic, so it is stored and answered 200: the amount has no minor unit here."""
    event = OFFLINE.parse(_update(**invoice))
    assert (event.event_id, event.reference) == ("7:paid", "pay_1")
    assert (event.state, event.amount, event.currency) == (ProviderState.PAID, None, currency)


@pytest.mark.parametrize(
    "invoice",
    [
        {"currency_type": "crypto", "asset": "BTC", "amount": "lots"},
        {"currency_type": "crypto", "asset": "B T C", "amount": "1"},
        {"currency_type": "crypto", "asset": "X" * 21, "amount": "1"},
    ],
)
def test_an_unknown_currency_must_still_look_like_one(invoice: dict[str, str]) -> None:
    with pytest.raises(MalformedWebhook):
        OFFLINE.parse(_update(**invoice))
