"""UserActor: one per customer, keyed by Telegram user id.

Accepts:
- :class:`~shop.telegram.types.Update` from the poller (messages, button presses,
  payment updates, block/unblock);
- :class:`MarkBlocked` from the outbox when Telegram answered 403;
- :class:`~shop.actors.conversation.BanChanged` from an operator's actor.

Operators (``ADMIN_IDS``) also get the ``shop.admin`` commands and buttons; for anyone
else those are unknown input. A banned customer gets one short notice and nothing else;
a payment they had already made is still recorded (money is never ignored).

Sends: replies through the outbox (interactive lane; callback answers in the answer
lane). Navigation edits the message whose button was pressed, so a customer keeps one
menu message that changes in place.

State: the customer row is loaded (or created) with the first update, in one
statement; afterwards a known customer costs no database work to greet. Language and
blocked are written through at once; the current screen and last-seen time are written
behind, when the actor passivates or the shop stops.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import attrs
import trio

from ..admin import router as admin
from ..app import App
from ..errors import NotFound
from ..growth import codes, joining, referrals
from ..limits import Action
from ..store import customers, operators
from ..store.batch import Batcher
from ..store.customers import CustomerRow
from ..support import customers as support_customers
from ..support import desk as support_desk
from ..support import operators as support
from ..telegram.outbox import Lane
from ..telegram.texts import pick_language
from ..telegram.types import CallbackQuery, ChatMemberUpdated, Message, Update, to_json
from . import buttons, channel, conversation, screens, shopping
from .conversation import Awaiting, BanChanged
from .runtime import Kind
from .screens import Screen

log = logging.getLogger(__name__)

KIND = "user"


@attrs.frozen
class MarkBlocked:
    """Telegram refused a message to this customer with 403."""


Greeter = Batcher[customers.Greeting, CustomerRow]


class UserActor:
    def __init__(self, app: App, telegram_id: int, greeter: Greeter) -> None:
        self.app = app
        self.id = telegram_id
        self._greeter = greeter
        self.customer: CustomerRow | None = None
        self.screen = "main"
        self._unsaved = False
        # Trio times of recent updates. A list, not a deque: an empty deque takes 600 bytes
        # and a live actor per customer makes that 60 MB at 100,000 customers (issue 15);
        # the window holds at most RATE_LIMIT's N (20 by default), so trimming is cheap.
        self._recent: list[float] = []
        self._silent_until = -math.inf
        self.trial_open = False  # cached from the customer row; a purchase closes it
        self.awaiting: Awaiting | None = None  # what the next text answers (operators)
        self._resumed = False  # awaiting was looked up in Redis since activation

    # -- the actor interface -----------------------------------------------------------

    async def handle(self, message: Any) -> None:
        if isinstance(message, Update):
            if not self._resumed:  # a question asked before this actor was activated
                self._resumed = True
                self.awaiting = self.awaiting or await conversation.recall(self.app, self.id)
            asked = self.awaiting
            await self._on_update(message)
            if self.awaiting is not asked:
                await conversation.remember(self.app, self.id, self.awaiting)
        elif isinstance(message, MarkBlocked):
            await self._set_blocked(True)
        elif isinstance(message, BanChanged):
            if self.customer is not None:
                self.customer = attrs.evolve(self.customer, banned=message.banned)
        else:
            raise TypeError(f"UserActor cannot handle {type(message).__name__}")

    async def passivate(self) -> None:
        if self._unsaved and self.customer is not None:
            await self.app.store.run(
                customers.save_conversation, self.id, self.screen, self.app.clock.now()
            )
            self._unsaved = False

    # -- updates -----------------------------------------------------------------------

    async def _on_update(self, update: Update) -> None:
        sender = update.sender
        assert sender is not None
        assert sender.id == self.id
        if support.in_support_chat(self.app, update):  # an operator at work, not a customer
            await support.on_support_chat(self, update)
            return
        fresh = False  # this update brought a customer the shop had never seen
        if self.customer is None:
            self.customer = await self._greeter.submit(
                customers.Greeting(
                    self.id,
                    sender.first_name,
                    sender.username,
                    pick_language(sender.language_code),
                    self.app.clock.now(),
                )
            )
            self.trial_open = self.customer.trial_open
            fresh = self.customer.created
        if update.my_chat_member is not None:
            await self._on_membership(update.my_chat_member)
            return
        if update.chat_join_request is not None:  # never rate-limited: it waits at the door
            await channel.on_join_request(self.app, update.chat_join_request)
            return
        # Money never waits behind the rate limit.
        if update.pre_checkout_query is not None:
            if self._banned:
                await shopping.decline_pre_checkout(self, update.pre_checkout_query)
            else:
                await shopping.pre_checkout(self, update.pre_checkout_query)
            return
        if update.message is not None and update.message.successful_payment is not None:
            await shopping.successful_payment(self, update.message)
            return
        if update.message is not None and update.message.refunded_payment is not None:
            await shopping.refunded_payment(self, update.message)
            return
        if self._banned:
            await self._turn_away(update)
            return
        if not await self._admit(update):
            return
        if await self._over_limit(update):
            return
        if update.callback_query is not None:
            await self._on_button(update.callback_query)
        elif update.message is not None:
            await self._on_message(update.message, fresh)

    async def _admit(self, update: Update) -> bool:
        """The per-customer rate limit: a sliding window, then a period of silence."""
        if self.id in self.app.config.admin_ids:
            return True
        now = trio.current_time()
        if now < self._silent_until:
            await self._answer_silently(update)
            return False
        limit, span = self.app.config.rate_limit
        stale = 0
        while stale < len(self._recent) and self._recent[stale] <= now - span:
            stale += 1
        del self._recent[:stale]
        if len(self._recent) >= limit:
            self._recent.clear()
            self._silent_until = now + self.app.config.rate_limit_ban
            log.info("customer %s is over the rate limit; silent for a while", self.id)
            await self._answer_silently(update)
            await self.send_text(self.t("slow.down"))
            return False
        self._recent.append(now)
        return True

    async def _over_limit(self, update: Update) -> bool:
        """RATE_LIMIT_CALLBACKS and RATE_LIMIT_MESSAGES, on top of RATE_LIMIT."""
        if update.callback_query is not None:
            return await self.over_limit(Action.CALLBACK, update.callback_query)
        return update.message is not None and await self.over_limit(Action.MESSAGE)

    async def over_limit(self, action: Action, query: CallbackQuery | None = None) -> bool:
        """Whether this attempt at ``action`` is over the customer's limit for it.

        The first refusal tells them when they may try again (a pressed button hears it
        as its answer); later ones only stop the button's spinner. Operators are exempt.
        """
        if self.id in self.app.config.admin_ids:
            return False
        verdict = await self.app.limits.check(action, self.id)
        if verdict.allowed:
            return False
        text = self.t("limit.wait", seconds=verdict.seconds) if verdict.tell else None
        if query is not None:
            await self.answer(query, text)
        elif text is not None:
            await self.send_text(text)
        if verdict.tell:
            log.info("customer %s is over the %s limit", self.id, action.value)
        return True

    @property
    def _banned(self) -> bool:
        return (
            self.customer is not None
            and self.customer.banned
            and self.id not in self.app.config.admin_ids
        )

    async def _turn_away(self, update: Update) -> None:
        """A banned customer: the one notice, once; after it, silence."""
        await self._answer_silently(update)
        if await self.app.store.run_statement(operators.take_ban_notice, self.id):
            await self.send_text(self.t("banned.notice"))

    async def _answer_silently(self, update: Update) -> None:
        # A pressed button shows a spinner until answered, even when we say nothing.
        if update.callback_query is not None:
            await self.answer(update.callback_query)

    async def _on_membership(self, change: ChatMemberUpdated) -> None:
        status = change.new_chat_member.status
        if status in ("kicked", "left"):
            await self._set_blocked(True)
        elif status == "member":
            await self._set_blocked(False)

    async def _on_message(self, message: Message, fresh: bool = False) -> None:
        if self.customer is not None and self.customer.blocked:
            await self._set_blocked(False)  # they write to us, so they can read us
        if await support.on_admin_reply(self, message):  # an answer to a ticket
            return
        command, _, argument = (message.text or "").strip().partition(" ")
        command = command.split("@")[0].lower()
        if self.awaiting is not None and not command.startswith("/"):
            awaiting, self.awaiting = self.awaiting, None  # what we asked for: the answer
            await awaiting.handler(self, message, awaiting.state)
            return
        if command.startswith("/"):
            self.awaiting = None  # a command leaves whatever was being asked
        if await admin.on_message(self, message, command, argument):
            return
        if command == "/start":
            payload = argument.strip()[:256]
            if payload:
                await self.app.store.run(customers.remember_start_payload, self.id, payload)
                await self._arrived_with(payload, fresh)
            name = message.from_user.first_name if message.from_user else ""
            await self.show_new(self.menu(greet=name or "🙂"))
        elif command == "/promo":
            if argument.strip():
                await codes.redeem(self, argument)
            else:
                await codes.ask(self, None)
        elif command == "/help":
            await self.show_new(self.help())
        elif command == "/paysupport":
            await self.send_text(self.t("help.paysupport"))
        elif command in ("/language", "/lang"):
            await self.show_new(screens.language_screen(self.app.texts, self.lang))
        elif command == "/menu":
            await self.show_new(self.menu())
        elif command.startswith("/") or not await support_customers.add_to_ticket(self, message):
            await self.send_text(self.t("unknown.input"))
            await self.show_new(self.menu())

    async def _arrived_with(self, payload: str, fresh: bool) -> None:
        """A ``t.me/<bot>?start=<payload>`` link: a voucher, a gift or an invitation."""
        if payload.startswith(("v_", "g_")):
            await codes.redeem(self, payload[2:])
        elif payload.startswith(referrals.PREFIX):
            await referrals.arrived_by_link(self, payload, fresh)

    async def _on_button(self, query: CallbackQuery) -> None:
        verb, *args = (query.data or "").split(":")
        target = query.message if query.message is not None and query.message.date else None
        if verb != "adm":
            self.awaiting = None  # a button press leaves whatever was being asked
        if verb == "adm":
            answered = await admin.on_button(self, query, target, args)
            if answered is not None:  # None: not an operator, so a stale button like any
                if not answered:
                    await self.answer(query)
                return
        if verb in buttons.BUYING and not await self._may_buy(query, target):
            return
        if verb == "chan" and self.app.channel_gate is not None:
            if await joining.check_again(self, self.app.channel_gate, query, target):
                await shopping.show_plans(self, target)
            return
        handler = buttons.BUTTONS.get(verb)
        if handler is None:
            await self.answer(query, self.t("stale.button"))
            await self.show(target, self.menu())
            return
        try:
            answered = await handler(self, query, target, args)
        except NotFound:
            await self.answer(query, self.t("not.found"))
            return
        except Exception:
            # The runtime logs it; the customer is not left looking at a spinner.
            await self.answer(query, self.t("pay.error.retry"))
            raise
        if not answered:
            await self.answer(query)

    async def _may_buy(self, query: CallbackQuery, target: Message | None) -> bool:
        """Maintenance, then the required channel; an operator is never held back."""
        if self.id in self.app.config.admin_ids:
            return True
        if self.app.maintenance.on:
            await self.answer(query, self.t("maintenance.notice"), alert=True)
            await self.show(target, self.menu())
            return False
        gate = self.app.channel_gate
        if gate is not None and not await gate.is_member(self.id):
            await self.answer(query)
            await joining.show_join(self, target, gate.url)
            return False
        return True

    def menu(self, *, greet: str | None = None) -> Screen:
        trial = self.app.catalog.trial_days if self.trial_open else 0
        invite = self.app.catalog.referral.rewards
        closed = self.app.maintenance.on and self.id not in self.app.config.admin_ids
        return screens.main_menu(
            self.app.texts, self.lang, greet=greet, trial_days=trial, invite=invite, closed=closed
        )

    def help(self) -> Screen:
        faq, support = bool(self.app.catalog.faq), bool(support_desk.destinations(self.app))
        return screens.help_screen(self.app.texts, self.lang, faq=faq, support=support)

    # -- state ---------------------------------------------------------------------

    @property
    def lang(self) -> str:
        return self.customer.language if self.customer is not None else "en"

    def t(self, key: str, **params: object) -> str:
        return self.app.texts(self.lang, key, **params)

    async def set_language(self, language: str) -> None:
        assert self.customer is not None
        if language != self.customer.language:
            await self.app.store.run(customers.set_language, self.id, language)
            self.customer = attrs.evolve(self.customer, language=language)

    async def _set_blocked(self, blocked: bool) -> None:
        if self.customer is None:
            self.customer = await self.app.store.run(customers.load, self.id)
            if self.customer is None:
                return
        if self.customer.blocked != blocked:
            await self.app.store.run(customers.set_blocked, self.id, blocked)
            self.customer = attrs.evolve(self.customer, blocked=blocked)

    # -- output (queued on the outbox; the actor waits only while the outbox is full) --

    async def _post(
        self, method: str, params: dict[str, Any], lane: Lane = Lane.INTERACTIVE
    ) -> None:
        await self.app.outbox.send(method, params, lane=lane)

    async def answer(
        self, query: CallbackQuery, text: str | None = None, *, alert: bool = False
    ) -> None:
        params: dict[str, Any] = {"callback_query_id": query.id}
        if text:
            params["text"] = text
            if alert:
                params["show_alert"] = True
        await self._post("answerCallbackQuery", params, Lane.ANSWER)

    async def send_text(self, text: str) -> None:
        await self._post("sendMessage", {"chat_id": self.id, "text": text, "parse_mode": "HTML"})

    async def show_new(self, screen: Screen) -> None:
        await self._post("sendMessage", {"chat_id": self.id, **_render(screen)})
        self._remember(screen)

    async def show(self, target: Message | None, screen: Screen) -> None:
        """Edit the pressed message into ``screen``; a new message when it is gone."""
        if target is None:
            await self.show_new(screen)
            return
        params = {"chat_id": target.chat.id, "message_id": target.message_id, **_render(screen)}
        await self._post("editMessageText", params)
        self._remember(screen)

    def _remember(self, screen: Screen) -> None:
        if screen.name != self.screen:
            self.screen = screen.name
        self._unsaved = True


def _render(screen: Screen) -> dict[str, Any]:
    params: dict[str, Any] = {"text": screen.text, "parse_mode": "HTML"}
    if screen.keyboard is not None:
        params["reply_markup"] = to_json(screen.keyboard)
    return params


def user_kind(app: App, *, idle_timeout: float = 600.0, max_live: int = 10_000) -> Kind:
    # Customers who write at the same moment are loaded (or created) in one statement.
    greeter: Greeter = Batcher(
        app.store, customers.greet_many, key=lambda greeting: greeting.telegram_id
    )

    async def activate(telegram_id: int) -> UserActor:
        # State is loaded with the first update (one upsert), not here: see the docstring.
        return UserActor(app, telegram_id, greeter)

    # A live customer costs about 12 KB (bench/memory.py); beyond 10,000 (120 MB) those
    # idle longest are passivated, and their next update reloads them in one batched
    # upsert, as after idle_timeout (issue #15).
    return Kind(KIND, activate, idle_timeout=idle_timeout, max_live=max_live)
