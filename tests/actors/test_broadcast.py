"""Broadcasts: one row per recipient, sent in the bulk lane within the global rate while
replies keep their headroom; resumed after a crash with nobody skipped or repeated;
blocked customers marked and left out next time; canceled on request; input checked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
import trio
import trio.testing
from quart_trio import QuartTrio

from shop.http.broadcasts import broadcasts_api, checked
from shop.telegram.compose import visible_text
from tests.customer import Customer
from tests.fakes.telegram import HtmlError, parse_html
from tests.harness import Shop, fake_telegram, running_shop

TOKEN = "op-secret-token-1234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIRST = 500_000  # the seeded customers' ids start here
ANN = 1001
TEXT = "<b>News</b> &amp; more"


def seed(url: str, count: int, *, language: str = "en", first: int = FIRST) -> list[int]:
    """``count`` customers."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO customers (telegram_id, language, first_seen, last_seen)"
            " SELECT id, %s, now(), now() FROM generate_series(%s::bigint, %s::bigint) AS id",
            (language, first, first + count - 1),
        )
    return list(range(first, first + count))


@asynccontextmanager
async def broadcasting(shop: Shop) -> AsyncIterator[Any]:
    """A client of the broadcasts API of ``shop`` (whose broadcaster runs with it)."""
    app = shop.app
    web = QuartTrio("broadcasts")
    web.register_blueprint(broadcasts_api(app, app.broadcaster.due.poke))
    yield web.test_client()


async def start(client: Any, **body: Any) -> int:
    answer = await client.post("/admin/api/broadcasts", json=body, headers=AUTH)
    assert answer.status_code == 201, await answer.get_json()
    return int((await answer.get_json())["id"])


async def progress(client: Any, broadcast_id: int) -> dict[str, Any]:
    answer = await client.get(f"/admin/api/broadcasts/{broadcast_id}", headers=AUTH)
    assert answer.status_code == 200
    return dict(await answer.get_json())


async def until_over(client: Any, broadcast_id: int) -> dict[str, Any]:
    while (found := await progress(client, broadcast_id))["status"] == "running":  # noqa: ASYNC110 - polls the API as an operator would
        await trio.sleep(1)
    return found


def accepted(shop: Shop, text: str = TEXT) -> list[Any]:
    return [
        c
        for c in shop.telegram.calls_to("sendMessage")
        if c.status == 200 and c.params.get("text") == text
    ]


def limited_times(shop: Shop) -> list[float]:
    limited = ("sendMessage", "sendPhoto", "editMessageText", "editMessageReplyMarkup")
    return sorted(c.at for c in shop.telegram.calls if c.method in limited)


def busiest_second(times: list[float]) -> int:
    most, low = 0, 0
    for high, at in enumerate(times):
        while times[low] <= at - 1.0:
            low += 1
        most = max(most, high - low + 1)
    return most


async def test_within_the_rate_at_full_budget_and_a_button_is_answered_at_once(
    shop_at: Any, clean_database: str, autojump_clock: trio.testing.MockClock
) -> None:
    recipients = seed(clean_database, 300)
    environ = {"ADMIN_TOKEN": TOKEN, "TELEGRAM_GLOBAL_RATE": "30"}
    async with shop_at(environ=environ) as shop, broadcasting(shop) as client:
        ann = Customer(shop, ANN)
        await ann.send("/start")  # Ann is a customer too: 301 recipients
        broadcast = await start(client, text=TEXT, audience="all")
        await trio.sleep(5)
        pressed = trio.current_time()
        shop.telegram.press(ANN, "buy", message_id=ann.menu()["message_id"])
        await trio.sleep(2)
        answered = [c.at for c in shop.telegram.calls_to("answerCallbackQuery") if c.at >= pressed]
        replies = [
            c.at
            for c in shop.telegram.calls
            if c.method in ("editMessageText", "sendMessage")
            and c.params.get("chat_id") == ANN
            and c.params.get("text") != TEXT
            and c.at >= pressed
        ]
        found = await until_over(client, broadcast)
    assert answered
    assert answered[0] - pressed < 0.5
    assert replies
    assert replies[0] - pressed <= 1.0
    assert found == {"status": "done", "total": 301, "sent": 301, "blocked": 0, "failed": 0}
    sends = accepted(shop)
    assert sorted(c.params["chat_id"] for c in sends) == sorted([*recipients, ANN])
    assert busiest_second(limited_times(shop)) <= 30
    budget = shop.app.outbox.bulk_rate
    assert budget == 27
    times = sorted(c.at for c in sends)
    assert (len(times) - 1) / (times[-1] - times[0]) >= 0.95 * budget


async def test_blocked_customers_are_marked_and_left_out_next_time(
    shop_at: Any, clean_database: str, autojump_clock: trio.testing.MockClock
) -> None:
    recipients = seed(clean_database, 6)
    blocked, refused, flooded = recipients[:2], recipients[2], recipients[3]
    async with shop_at(environ={"ADMIN_TOKEN": TOKEN}) as shop, broadcasting(shop) as client:
        for who in blocked:
            shop.telegram.block(who)
        shop.telegram.fail("sendMessage", status=400, description="Bad Request: x", chat_id=refused)
        shop.telegram.fail("sendMessage", status=429, retry_after=7, chat_id=flooded)
        first = await start(client, text=TEXT, audience="all")
        assert await until_over(client, first) == {
            "status": "done",
            "total": 6,
            "sent": 3,
            "blocked": 2,
            "failed": 1,
        }
        (late,) = [c for c in accepted(shop) if c.params["chat_id"] == flooded]
        (flood,) = shop.telegram.calls_to("sendMessage", flooded)[:1]
        assert late.at - flood.at >= 7  # waited retry_after
        assert shop.query(
            "SELECT error FROM broadcast_recipients WHERE telegram_id = %s", refused
        ) == [("Bad Request: x",)]
        marked = shop.query("SELECT telegram_id FROM customers WHERE blocked ORDER BY 1")
        assert [row[0] for row in marked] == blocked
        second = await start(client, text="again", audience="all")
        assert (await until_over(client, second))["total"] == 4
        for who in blocked:
            assert not [
                c for c in shop.telegram.calls_to("sendMessage", who) if c.params["text"] == "again"
            ]


async def test_a_broadcast_killed_midway_resumes_with_no_gap_and_no_repeat(
    clean_database: str, busy_hook: Any, autojump_clock: trio.testing.MockClock
) -> None:
    from shop.clock import TrioClock
    from tests.conftest import START

    recipients = seed(clean_database, 150)
    clock = TrioClock.starting_at(START)
    environ = {"ADMIN_TOKEN": TOKEN, "TELEGRAM_GLOBAL_RATE": "30"}
    async with fake_telegram(clock) as telegram:
        with trio.CancelScope() as kill:
            async with (
                running_shop(
                    clean_database, environ, telegram=telegram, clock=clock, on_busy=busy_hook
                ) as shop,
                broadcasting(shop) as client,
            ):
                broadcast = await start(client, text=TEXT, audience="all")
                await trio.sleep(2.5)
                before = len(accepted(shop))
                assert 0 < before < 150
                kill.cancel()  # no graceful stop
        async with (
            running_shop(
                clean_database, environ, telegram=telegram, clock=clock, on_busy=busy_hook
            ) as again,
            broadcasting(again) as client,
        ):
            found = await until_over(client, broadcast)
    assert found["status"] == "done"
    assert found["sent"] == 150
    assert sorted(c.params["chat_id"] for c in accepted(again)) == recipients


async def test_cancel_stops_a_broadcast(
    shop_at: Any, clean_database: str, autojump_clock: trio.testing.MockClock
) -> None:
    seed(clean_database, 200)
    environ = {"ADMIN_TOKEN": TOKEN, "TELEGRAM_GLOBAL_RATE": "30"}
    async with shop_at(environ=environ) as shop, broadcasting(shop) as client:
        broadcast = await start(client, text=TEXT, audience="all")
        await trio.sleep(2.5)
        answer = await client.post(f"/admin/api/broadcasts/{broadcast}/cancel", headers=AUTH)
        assert (await answer.get_json()) == {"status": "canceled"}
        stopped = len(accepted(shop))
        await trio.sleep(30)
        assert len(accepted(shop)) <= stopped + shop.app.outbox.bulk_rate  # what was in hand
        found = await progress(client, broadcast)
        assert found["status"] == "canceled"
        assert found["sent"] == len(accepted(shop)) < 200
        gone = await client.post("/admin/api/broadcasts/999999/cancel", headers=AUTH)
        assert gone.status_code == 404


async def test_audiences_languages_photos_and_paid_broadcasts(
    shop_at: Any, clean_database: str, autojump_clock: trio.testing.MockClock
) -> None:
    english = seed(clean_database, 3)
    russian = seed(clean_database, 2, language="ru", first=FIRST + 100)
    with psycopg.connect(clean_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO subscriptions (telegram_id, status, expires_at, started_at, updated_at)"
            " VALUES (%s, 'active', now() + interval '9 days', now(), now()),"
            " (%s, 'expired', now(), now(), now())",
            (english[0], russian[0]),
        )
    environ = {
        "ADMIN_TOKEN": TOKEN,
        "TELEGRAM_GLOBAL_RATE": "1000",
        "TELEGRAM_PAID_BROADCAST": "1",
    }
    async with shop_at(environ=environ) as shop, broadcasting(shop) as client:
        totals = {}
        for audience, language in [
            ("all", None),
            ("all", "ru"),
            ("active", None),
            ("expired", None),
            ("never_paid", "en"),
            ("trial", None),
        ]:
            body = {"text": "hi", "audience": audience} | (
                {"language": language} if language else {}
            )
            totals[audience, language] = (await until_over(client, await start(client, **body)))[
                "total"
            ]
        assert totals == {
            ("all", None): 5,
            ("all", "ru"): 2,
            ("active", None): 1,
            ("expired", None): 1,
            ("never_paid", "en"): 3,
            ("trial", None): 0,
        }
        button = {"text": "Open", "url": "https://example.com/x"}
        photo = await start(
            client,
            text="<i>pic</i>",
            audience="all",
            photo_url="https://example.com/p.jpg",
            button=button,
        )
        assert (await until_over(client, photo))["sent"] == 5
        (call,) = shop.telegram.calls_to("sendPhoto", russian[1])
        assert call.params["caption"] == "<i>pic</i>"
        assert call.params["reply_markup"]["inline_keyboard"] == [[button]]
        assert call.params["allow_paid_broadcast"] is True


@pytest.mark.parametrize(
    ("environ", "paid"),
    [
        ({"TELEGRAM_GLOBAL_RATE": "60", "TELEGRAM_PAID_BROADCAST": "1", "INSTANCES": "2"}, True),
        ({"TELEGRAM_GLOBAL_RATE": "30", "TELEGRAM_PAID_BROADCAST": "1"}, False),
    ],
    ids=["a-share-of-a-paid-rate", "a-free-rate"],
)
async def test_paid_broadcasts_go_by_the_rate_of_all_instances_together(
    shop_at: Any,
    clean_database: str,
    autojump_clock: trio.testing.MockClock,
    environ: dict[str, str],
    paid: bool,
) -> None:
    recipients = seed(clean_database, 3)
    async with shop_at(environ=environ | {"ADMIN_TOKEN": TOKEN}) as shop:
        async with broadcasting(shop) as client:
            await until_over(client, await start(client, text=TEXT, audience="all"))
        sends = [c for c in accepted(shop) if c.params["chat_id"] in recipients]
    assert len(sends) == 3
    # 60/s across two instances is 30/s each, which alone would need no payment
    assert all(c.params.get("allow_paid_broadcast", False) is paid for c in sends)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({"text": "x", "audience": "everyone"}, "audience must be one of"),
        ({"text": "x", "audience": "all", "extra": 1}, "unknown fields: extra"),
        ({"text": "<b>x", "audience": "all"}, "not valid Telegram HTML"),
        ({"text": "<div>x</div>", "audience": "all"}, "not valid Telegram HTML"),
        ({"text": "1 < 2", "audience": "all"}, "not valid Telegram HTML"),
        ({"text": "<b></i>", "audience": "all"}, "not valid Telegram HTML"),
        ({"text": "  <b> </b>", "audience": "all"}, "must not be empty"),
        ({"text": "x" * 4097, "audience": "all"}, "at most 4096"),
        ({"text": "<b>" + "x" * 4096 + "</b>", "audience": "all"}, None),
        (
            {"text": "x" * 1025, "audience": "all", "photo_url": "https://e.com/p.jpg"},
            "at most 1024",
        ),
        ({"text": "x", "audience": "all", "photo_url": "ftp://e.com/p"}, "photo_url must be"),
        (
            {"text": "x", "audience": "all", "button": {"text": "b", "url": "javascript:x"}},
            "button.url must be",
        ),
        ({"text": "x", "audience": "all", "button": {"text": "b"}}, "button must be"),
        ({"text": "x", "audience": "all", "language": "english!"}, "language must be"),
    ],
)
def test_input_is_checked_strictly(body: Any, message: str | None) -> None:
    if message is None:
        checked(body)
        return
    with pytest.raises(ValueError, match=message):
        checked(body)


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "<b>bold</b> <i>it</i> <a href='https://x.y'>link</a>",
        "<b><i>nested</i></b>",
        '<span class="tg-spoiler">s</span>',
        "<span>s</span>",
        "&lt;&gt;&amp;&quot; &#65; &#x42; &foo; & bare",
        '<pre><code class="language-python">x</code></pre>',
        "<blockquote expandable>q</blockquote>",
        "<b>x</i>",
        "<b>unclosed",
        "</b>",
        "a < b",
        "<unknown>x</unknown>",
        "<B>upper</B>",
        '<a href="x>y">q</a>',
    ],
)
def test_html_is_judged_as_the_bot_api_does(text: str) -> None:
    try:
        expected: str | None = parse_html(text)
    except HtmlError:
        expected = None
    try:
        mine: str | None = visible_text(text)
    except ValueError:
        mine = None
    assert mine == expected


async def test_the_api_needs_the_token(
    shop_at: Any, clean_database: str, autojump_clock: trio.testing.MockClock
) -> None:
    seed(clean_database, 1)
    async with shop_at(environ={"ADMIN_TOKEN": TOKEN}) as shop, broadcasting(shop) as client:
        answer = await client.post(
            "/admin/api/broadcasts", json={"text": "x", "audience": "all"}, headers={}
        )
        assert answer.status_code == 401
        bad = await client.post(
            "/admin/api/broadcasts", json={"text": "<b>", "audience": "all"}, headers=AUTH
        )
        assert bad.status_code == 400
        assert "Telegram HTML" in (await bad.get_json())["error"]
        assert (await client.get("/admin/api/broadcasts/12", headers=AUTH)).status_code == 404


async def test_a_broadcast_stopped_gracefully_repeats_nothing(
    clean_database: str, busy_hook: Any, autojump_clock: trio.testing.MockClock
) -> None:
    from shop.clock import TrioClock
    from tests.conftest import START

    recipients = seed(clean_database, 150)
    clock = TrioClock.starting_at(START)
    environ = {"ADMIN_TOKEN": TOKEN, "TELEGRAM_GLOBAL_RATE": "30"}
    async with fake_telegram(clock) as telegram:
        fake = telegram[0]
        fake.delay("sendMessage", 0.5)  # answers in flight when the stop comes
        async with (
            running_shop(
                clean_database, environ, telegram=telegram, clock=clock, on_busy=busy_hook
            ) as shop,
            broadcasting(shop) as client,
        ):
            broadcast = await start(client, text=TEXT, audience="all")
            await trio.sleep(2.5)
        # SIGTERM-like: the shop stopped; what it handed over was answered and written down
        sent_before = len(accepted(shop))
        assert 0 < sent_before < 150
        fake.delay("sendMessage", 0)
        async with (
            running_shop(
                clean_database, environ, telegram=telegram, clock=clock, on_busy=busy_hook
            ) as again,
            broadcasting(again) as client,
        ):
            found = await until_over(client, broadcast)
    assert found["sent"] == 150
    chats = [c.params["chat_id"] for c in accepted(again)]
    assert sorted(chats) == recipients  # each exactly once: nothing repeated, none skipped


async def test_a_recipient_telegram_keeps_failing_on_is_given_up_and_the_broadcast_ends(
    shop_at: Any, clean_database: str, autojump_clock: trio.testing.MockClock
) -> None:
    from shop.store.broadcasts import MAX_ATTEMPTS

    unlucky, *_ = seed(clean_database, 3)
    async with shop_at(environ={"ADMIN_TOKEN": TOKEN}) as shop, broadcasting(shop) as client:
        shop.telegram.fail("sendMessage", status=502, times=10_000, chat_id=unlucky)
        broadcast = await start(client, text=TEXT, audience="all")
        found = await until_over(client, broadcast)
        rows = shop.query(
            "SELECT telegram_id, outcome, attempts, error FROM broadcast_recipients"
            " ORDER BY telegram_id"
        )
        metrics = shop.app.metrics.render().decode()
    assert found == {"status": "done", "total": 3, "sent": 2, "blocked": 0, "failed": 1}
    assert rows[0][:3] == (unlucky, "failed", MAX_ATTEMPTS)
    assert "not delivered after" in rows[0][3]
    assert [r[1] for r in rows[1:]] == ["sent", "sent"]
    assert f'shop_broadcast_recipients_total{{result="retry"}} {MAX_ATTEMPTS}.0' in metrics
    assert 'shop_broadcast_recipients_total{result="sent"} 2.0' in metrics
