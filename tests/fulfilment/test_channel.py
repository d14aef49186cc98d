"""The private channel end to end: the whole shop, the fake Bot API with a channel in it
(real HTTP), real PostgreSQL, mock time.

Most tests hand the backend to the shop (``fulfilment=``) and answer join requests the
UserActor has not answered (see ``answer_join_requests``), so they pass with or without the
wiring in config, ``open_fulfilment``, ``main`` and the UserActor; the last two tests start
the shop from ``FULFILMENT=channel`` itself, and run once that wiring is in.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trio
import trio.testing

from shop.actors.channel import on_join_request
from shop.actors.fulfilment import sync_everyone
from shop.actors.jobs import expiry
from shop.actors.timer import Job
from shop.app import App
from shop.clock import TrioClock
from shop.errors import StartupFailed
from shop.fulfilment import Access
from shop.fulfilment.channel import ChannelAccess
from shop.store import Store
from shop.store import fulfilment as queue
from shop.telegram.api import open_bot_client
from shop.telegram.formatting import when
from shop.telegram.types import parse_update
from tests.conftest import START
from tests.customer import Customer, buttons
from tests.fakes.telegram import TOKEN, FakeTelegram, JoinRefused
from tests.harness import Shop, fake_telegram

log = logging.getLogger(__name__)

CHANNEL = -1001234567890
OWNER, ADMIN = 500, 501
ANN, BOB, CAROL, DAN = 1001, 1002, 1003, 1004
MINUTE, HOUR, DAY = dt.timedelta(minutes=1), dt.timedelta(hours=1), dt.timedelta(days=1)
UTC = ZoneInfo("UTC")  # TIMEZONE, by default
#: The tests' calendar starts half an hour before the daily 07:00 expiry job.
OPEN = START.replace(hour=6, minute=30)
CATALOG = """
[trial]
days = 1

[[plans]]
id = "m1"
days = 30
title = "1 month"
prices = { XTR = 250 }
"""


async def sync(app: App, slot: dt.datetime) -> str:
    """The hourly sweep's fulfilment part (the rest of the sweep is beside the point)."""
    repaired = await sync_everyone(
        app.store, app.fulfilment, app.catalog, app.clock, dry_run=False, report=log.info
    )
    return f"{repaired} repaired"


#: The 07:00 expiry (the queue then warns) and the hourly sync (which removes).
JOBS = [Job("expiry", "0 7 * * *", expiry), Job("sync", "0 * * * *", sync)]


@pytest.fixture
def channel_shop(shop_at: Any, store: Store, tmp_path: Path) -> Any:
    """Start a shop selling places in ``CHANNEL``: ``async with channel_shop() as (shop, ch)``."""
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)

    @asynccontextmanager
    async def start(
        grace: dt.timedelta = DAY, **channel: Any
    ) -> AsyncIterator[tuple[Shop, ChannelAccess]]:
        clock = TrioClock.starting_at(OPEN)
        async with fake_telegram(clock, long_poll_max=86_400) as (fake, url):
            add_channel(fake, **channel)
            async with open_bot_client(url, TOKEN, connections=2) as bot:
                backend = ChannelAccess(bot, store, clock, channel_id=CHANNEL, grace=grace)
                await backend.check()  # what open_fulfilment does at start
                async with shop_at(
                    environ={"SHOP_CATALOG": str(catalog)},
                    clock=clock,
                    telegram=(fake, url),
                    fulfilment=backend,
                    jobs=JOBS,
                    poll_timeout=86_400,
                ) as shop:
                    backend.attach(shop.app.outbox)  # what main does once the outbox exists
                    yield shop, backend

    return start


def add_channel(fake: FakeTelegram, **overrides: Any) -> None:
    settings: dict[str, Any] = {"owner": OWNER, "admins": {ADMIN: {"can_post_messages": True}}}
    fake.add_channel(CHANNEL, **(settings | overrides))


async def answer_join_requests(shop: Shop) -> None:
    """Let the shop answer the join requests waiting in the channel.

    Once the UserActor hands ``chat_join_request`` updates to the channel, the poller has
    answered them all before the short wait is over; until then, the test hands over what
    is still waiting, as the actor would.
    """
    await trio.sleep(5)  # less than a join request query's 10 s
    waiting = list(shop.telegram.channels[CHANNEL].requests.items())
    for user_id, request in waiting:
        update = parse_update({"update_id": 1, "chat_join_request": request})
        assert update.sender is not None
        assert update.sender.id == user_id  # the requester's own actor handles it
        assert update.chat_join_request is not None
        await on_join_request(shop.app, update.chat_join_request)


def invites(shop: Shop, who: int) -> list[str]:
    """The invite links sent to ``who``, oldest first."""
    return [
        url
        for message in shop.telegram.messages(who)
        for url in buttons(message)
        if url.startswith("https://t.me/+")
    ]


def warnings(shop: Shop, who: int) -> list[Any]:
    return [c for c in shop.telegram.calls_to("sendMessage", who) if "stay in" in c.params["text"]]


def expires_at(shop: Shop, who: int) -> dt.datetime:
    ((expiry,),) = shop.query("SELECT expires_at FROM subscriptions WHERE telegram_id = %s", who)
    assert isinstance(expiry, dt.datetime)
    return expiry


async def end_soon(shop: Shop, who: int) -> dt.datetime:
    """An operator makes the subscription end in ten minutes (before the 07:00 expiry)."""
    ends = shop.app.clock.now() + 10 * MINUTE
    shop.query(
        "UPDATE subscriptions SET expires_at = %s, updated_at = %s WHERE telegram_id = %s"
        " RETURNING 1",
        ends,
        shop.app.clock.now(),
        who,
    )
    shop.app.fulfilment_due.poke()
    return ends


async def sleep_until(shop: Shop, moment: dt.datetime) -> None:
    await trio.sleep(max(0.0, (moment - shop.app.clock.now()).total_seconds()))


async def trial(shop: Shop, who: int) -> Customer:
    customer = Customer(shop, who)
    await customer.send("/start")
    await customer.press("trial")
    return customer


async def test_a_personal_link_is_sent_once(
    channel_shop: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with channel_shop() as (shop, backend):
        fake = shop.telegram
        await trial(shop, ANN)
        (created,) = fake.calls_to("createChatInviteLink")
        link = fake.channels[CHANNEL].links[invites(shop, ANN)[0]]
        # A personal link that asks to join: member_limit cannot go with it, and is not sent.
        assert created.params["creates_join_request"] is True
        assert "member_limit" not in created.params
        assert created.params["name"] == f"shop:{ANN}"
        works_until = dt.datetime.fromtimestamp(link["expire_date"], dt.UTC)
        assert abs(works_until - (shop.app.clock.now() + DAY)) < dt.timedelta(minutes=1)
        # A replay (the queue again, or apply called twice) sends nothing more.
        await shop.app.store.run(queue.mark_due, ANN, shop.app.clock.now())
        shop.app.fulfilment_due.poke()
        await trio.sleep(60)
        access = Access(
            telegram_id=ANN,
            active=True,
            expires_at=expires_at(shop, ANN),
            lifetime=False,
            limits=shop.app.catalog.limits("trial"),
            grants=1,
        )
        await backend.apply(access)
        await backend.apply(access)
        assert len(fake.calls_to("createChatInviteLink")) == 1
        assert len(invites(shop, ANN)) == 1
        assert shop.query("SELECT count(*) FROM channel_members") == [(1,)]


async def test_join_requests_are_approved_for_paying_customers_only(
    channel_shop: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with channel_shop() as (shop, _):
        fake = shop.telegram
        await trial(shop, ANN)
        await Customer(shop, BOB).send("/start")  # a customer without a subscription
        (ann_link,) = invites(shop, ANN)
        assert fake.join(ANN, ann_link) == "requested"
        assert fake.join(BOB, ann_link) == "requested"  # a forwarded link opens no door
        fake.request_join(CAROL, CHANNEL)  # from the channel's page, never met the bot
        await answer_join_requests(shop)
        assert fake.channel_status(CHANNEL, ANN) == "member"
        assert fake.channel_status(CHANNEL, BOB) == "left"
        assert fake.channel_status(CHANNEL, CAROL) == "left"
        assert fake.channels[CHANNEL].requests == {}
        approved = fake.calls_to("approveChatJoinRequest")
        declined = fake.calls_to("declineChatJoinRequest")
        assert [c.params["user_id"] for c in approved] == [ANN]
        assert sorted(c.params["user_id"] for c in declined) == [BOB, CAROL]
        # The declined are told why, before the request is processed (and so still can be).
        for who in (BOB, CAROL):
            (told,) = fake.calls_to("sendMessage", who)[-1:]
            assert "for subscribers" in told.params["text"]
            (decline,) = [c for c in declined if c.params["user_id"] == who]
            assert told.at <= decline.at
        # A request to a chat that is not the shop's is left to its administrators.
        fake.add_channel(-1009, owner=OWNER)
        fake.request_join(ANN, -1009)
        request = fake.channels[-1009].requests[ANN]
        update = parse_update({"update_id": 2, "chat_join_request": request})
        assert update.chat_join_request is not None
        await on_join_request(shop.app, update.chat_join_request)
        assert len(fake.calls_to("approveChatJoinRequest")) == 1
        assert ANN in fake.channels[-1009].requests


async def test_a_bot_assigned_to_join_requests_answers_the_query(
    channel_shop: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with channel_shop() as (shop, _):
        fake = shop.telegram
        await trial(shop, ANN)
        fake.request_join(ANN, CHANNEL, query=True)
        fake.request_join(BOB, CHANNEL, query=True)
        await answer_join_requests(shop)
        answers = {c.params["result"] for c in fake.calls_to("answerChatJoinRequestQuery")}
        assert answers == {"approve", "decline"}
        assert not fake.calls_to("approveChatJoinRequest")
        assert fake.channel_status(CHANNEL, ANN) == "member"
        assert fake.channel_status(CHANNEL, BOB) == "left"


async def test_after_the_grace_period_a_warned_member_is_removed_and_may_return(
    channel_shop: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with channel_shop() as (shop, _):  # CHANNEL_GRACE_HOURS=24, the default
        fake = shop.telegram
        ann = await trial(shop, ANN)
        fake.join(ANN, invites(shop, ANN)[0])
        await answer_join_requests(shop)
        assert fake.channel_status(CHANNEL, ANN) == "member"
        ended = await end_soon(shop, ANN)
        await sleep_until(shop, ended + DAY - MINUTE)
        (warning,) = warnings(shop, ANN)  # at 07:00, when the expiry job saw it ended
        assert when(ended + DAY, UTC, "en") in warning.params["text"]  # when they go
        assert not fake.calls_to("banChatMember")
        assert fake.channel_status(CHANNEL, ANN) == "member"
        await sleep_until(shop, ended + DAY + HOUR)  # the first hourly sync after the grace
        (ban,) = fake.calls_to("banChatMember")
        (unban,) = fake.calls_to("unbanChatMember")
        assert fake.calls.index(warning) < fake.calls.index(ban) < fake.calls.index(unban)
        assert unban.params["only_if_banned"] is True
        assert fake.channel_status(CHANNEL, ANN) == "left"  # out, and not banned
        ((removed_at,),) = shop.query("SELECT removed_at FROM channel_members")
        assert ended + DAY <= removed_at < ended + DAY + HOUR
        assert len(warnings(shop, ANN)) == 1
        # Paying again brings a fresh link, and the request is approved.
        await ann.choose_plan("m1", "stars")
        await ann.pay_last_invoice()
        assert len(invites(shop, ANN)) == 2
        assert fake.join(ANN, invites(shop, ANN)[-1]) == "requested"
        await answer_join_requests(shop)
        assert fake.channel_status(CHANNEL, ANN) == "member"


async def test_a_renewal_within_the_grace_period_keeps_the_member_in(
    channel_shop: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with channel_shop(grace=2 * HOUR) as (shop, _):
        fake = shop.telegram
        ann = await trial(shop, ANN)
        fake.join(ANN, invites(shop, ANN)[0])
        await answer_join_requests(shop)
        ended = await end_soon(shop, ANN)
        await sleep_until(shop, ended + HOUR)
        assert len(warnings(shop, ANN)) == 1
        await ann.choose_plan("m1", "stars")
        await ann.pay_last_invoice()
        await sleep_until(shop, ended + 4 * HOUR)
        assert not fake.calls_to("banChatMember")
        assert fake.channel_status(CHANNEL, ANN) == "member"
        assert len(invites(shop, ANN)) == 1  # a member needs no new link
        assert shop.query("SELECT warned_at, remove_at FROM channel_members") == [(None, None)]


async def test_the_owner_and_administrators_are_never_removed(
    channel_shop: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with channel_shop(grace=2 * HOUR) as (shop, _):
        fake = shop.telegram
        for who in (OWNER, ADMIN, DAN):
            await trial(shop, who)
        assert invites(shop, OWNER) == invites(shop, ADMIN) == []  # in already
        fake.join(DAN, invites(shop, DAN)[0])
        await answer_join_requests(shop)
        for who in (OWNER, ADMIN, DAN):
            ended = await end_soon(shop, who)
        await sleep_until(shop, ended + HOUR)
        assert len(warnings(shop, DAN)) == 1
        assert warnings(shop, OWNER) == warnings(shop, ADMIN) == []
        fake.promote(CHANNEL, DAN, can_post_messages=True)  # made an administrator meanwhile
        await sleep_until(shop, ended + 4 * HOUR)
        assert not fake.calls_to("banChatMember")
        assert not fake.calls_to("unbanChatMember")
        assert fake.channel_status(CHANNEL, OWNER) == "creator"
        assert fake.channel_status(CHANNEL, ADMIN) == "administrator"
        assert fake.channel_status(CHANNEL, DAN) == "administrator"


async def test_a_removal_cut_short_between_ban_and_unban_is_finished(
    channel_shop: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with channel_shop(grace=2 * HOUR) as (shop, backend):
        fake = shop.telegram
        await trial(shop, ANN)
        fake.join(ANN, invites(shop, ANN)[0])
        await answer_join_requests(shop)
        fake.fail("unbanChatMember", status=502)  # the unban is lost once
        ended = await end_soon(shop, ANN)
        await sleep_until(shop, ended + 2 * HOUR + 30 * MINUTE)  # past the 09:00 sync
        assert fake.channel_status(CHANNEL, ANN) == "kicked"
        gone = Access(
            telegram_id=ANN, active=False, expires_at=ended, lifetime=False, limits=None, grants=1
        )
        assert await backend.drift(gone) == ["banned by a removal that was not finished"]
        await trio.sleep(HOUR.total_seconds())  # the next hourly sync finishes it
        assert await backend.drift(gone) == []
        assert len(fake.calls_to("banChatMember")) == 1  # not banned twice
        assert [c.status for c in fake.calls_to("unbanChatMember")] == [502, 200]
        assert fake.channel_status(CHANNEL, ANN) == "left"
        assert shop.query("SELECT removing, remove_at FROM channel_members") == [(False, None)]


async def test_my_subscription_shows_the_link_or_the_membership(
    channel_shop: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with channel_shop() as (shop, _):
        fake = shop.telegram
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.choose_plan("m1", "stars")
        await ann.pay_last_invoice()
        (link,) = invites(shop, ANN)
        await ann.press("sub")
        assert link in ann.last_text()
        await trio.sleep((DAY + HOUR).total_seconds())  # the link lapsed unused
        await ann.press("sub")
        fresh = [u for u in fake.channels[CHANNEL].links if u != link]
        assert len(fresh) == 1
        assert fresh[0] in ann.last_text()
        with pytest.raises(JoinRefused, match="INVITE_HASH_EXPIRED"):
            fake.join(ANN, link)
        assert fake.join(ANN, fresh[0]) == "requested"
        await answer_join_requests(shop)
        await ann.press("sub")
        assert "You are in the channel" in ann.last_text()


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ({"bot_rights": None}, "bot is not a member of the channel chat"),
        ({"bot_rights": {"can_invite_users": True}}, "without can_restrict_members"),
        ({"bot_rights": {}}, "without can_invite_users and can_restrict_members"),
    ],
)
async def test_the_start_fails_clearly_when_the_bot_may_not_manage_the_channel(
    nursery: trio.Nursery, channel: dict[str, Any], expected: str
) -> None:
    fake = FakeTelegram()
    url = await nursery.start(fake.serve)
    add_channel(fake, **channel)
    async with open_bot_client(url, TOKEN, connections=1) as bot:
        backend = ChannelAccess(bot, None, TrioClock.starting_at(START), channel_id=CHANNEL)  # type: ignore[arg-type]
        with pytest.raises(StartupFailed) as failed:
            await backend.check()
        assert failed.value.code == 2
        assert f"CHANNEL_ID {CHANNEL}" in str(failed.value)
        assert expected in str(failed.value)
        unknown = ChannelAccess(bot, None, TrioClock.starting_at(START), channel_id=-1007)  # type: ignore[arg-type]
        with pytest.raises(StartupFailed, match="chat not found"):
            await unknown.check()


async def test_a_configured_channel_lets_payers_in_through_the_poller(
    shop_at: Any, clean_database: str, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock.starting_at(OPEN)
    env = {"FULFILMENT": "channel", "CHANNEL_ID": str(CHANNEL), "CHANNEL_GRACE_HOURS": "2"}
    async with fake_telegram(clock, long_poll_max=86_400) as (fake, url):
        add_channel(fake)
        async with shop_at(
            environ=env, clock=clock, telegram=(fake, url), poll_timeout=86_400
        ) as shop:
            ann = await trial(shop, ANN)
            (link,) = invites(shop, ANN)
            assert fake.join(ANN, link) == "requested"
            assert fake.join(BOB, link) == "requested"
            await ann.settle()  # the poller hands each request to the requester's actor
            assert fake.channel_status(CHANNEL, ANN) == "member"
            assert fake.channel_status(CHANNEL, BOB) == "left"
            await ann.press("sub")
            assert "You are in the channel" in ann.last_text()
            ended = await end_soon(shop, ANN)
            await sleep_until(shop, ended + 4 * HOUR)  # 07:00 expiry, then the hourly sweep
            assert len(warnings(shop, ANN)) == 1
            assert fake.channel_status(CHANNEL, ANN) == "left"


async def test_a_configured_channel_does_not_start_without_the_rights(
    shop_at: Any, clean_database: str, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock.starting_at(OPEN)
    env = {"FULFILMENT": "channel", "CHANNEL_ID": str(CHANNEL)}
    refused = pytest.RaisesExc(StartupFailed, match="without can_restrict_members")
    async with fake_telegram(clock) as (fake, url):
        add_channel(fake, bot_rights={"can_invite_users": True})
        with pytest.RaisesGroup(refused, flatten_subgroups=True):
            async with shop_at(environ=env, clock=clock, telegram=(fake, url)):
                pass  # pragma: no cover - it does not start
