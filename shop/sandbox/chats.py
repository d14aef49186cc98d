"""The people in the sandbox and their chats with the bot, as the web chat shows them.

:class:`SandboxTelegram` is the Bot API emulator (the one the tests use) that also plays the
people's Telegram apps: it keeps each chat as a list of views (see ``views``), hears every
call of the bot that changes a chat (``_answered``) and tells the pages through a
:class:`Hub`. What a person does in the page comes back here (``send``, ``press``, ``pay``)
and becomes the very update Telegram would send the bot.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ..clock import WallClock
from ..telegram.texts import LANGUAGES
from . import views
from .botapi import FakeTelegram, Upload
from .botapi.errors import Json

log = logging.getLogger(__name__)

#: The operator's Telegram user id in the sandbox (ADMIN_IDS and ADMIN_CHAT_ID).
OPERATOR_ID = 1000
#: The first customer's id; each one added gets the next.
FIRST_CUSTOMER_ID = 100001
DEFAULT_NAMES = {"en": "Ann", "ru": "Анна", "uk": "Оксана"}
#: What a person may type in one message (Telegram's limit).
MAX_TEXT = 4096
#: Messages kept per chat; older ones leave the page too (a long session stays small).
KEPT_PER_CHAT = 500


class Refused(Exception):
    """What a person asked cannot be done; the text is shown to them as Telegram would."""


@attrs.frozen
class Person:
    id: int
    name: str
    language: str
    operator: bool = False

    def view(self) -> Json:
        return attrs.asdict(self)


class Hub:
    """Fans events out to every open page; a page that cannot keep up is dropped (it
    reconnects and starts again from a snapshot)."""

    def __init__(self) -> None:
        self._pages: set[trio.MemorySendChannel[Json]] = set()

    def subscribe(self) -> trio.MemoryReceiveChannel[Json]:
        send, receive = trio.open_memory_channel[Json](1000)
        self._pages.add(send)
        return receive

    def publish(self, event: Json) -> None:
        for page in list(self._pages):
            try:
                page.send_nowait(event)
            except trio.WouldBlock:
                page.close()
                self._pages.discard(page)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._pages.discard(page)


@attrs.define
class _StarSubscription:
    """A Telegram Stars subscription the person took: charged again each period."""

    chat: int
    payload: str
    amount: int
    title: str
    period: int  # seconds (Telegram's only one is 30 days)
    expires: int  # Unix time the paid period ends


@attrs.define
class _Checkout:
    """A pre_checkout_query waiting for the bot's answer."""

    answered: trio.Event = attrs.Factory(trio.Event)
    ok: bool = False
    error: str = ""


class SandboxTelegram(FakeTelegram):
    """The emulator plus the people's side of their chats (see the module's docstring)."""

    def __init__(self, clock: WallClock, hub: Hub) -> None:
        self.hub = hub
        self.people: dict[int, Person] = {}
        self.chats: dict[int, dict[int, Json]] = {}  # chat -> message id -> view
        self.files: dict[str, Upload] = {}  # photos the bot uploaded, by file_id
        self._invoices: dict[tuple[int, int], Json] = {}  # (chat, message) -> sendInvoice params
        self._callback_chats: dict[str, int] = {}  # callback query id -> its chat
        self._checkouts: dict[str, _Checkout] = {}  # pre_checkout_query id -> the answer
        self._charge_serial = itertools.count(1)
        self._star_subscriptions: dict[str, _StarSubscription] = {}  # by first charge id
        #: The stand-in checkout page a URL button opens, or None for any other address
        #: (``run`` knows the pages, and which provider's own page each stands in for).
        self.checkout_page: Callable[[str], str | None] = lambda url: None
        # Message dates from the sandbox's clock; calls are counted, not kept (no history).
        super().__init__(clock=clock, history=False, username="sandbox_shop_bot")
        self.add_person("Operator", "en", operator=True)
        self.add_person(DEFAULT_NAMES["en"], "en")

    # ----------------------------------------------------------------- people

    def add_person(self, name: str, language: str, *, operator: bool = False) -> Person:
        name = " ".join(name.split())[:64] or DEFAULT_NAMES.get(language, "Ann")
        if language not in LANGUAGES:
            raise Refused(f"language must be one of {', '.join(LANGUAGES)}")
        newest = max([FIRST_CUSTOMER_ID - 1, *self.people])
        person_id = OPERATOR_ID if operator else newest + 1
        person = self.people[person_id] = Person(person_id, name, language, operator)
        self.chats.setdefault(person_id, {})
        self.hub.publish({"type": "person", "person": person.view()})
        return person

    def snapshot(self) -> Json:
        """Everything a page needs to draw itself from scratch."""
        return {
            "people": [person.view() for person in self.people.values()],
            "chats": {str(chat): list(shown.values()) for chat, shown in self.chats.items()},
            "bot": {"name": self._bot["first_name"], "username": self.username},
        }

    # ----------------------------------------------------------------- what people do

    def send(self, chat: int, text: str) -> None:
        """The person writes ``text`` to the bot."""
        person = self._person(chat)
        if not text.strip():
            raise Refused("the message is empty")
        if len(text) > MAX_TEXT:
            raise Refused(f"a message holds at most {MAX_TEXT} characters")
        update_id = self.send_text(
            chat, text, first_name=person.name, language_code=person.language
        )
        self._show(chat, views.user_message(self._update(update_id)["message"]))

    def press_callback(self, chat: int, message_id: int, data: str) -> None:
        """The person presses a callback button: only one the message really has."""
        self._person(chat)
        view = self.chats[chat].get(message_id)
        buttons = [b for row in (view or {}).get("keyboard", []) for b in row]
        if not any(b.get("kind") == "callback" and b.get("data") == data for b in buttons):
            raise Refused("that button is no longer there")
        update_id = self.press(chat, data, message_id=message_id)
        self._callback_chats[self._update(update_id)["callback_query"]["id"]] = chat

    def invoice_of(self, chat: int, message_id: int | None, link: str | None) -> Json:
        """The invoice behind a Pay button (a sent invoice) or an invoice link."""
        self._person(chat)
        if link is not None:
            params = self.invoice_links.get(link)
        else:
            params = self._invoices.get((chat, message_id or 0))
        if params is None:
            raise Refused("this invoice is not available")
        return params

    async def pay(self, chat: int, invoice: Json, *, message_id: int | None = None) -> None:
        """Telegram's checkout: a pre_checkout_query, the bot's answer within 10 s, then
        the ``successful_payment`` (raises :class:`Refused` with what Telegram would show)."""
        total = sum(int(price["amount"]) for price in invoice["prices"])
        currency, payload = str(invoice["currency"]), str(invoice["payload"])
        update_id = self.pre_checkout(chat, payload=payload, total_amount=total, currency=currency)
        query_id = self._update(update_id)["pre_checkout_query"]["id"]
        checkout = self._checkouts[query_id] = _Checkout()
        with trio.move_on_after(self.pre_checkout_timeout):
            await checkout.answered.wait()
        del self._checkouts[query_id]
        if not checkout.answered.is_set():
            raise Refused("the bot did not answer in time; you were not charged")
        if not checkout.ok:
            raise Refused(checkout.error or "the bot declined the payment")
        period = invoice.get("subscription_period")
        recurring: dict[str, Any] = {}
        charge_id = f"stxSandbox{next(self._charge_serial):08d}"
        if period is not None:
            expires = self._date() + int(period)
            recurring = {"is_recurring": True, "is_first_recurring": True}
            recurring["subscription_expiration_date"] = expires
            subscription = _StarSubscription(
                chat, payload, total, str(invoice["title"]), int(period), expires
            )
            self._star_subscriptions[charge_id] = subscription
        update_id = self.successful_payment(
            chat,
            payload=payload,
            total_amount=total,
            currency=currency,
            charge_id=charge_id,
            **recurring,
        )
        message = self._update(update_id)["message"]
        self._show(chat, views.payment_line(message, str(invoice["title"])))
        view = self.chats[chat].get(message_id or 0)
        if view is not None and "invoice" in view:
            view["invoice"]["paid"] = True
            view["keyboard"] = [[{"text": "Receipt: paid", "kind": "inert"}]]
            self.hub.publish({"type": "edit", "chat": chat, "message": view})

    def renew_star_subscriptions(self) -> None:
        """Telegram charges a Stars subscription again when its period ends, unless it was
        canceled (editUserStarSubscription): called after the clock moved."""
        now = self._date()
        for first_charge, subscription in self._star_subscriptions.items():
            while subscription.expires <= now and not self.subscriptions.get(first_charge):
                subscription.expires += subscription.period
                update_id = self.successful_payment(
                    subscription.chat,
                    payload=subscription.payload,
                    total_amount=subscription.amount,
                    charge_id=f"stxSandbox{next(self._charge_serial):08d}",
                    is_recurring=True,
                    subscription_expiration_date=subscription.expires,
                )
                message = self._update(update_id)["message"]
                line = views.payment_line(message, subscription.title)
                self._show(subscription.chat, line | {"text": f"Renewed: {line['text']}"})

    # ----------------------------------------------------------------- what the bot does

    def _answered(self, method: str, params: Json, result: Any) -> None:
        handler = _SHOWN.get(method)
        if handler is not None:
            handler(self, params, result)

    def _sent(self, params: Json, message: Json) -> None:
        chat = message["chat"]["id"]
        if isinstance(upload := params.get("photo"), Upload):
            self.files[message["photo"][-1]["file_id"]] = upload
        if "invoice" in message:
            self._invoices[(chat, message["message_id"])] = params
        self._show(chat, self._bot_view(message, params))

    def _edited(self, params: Json, message: Json) -> None:
        chat = message["chat"]["id"]
        old = self.chats.get(chat, {}).get(message["message_id"])
        view = self._bot_view(message, params)
        if old is not None and "text" not in params:  # only the keyboard changed
            view = old | {"keyboard": view["keyboard"], "edited": True}
        self.chats.setdefault(chat, {})[view["id"]] = view
        self.hub.publish({"type": "edit", "chat": chat, "message": view})

    def _deleted(self, params: Json, result: Any) -> None:
        chat, message_id = int(params["chat_id"]), int(params["message_id"])
        self.chats.get(chat, {}).pop(message_id, None)
        self.hub.publish({"type": "delete", "chat": chat, "id": message_id})

    def _callback_answered(self, params: Json, result: Any) -> None:
        chat = self._callback_chats.pop(str(params.get("callback_query_id")), None)
        if chat is not None:
            event = {"type": "answer", "chat": chat, "text": str(params.get("text") or "")}
            self.hub.publish(event | {"alert": params.get("show_alert") in (True, "true")})

    def _checkout_answered(self, params: Json, result: Any) -> None:
        checkout = self._checkouts.get(str(params.get("pre_checkout_query_id")))
        if checkout is not None:
            checkout.ok = params.get("ok") in (True, "true", "True", 1, "1")
            checkout.error = str(params.get("error_message") or "")
            checkout.answered.set()

    # ----------------------------------------------------------------- helpers

    def _bot_view(self, message: Json, params: Json) -> Json:
        view = views.bot_message(
            message, params, photo_url=self._photo_url, button_kind=self._button_kind
        )
        for row in view["keyboard"]:
            for button in row:
                if button["kind"] == "checkout":  # a provider's own page opens its stand-in's
                    button["url"] = self.checkout_page(button["url"]) or button["url"]
        return view

    def _photo_url(self, file_id: str) -> str | None:
        return f"/sandbox/files/{file_id}" if file_id in self.files else None

    def _button_kind(self, url: str) -> str:
        if url in self.invoice_links:
            return "invoice"
        return "checkout" if self.checkout_page(url) else "link"

    def _show(self, chat: int, view: Json) -> None:
        shown = self.chats.setdefault(chat, {})
        shown[view["id"]] = view
        self.hub.publish({"type": "message", "chat": chat, "message": view})
        while len(shown) > KEPT_PER_CHAT:
            oldest = next(iter(shown))
            del shown[oldest]
            self.hub.publish({"type": "delete", "chat": chat, "id": oldest})

    def _person(self, chat: int) -> Person:
        person = self.people.get(chat)
        if person is None:
            raise Refused(f"there is nobody with id {chat} in the sandbox")
        return person

    def _update(self, update_id: int) -> Json:
        """An update just queued (the newest, so it is searched for from the end)."""
        for update in reversed(self.pending):
            if update["update_id"] == update_id:
                return update
        raise LookupError(f"update {update_id} is not pending")


_SHOWN: dict[str, Callable[[SandboxTelegram, Json, Any], None]] = {
    "sendMessage": SandboxTelegram._sent,
    "sendPhoto": SandboxTelegram._sent,
    "sendInvoice": SandboxTelegram._sent,
    "editMessageText": SandboxTelegram._edited,
    "editMessageReplyMarkup": SandboxTelegram._edited,
    "deleteMessage": SandboxTelegram._deleted,
    "answerCallbackQuery": SandboxTelegram._callback_answered,
    "answerPreCheckoutQuery": SandboxTelegram._checkout_answered,
}
