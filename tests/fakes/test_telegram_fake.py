"""The fake Bot API keeps the server's promises that the shop's client relies on."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from tests.fakes.telegram import (
    ADMINISTRATOR,
    BLOCKED,
    CHANNEL_RIGHTS,
    CHAT_NOT_FOUND,
    EPOCH,
    EXPIRE_DATE_INVALID,
    LIMIT_WITH_REQUESTS,
    NO_INVITE_RIGHTS,
    NO_JOIN_REQUEST_RIGHTS,
    NO_REQUEST,
    NO_RESTRICT_RIGHTS,
    NOT_A_MEMBER,
    NOT_MODIFIED,
    QUERY_INVALID,
    SELF,
    TERMINATED,
    TOKEN,
    WEBHOOK_ACTIVE,
    Channel,
    FakeTelegram,
    HtmlError,
    JoinRefused,
    parse_html,
)
from tests.fakes.telegram import OWNER as OWNER_REFUSED

KEYBOARD = {"inline_keyboard": [[{"text": "1 month", "callback_data": "buy:m1"}]]}


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeTelegram:
    fake = FakeTelegram()
    await nursery.start(fake.serve)
    return fake


@pytest.fixture
async def api(fake: FakeTelegram) -> AsyncIterator[httpx.AsyncClient]:
    # The HTTP timeout must outlast the longest long poll, in virtual time too. verify=False
    # only skips loading CA certificates (~20 ms a client): it is plain HTTP on loopback.
    base_url = f"{fake.base_url}/bot{TOKEN}/"
    async with httpx.AsyncClient(base_url=base_url, timeout=100, verify=False) as client:
        yield client


async def call(api: httpx.AsyncClient, method: str, **params: Any) -> tuple[int, Any]:
    response = await api.post(method, json=params)
    return response.status_code, response.json()


async def later(seconds: float, action: Callable[[], object]) -> None:
    await trio.sleep(seconds)
    action()


def test_token_matches_the_bot_token_shape() -> None:
    assert re.fullmatch(r"\d{1,20}:[A-Za-z0-9_-]{20,}", TOKEN)


async def test_envelope_token_and_unknown_method(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    status, body = await call(api, "getMe")
    assert (status, body["result"]["id"], body["result"]["is_bot"]) == (200, fake.bot_id, True)
    async with httpx.AsyncClient(base_url=fake.base_url, verify=False) as other:
        wrong = await other.post("/bot1:wrong-token-wrong-token-wrong/getMe")
        assert (wrong.status_code, wrong.json()) == (
            401,
            {"ok": False, "error_code": 401, "description": "Unauthorized"},
        )
        # GET with a query string works too, and method names ignore case.
        got = await other.get(f"/bot{TOKEN}/getupdates", params={"limit": "5"})
        assert got.json() == {"ok": True, "result": []}
    status, body = await call(api, "sendNothing")
    assert (status, body["description"]) == (404, "Not Found: method not found")
    assert [(c.method, c.status) for c in fake.calls] == [
        ("getMe", 200),
        ("getMe", 401),
        ("getUpdates", 200),
        ("sendNothing", 404),
    ]


async def test_long_poll_waits_for_timeout_then_returns_empty(
    fake: FakeTelegram, api: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    assert await call(api, "getUpdates", timeout=30) == (200, {"ok": True, "result": []})
    assert trio.current_time() - start == 30
    await call(api, "getUpdates", timeout=3600)  # clamped to the server's 50 s
    assert trio.current_time() - start == 80


async def test_long_poll_returns_as_soon_as_an_update_arrives(
    fake: FakeTelegram, api: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(later, 5, lambda: fake.send_text(42, "/start ref_1"))
        status, body = await call(api, "getUpdates", timeout=30)
    assert (status, trio.current_time() - start) == (200, 5)
    (update,) = body["result"]
    message = update["message"]
    assert message["chat"] == {"id": 42, "type": "private", "first_name": "Ann"}
    assert message["entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]


async def test_offset_confirms_and_forgets_updates(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    ids = [fake.send_text(7, f"hello {n}") for n in range(3)]
    _, body = await call(api, "getUpdates", limit=2)
    assert [u["update_id"] for u in body["result"]] == ids[:2]
    _, body = await call(api, "getUpdates", offset=ids[1] + 1)
    assert [u["update_id"] for u in body["result"]] == ids[2:]
    assert fake.confirmed_offset == ids[1] + 1
    assert [u["update_id"] for u in fake.pending] == ids[2:]


async def test_second_poll_terminates_the_first(
    fake: FakeTelegram, api: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    first: list[tuple[int, Any]] = []

    async def poll() -> None:
        first.append(await call(api, "getUpdates", timeout=30))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await trio.sleep(1)
        assert await call(api, "getUpdates") == (200, {"ok": True, "result": []})
    assert first == [(409, {"ok": False, "error_code": 409, "description": TERMINATED})]
    assert trio.current_time() == 1


async def test_webhook_excludes_polling(fake: FakeTelegram, api: httpx.AsyncClient) -> None:
    fake.send_text(7, "hi")
    await call(api, "setWebhook", url="https://shop.example/tg", secret_token="s3cret")
    assert await call(api, "getUpdates") == (
        409,
        {"ok": False, "error_code": 409, "description": WEBHOOK_ACTIVE},
    )
    await call(api, "deleteWebhook", drop_pending_updates=True)
    _, body = await call(api, "getWebhookInfo")
    assert body["result"] == {"url": "", "has_custom_certificate": False, "pending_update_count": 0}


async def test_edit_with_the_same_content_is_not_modified(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    _, sent = await call(api, "sendMessage", chat_id=5, text="Choose", reply_markup=KEYBOARD)
    message_id = sent["result"]["message_id"]
    same = {"chat_id": 5, "message_id": message_id, "text": "Choose", "reply_markup": KEYBOARD}
    assert await call(api, "editMessageText", **same) == (
        400,
        {"ok": False, "error_code": 400, "description": NOT_MODIFIED},
    )
    status, body = await call(api, "editMessageText", **same | {"text": "Chosen"})
    assert (status, fake.last_message(5)) == (200, body["result"])
    assert fake.last_message(5)["text"] == "Chosen"  # type: ignore[index]
    status, body = await call(api, "editMessageText", **same | {"message_id": 99})
    assert body["description"] == "Bad Request: message to edit not found"


async def test_programmed_429_carries_retry_after(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    fake.fail("sendMessage", status=429, retry_after=7)
    assert await call(api, "sendMessage", chat_id=5, text="hi") == (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 7",
            "parameters": {"retry_after": 7},
        },
    )
    assert (await call(api, "sendMessage", chat_id=5, text="hi"))[0] == 200
    assert [c.status for c in fake.calls_to("sendMessage", chat_id=5)] == [429, 200]


async def test_blocked_user_gets_403_until_unblocked(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    fake.block(5)
    assert await call(api, "sendMessage", chat_id=5, text="hi") == (
        403,
        {"ok": False, "error_code": 403, "description": BLOCKED},
    )
    fake.unblock(5)
    assert (await call(api, "sendMessage", chat_id=5, text="hi"))[0] == 200


async def test_callback_query_is_answerable_once(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    _, sent = await call(api, "sendMessage", chat_id=5, text="Choose", reply_markup=KEYBOARD)
    fake.press(5, "buy:m1", message_id=sent["result"]["message_id"])
    _, polled = await call(api, "getUpdates")
    query = polled["result"][0]["callback_query"]
    assert query["message"] == sent["result"]
    assert await call(api, "answerCallbackQuery", callback_query_id=query["id"]) == (
        200,
        {"ok": True, "result": True},
    )
    status, body = await call(api, "answerCallbackQuery", callback_query_id=query["id"])
    assert (status, body["description"]) == (400, QUERY_INVALID)


async def test_dropped_connection_is_a_transport_error(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    fake.drop_connections(times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        await api.post("getMe")
    assert (await call(api, "getMe"))[0] == 200


async def test_wait_for_wakes_on_a_matching_call(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(call, api, "sendMessage", chat_id=1, text="a"))
        (found,) = await fake.wait_for("sendMessage", where=lambda c: c.params["text"] == "a")
    assert found.params == {"chat_id": 1, "text": "a"}


async def test_lost_answer_still_takes_effect(fake: FakeTelegram, api: httpx.AsyncClient) -> None:
    fake.drop_connections(after_processing=True)
    with pytest.raises(httpx.RemoteProtocolError):
        await api.post("sendMessage", json={"chat_id": 5, "text": "once"})
    assert [m["text"] for m in fake.messages(5)] == ["once"]
    assert [c.status for c in fake.calls_to("sendMessage")] == [200]


async def test_pre_checkout_must_be_answered_within_10_seconds(
    fake: FakeTelegram, api: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    fake.pre_checkout(5, payload="order:1", total_amount=150)
    _, body = await call(api, "getUpdates")
    query = body["result"][0]["pre_checkout_query"]
    assert (query["invoice_payload"], query["total_amount"]) == ("order:1", 150)
    await trio.sleep(11)
    status, body = await call(
        api, "answerPreCheckoutQuery", pre_checkout_query_id=query["id"], ok=True
    )
    assert (status, body["description"]) == (400, QUERY_INVALID)


async def test_form_encoded_params_and_allowed_updates(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    form = {"allowed_updates": '["callback_query"]', "timeout": "0"}
    assert (await api.post("getUpdates", data=form)).json() == {"ok": True, "result": []}
    fake.send_text(5, "dropped: not an allowed type")
    assert fake.pending == []
    await call(api, "getUpdates", allowed_updates=[])  # back to the default set
    fake.chat_member(5, "kicked")
    assert [u["my_chat_member"]["new_chat_member"]["status"] for u in fake.pending] == ["kicked"]
    assert 5 in fake.blocked


# ----------------------------------------------------------------- HTML parse mode

TITLE = 'VPN <3 months> & Q&A "plan"'


@pytest.mark.parametrize(
    ("text", "visible"),
    [
        ("VPN &lt;3 months&gt; &amp; Q&amp;A &quot;plan&quot;", TITLE),
        ('VPN &lt;3 months&gt; & Q&A "plan"', TITLE),  # a bare & and " need no entity
        ("a &foo; &ltx; &#X41; &#; b", "a &foo; &ltx; &#X41; &#; b"),  # kept as written
        ("&lt &gt;&#65&#x42;&#x1F600;", "< >AB😀"),  # ";" is optional
        ("<b>bold</b> <strong>s</strong> <i>i</i> <em>e</em> <u>u</u> <ins>n</ins>", None),
        ("<s>s</s> <strike>k</strike> <del>d</del> <tg-spoiler>x</tg-spoiler>", None),
        ('<span class="tg-spoiler">hidden</span>', "hidden"),
        ('<a href="https://t.me/x?a=1&amp;b=2">link</a>', "link"),
        ("<a href=t.me>bare</a>", "bare"),  # a name token
        ('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>', "👍"),
        ('<pre><code class="language-python">print(1)</code></pre>', "print(1)"),
        ("<blockquote expandable>quote</blockquote>", "quote"),
        ('<tg-time unix="1760000000" format="wDT">date</tg-time>', "date"),
        ("<B>upper</b><i >x</i ><b>any end tag</>", "upperxany end tag"),
        ("<b><i>nested</i></b>", "nested"),
        ('<tg-emoji emoji-id="bad"></tg-emoji>ok', "ok"),  # an empty entity is not checked
    ],
)
def test_html_that_telegram_accepts(text: str, visible: str | None) -> None:
    assert parse_html(text) == (visible if visible is not None else re.sub("<[^>]*>", "", text))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (f"Payment received: {TITLE}", 'Unsupported start tag "3" at byte offset 22'),
        ("Привет <3 ты", 'Unsupported start tag "3" at byte offset 13'),  # bytes, not chars
        ("Привет <3", "Unclosed start tag at byte offset 13"),  # the name runs to the end
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<br>", 'Unsupported start tag "br" at byte offset 0'),
        ("x <", "Unclosed start tag at byte offset 2"),
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ("<b >x</ b>", "Unclosed end tag at byte offset 5"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<a href="x"/>l</a>', 'Empty attribute name in the tag "a" at byte offset 0'),
        ("<a href", 'Unclosed start tag "a" at byte offset 0'),
        ('<a href="https://t.me>l</a>', "Unclosed start tag at byte offset 0"),
        ("<a href=x_y>l</a>", "Unexpected end of name token at byte offset 8"),
        ('<tg-emoji emoji-id="01">👍</tg-emoji>', "Invalid custom emoji identifier specified"),
        ('<tg-time unix="1" format="x">t</tg-time>', "Invalid date format used"),
        (
            "&#xD83D;&#xDE00;",
            "Text contains invalid Unicode characters after decoding HTML entities, "
            "check for unmatched surrogate code units",
        ),
    ],
)
def test_html_that_telegram_refuses(text: str, error: str) -> None:
    with pytest.raises(HtmlError) as refused:
        parse_html(text)
    assert str(refused.value) == error


async def test_bad_html_fails_send_and_edit_with_the_servers_error(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    refused = {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: can't parse entities: "
        'Unsupported start tag "3" at byte offset 4',
    }
    html = {"chat_id": 5, "parse_mode": "HTML"}
    assert await call(api, "sendMessage", **html, text=TITLE) == (400, refused)
    assert fake.messages(5) == []
    status, sent = await call(api, "sendMessage", **html, text="<b>Plans</b>")
    assert status == 200
    edit = html | {"message_id": sent["result"]["message_id"]}
    assert await call(api, "editMessageText", **edit, text=TITLE) == (400, refused)
    # Without a parse mode the same text is plain text.
    assert (await call(api, "sendMessage", chat_id=5, text=TITLE))[0] == 200
    assert [m["text"] for m in fake.messages(5)] == ["<b>Plans</b>", TITLE]


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"text": ""}, "Bad Request: message text is empty"),
        ({"text": "<b> </b>\n", "parse_mode": "HTML"}, "Bad Request: text must be non-empty"),
        ({"text": "hi", "parse_mode": "BBCode"}, "Bad Request: unsupported parse_mode"),
        ({"text": "<b>x</b>" * 4097, "parse_mode": "HTML"}, "Bad Request: text is too long"),
        ({"text": "&amp;" * 4097, "parse_mode": "html"}, "Bad Request: message is too long"),
    ],
)
async def test_text_limits(
    api: httpx.AsyncClient, params: dict[str, str], description: str
) -> None:
    status, body = await call(api, "sendMessage", chat_id=5, **params)
    assert (status, body["description"]) == (400, description)


async def test_length_is_measured_on_the_visible_text(api: httpx.AsyncClient) -> None:
    text = "<b>" + "&amp;" * 4095 + "😀</b>"  # 4095 + 2 UTF-16 units: one too many
    status, body = await call(api, "sendMessage", chat_id=5, text=text, parse_mode="HTML")
    assert (status, body["description"]) == (400, "Bad Request: message is too long")
    text = "<b>" + "&amp;" * 4094 + "😀</b>"
    assert (await call(api, "sendMessage", chat_id=5, text=text, parse_mode="HTML"))[0] == 200


# ----------------------------------------------------------------- Telegram Stars


def incoming(charge_id: str, amount: int, payload: str, **extra: Any) -> dict[str, Any]:
    user = {"id": 5, "is_bot": False, "first_name": "Ann"}
    source = {"type": "user", "transaction_type": "invoice_payment", "user": user}
    source |= {"invoice_payload": payload} | extra
    return {"id": charge_id, "amount": amount, "source": source}


def without_dates(transactions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in t.items() if k != "date"} for t in transactions]


async def test_star_payments_and_refunds_are_transactions_in_order(
    fake: FakeTelegram, api: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    fake.successful_payment(5, payload="order:1", total_amount=250, charge_id="stx1")
    fake.successful_payment(5, payload="order:1", total_amount=250, charge_id="stx1")  # again
    await trio.sleep(60)
    fake.successful_payment(
        5, payload="order:2", total_amount=250, charge_id="stx2", is_recurring=True
    )
    fake.successful_payment(5, payload="card", total_amount=349, currency="USD", charge_id="c3")
    assert len(fake.pending) == 4  # every update is delivered; only Stars are transactions
    _, body = await call(api, "getStarTransactions")
    first, second = body["result"]["transactions"]
    assert without_dates([first, second]) == [
        incoming("stx1", 250, "order:1"),
        incoming("stx2", 250, "order:2", subscription_period=2592000),
    ]
    assert second["date"] - first["date"] == 60

    assert await call(api, "refundStarPayment", user_id=5, telegram_payment_charge_id="stx1") == (
        200,
        {"ok": True, "result": True},
    )
    _, body = await call(api, "getStarTransactions")
    refund = body["result"]["transactions"][-1]
    assert without_dates([refund]) == [
        {"id": "stx1", "amount": 250, "receiver": incoming("stx1", 250, "order:1")["source"]}
    ]
    assert fake.refunded == {"stx1"}
    assert fake.star_transactions == body["result"]["transactions"]


async def test_a_silent_charge_is_only_a_transaction(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    made = fake.charge_silently(5, payload="order:9", total_amount=100, charge_id="stx9")
    assert fake.pending == []
    _, body = await call(api, "getStarTransactions")
    assert body["result"]["transactions"] == [made]
    assert without_dates([made]) == [incoming("stx9", 100, "order:9")]
    # It can still be refunded, like any charge Telegram made.
    status, _ = await call(api, "refundStarPayment", user_id=5, telegram_payment_charge_id="stx9")
    assert status == 200


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"user_id": 5, "telegram_payment_charge_id": "nope"}, "Bad Request: CHARGE_NOT_FOUND"),
        ({"user_id": 6, "telegram_payment_charge_id": "stx1"}, "Bad Request: CHARGE_NOT_FOUND"),
        ({"telegram_payment_charge_id": "stx1"}, "Bad Request: invalid user_id specified"),
        (
            {"user_id": "ann", "telegram_payment_charge_id": "stx1"},
            "Bad Request: invalid user_id specified",
        ),
        (
            {"user_id": 5},
            'Bad Request: parameter "telegram_payment_charge_id" is required',
        ),
    ],
)
async def test_refund_errors(
    fake: FakeTelegram, api: httpx.AsyncClient, params: dict[str, Any], description: str
) -> None:
    fake.successful_payment(5, payload="order:1", total_amount=250, charge_id="stx1")
    status, body = await call(api, "refundStarPayment", **params)
    assert (status, body["description"]) == (400, description)
    assert len(fake.star_transactions) == 1


async def test_a_charge_is_refunded_once(fake: FakeTelegram, api: httpx.AsyncClient) -> None:
    fake.charge_silently(5, payload="order:1", total_amount=250, charge_id="stx1")
    refund = {"user_id": 5, "telegram_payment_charge_id": "stx1"}
    assert (await call(api, "refundStarPayment", **refund))[0] == 200
    status, body = await call(api, "refundStarPayment", **refund)
    assert (status, body["description"]) == (400, "Bad Request: CHARGE_ALREADY_REFUNDED")
    assert [("source" in t, t["id"]) for t in fake.star_transactions] == [
        (True, "stx1"),
        (False, "stx1"),
    ]


async def test_two_fakes_can_share_one_stars_account() -> None:
    one, two = FakeTelegram(), FakeTelegram()
    one.share_stars(two)
    one.successful_payment(5, payload="order:1", total_amount=250, charge_id="stx1")
    assert two.star_transactions == one.star_transactions != []
    two.charge_silently(5, payload="order:2", total_amount=250, charge_id="stx2")
    with pytest.raises(ValueError, match="already recorded"):
        one.charge_silently(5, payload="order:2", total_amount=250, charge_id="stx2")
    assert [t["id"] for t in one.star_transactions] == ["stx1", "stx2"]


async def test_star_transactions_pages_clamp_like_the_server(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    for n in range(120):
        fake.charge_silently(5, payload=f"order:{n}", total_amount=1, charge_id=f"stx{n}")

    async def ids(**params: Any) -> list[str]:
        status, body = await call(api, "getStarTransactions", **params)
        assert status == 200
        return [t["id"] for t in body["result"]["transactions"]]

    assert await ids() == [f"stx{n}" for n in range(100)]  # limit defaults to 100
    assert await ids(offset=100) == [f"stx{n}" for n in range(100, 120)]
    assert await ids(offset=118, limit=5) == ["stx118", "stx119"]
    assert await ids(offset=-3, limit=0) == ["stx0"]  # clamped to offset 0 and limit 1
    assert len(await ids(limit=1000)) == 100
    assert await ids(offset=500) == []


# ----------------------------------------------------------------- the control API


async def test_control_api_delays_a_method_and_lists_messages(
    fake: FakeTelegram, api: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url, verify=False) as control:
        delayed = await control.post("/_fake/delay", json={"method": "sendMessage", "seconds": 2})
        assert delayed.json() == {"ok": True, "result": True}
        start = trio.current_time()
        await call(api, "sendMessage", chat_id=5, text="<b>slow</b>", parse_mode="HTML")
        await call(api, "getMe")
        assert trio.current_time() - start == 2
        await call(api, "sendMessage", chat_id=6, text="other chat")

        listed = await control.get("/_fake/messages", params={"chat_id": "5"})
        assert listed.status_code == 200
        assert listed.json() == fake.messages(5)
        assert [m["text"] for m in listed.json()] == ["<b>slow</b>"]
        assert (await control.get("/_fake/messages", params={"chat_id": "7"})).json() == []

        assert (await control.get("/_fake/messages")).status_code == 400
        wrong = await control.post("/_fake/delay", json={"method": "sendMessage"})
        assert wrong.status_code == 400
        assert (await control.get("/_fake/stats")).json()["calls"]["sendMessage"] == 2


# ----------------------------------------------------------------- channels

CHANNEL, OWNER, ADMIN, MEMBER = -1001234567890, 500, 501, 502


@pytest.fixture
def channel(fake: FakeTelegram) -> Channel:
    return fake.add_channel(
        CHANNEL, owner=OWNER, admins={ADMIN: {"can_post_messages": True}}, members=[MEMBER]
    )


async def failure(api: httpx.AsyncClient, method: str, **params: Any) -> tuple[int, str]:
    status, body = await call(api, method, **params)
    assert body["ok"] is False, body
    assert body["error_code"] == status
    return status, body["description"]


async def test_channel_members_as_get_chat_member_shows_them(
    fake: FakeTelegram, api: httpx.AsyncClient, channel: Channel
) -> None:
    async def member(user_id: int) -> Any:
        status, body = await call(api, "getChatMember", chat_id=CHANNEL, user_id=user_id)
        assert status == 200
        return body["result"]

    owner = await member(OWNER)
    assert (owner["status"], owner["is_anonymous"], owner["user"]["id"]) == (
        "creator",
        False,
        OWNER,
    )
    admin = await member(ADMIN)
    assert admin["status"] == "administrator"
    assert admin["can_post_messages"] is True
    assert admin["can_invite_users"] is admin["can_restrict_members"] is False
    assert set(CHANNEL_RIGHTS) | {"can_be_edited", "is_anonymous"} <= set(admin)
    assert "can_pin_messages" not in admin  # groups and supergroups only
    bot = await member(fake.bot_id)
    assert (bot["status"], bot["can_invite_users"], bot["can_restrict_members"]) == (
        "administrator",
        True,
        True,
    )
    assert bot["user"]["is_bot"] is True
    assert (await member(MEMBER))["status"] == "member"
    assert await member(999) == {"user": {"id": 999, "is_bot": False, "first_name": "Ann"}} | {
        "status": "left"
    }
    assert await failure(api, "getChatMember", chat_id=CHANNEL, user_id="x") == (
        400,
        "Bad Request: invalid user_id specified",
    )
    _, body = await call(api, "getChatAdministrators", chat_id=CHANNEL)
    assert sorted(m["user"]["id"] for m in body["result"]) == sorted([OWNER, ADMIN, fake.bot_id])


async def test_channel_methods_need_the_bot_in_the_channel(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    fake.add_channel(CHANNEL, owner=OWNER, bot_rights=None)
    for method in (
        "getChatMember",
        "createChatInviteLink",
        "banChatMember",
        "getChatAdministrators",
    ):
        assert await failure(api, method, chat_id=CHANNEL, user_id=OWNER) == (403, NOT_A_MEMBER)
    assert await failure(api, "getChatMember", chat_id=-1009, user_id=OWNER) == (
        400,
        CHAT_NOT_FOUND,
    )


async def test_invite_links_admit_as_their_limits_say(
    fake: FakeTelegram,
    api: httpx.AsyncClient,
    channel: Channel,
    autojump_clock: trio.testing.MockClock,
) -> None:
    both = {"member_limit": 1, "creates_join_request": True}
    assert await failure(api, "createChatInviteLink", chat_id=CHANNEL, **both) == (
        400,
        LIMIT_WITH_REQUESTS,
    )
    past = {"expire_date": EPOCH - 10}
    assert await failure(api, "createChatInviteLink", chat_id=CHANNEL, **past) == (
        400,
        EXPIRE_DATE_INVALID,
    )
    _, body = await call(
        api,
        "createChatInviteLink",
        chat_id=CHANNEL,
        name="x" * 40,
        member_limit=1,
        expire_date=EPOCH + 3600,
    )
    link = body["result"]
    assert link["name"] == "x" * 32
    assert (link["member_limit"], link["expire_date"]) == (1, EPOCH + 3600)
    assert (link["creates_join_request"], link["is_primary"], link["is_revoked"]) == (
        False,
        False,
        False,
    )
    assert link["creator"]["id"] == fake.bot_id
    url = link["invite_link"]
    assert fake.join(1, url) == "joined"
    with pytest.raises(JoinRefused, match="INVITE_HASH_EXPIRED"):
        fake.join(2, url)  # "members ... simultaneously": one at a time
    fake.leave(1, CHANNEL)
    assert fake.join(2, url) == "joined"
    fake.leave(2, CHANNEL)
    with pytest.raises(JoinRefused, match="USER_ALREADY_PARTICIPANT"):
        fake.join(MEMBER, url)
    await trio.sleep(3600)
    with pytest.raises(JoinRefused, match="INVITE_HASH_EXPIRED"):
        fake.join(3, url)  # past its expire_date
    with pytest.raises(JoinRefused, match="INVITE_HASH_INVALID"):
        fake.join(3, "https://t.me/+unknown")
    fake.add_channel(-1009, owner=OWNER, bot_rights={"can_restrict_members": True})
    assert await failure(api, "createChatInviteLink", chat_id=-1009) == (400, NO_INVITE_RIGHTS)


async def test_join_requests_wait_for_the_bot(
    fake: FakeTelegram,
    api: httpx.AsyncClient,
    channel: Channel,
    autojump_clock: trio.testing.MockClock,
) -> None:
    _, body = await call(api, "createChatInviteLink", chat_id=CHANNEL, creates_join_request=True)
    url = body["result"]["invite_link"]
    assert fake.join(7, url) == "requested"
    _, body = await call(api, "getUpdates")
    (update,) = body["result"]
    request = update["chat_join_request"]
    assert (request["from"]["id"], request["user_chat_id"], request["chat"]["type"]) == (
        7,
        7,
        "channel",
    )
    assert request["invite_link"]["pending_join_request_count"] == 1
    assert fake.channel_status(CHANNEL, 7) == "left"
    assert await call(api, "approveChatJoinRequest", chat_id=CHANNEL, user_id=7) == (
        200,
        {"ok": True, "result": True},
    )
    assert fake.channel_status(CHANNEL, 7) == "member"
    for method in ("approveChatJoinRequest", "declineChatJoinRequest"):
        assert await failure(api, method, chat_id=CHANNEL, user_id=7) == (400, NO_REQUEST)
    fake.request_join(8, CHANNEL)
    await call(api, "declineChatJoinRequest", chat_id=CHANNEL, user_id=8)
    assert fake.channel_status(CHANNEL, 8) == "left"
    # A bot assigned to process join requests answers the query, within 10 seconds.
    fake.request_join(9, CHANNEL, query=True)
    fake.request_join(10, CHANNEL, query=True)
    queries = {u: r["query_id"] for u, r in channel.requests.items()}
    answer = {"chat_join_request_query_id": queries[9], "result": "approve"}
    assert (await call(api, "answerChatJoinRequestQuery", **answer))[0] == 200
    assert fake.channel_status(CHANNEL, 9) == "member"
    await trio.sleep(11)
    late = {"chat_join_request_query_id": queries[10], "result": "decline"}
    assert await failure(api, "answerChatJoinRequestQuery", **late) == (400, QUERY_INVALID)
    # Without can_invite_users the bot hears of no request and may decide none.
    fake.add_channel(-1009, owner=OWNER, bot_rights={"can_restrict_members": True})
    assert fake.request_join(7, -1009) == 0
    assert await failure(api, "approveChatJoinRequest", chat_id=-1009, user_id=7) == (
        400,
        NO_JOIN_REQUEST_RIGHTS,
    )


async def test_ban_and_unban_spare_the_owner_administrators_and_the_bot(
    fake: FakeTelegram, api: httpx.AsyncClient, channel: Channel
) -> None:
    async def ban(user_id: int) -> tuple[int, Any]:
        return await call(api, "banChatMember", chat_id=CHANNEL, user_id=user_id)

    assert (await ban(OWNER))[1]["description"] == OWNER_REFUSED
    assert (await ban(ADMIN))[1]["description"] == ADMINISTRATOR
    assert (await ban(fake.bot_id))[1]["description"] == SELF
    await call(api, "getUpdates", allowed_updates=["chat_member"])
    assert (await ban(MEMBER))[0] == 200
    assert channel.members[MEMBER] == {"status": "kicked", "until_date": 0}
    _, body = await call(api, "getUpdates")
    (change,) = [u["chat_member"] for u in body["result"]]
    assert change["old_chat_member"]["status"] == "member"
    assert change["new_chat_member"]["status"] == "kicked"
    _, body = await call(api, "createChatInviteLink", chat_id=CHANNEL)
    with pytest.raises(JoinRefused, match="USER_BANNED_IN_CHANNEL"):
        fake.join(MEMBER, body["result"]["invite_link"])
    # only_if_banned: a member stays; a banned user may come back.
    unban = {"chat_id": CHANNEL, "only_if_banned": True}
    fake.add_channel(-1009, owner=OWNER, members=[MEMBER], bot_rights={"can_invite_users": True})
    assert (await call(api, "unbanChatMember", **unban, user_id=ADMIN))[0] == 200
    assert (await call(api, "unbanChatMember", **unban, user_id=MEMBER))[0] == 200
    assert fake.channel_status(CHANNEL, MEMBER) == "left"
    assert fake.channel_status(CHANNEL, ADMIN) == "administrator"
    # Without only_if_banned an unban removes a member; it needs can_restrict_members.
    assert await failure(api, "unbanChatMember", chat_id=-1009, user_id=MEMBER) == (
        400,
        NO_RESTRICT_RIGHTS,
    )
    fake.join(MEMBER, body["result"]["invite_link"])
    assert (await call(api, "unbanChatMember", chat_id=CHANNEL, user_id=MEMBER))[0] == 200
    assert fake.channel_status(CHANNEL, MEMBER) == "left"
    assert await failure(api, "banChatMember", chat_id=-1009, user_id=OWNER) == (
        400,
        OWNER_REFUSED,
    )  # the owner is refused before rights are looked at


async def test_send_photo_takes_an_uploaded_image_only(
    fake: FakeTelegram, api: httpx.AsyncClient
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    fields = {"chat_id": "42", "caption": "<b>scan me</b>", "parse_mode": "HTML"}
    ok = await api.post("sendPhoto", data=fields, files={"photo": ("qr.png", png, "image/png")})
    assert ok.status_code == 200
    assert ok.json()["result"]["caption"] == "<b>scan me</b>"
    assert fake.uploads[0].content == png
    text = await api.post("sendPhoto", data=fields, files={"photo": ("x.png", b"hi", "image/png")})
    assert text.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: IMAGE_PROCESS_FAILED",
    }
    bad = {**fields, "caption": "<b>unclosed"}
    broken = await api.post("sendPhoto", data=bad, files={"photo": ("qr.png", png, "image/png")})
    assert broken.status_code == 400
    assert "can't parse entities" in broken.json()["description"]
    assert (await call(api, "sendPhoto", chat_id=42))[0] == 400  # no photo at all
