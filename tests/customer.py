"""A customer in a test: talks to the shop through the fake Bot API, reads what it got."""

from __future__ import annotations

import itertools
from typing import Any

import trio

from tests.harness import Shop

_charges = itertools.count(1)


def buttons(message: dict[str, Any] | None) -> list[str]:
    markup = (message or {}).get("reply_markup") or {}
    return [
        b.get("callback_data") or b.get("url")
        for row in markup.get("inline_keyboard", [])
        for b in row
    ]


class Customer:
    """One Telegram user. Every action waits (in virtual time) until the shop is done."""

    def __init__(self, shop: Shop, telegram_id: int, first_name: str = "Ann", language: str = "en"):
        self.shop = shop
        self.id = telegram_id
        self.first_name = first_name
        self.language = language

    @property
    def telegram(self) -> Any:
        return self.shop.telegram

    async def settle(self) -> None:
        await trio.sleep(10)  # virtual: the poller, actors and outbox all finish meanwhile

    async def send(self, text: str) -> None:
        self.telegram.send_text(
            self.id, text, first_name=self.first_name, language_code=self.language
        )
        await self.settle()

    def menu(self) -> dict[str, Any]:
        """The latest bot message that has buttons."""
        for message in reversed(self.telegram.messages(self.id)):
            if message.get("reply_markup"):
                return dict(message)
        raise AssertionError("no message with buttons")

    async def press(self, data: str, *, on: dict[str, Any] | None = None) -> None:
        message = on or self.menu()
        self.telegram.press(self.id, data, message_id=message["message_id"])
        await self.settle()

    def buttons(self) -> list[str]:
        return buttons(self.menu())

    def texts(self) -> list[str]:
        return [c.params.get("text", "") for c in self.telegram.calls_to("sendMessage", self.id)]

    def last_text(self) -> str:
        return str(self.menu().get("text", ""))

    def answers(self) -> list[str | None]:
        return [c.params.get("text") for c in self.telegram.calls_to("answerCallbackQuery")]

    def invoices(self) -> list[dict[str, Any]]:
        return [c.params for c in self.telegram.calls_to("sendInvoice", self.id)]

    async def pre_checkout(
        self, payload: str, amount: int, currency: str = "XTR"
    ) -> dict[str, Any]:
        before = len(self.telegram.calls_to("answerPreCheckoutQuery"))
        self.telegram.pre_checkout(self.id, payload=payload, total_amount=amount, currency=currency)
        await self.settle()
        answers = self.telegram.calls_to("answerPreCheckoutQuery")
        assert len(answers) == before + 1
        return dict(answers[-1].params)

    async def paid(
        self, payload: str, amount: int, *, charge_id: str | None = None, **extra: Any
    ) -> str:
        charge = charge_id or f"stxCharge{next(_charges):06d}"
        self.telegram.successful_payment(
            self.id, payload=payload, total_amount=amount, charge_id=charge, **extra
        )
        await self.settle()
        return charge

    async def choose_plan(self, plan: str, method: str, currency: str = "XTR") -> None:
        """Buy → the plan → the payment method."""
        await self.press("buy")
        await self.press(f"plan:{plan}")
        await self.press(f"pay:p:{plan}:{method}:{currency}")

    async def top_up(self, package: str) -> tuple[str, str]:
        """Balance → the package → Stars, paid: (payment id, charge id)."""
        await self.press("bal")
        await self.press(f"pkg:{package}")
        await self.press(f"pay:k:{package}:stars:XTR")
        return await self.pay_last_invoice()

    async def pay_last_invoice(self) -> tuple[str, str]:
        """Go through Telegram's checkout for the newest invoice: (payment id, charge id)."""
        invoice = self.invoices()[-1]
        amount = invoice["prices"][0]["amount"]
        answer = await self.pre_checkout(invoice["payload"], amount)
        assert answer["ok"] is True, answer
        return invoice["payload"], await self.paid(invoice["payload"], amount)
