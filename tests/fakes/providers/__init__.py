"""The fake payment providers, under the name the tests import them by, and a typical request.

The fakes live in the package (``shop.sandbox.providers``) because ``shop sandbox`` serves them
as its stand-in providers; ``payment_request`` stays here, because it builds the shop's own
``PaymentRequest`` and the fakes must never be built from the code under test.
"""

from __future__ import annotations

from typing import Any

from shop.payments.base import PaymentRequest
from shop.sandbox.providers import Call as Call
from shop.sandbox.providers import FakeCryptoPay as FakeCryptoPay
from shop.sandbox.providers import FakeHeleket as FakeHeleket
from shop.sandbox.providers import FakePlatega as FakePlatega
from shop.sandbox.providers import FakeProvider as FakeProvider
from shop.sandbox.providers import FakeStripe as FakeStripe
from shop.sandbox.providers import FakeYooKassa as FakeYooKassa
from shop.sandbox.providers import FakeYooMoney as FakeYooMoney
from shop.sandbox.providers import cryptopay as cryptopay
from shop.sandbox.providers import heleket as heleket
from shop.sandbox.providers import platega as platega
from shop.sandbox.providers import stripe as stripe
from shop.sandbox.providers import yookassa as yookassa
from shop.sandbox.providers import yoomoney as yoomoney


def payment_request(**changes: Any) -> PaymentRequest:
    """A typical request (299.00 RUB for "VPN / 30 дней"), with ``changes`` applied."""
    fields: dict[str, Any] = {
        "reference": "pay_01HZX3K9Q7",
        "amount": 29900,
        "currency": "RUB",
        "description": "VPN / 30 дней",
        "idempotency_key": "6f1c2a5e-0d3b-4c8e-9a7f-2b1d0e3c4a5f",
        "return_url": "https://t.me/shop_test_bot?start=paid",
        "callback_url": "https://shop.example/webhooks/payments/heleket",
        "customer_id": 42,
    }
    return PaymentRequest(**(fields | changes))
