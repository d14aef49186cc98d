"""YooMoney against its fake: the Quickpay link, the notification hash, what counts as
paid, and operation-history with and without a token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import httpx
import pytest
import trio

from shop.payments.base import (
    MalformedWebhook,
    ProviderRefused,
    ProviderState,
    ProviderUnavailable,
    WebhookRejected,
)
from shop.payments.yoomoney import YooMoney
from shop.sandbox.providers.yoomoney import NOTIFICATION_SECRET, TOKEN, WALLET
from tests.fakes.providers import FakeYooMoney, payment_request

REFERENCE = "pay_01HZX3K9Q7"
PAYMENT_ID = f"{REFERENCE}:29900"
#: For create(), verify() and parse(), which make no calls.
OFFLINE = YooMoney(httpx.AsyncClient(), wallet=WALLET, notification_secret=NOTIFICATION_SECRET)


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeYooMoney:
    fake = FakeYooMoney()
    await nursery.start(fake.serve)
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture
async def yoomoney(fake: FakeYooMoney, http: httpx.AsyncClient) -> YooMoney:
    return YooMoney(
        http,
        wallet=WALLET,
        notification_secret=NOTIFICATION_SECRET,
        token=TOKEN,
        api_url=fake.base_url,
    )


async def paid(fake: FakeYooMoney, **how: object) -> str:
    """The customer pays through the link the shop shows: the operation id."""
    checkout = await OFFLINE.create(payment_request())
    return fake.pay_link(checkout.url, **how)  # type: ignore[arg-type]


def form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


# ----------------------------------------------------------------------------- create


async def test_the_payment_page_is_a_quickpay_link(fake: FakeYooMoney) -> None:
    checkout = await OFFLINE.create(payment_request())

    link = urlsplit(checkout.url)
    assert f"{link.scheme}://{link.netloc}{link.path}" == "https://yoomoney.ru/quickpay/confirm"
    assert parse_qs(link.query) == {
        "receiver": [WALLET],
        "quickpay-form": ["button"],
        "sum": ["299.00"],
        "label": [REFERENCE],
        "paymentType": ["AC"],
        "successURL": ["https://t.me/shop_test_bot?start=paid"],
    }
    assert fake.open_link(checkout.url)["label"] == REFERENCE  # YooMoney takes it
    assert checkout.provider_payment_id == PAYMENT_ID
    assert fake.calls == []  # nothing is created at YooMoney


async def test_creating_again_is_the_same_link() -> None:
    assert await OFFLINE.create(payment_request()) == await OFFLINE.create(payment_request())


async def test_a_wallet_takes_only_roubles() -> None:
    with pytest.raises(ProviderRefused, match="roubles"):
        await OFFLINE.create(payment_request(currency="USD", amount=349))


# ----------------------------------------------------------------------------- status


async def test_without_a_token_status_waits_and_asks_nobody(
    fake: FakeYooMoney, http: httpx.AsyncClient
) -> None:
    untokened = YooMoney(
        http, wallet=WALLET, notification_secret=NOTIFICATION_SECRET, api_url=fake.base_url
    )
    await paid(fake)
    status = await untokened.status(PAYMENT_ID)
    assert (status.state, status.reference, status.amount) == (
        ProviderState.PENDING,
        REFERENCE,
        None,
    )
    assert fake.calls == []


async def test_status_asks_operation_history_by_label(
    fake: FakeYooMoney, yoomoney: YooMoney
) -> None:
    before = await yoomoney.status(PAYMENT_ID)
    await paid(fake)
    after = await yoomoney.status(PAYMENT_ID)

    assert before.state is ProviderState.PENDING
    assert (after.provider_payment_id, after.state, after.reference) == (
        PAYMENT_ID,
        ProviderState.PAID,
        REFERENCE,
    )
    assert (after.amount, after.currency) == (29900, "RUB")  # 290.03 arrived: 3% less
    calls = fake.calls_to("POST", "/operation-history")
    assert [c.form() for c in calls] == [
        {"type": "deposition", "label": REFERENCE, "records": "100"}
    ] * 2
    assert calls[0].headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(("arrived", "reported"), [("290.03", 29900), ("290.02", 29002)])
async def test_what_arrived_must_cover_the_price_less_the_commission(
    fake: FakeYooMoney, yoomoney: YooMoney, arrived: str, reported: int
) -> None:
    """History shows only what reached the wallet: 3% less than 299.00 is the least a
    full payment leaves; a kopeck less is an underpayment, reported as it arrived."""
    operation_id = await paid(fake)
    fake.operations[operation_id]["amount"] = Decimal(arrived)
    assert (await yoomoney.status(PAYMENT_ID)).amount == reported


async def test_an_edited_link_paid_short_is_reported_short(
    fake: FakeYooMoney, yoomoney: YooMoney
) -> None:
    await paid(fake, amount=100)  # the payer changed sum=299.00 to 1.00
    status = await yoomoney.status(PAYMENT_ID)
    assert (status.state, status.amount) == (ProviderState.PAID, 97)


async def test_a_payment_from_a_wallet_is_paid(fake: FakeYooMoney, yoomoney: YooMoney) -> None:
    await paid(fake, payment_type="PC")
    assert (await yoomoney.status(PAYMENT_ID)).amount == 29900


@pytest.mark.parametrize("held", ["codepro", "unaccepted"])
async def test_a_held_transfer_is_pending_until_credited(
    fake: FakeYooMoney, yoomoney: YooMoney, held: str
) -> None:
    operation_id = await paid(fake, **{held: True})
    assert (await yoomoney.status(PAYMENT_ID)).state is ProviderState.PENDING
    fake.credit(operation_id)
    assert (await yoomoney.status(PAYMENT_ID)).state is ProviderState.PAID


async def test_another_payments_transfer_does_not_count(
    fake: FakeYooMoney, yoomoney: YooMoney
) -> None:
    other = await OFFLINE.create(payment_request(reference="pay_another"))
    fake.pay_link(other.url)
    assert (await yoomoney.status(PAYMENT_ID)).state is ProviderState.PENDING


async def test_a_wrong_token_is_refused_without_showing_it(
    fake: FakeYooMoney, http: httpx.AsyncClient
) -> None:
    wrong = YooMoney(
        http,
        wallet=WALLET,
        notification_secret=NOTIFICATION_SECRET,
        token="4100118408605024.WRONG",
        api_url=fake.base_url,
    )
    with pytest.raises(ProviderRefused) as caught:
        await wrong.status(PAYMENT_ID)
    assert "401" in str(caught.value)
    assert "invalid_token" in str(caught.value)
    assert "WRONG" not in str(caught.value)


async def test_a_method_error_with_http_200_is_refused(yoomoney: YooMoney) -> None:
    with pytest.raises(ProviderRefused, match="illegal_param_label"):
        await yoomoney.status(f"{'x' * 65}:29900")


async def test_an_outage_is_unavailable(fake: FakeYooMoney, yoomoney: YooMoney) -> None:
    fake.outage()
    with pytest.raises(ProviderUnavailable, match="503"):
        await yoomoney.status(PAYMENT_ID)


@pytest.mark.parametrize("payment_id", ["pay_01HZX3K9Q7", ":29900", "pay:x", "pay:２９"])
async def test_an_id_the_shop_did_not_make_is_refused(yoomoney: YooMoney, payment_id: str) -> None:
    with pytest.raises(ProviderRefused):
        await yoomoney.status(payment_id)


async def test_there_is_no_refund() -> None:
    with pytest.raises(ProviderRefused, match="send the money back"):
        await OFFLINE.refund(PAYMENT_ID, 29900, "RUB", "refund-key")


# ----------------------------------------------------------------------------- verify


async def test_an_authentic_notification_passes(fake: FakeYooMoney) -> None:
    headers, body = fake.webhook_for(await paid(fake))
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    OFFLINE.verify(headers, body, "203.0.113.7")
    upper = form(body) | {"sha1_hash": form(body)["sha1_hash"].upper()}
    OFFLINE.verify(headers, urlencode(upper).encode(), "203.0.113.7")


@pytest.mark.parametrize(
    "forgery",
    [
        {"secret": "not-the-secret"},
        {"tamper": {"amount": "2990.00"}},
        {"tamper": {"label": "pay_another"}},
        {"tamper": {"codepro": "true"}},
        {"tamper": {"operation_id": "904035776900000099"}},
        {"tamper": {"sha1_hash": ""}},
        {"tamper": {"sha1_hash": "0" * 40}},
    ],
)
async def test_a_forged_notification_is_401(fake: FakeYooMoney, forgery: dict[str, object]) -> None:
    headers, body = fake.webhook_for(await paid(fake), **forgery)  # type: ignore[arg-type]
    with pytest.raises(WebhookRejected) as caught:
        OFFLINE.verify(headers, body, "203.0.113.7")
    assert caught.value.status == 401


async def test_a_notification_missing_a_signed_field_is_401(fake: FakeYooMoney) -> None:
    headers, body = fake.webhook_for(await paid(fake))
    fields = form(body)
    del fields["sender"]
    with pytest.raises(WebhookRejected):
        OFFLINE.verify(headers, urlencode(fields).encode(), "203.0.113.7")


@pytest.mark.parametrize("body", [b"\xff\xfe", b"amount=1&amount=2&sha1_hash=x", b"a&b"])
def test_a_body_that_is_not_a_form_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        OFFLINE.verify({}, body, "203.0.113.7")


# ----------------------------------------------------------------------------- parse


async def test_a_card_payment_parses_with_what_the_payer_paid(fake: FakeYooMoney) -> None:
    operation_id = await paid(fake)
    body = fake.webhook_for(operation_id)[1]
    assert (form(body)["amount"], form(body)["withdraw_amount"]) == ("290.03", "299.00")

    event = OFFLINE.parse(body)

    assert (event.event_id, event.reference, event.provider_payment_id) == (
        operation_id,
        REFERENCE,
        operation_id,
    )
    assert (event.state, event.amount, event.currency) == (ProviderState.PAID, 29900, "RUB")
    assert not event.needs_confirmation  # the hash authenticates it


async def test_an_underpaid_withdraw_amount_is_what_is_reported(fake: FakeYooMoney) -> None:
    event = OFFLINE.parse(fake.webhook_for(await paid(fake, amount=29800))[1])
    assert (event.state, event.amount) == (ProviderState.PAID, 29800)


@pytest.mark.parametrize("held", ["codepro", "unaccepted"])
async def test_a_held_transfer_is_not_paid_and_its_credit_is_a_new_event(
    fake: FakeYooMoney, held: str
) -> None:
    operation_id = await paid(fake, **{held: True})
    first = OFFLINE.parse(fake.webhook_for(operation_id)[1])
    fake.credit(operation_id)
    credited = OFFLINE.parse(fake.webhook_for(operation_id)[1])

    assert (first.event_id, first.state) == (f"{operation_id}:held", ProviderState.PENDING)
    assert (credited.event_id, credited.state) == (operation_id, ProviderState.PAID)


async def test_the_settings_test_button_is_not_a_payment(fake: FakeYooMoney) -> None:
    headers, body = fake.test_notification()
    OFFLINE.verify(headers, body, "203.0.113.7")
    event = OFFLINE.parse(body)
    assert (event.event_id, event.reference, event.state) == (
        "test-notification",
        None,
        ProviderState.PENDING,
    )


async def test_without_withdraw_amount_the_credited_amount_is_used(fake: FakeYooMoney) -> None:
    """Never more than was paid: a missing field can only make it look short."""
    fields = form(fake.webhook_for(await paid(fake))[1])
    del fields["withdraw_amount"]
    assert OFFLINE.parse(urlencode(fields).encode()).amount == 29003


async def test_another_currency_has_no_amount(fake: FakeYooMoney) -> None:
    fields = form(fake.webhook_for(await paid(fake))[1]) | {"currency": "840"}
    event = OFFLINE.parse(urlencode(fields).encode())
    assert (event.currency, event.amount, event.state) == ("840", None, ProviderState.PAID)


@pytest.mark.parametrize(
    "change",
    [{"operation_id": ""}, {"withdraw_amount": "lots"}, {"withdraw_amount": "1.001"}],
)
async def test_unreadable_notifications_are_malformed(
    fake: FakeYooMoney, change: dict[str, str]
) -> None:
    fields = form(fake.webhook_for(await paid(fake))[1]) | change
    with pytest.raises(MalformedWebhook):
        OFFLINE.parse(urlencode(fields).encode())
