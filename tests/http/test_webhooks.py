"""Provider webhooks over HTTP: what must be a 400 and never a 500, authentic events the
shop did not create (200, stored), and which address a request comes from."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from shop.http import create_app
from shop.http.webhooks import Network, client_address
from tests.customer import Customer
from tests.fakes.providers import heleket as hk
from tests.fakes.providers import yookassa as yk
from tests.harness import Shop
from tests.payments.test_checkout import ANN, Providers, choose, deliver, status

PROVIDERS = ("cryptopay", "heleket", "stripe", "yookassa")
#: Deeper than Python's JSON decoder goes (it raises RecursionError), within 64 KiB.
DEEP = b'{"id":' + b"[" * 30_000 + b"]" * 30_000 + b"}"


def signed(
    providers: Providers, provider: str, data: dict[str, Any]
) -> tuple[dict[str, str], bytes]:
    """``data`` as the provider would deliver it, authentic."""
    if provider == "heleket":
        data = dict(data)
        data["sign"] = hk.sign(hk.php_json_encode(data), hk.API_KEY)
        return {"content-type": "application/json"}, hk.php_json_encode(data)
    return signed_body(providers, provider, json.dumps(data).encode())


def signed_body(providers: Providers, provider: str, body: bytes) -> tuple[dict[str, str], bytes]:
    """Raw ``body`` with the provider's signature header (YooKassa has none: the address
    is its proof, which :func:`deliver` supplies)."""
    headers = {"content-type": "application/json"}
    if provider == "stripe":
        headers["stripe-signature"] = providers.stripe.sign(body)
    elif provider == "cryptopay":
        headers["crypto-pay-api-signature"] = providers.cryptopay.sign(body)
    return headers, body


def event(provider: str, *, reference: str | None, remote: str, currency: str) -> dict[str, Any]:
    """A payment-succeeded event as each provider sends it, paid in ``currency``."""
    if provider == "yookassa":
        payment: dict[str, Any] = {
            "id": remote,
            "status": "succeeded",
            "paid": True,
            "amount": {"value": "10.00", "currency": currency},
            "metadata": {"reference": reference} if reference else {},
        }
        return {"type": "notification", "event": "payment.succeeded", "object": payment}
    if provider == "stripe":
        session = {
            "id": remote,
            "object": "checkout.session",
            "amount_total": 1000,
            "currency": currency.lower(),
            "payment_status": "paid",
            "status": "complete",
            "client_reference_id": reference,
            "metadata": {},
        }
        return {
            "id": f"evt_{remote}",
            "object": "event",
            "type": "checkout.session.completed",
            "data": {"object": session},
        }
    if provider == "cryptopay":
        crypto = currency in ("BTC", "USDT", "TON")
        invoice: dict[str, Any] = {
            "invoice_id": int(remote),
            "status": "paid",
            "currency_type": "crypto" if crypto else "fiat",
            ("asset" if crypto else "fiat"): currency,
            "amount": "0.001" if crypto else "10.00",
        }
        if reference:
            invoice["payload"] = reference
        return {"update_id": 1, "update_type": "invoice_paid", "payload": invoice}
    return {
        "type": "payment",
        "uuid": remote,
        "order_id": reference or "another-shop-42",
        "amount": "10.00",
        "status": "paid",
        "currency": currency,
    }


REMOTE = {"yookassa": "2f0c1a7e-000f-5000-9000-1b68e7b15f3f", "stripe": "cs_test_notours",
          "cryptopay": "987654", "heleket": "5b1e6a07-0f0c-4c5e-8a44-notours"}  # fmt: skip


@asynccontextmanager
async def running(shop_with: Any, **environ: str) -> AsyncIterator[Shop]:
    """The shop with all four providers, its first long poll under way.

    Stopping a shop while the poller is still sending its first ``getUpdates`` leaves
    httpx's request-body generator unclosed (an unraisable warning at GC, which this
    suite turns into an error); tests this short wait that out.
    """
    async with shop_with(**environ) as shop:
        await trio.sleep(1)
        yield shop


def stored(shop: Shop) -> list[tuple[object, ...]]:
    return shop.query("SELECT provider, payment_id, outcome FROM provider_events ORDER BY id")


# ------------------------------------------------------------------- 400, never 500


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_deeply_nested_body_is_400(
    shop_with: Any, providers: Providers, provider: str, autojump_clock: trio.testing.MockClock
) -> None:
    """Authentic where the provider signs (so it gets as far as being read), 64 KiB at most,
    and too deep for Python's JSON decoder: 400, nothing stored."""
    async with running(shop_with) as shop:
        headers, body = signed_body(providers, provider, DEEP)
        assert len(body) <= 64 * 1024
        answer = await deliver(shop, provider, headers, body)
        assert (answer.status_code, answer.json()) == (400, {"error": "malformed body"})
        assert stored(shop) == []


async def test_an_id_the_database_cannot_hold_is_400(
    shop_with: Any, providers: Providers, autojump_clock: trio.testing.MockClock
) -> None:
    """A NUL inside an id: PostgreSQL text cannot store it, so it is malformed, not a 500."""
    async with running(shop_with) as shop:
        data = event("cryptopay", reference="ref\u0000x", remote="1", currency="USD")
        answer = await deliver(shop, "cryptopay", *signed(providers, "cryptopay", data))
        assert answer.status_code == 400
        assert stored(shop) == []


# ------------------------------------------------------- events the shop did not create


@pytest.mark.parametrize("currency", ["known", "unknown"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_authentic_event_for_a_payment_not_ours_is_stored_and_200(
    shop_with: Any,
    providers: Providers,
    provider: str,
    currency: str,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Another integration on the same account, a payment made by hand, a currency the
    shop does not use: the provider would retry anything but a 2xx for days."""
    code = {"known": "USD", "unknown": "CNY" if provider != "heleket" else "DOGE"}[currency]
    if provider == "cryptopay" and currency == "unknown":
        code = "BTC"
    async with running(shop_with) as shop:
        data = event(provider, reference=None, remote=REMOTE[provider], currency=code)
        answer = await deliver(shop, provider, *signed(providers, provider, data))
        assert answer.status_code == 200
        assert stored(shop) == [(provider, None, "unknown payment")]
        again = await deliver(shop, provider, *signed(providers, provider, data))
        assert (again.status_code, again.json()) == (200, {"ok": True, "duplicate": True})


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_our_payment_paid_in_a_currency_the_shop_does_not_use_is_stored_and_200(
    shop_with: Any, providers: Providers, provider: str, autojump_clock: trio.testing.MockClock
) -> None:
    code = {"yookassa": "CNY", "stripe": "JPY", "cryptopay": "BTC", "heleket": "DOGE"}[provider]
    async with running(shop_with) as shop:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        reference, remote = await choose(ann, provider)
        data = event(provider, reference=reference, remote=remote, currency=code)
        answer = await deliver(shop, provider, *signed(providers, provider, data))
        assert answer.status_code == 200
        await ann.settle()
        assert [(p, r) for p, r, _ in stored(shop)] == [(provider, reference)]
        assert status(shop, reference) != "completed"  # never granted for another currency


async def test_a_stripe_signature_from_the_future_is_accepted(
    shop_with: Any, providers: Providers, autojump_clock: trio.testing.MockClock
) -> None:
    """Stripe's clock ahead of ours (skew) is not a reason to refuse; only age is."""
    async with running(shop_with) as shop:
        body = json.dumps(event("stripe", reference=None, remote="cs_1", currency="USD")).encode()
        ahead = int(shop.app.clock.now().timestamp()) + 3600
        headers = {"stripe-signature": providers.stripe.sign(body, timestamp=ahead)}
        assert (await deliver(shop, "stripe", headers, body)).status_code == 200
        assert len(stored(shop)) == 1


# -------------------------------------------------------------- where a request is from


def nets(*networks: str) -> list[Network]:
    return [ipaddress.ip_network(n) for n in networks]


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "expected"),
    [
        # No trusted proxies: X-Forwarded-For is anyone's to write, and ignored.
        ("203.0.113.7", "185.71.76.10", [], "203.0.113.7"),
        ("127.0.0.1", "185.71.76.10", [], "127.0.0.1"),
        # A peer that is not a trusted proxy: its header is ignored.
        ("203.0.113.7", "185.71.76.10", nets("10.0.0.0/8"), "203.0.113.7"),
        # A trusted proxy: the right-most hop that is not itself trusted.
        ("10.0.0.1", "185.71.76.10", nets("10.0.0.0/8"), "185.71.76.10"),
        ("10.0.0.1", "198.51.100.1, 185.71.76.10, 10.0.0.2", nets("10.0.0.0/8"), "185.71.76.10"),
        ("10.0.0.1", "10.0.0.3, 10.0.0.2", nets("10.0.0.0/8"), "10.0.0.3"),
        ("10.0.0.1", None, nets("10.0.0.0/8"), "10.0.0.1"),
        ("10.0.0.1", " , ", nets("10.0.0.0/8"), "10.0.0.1"),
        # IPv6 peers and hops.
        ("2001:db8::1", "185.71.76.10", nets("10.0.0.0/8"), "2001:db8::1"),
        ("fd00::1", "2a02:5180::15", nets("fd00::/8"), "2a02:5180::15"),
        ("fd00::1", "2a02:5180::15, fd00::2", nets("fd00::/8"), "2a02:5180::15"),
        ("::1", "185.71.76.10", nets("127.0.0.1/32"), "::1"),
        # IPv4 through a dual-stack socket is the IPv4 address, for matching and after.
        ("::ffff:10.0.0.1", "185.71.76.10", nets("10.0.0.0/8"), "185.71.76.10"),
        ("::ffff:203.0.113.7", "185.71.76.10", nets("10.0.0.0/8"), "203.0.113.7"),
        ("10.0.0.1", "185.71.76.10, ::ffff:10.0.0.2", nets("10.0.0.0/8"), "185.71.76.10"),
        ("10.0.0.1", "::ffff:185.71.76.10", nets("10.0.0.0/8"), "185.71.76.10"),
        # Garbage is kept as it is (and matches no allowlist).
        ("10.0.0.1", "unknown", nets("10.0.0.0/8"), "unknown"),
    ],
)
def test_client_address(
    remote: str, forwarded: str | None, trusted: list[Network], expected: str
) -> None:
    assert client_address(remote, forwarded, trusted) == expected


@pytest.mark.parametrize(
    ("peer", "trusted", "forwarded", "expected"),
    [
        ("::ffff:10.0.0.1", "10.0.0.0/8", yk.WEBHOOK_PEER, 200),  # a dual-stack proxy
        ("::ffff:185.71.76.10", "", None, 200),  # YooKassa itself, dual-stack socket
        ("fd00::1", "fd00::/8", "2a02:5180::15", 200),  # an IPv6 proxy, YooKassa's IPv6
        ("fd00::1", "10.0.0.0/8", yk.WEBHOOK_PEER, 403),  # a proxy not trusted
        ("10.0.0.1", "", yk.WEBHOOK_PEER, 403),  # nothing trusted
        ("::ffff:10.0.0.1", "10.0.0.0/8", "203.0.113.7", 403),  # forwarded for someone else
    ],
)
async def test_yookassa_sees_the_address_behind_a_trusted_proxy(
    shop_with: Any,
    providers: Providers,
    peer: str,
    trusted: str,
    forwarded: str | None,
    expected: int,
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(shop_with, TRUSTED_PROXIES=trusted) as shop:
        client = create_app(shop.app).test_client()
        data = event("yookassa", reference=None, remote=REMOTE["yookassa"], currency="RUB")
        headers = {"content-type": "application/json"}
        if forwarded:
            headers["x-forwarded-for"] = forwarded
        answer = await client.post(
            "/webhooks/yookassa",
            data=json.dumps(data).encode(),
            headers=headers,
            scope_base={"client": (peer, 40000)},
        )
        assert answer.status_code == expected


async def test_unsigned_garbage_to_heleket_is_400_and_forged_json_401(
    shop_with: Any, autojump_clock: trio.testing.MockClock
) -> None:
    """Heleket's sign is inside the body: a body that is not JSON cannot be checked (400);
    JSON without a valid sign is refused (401)."""
    async with running(shop_with) as shop, httpx.AsyncClient(base_url=shop.url) as http:
        for body, expected in ((b"not json", 400), (b"[]", 400), (b'{"uuid": "u"}', 401)):
            answer = await http.post("/webhooks/heleket", content=body)
            assert answer.status_code == expected, body
        assert stored(shop) == []
