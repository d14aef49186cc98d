"""The scheduled jobs on their default schedules: expiry, reminders, auto-renew, cleanups."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import trio
import trio.testing

from shop.clock import TrioClock
from shop.fulfilment import Access
from tests.customer import Customer, buttons
from tests.harness import Shop

UTC = dt.UTC
ANN = 1001
DAY = dt.timedelta(days=1)
LONG_POLL = 86_400


@attrs.define
class RecordingPanel:
    """A fulfilment backend that records what it was asked (the edge, like a VPN panel)."""

    name = "recording"
    state: dict[int, Access] = attrs.Factory(dict)  # the latest access applied per customer
    revoked: list[int] = attrs.Factory(list)  # each time access was applied as "none"

    async def apply(self, access: Access) -> None:
        if not access.active and access.telegram_id not in self.revoked:
            self.revoked.append(access.telegram_id)
        self.state[access.telegram_id] = access

    async def access_text(self, telegram_id: int, language: str) -> str | None:
        return None

    async def drift(self, access: Access) -> list[str]:
        return []


def subscribe(shop: Shop, telegram_id: int, expires_at: dt.datetime, **customer: Any) -> None:
    """A customer with an active one-month subscription ending at ``expires_at``."""
    auto_renew = customer.get("auto_renew", False)
    blocked = customer.get("blocked", False)
    shop.query(
        "INSERT INTO customers (telegram_id, first_name, first_seen, last_seen, trial_used,"
        " auto_renew, blocked) VALUES (%s, 'Ann', %s, %s, TRUE, %s, %s) RETURNING 1",
        telegram_id, expires_at - 60 * DAY, expires_at - 60 * DAY, auto_renew, blocked,
    )  # fmt: skip
    shop.query(
        "INSERT INTO subscriptions (telegram_id, status, expires_at, plan_id, started_at,"
        " updated_at) VALUES (%s, 'active', %s, 'm1', %s, %s) RETURNING 1",
        telegram_id, expires_at, expires_at - 30 * DAY, expires_at - 30 * DAY,
    )  # fmt: skip


def give_stars(shop: Shop, telegram_id: int, amount: int) -> None:
    shop.query(
        "WITH l AS (INSERT INTO ledger (telegram_id, currency, delta, reason, created_at)"
        " VALUES (%s, 'XTR', %s, 'adjustment', now()) RETURNING 1)"
        " INSERT INTO balances (telegram_id, currency, amount) VALUES (%s, 'XTR', %s) RETURNING 1",
        telegram_id, amount, telegram_id, amount,
    )  # fmt: skip


def messages(shop: Shop, telegram_id: int) -> list[str]:
    return [c.params["text"] for c in shop.telegram.calls_to("sendMessage", telegram_id)]


def expiry(shop: Shop, telegram_id: int) -> tuple[dt.datetime, str]:
    (row,) = shop.query(
        "SELECT expires_at, status FROM subscriptions WHERE telegram_id = %s", telegram_id
    )
    return row  # type: ignore[return-value]


async def test_each_reminder_once_at_ten(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    start = dt.datetime(2026, 6, 1, 9, 0, tzinfo=UTC)  # 09:00 UTC, the shop's TIMEZONE
    ends = dt.datetime(2026, 6, 5, 18, 0, tzinfo=UTC)
    async with shop_at(clock=TrioClock.starting_at(start), poll_timeout=LONG_POLL) as shop:
        subscribe(shop, ANN, ends)
        subscribe(shop, 2002, ends, blocked=True)
        await trio.sleep(5 * 86_400)  # June 1 to June 6
        sent = messages(shop, ANN)
        calls = shop.telegram.calls_to("sendMessage", ANN)
    assert [c.at for c in calls] == [
        pytest_at(start, dt.datetime(2026, 6, day, 10, tzinfo=UTC)) for day in (2, 4, 5)
    ] + [pytest_at(start, dt.datetime(2026, 6, 6, 7, tzinfo=UTC))]
    assert sent[0].startswith("⏳ Your subscription ends in 3 days")
    assert sent[1].startswith("⏳ Your subscription ends tomorrow")
    assert sent[2].startswith("⏰ Your subscription ends today")
    assert sent[3].startswith("⛔ Your subscription has ended")
    assert buttons(calls[0].params) == ["buy"]
    assert messages(shop, 2002) == []  # blocked the bot: skipped


def pytest_at(start: dt.datetime, moment: dt.datetime) -> Any:
    """The mock-clock time of a calendar moment, for comparing call times."""
    import pytest

    return pytest.approx((moment - start).total_seconds(), abs=5.0)


async def test_no_reminder_after_a_renewal(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    start = dt.datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    ends = dt.datetime(2026, 6, 4, 18, 0, tzinfo=UTC)
    async with shop_at(clock=TrioClock.starting_at(start), poll_timeout=LONG_POLL) as shop:
        subscribe(shop, ANN, ends)
        give_stars(shop, ANN, 300)
        await trio.sleep(2 * 3600)  # the 3-day reminder on June 1, 10:00
        assert len(messages(shop, ANN)) == 1
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.press("buy")
        await ann.press("plan:m1")
        await ann.press("pay:p:m1:balance:XTR")
        await ann.press(next(b for b in ann.buttons() if b.startswith("conf:")))
        assert expiry(shop, ANN)[0] == ends + 30 * DAY
        await trio.sleep(4 * 86_400)
        reminders = [t for t in messages(shop, ANN) if t.startswith(("⏳", "⏰", "⛔"))]
    assert len(reminders) == 1  # only the one before the renewal


async def test_auto_renew_with_enough_balance(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    start = dt.datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    ends = dt.datetime(2026, 6, 2, 8, 0, tzinfo=UTC)  # within 24 h of the 10:00 run
    panel = RecordingPanel()
    async with shop_at(
        clock=TrioClock.starting_at(start), poll_timeout=LONG_POLL, fulfilment=panel
    ) as shop:
        subscribe(shop, ANN, ends, auto_renew=True)
        give_stars(shop, ANN, 300)
        await trio.sleep(2 * 3600)
        assert expiry(shop, ANN) == (ends + 30 * DAY, "active")
        assert panel.state[ANN].active  # the backend hears the new expiry
        assert panel.state[ANN].expires_at == ends + 30 * DAY
        assert shop.query("SELECT amount FROM balances") == [(50,)]
        assert any("Payment received" in t for t in messages(shop, ANN))
        await trio.sleep(2 * 86_400)  # and it is not renewed again meanwhile
        assert expiry(shop, ANN) == (ends + 30 * DAY, "active")
        assert shop.query("SELECT count(*) FROM payments WHERE provider = 'balance'") == [(1,)]


async def test_auto_renew_without_enough_balance_reminds_with_top_up(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    start = dt.datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    ends = dt.datetime(2026, 6, 2, 8, 0, tzinfo=UTC)
    async with shop_at(clock=TrioClock.starting_at(start), poll_timeout=LONG_POLL) as shop:
        subscribe(shop, ANN, ends, auto_renew=True)
        give_stars(shop, ANN, 100)
        await trio.sleep(2 * 3600)
        assert expiry(shop, ANN) == (ends, "active")
        calls = shop.telegram.calls_to("sendMessage", ANN)
        failed = [c for c in calls if "Auto-renew could not take" in c.params["text"]]
        assert len(failed) == 1
        assert buttons(failed[0].params) == ["bal", "buy"]
        assert shop.query("SELECT amount FROM balances") == [(100,)]


async def test_expiry_revokes_and_notifies_once(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    panel = RecordingPanel()
    start = dt.datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
    async with shop_at(
        clock=TrioClock.starting_at(start), fulfilment=panel, poll_timeout=LONG_POLL
    ) as shop:
        subscribe(shop, ANN, dt.datetime(2026, 5, 31, 20, 0, tzinfo=UTC))
        subscribe(shop, 2002, dt.datetime(2026, 7, 1, tzinfo=UTC))
        subscribe(shop, 3003, dt.datetime(2026, 5, 31, 21, 0, tzinfo=UTC), blocked=True)
        await trio.sleep(2 * 3600)  # 07:00: the expiry job
        assert expiry(shop, ANN)[1] == "expired"
        assert expiry(shop, 2002)[1] == "active"
        assert sorted(panel.revoked) == [ANN, 3003]  # blocking the bot does not keep access
        assert messages(shop, 3003) == []  # but it does stop the messages
        panel.revoked.remove(3003)
        ended = [t for t in messages(shop, ANN) if "has ended" in t]
        assert len(ended) == 1
        # The job once more for the same customers (another instance, a catch-up): nothing.
        from shop.actors.jobs import expiry as expiry_job

        await expiry_job(shop.app, dt.datetime(2026, 6, 1, 7, tzinfo=UTC))
        await trio.sleep(60)
        assert panel.revoked == [ANN]
        assert len([t for t in messages(shop, ANN) if "has ended" in t]) == 1


async def test_cleanups_delete_only_what_is_old(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    start = dt.datetime(2026, 6, 1, 1, 0, tzinfo=UTC)
    async with shop_at(clock=TrioClock.starting_at(start), poll_timeout=LONG_POLL) as shop:
        for name, age in (("old", 91), ("recent", 89)):
            shop.query(
                "INSERT INTO provider_events (provider, event_id, body, received_at, processed_at)"
                " VALUES ('stripe', %s, 'x', %s, %s) RETURNING 1",
                name, start - age * DAY, start - age * DAY,
            )  # fmt: skip
        for telegram_id, age in ((1, 31), (2, 29)):
            shop.query(
                "INSERT INTO customers (telegram_id, first_seen, last_seen, screen,"
                " state_updated_at) VALUES (%s, %s, %s, 'hist', %s) RETURNING 1",
                telegram_id, start, start, start - age * DAY,
            )  # fmt: skip
        await trio.sleep(3 * 3600)  # 02:00 and 03:00
        assert shop.query("SELECT event_id FROM provider_events") == [("recent",)]
        screens = shop.query("SELECT telegram_id, screen FROM customers ORDER BY 1")
    assert screens == [(1, "main"), (2, "hist")]
