"""The stand-in payment providers and their checkout pages.

Each stand-in is the tests' fake of that provider's API (``shop.sandbox.providers``), served
on loopback; the shop calls it exactly as it would call the provider. Where the provider
would send the customer to its own payment page, the fake hands out the sandbox's checkout
page instead (``FakeProvider.checkout_pages``). YooMoney is asked nothing: the shop makes its
Quickpay link itself, so the web chat opens the stand-in wallet's page for that link instead
(:meth:`StandInProviders.page_for`). That page's buttons come here:

- **pay**: the provider marks the payment paid and delivers its webhook, signed as the
  provider signs it, to the shop's ``POST /webhooks/<provider>`` (Platega's carries the
  merchant's ``X-MerchantId``/``X-Secret``, and the shop confirms it with
  ``GET /transaction/{id}``; YooMoney's is a form signed with ``sha1_hash``);
- **fail**: the payment is declined, cancelled or left to expire, with the webhook the
  provider sends for that (Crypto Pay sends none: the shop finds out when it asks; nor
  does YooMoney for a declined card: nothing reached the wallet);
- **pay twice**: paid, and the same webhook delivered twice at once, as a provider that
  retries does; the shop must still grant once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import httpx
import trio

from ..clock import WallClock
from .chats import Refused
from .providers import (
    FakeCryptoPay,
    FakeHeleket,
    FakePlatega,
    FakeStripe,
    FakeYooKassa,
    FakeYooMoney,
    cryptopay,
    heleket,
    platega,
    stripe,
    yookassa,
    yoomoney,
)
from .views import Json

log = logging.getLogger(__name__)

#: The providers the shop supports, in the order the checkout pages list them.
PROVIDERS = ("stripe", "yookassa", "cryptopay", "heleket", "platega", "yoomoney")
TITLES = {
    "stripe": "Stripe",
    "yookassa": "YooKassa",
    "cryptopay": "Crypto Pay",
    "heleket": "Heleket",
    "platega": "Platega",
    "yoomoney": "YooMoney",
}
ACTIONS = ("pay", "fail", "twice")

PaymentFake = FakeStripe | FakeYooKassa | FakeCryptoPay | FakeHeleket | FakePlatega | FakeYooMoney


def credentials(name: str) -> dict[str, str]:
    """The variables that enable provider ``name`` with its stand-in's keys."""
    return {
        "stripe": {
            "STRIPE_SECRET_KEY": stripe.SECRET_KEY,
            "STRIPE_WEBHOOK_SECRET": stripe.WEBHOOK_SECRET,
        },
        "yookassa": {
            "YOOKASSA_SHOP_ID": yookassa.SHOP_ID,
            "YOOKASSA_SECRET_KEY": yookassa.SECRET_KEY,
            # Notifications come from this machine, not from YooKassa's addresses.
            "YOOKASSA_ALLOWED_IPS": "127.0.0.1/32,::1/128",
        },
        "cryptopay": {"CRYPTOPAY_TOKEN": cryptopay.TOKEN},
        "heleket": {"HELEKET_MERCHANT": heleket.MERCHANT, "HELEKET_API_KEY": heleket.API_KEY},
        "platega": {"PLATEGA_MERCHANT_ID": platega.MERCHANT_ID, "PLATEGA_SECRET": platega.SECRET},
        "yoomoney": {
            "YOOMONEY_WALLET": yoomoney.WALLET,
            "YOOMONEY_NOTIFICATION_SECRET": yoomoney.NOTIFICATION_SECRET,
            # With the token the shop reconciles through operation-history, as it can in
            # production; the stand-in serves it.
            "YOOMONEY_TOKEN": yoomoney.TOKEN,
        },
    }[name]


class StandInProviders:
    """The enabled stand-ins by name, and what their checkout pages can do."""

    def __init__(self, names: tuple[str, ...], clock: WallClock) -> None:
        makers: Mapping[str, Callable[..., PaymentFake]] = {
            "stripe": FakeStripe,
            "yookassa": FakeYooKassa,
            "cryptopay": FakeCryptoPay,
            "heleket": FakeHeleket,
            "platega": FakePlatega,
            "yoomoney": FakeYooMoney,
        }
        self.fakes: dict[str, PaymentFake] = {name: makers[name](clock=clock) for name in names}
        self.shop_url = ""  # the shop's HTTP base URL, known once it serves

    async def serve(self, nursery: trio.Nursery) -> dict[str, str]:
        """Serve every stand-in on loopback; returns their API base URLs by name."""
        return {name: await nursery.start(fake.serve) for name, fake in self.fakes.items()}

    def open_pages(self, shop_url: str) -> None:
        """From now on, payments link to this shop's checkout pages."""
        self.shop_url = shop_url
        for name, fake in self.fakes.items():
            fake.checkout_pages = f"{shop_url}/sandbox/checkout/{name}"

    def page_for(self, url: str) -> str | None:
        """The checkout page a URL button opens: the URL itself when it is one of the
        sandbox's pages, the stand-in wallet's page for a YooMoney Quickpay link (the shop
        builds those itself, without asking YooMoney), or None for any other address."""
        if not self.shop_url:
            return None
        if url.startswith(f"{self.shop_url}/sandbox/checkout/"):
            return url
        wallet = self.fakes.get("yoomoney")
        return wallet.page_for(url) if isinstance(wallet, FakeYooMoney) else None

    def describe(self, name: str, payment_id: str) -> Json:
        """What the checkout page shows: the provider, the amount, the state."""
        fake = self._fake(name)
        if isinstance(fake, FakeStripe) and payment_id in fake.sessions:
            session = fake.sessions[payment_id]
            amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
            state, open_ = session["status"], session["status"] == "open"
        elif isinstance(fake, FakeYooKassa) and payment_id in fake.payments:
            payment = fake.payments[payment_id]
            amount = f"{payment['amount']['value']} {payment['amount']['currency']}"
            state, open_ = payment["status"], payment["status"] == "pending"
        elif isinstance(fake, FakeCryptoPay) and payment_id.isdigit():
            invoice = fake.invoices.get(int(payment_id))
            if invoice is None:
                raise Refused("no such payment")
            amount = f"{invoice['amount']} {invoice.get('fiat') or invoice['asset']}"
            state, open_ = invoice["status"], invoice["status"] == "active"
        elif isinstance(fake, FakeHeleket) and payment_id in fake.invoices:
            invoice = fake.invoices[payment_id]
            amount = f"{invoice['amount']} {invoice['currency']}"
            state, open_ = invoice["status"], not invoice["is_final"]
        elif isinstance(fake, FakePlatega) and payment_id in fake.transactions:
            transaction = fake.transactions[payment_id]
            details = transaction["paymentDetails"]
            amount = f"{details['amount']:.2f} {details['currency']}"
            state = transaction["status"]
            open_ = state in ("PENDING", "INPROGRESS")
        elif isinstance(fake, FakeYooMoney) and payment_id in fake.pages:
            page = fake.pages[payment_id]
            amount = f"{page['form']['sum']} RUB"  # a wallet takes roubles only
            state, open_ = page["status"], page["status"] == "open"
        else:
            raise Refused("no such payment")
        return {"provider": TITLES[name], "id": payment_id, "amount": amount} | {
            "state": state,
            "open": open_,
        }

    async def act(self, name: str, payment_id: str, action: str) -> Json:
        """Do what a checkout page's button says; returns the page's new state and the HTTP
        statuses the shop answered its webhooks with."""
        if action not in ACTIONS:
            raise Refused(f"the action must be one of {', '.join(ACTIONS)}")
        if not self.describe(name, payment_id)["open"]:
            raise Refused("this payment is closed already")
        fake = self._fake(name)
        webhook_id = payment_id
        if action == "fail":
            deliveries = 1
            if isinstance(fake, FakeStripe):
                fake.expire(payment_id)
            elif isinstance(fake, FakeYooKassa):
                fake.cancel(payment_id)
            elif isinstance(fake, FakeCryptoPay):
                fake.expire(payment_id)
                deliveries = 0  # Crypto Pay sends updates only for paid invoices
            elif isinstance(fake, FakeHeleket | FakePlatega):
                fake.cancel(payment_id)
            elif isinstance(fake, FakeYooMoney):
                fake.decline_page(payment_id)
                deliveries = 0  # the card was declined: nothing reached the wallet
        elif isinstance(fake, FakeYooMoney):
            webhook_id = fake.pay_page(payment_id)  # the notification names the operation
            deliveries = 2 if action == "twice" else 1
        else:
            fake.pay(payment_id)
            deliveries = 2 if action == "twice" else 1
        answers: list[int] = []
        if deliveries:
            headers, body = fake.webhook_for(webhook_id)
            async with trio.open_nursery() as nursery:
                for _ in range(deliveries):  # at once, as two deliveries in a race would
                    nursery.start_soon(self._deliver, name, headers, body, answers)
        return self.describe(name, payment_id) | {"webhooks": sorted(answers)}

    async def _deliver(
        self, name: str, headers: dict[str, str], body: bytes, answers: list[int]
    ) -> None:
        url = f"{self.shop_url}/webhooks/{name}"
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(url, headers=headers, content=body)
            answers.append(response.status_code)
        except httpx.HTTPError as exc:
            log.warning("sandbox: the %s webhook did not reach the shop: %s", name, exc)
            answers.append(0)

    def _fake(self, name: str) -> PaymentFake:
        fake = self.fakes.get(name)
        if fake is None:
            raise Refused(f"{name} is not enabled in this sandbox")
        return fake
