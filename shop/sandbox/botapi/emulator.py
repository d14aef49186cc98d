"""The Bot API emulator: a fake Telegram Bot API server on loopback, for tests, benchmarks
and ``shop sandbox``.

It speaks the real protocol over real HTTP (``POST /bot<token>/<method>``, the ``{"ok": ...}``
envelope, the server's exact error strings), so the shop's own httpx client is exercised end to
end. All timing goes through trio, so it runs under ``MockClock(autojump_threshold=0)`` in the
test's own trio run::

    fake = FakeTelegram()
    base_url = await nursery.start(fake.serve)
    fake.send_text(42, "/start")
    (reply,) = await fake.wait_for("sendMessage", chat_id=42)

Text sent with parse_mode HTML goes through a port of tdlib's ``parse_html``: malformed HTML
fails with the server's ``can't parse entities`` error, and the visible text is what is
measured against the 4096-character limit (``parse_html`` gives it to tests too).

Channels (``add_channel``) have an owner, administrators with rights, members, invite links
and join requests; ``join`` and ``request_join`` act as the user's app would. The channel
methods (createChatInviteLink, approve/declineChatJoinRequest, answerChatJoinRequestQuery,
ban/unbanChatMember, getChatMember, getChatAdministrators) check the bot's access and rights
in the order and with the texts of the server (``Client::check_chat``) and TDLib
(``can_manage_dialog_invite_links``, ``can_manage_dialog_join_requests``,
``set_channel_participant_status_impl``).

Deliberate simplifications: messages only in private chats (nothing is posted to a channel);
the channel methods know only chats added with ``add_channel`` (any other chat is "chat not
found"), and a user they have never seen is a member who ``left``; message ``text`` is
stored as sent (not as the visible text plus entities); Markdown is not parsed; the server's
anti-busy-loop rules for getUpdates (forced timeout=3 and limit=1 on repeated offsets) and
its 3 s delay on repeated 409s are left out, because they would slow every test down;
updates are never pushed to a webhook; a refund sends no ``refunded_payment`` update (see
``refunded_payment``).

Run ``python -m shop.sandbox.botapi --port 8081`` for a standalone server with a control API
under ``/_fake/`` (see ``FakeTelegram._control``).

The fake is split by subject into sibling modules: ``server`` (HTTP, the call record,
programmed failures), ``updates`` (getUpdates and webhooks), ``messages`` (private chats and
callback queries), ``payments`` (invoices and Telegram Stars), ``channels``, ``params``
(reading and checking a call's parameters), ``html`` (tdlib's ``parse_html``) and ``errors``
(the server's error texts). Import from the package, ``shop.sandbox.botapi``: it re-exports
what tests use (``tests.fakes.telegram`` re-exports it again for the tests' old imports).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import math
from functools import partial
from typing import Any

import trio

from shop.clock import SystemClock, WallClock

from .channels import ChannelsMixin
from .errors import ApiError, Json
from .groups import GroupsMixin
from .messages import MessagesMixin
from .payments import PaymentsMixin
from .server import BotApiServer, Handler, _now
from .updates import UpdatesMixin
from .webhook_push import WebhookPusher

TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz"
EPOCH = 1_760_000_000  # Unix time at trio.current_time() == 0 when no WallClock is given

log = logging.getLogger(__name__)

# Methods the shop may call at start-up that need no state here.
_ALWAYS_TRUE = (
    "setMyCommands",
    "deleteMyCommands",
    "setMyDescription",
    "setMyShortDescription",
    "setChatMenuButton",
    "sendChatAction",
)


class FakeTelegram(
    UpdatesMixin, GroupsMixin, MessagesMixin, PaymentsMixin, ChannelsMixin, BotApiServer
):
    """An in-process Bot API server holding one bot's updates, chats and programmed failures.

    Attributes that tests may read: ``calls``, ``pending``, ``confirmed_offset``, ``blocked``,
    ``webhook_url``, ``invoice_links`` (link -> createInvoiceLink params), ``refunded`` (charge
    ids), ``subscriptions`` (charge id -> is_canceled), ``star_transactions`` (the bot's
    Telegram Stars transactions, oldest first, as ``getStarTransactions`` returns them) and
    ``channels`` (chat id -> Channel: members, invite links, waiting join requests).
    ``pre_checkout_timeout`` is the documented 10 s answer deadline for pre-checkout queries
    (set ``math.inf`` to lift it).

    Message dates come from ``clock`` (pass the test's ``TrioClock`` so they agree with the
    shop's), else ``EPOCH`` plus trio's clock. With ``history=False`` calls are only counted,
    not kept (``calls``, ``calls_to`` and ``wait_for`` see nothing), so that a long benchmark
    does not grow without bound.
    """

    def __init__(
        self,
        token: str = TOKEN,
        *,
        bot_id: int = 777000111,
        username: str = "shop_test_bot",
        clock: WallClock | None = None,
        history: bool = True,
        long_poll_max: int = 50,
    ) -> None:
        # Telegram holds a long poll at most 50 s (LONG_POLL_MAX_TIMEOUT); tests that pass
        # days of mock time may allow more, so the shop does not poll thousands of times.
        self.long_poll_max = long_poll_max
        self.bot_id = bot_id
        self.username = username
        self.clock = clock
        self.pre_checkout_timeout = 10.0
        self._updates_changed = trio.Event()
        super().__init__(token, history=history)  # which calls reset()

    def reset(self) -> None:
        """Forget every call, update, message and programmed failure, as for a fresh bot."""
        super().reset()  # the calls and programmed failures
        self._reset_updates()
        self._reset_messages()
        self._reset_payments()
        self._reset_channels()
        self._reset_groups()
        self._users: dict[int, Json] = {}
        self._serial = itertools.count(1)

    def _control(self, verb: str, name: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        """The control API for a fake in its own process (``python -m shop.sandbox.botapi``).

        ``POST updates`` (a list of updates, or ``{"start_storm": {"users", "first_id"}}``),
        ``GET stats``, ``POST reset``, ``POST delay`` (``{"method", "seconds"}``: as ``delay``)
        and ``GET messages?chat_id=N`` (the bot's messages in that chat, as ``messages``).
        """
        if (verb, name) == ("GET", "stats"):
            stats = {"calls": dict(self.counts), "pending": len(self.pending)}
            return 200, stats | {"confirmed_offset": self.confirmed_offset}
        if (verb, name) == ("POST", "reset"):
            self.reset()
            return 200, {"ok": True, "result": True}
        if (verb, name) == ("POST", "updates"):
            data = json.loads(body or b"[]")
            if isinstance(data, dict) and "start_storm" in data:
                storm = data["start_storm"]
                first = int(storm.get("first_id", 1_000_000))
                users = range(first, first + int(storm["users"]))
                return 200, {"ok": True, "result": [self.send_text(u, "/start") for u in users]}
            return 200, {"ok": True, "result": [self.add_update(u) for u in data]}
        if (verb, name) == ("POST", "delay"):
            try:
                data = json.loads(body)
                method, seconds = str(data["method"]), float(data["seconds"])
            except (ValueError, TypeError, KeyError):
                return 400, ApiError(400, 'Bad Request: expected {"method", "seconds"}').body()
            if not math.isfinite(seconds) or seconds < 0:
                return 400, ApiError(400, "Bad Request: seconds must be 0 or more").body()
            self.delay(method, seconds)
            return 200, {"ok": True, "result": True}
        if (verb, name) == ("GET", "messages"):
            try:
                chat_id = int(query["chat_id"])
            except (KeyError, ValueError):
                return 400, ApiError(400, "Bad Request: chat_id is required").body()
            return 200, self.messages(chat_id)
        return 404, ApiError(404, "Not Found").body()

    def chat_member(self, user_id: int, status: str) -> int:
        """The user blocks (``"kicked"``) or unblocks (``"member"``) the bot.

        It also blocks or unblocks the chat, because that is what the user just did.
        """
        if status == "kicked":
            self.blocked.add(user_id)
        else:
            self.blocked.discard(user_id)
        old: Json = {"status": "member" if status == "kicked" else "kicked", "user": self._bot}
        new: Json = {"status": status, "user": self._bot}
        for member in (old, new):
            if member["status"] == "kicked":
                member["until_date"] = 0
        update = {"chat": self._chat(user_id), "from": self._user(user_id), "date": self._date()}
        update |= {"old_chat_member": old, "new_chat_member": new}
        return self.add_update({"my_chat_member": update})

    @property
    def _bot(self) -> Json:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Shop", "username": self.username}

    def _user(self, user_id: int) -> Json:
        return self._users.get(user_id) or {"id": user_id, "is_bot": False, "first_name": "Ann"}

    def _date(self) -> int:
        if self.clock is not None:
            return int(self.clock.now().timestamp())
        return EPOCH + int(_now())

    # ----------------------------------------------------------------- Bot API methods

    def _handlers(self) -> dict[str, Handler]:
        handlers: dict[str, Handler] = {name: _return_true for name in _ALWAYS_TRUE}
        return handlers | {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "answerPreCheckoutQuery": self._answer_pre_checkout_query,
            "sendInvoice": self._send_invoice,
            "createInvoiceLink": self._create_invoice_link,
            "refundStarPayment": self._refund_star_payment,
            "getStarTransactions": self._get_star_transactions,
            "editUserStarSubscription": self._edit_user_star_subscription,
            "getChatMember": self._get_chat_member,
            "getChatAdministrators": self._get_chat_administrators,
            "createChatInviteLink": self._create_chat_invite_link,
            "approveChatJoinRequest": self._approve_chat_join_request,
            "declineChatJoinRequest": self._decline_chat_join_request,
            "answerChatJoinRequestQuery": self._answer_chat_join_request_query,
            "banChatMember": self._ban_chat_member,
            "unbanChatMember": self._unban_chat_member,
            "copyMessage": self._copy_message,
            "createForumTopic": self._create_forum_topic,
            "closeForumTopic": self._close_forum_topic,
            "reopenForumTopic": self._reopen_forum_topic,
            "getChat": self._get_chat,
        }

    async def _get_me(self, params: Json) -> Json:
        return self._bot | {"can_join_groups": True, "can_read_all_group_messages": False}


async def _return_true(params: Json) -> bool:
    return True


def main(argv: list[str] | None = None) -> None:
    """Serve the fake in its own process, e.g. for ``bench/``."""
    parser = argparse.ArgumentParser(description="A fake Telegram Bot API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=TOKEN)
    parser.add_argument("--history", action="store_true", help="keep every call in memory")
    parser.add_argument(
        "--deliver-to",
        default="",
        help="once a webhook is set, deliver updates to these base URLs (comma-separated,"
        " in turn, as a load balancer would) instead of the webhook's own host",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    fake = FakeTelegram(args.token, clock=SystemClock(), history=args.history)
    log.info("fake Bot API for token %s on http://%s:%d", args.token, args.host, args.port)
    targets = [t for t in args.deliver_to.split(",") if t]

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            if targets:
                turns = itertools.cycle(targets)
                nursery.start_soon(partial(WebhookPusher(fake, lambda: next(turns)).run))
            await fake.serve(host=args.host, port=args.port)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C is the way to stop it
        trio.run(serve)


if __name__ == "__main__":
    main()
