"""Webhook mode, and several instances on one database: the fake Bot API pushes updates to
the shops' ``POST /telegram/webhook`` over real HTTP, as Telegram does. Real PostgreSQL,
mock time."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import trio
import trio.testing

from shop.clock import TrioClock
from shop.sandbox.botapi.webhook_push import WebhookPusher
from tests.conftest import START
from tests.harness import Shop, fake_telegram, running_shop

SECRET = "s3cret-Token_for-the-webhook"
WEBHOOK = {
    "TELEGRAM_WEBHOOK_URL": "https://shop.example/telegram/webhook",
    "TELEGRAM_WEBHOOK_SECRET": SECRET,
}
#: Commands whose replies differ, so the order of a chat's replies shows the order of
#: handling.
SCRIPT = ("/start", "/help", "/language", "/paysupport", "/menu")


def replies(shop: Shop, chat: int) -> list[str]:
    return [c.params["text"] for c in shop.telegram.calls_to("sendMessage", chat)]


def expected(shop: Shop) -> list[str]:
    t = shop.app.texts
    return [
        t("en", "menu.greeting", name="Ann"),
        t("en", "help.text"),
        t("en", "language.choose"),
        t("en", "help.paysupport"),
        t("en", "menu.title"),
    ]


async def post(shop: Shop, body: bytes, secret: str | None = SECRET) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    async with httpx.AsyncClient(base_url=shop.url) as http:
        return await http.post("/telegram/webhook", content=body, headers=headers)


async def test_webhook_mode_sets_the_webhook_answers_and_refuses_forgeries(
    shop_at: Any, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(environ=WEBHOOK) as shop:
        await trio.sleep(1)  # getMe and setWebhook
        fake = shop.telegram
        assert fake.webhook_url == WEBHOOK["TELEGRAM_WEBHOOK_URL"]
        assert fake.webhook_secret == SECRET
        [set_webhook] = fake.calls_to("setWebhook")
        assert set_webhook.params["max_connections"] == 40  # TELEGRAM_WEBHOOK_MAX_CONNECTIONS
        # what the shop handles, and nothing it would only have to skip
        assert set(set_webhook.params["allowed_updates"]) == {
            "message",
            "callback_query",
            "pre_checkout_query",
            "my_chat_member",
            "chat_join_request",
        }
        pusher = WebhookPusher(fake, shop.url)
        await nursery.start(pusher.run)
        fake.send_text(1001, "/start")
        await trio.sleep(5)
        assert replies(shop, 1001) == expected(shop)[:1]
        update = {
            "update_id": 9_000_001,
            "message": {
                "message_id": 77,
                "date": 1,
                "chat": {"id": 1002, "type": "private"},
                "from": {"id": 1002, "is_bot": False, "first_name": "Ann"},
                "text": "/help",
            },
        }
        body = json.dumps(update).encode()
        forged = await post(shop, body, secret="wrong")
        missing = await post(shop, body, secret=None)
        first = await post(shop, body)
        again = await post(shop, body)  # Telegram retrying: stored once, handled once
        # JSON may escape a lone surrogate (and a NUL), which PostgreSQL's jsonb refuses
        odd = json.dumps(update | {"update_id": 9_000_002}).replace('"Ann"', '"A\\ud800n\\u0000"')
        lone = await post(shop, odd.replace('"/help"', '"/help \\udc00"').encode())
        broken = await post(shop, b"{not json")
        no_id = await post(shop, b'{"message": {}}')
        await shop.telegram.wait_for("sendMessage", chat_id=1002, count=2)
        journal = shop.query("SELECT count(*) FROM telegram_updates")
    assert [r.status_code for r in (forged, missing, first, again, lone, broken, no_id)] == [
        401,
        401,
        200,
        200,
        200,
        400,
        400,
    ]
    assert replies(shop, 1002) == [shop.app.texts("en", "help.text")] * 2
    assert journal == [(0,)]
    assert all(status == 200 for _, status in pusher.deliveries)


async def test_two_instances_keep_each_customers_order_and_handle_everything_once(
    clean_database: str,
    busy_hook: Any,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = TrioClock.starting_at(START)
    env = WEBHOOK | {"INSTANCES": "2"}
    customers = range(3000, 3030)
    async with fake_telegram(clock) as telegram:
        fake = telegram[0]
        async with (
            running_shop(
                clean_database, env, telegram=telegram, clock=clock, on_busy=busy_hook, seed=1
            ) as one,
            running_shop(
                clean_database, env, telegram=telegram, clock=clock, on_busy=busy_hook, seed=2
            ) as two,
        ):
            turns = itertools.cycle([one.url, two.url])  # a load balancer, round robin
            await nursery.start(WebhookPusher(fake, lambda: next(turns)).run)
            for text in SCRIPT:
                for customer in customers:
                    fake.send_text(customer, text)
            await trio.sleep(60)
            seen = {customer: replies(one, customer) for customer in customers}
            leftovers = one.query("SELECT count(*) FROM telegram_updates")
            leases = one.query("SELECT count(*) FROM customer_leases")
            by_instance = {one.app.instance, two.app.instance}
    assert all(chat == expected(one) for chat in seen.values()), seen
    assert leftovers == [(0,)]
    assert leases == [(0,)]  # every customer given up once their updates were done
    assert len(by_instance) == 2


async def test_an_instance_killed_mid_storm_leaves_nothing_behind(
    clean_database: str,
    busy_hook: Any,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """One of two instances stops without a word (its database session ends with it):
    the other takes its customers over within seconds; every customer is answered."""
    clock = TrioClock.starting_at(START)
    env = WEBHOOK | {"INSTANCES": "2"}
    customers = range(4000, 4020)
    async with fake_telegram(clock) as telegram:
        fake = telegram[0]
        fake.delay("sendMessage", 2)  # Telegram is slow: work is in flight at the kill
        async with running_shop(
            clean_database, env, telegram=telegram, clock=clock, on_busy=busy_hook, seed=1
        ) as survivor:
            with trio.CancelScope() as kill:
                async with running_shop(
                    clean_database, env, telegram=telegram, clock=clock, on_busy=busy_hook, seed=2
                ) as doomed:
                    turns = itertools.cycle([survivor.url, doomed.url])
                    pusher = WebhookPusher(fake, lambda: next(turns))
                    await nursery.start(pusher.run)
                    for text in SCRIPT[:2]:
                        for customer in customers:
                            fake.send_text(customer, text)
                    await trio.sleep(1.5)
                    kill.cancel()  # no graceful stop
            await trio.sleep(120)
            answered = {c: replies(survivor, c) for c in customers}
            leftovers = survivor.query("SELECT count(*) FROM telegram_updates")
    for chat in answered.values():
        # at least once each, in order; what was in flight at the kill may come twice
        assert [text for i, text in enumerate(chat) if text not in chat[:i]] == expected(survivor)[
            :2
        ]
    assert leftovers == [(0,)]


async def test_while_the_database_is_down_telegram_gets_503_and_redelivers_after(
    clean_database: str,
    busy_hook: Any,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    import attrs

    from tests.conftest import server_address, via_proxy
    from tests.fakes.tcp_proxy import TcpProxy

    proxy = TcpProxy(server_address(clean_database))
    port = await nursery.start(proxy.serve)
    clock = TrioClock.starting_at(START)
    async with fake_telegram(clock) as telegram:
        fake = telegram[0]
        async with running_shop(
            via_proxy(clean_database, port),
            WEBHOOK,
            telegram=telegram,
            clock=clock,
            on_busy=busy_hook,
            store_timeout=1.0,
        ) as proxied:
            shop = attrs.evolve(proxied, database_url=clean_database)
            pusher = WebhookPusher(fake, shop.url)
            await nursery.start(pusher.run)
            fake.send_text(1001, "/start")
            await trio.sleep(5)
            proxy.down()
            fake.send_text(1001, "/help")
            await trio.sleep(3)
            refused = [status for _, status in pusher.deliveries[1:]]
            proxy.up()  # no restart of the shop: it recovers by itself
            await trio.sleep(120)
            answered = replies(shop, 1001)
    assert refused
    assert set(refused) == {503}
    assert answered == expected(shop)[:2]


async def test_a_payments_webhooks_split_across_two_instances_fulfil_it_once(
    clean_database: str,
    busy_hook: Any,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Stripe retrying one event to both instances at once (and a customer's 'check'
    on one of them): the payment's SQL guards grant it once."""
    from tests.customer import Customer
    from tests.fakes.providers import FakeStripe
    from tests.fakes.providers import stripe as st
    from tests.payments.test_checkout import choose

    clock = TrioClock.starting_at(START)
    stripe = FakeStripe(clock=clock)
    await nursery.start(stripe.serve)
    env = WEBHOOK | {
        "INSTANCES": "2",
        "PUBLIC_URL": "https://shop.example",
        "STRIPE_SECRET_KEY": st.SECRET_KEY,
        "STRIPE_WEBHOOK_SECRET": st.WEBHOOK_SECRET,
        "STRIPE_API_URL": stripe.base_url,
    }
    async with fake_telegram(clock) as telegram:
        fake = telegram[0]
        async with (
            running_shop(
                clean_database, env, telegram=telegram, clock=clock, on_busy=busy_hook, seed=1
            ) as one,
            running_shop(
                clean_database, env, telegram=telegram, clock=clock, on_busy=busy_hook, seed=2
            ) as two,
        ):
            turns = itertools.cycle([one.url, two.url])
            await nursery.start(WebhookPusher(fake, lambda: next(turns)).run)
            ann = Customer(one, 1001)
            await ann.send("/start")
            reference, session = await choose(ann, "stripe")
            stripe.pay(session)
            headers, body = stripe.webhook_for(session)
            answers: list[int] = []

            async def deliver(shop: Shop) -> None:
                async with httpx.AsyncClient(base_url=shop.url) as http:
                    answer = await http.post("/webhooks/stripe", content=body, headers=headers)
                answers.append(answer.status_code)

            async with trio.open_nursery() as storm:
                for n in range(20):
                    storm.start_soon(deliver, (one, two)[n % 2])
            await trio.sleep(60)
            grants = one.query("SELECT count(*) FROM grants WHERE payment_id = %s", reference)
            status = one.query("SELECT status FROM payments WHERE id = %s", reference)
            confirmations = [t for t in replies(one, 1001) if "Payment received" in t]
    assert answers == [200] * 20
    assert grants == [(1,)]
    assert status == [("completed",)]
    assert len(confirmations) == 1


async def test_polling_by_default_deletes_a_webhook_left_from_webhook_mode(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with fake_telegram() as telegram:
        fake = telegram[0]
        fake.webhook_url = WEBHOOK["TELEGRAM_WEBHOOK_URL"]  # the last run was in webhook mode
        async with shop_at(telegram=telegram) as shop:
            await trio.sleep(1)
            fake.send_text(1001, "/start")
            await trio.sleep(5)
            assert replies(shop, 1001) == expected(shop)[:1]  # polled: getUpdates works again
    assert fake.webhook_url == ""
    assert len(fake.calls_to("deleteWebhook")) == 1
    assert not fake.calls_to("setWebhook")


async def test_one_poller_and_one_timer_across_instances_taken_over_when_the_leader_dies(
    clean_database: str,
    busy_hook: Any,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Polling mode with INSTANCES=2: the first instance leads the poller and the timer (a
    lease fenced by its database session); the other takes both within seconds of its
    death, and polls."""
    clock = TrioClock.starting_at(START)
    env = {"INSTANCES": "2"}
    kill = trio.CancelScope()

    async def doomed_shop(telegram: Any, *, task_status: trio.TaskStatus[Shop]) -> None:
        with kill:
            async with running_shop(
                clean_database, env, telegram=telegram, clock=clock, on_busy=busy_hook, seed=2
            ) as doomed:
                task_status.started(doomed)
                await trio.sleep_forever()

    async with fake_telegram(clock) as telegram:
        fake = telegram[0]
        doomed = await nursery.start(doomed_shop, telegram)
        await trio.sleep(3)
        async with running_shop(
            clean_database, env, telegram=telegram, clock=clock, on_busy=busy_hook, seed=1
        ) as survivor:
            await trio.sleep(5)
            before = dict(survivor.query("SELECT role, holder FROM leader_leases"))
            kill.cancel()  # the leader dies without a word
            await trio.sleep(5)
            after = dict(survivor.query("SELECT role, holder FROM leader_leases"))
            fake.send_text(1001, "/start")
            await trio.sleep(5)
            answered = replies(survivor, 1001)
    assert before == {"poller": doomed.app.instance, "timer": doomed.app.instance}
    assert after == {"poller": survivor.app.instance, "timer": survivor.app.instance}
    assert answered == expected(survivor)[:1]  # the survivor polls now
