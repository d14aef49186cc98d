"""The scheduled jobs the timer runs.

- ``expiry`` (07:00): one statement marks every ended subscription expired and owes its
  customer an "expired" notice; delivering it revokes access (idempotently) and tells
  the customer once, in the outbox's bulk lane.
- ``reminders`` (10:00): auto-renewal from balance for customers who turned it on and
  whose subscription ends within 24 h; then one statement owes the 3-day, 1-day and
  same-day reminders (once per subscription period, never to a customer who blocked the
  bot); then delivery.
- ``sweep`` (hourly): stale pending payments expired or re-checked; leftover notices.
- ``cleanup_state`` (02:00) and ``cleanup_events`` (03:00).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from ..app import App
from ..config import Config
from ..store import customers, ledger, notices, payments, upkeep
from ..store.notices import Notice
from ..store.payments import NewPayment
from ..telegram.formatting import money, when
from ..telegram.keyboards import button, keyboard
from ..telegram.outbox import Lane
from ..telegram.types import to_json
from .payment import KIND as PAYMENT
from .payment import PayFromBalance
from .shopping import PAYABLE_FOR
from .timer import Job

log = logging.getLogger(__name__)

NOTICE_BATCH = 200


def default_jobs(config: Config) -> list[Job]:
    return [
        Job("expiry", config.schedule_expiry, expiry),
        Job("reminders", config.schedule_reminders, reminders),
        Job("sweep", config.schedule_sweep, sweep),
        Job("cleanup_state", config.schedule_cleanup_state, cleanup_state),
        Job("cleanup_events", config.schedule_cleanup_events, cleanup_events),
    ]


async def expiry(app: App, slot: dt.datetime) -> str:
    ended = await app.store.run(notices.expire_ended, app.clock.now())
    delivered = await deliver_notices(app)
    return f"{ended} expired; {delivered} notices delivered"


async def reminders(app: App, slot: dt.datetime) -> str:
    renewed, failed = await auto_renew(app)
    owed = await app.store.run(notices.owe_reminders, app.clock.now(), app.config.timezone.key)
    delivered = await deliver_notices(app)
    return f"{renewed} renewed, {failed} could not be; {owed} reminders; {delivered} delivered"


async def sweep(app: App, slot: dt.datetime) -> str:
    now = app.clock.now()
    expired = await app.store.run(upkeep.expire_stale_payments, now)
    rechecks = await app.store.run(upkeep.recheck_overdue, now)
    if rechecks:
        app.checks_due.poke()
    delivered = await deliver_notices(app)
    return f"{expired} payments expired, {rechecks} re-checked; {delivered} notices delivered"


async def cleanup_state(app: App, slot: dt.datetime) -> str:
    forgotten = await app.store.run(upkeep.forget_old_state, app.clock.now())
    return f"{forgotten} conversations reset"


async def cleanup_events(app: App, slot: dt.datetime) -> str:
    keep = dt.timedelta(days=app.config.payment_event_retention_days)
    deleted = await app.store.run(upkeep.delete_old_events, app.clock.now() - keep)
    return f"{deleted} provider events deleted"


# -- auto-renewal ------------------------------------------------------------------------


async def auto_renew(app: App) -> tuple[int, int]:
    """Renew from balance, exactly like a balance purchase; owe a notice where it can't."""
    now = app.clock.now()
    renewed = failed = 0
    for due in await app.store.run(notices.claim_renewals, now):
        try:
            if await _renew(app, due.telegram_id, due.plan_id):
                renewed += 1
                continue
        except Exception:
            # The others are claimed too: one failure must not cost them their renewal.
            log.exception("auto-renewal of %s failed", due.telegram_id)
        failed += 1
        plan = app.catalog.plan(due.plan_id) if due.plan_id else None
        detail = {"plan": plan.id} if plan else {}
        await app.store.run(notices.owe, due.telegram_id, "renew_failed", due.period, now, detail)
    return renewed, failed


async def _renew(app: App, telegram_id: int, plan_id: str | None) -> bool:
    plan = app.catalog.plan(plan_id) if plan_id else None
    if plan is None:
        return False
    balances = await app.store.run(ledger.balances, telegram_id)
    affordable = [(c, p) for c, p in plan.prices.items() if balances.get(c, 0) >= p]
    if not affordable:
        return False
    currency, price = affordable[0]
    customer = await app.store.run(customers.load, telegram_id)
    language = customer.language if customer else "en"
    new = NewPayment(
        telegram_id,
        "balance",
        "plan",
        plan.id,
        plan.title(language),
        plan.days,
        {},
        price,
        currency,
    )
    payment = await app.store.run(payments.create, new, app.clock.now(), PAYABLE_FOR)
    error = await app.actors.ask(PAYMENT, payment.id, PayFromBalance(telegram_id))
    if error is not None:
        log.info("auto-renewal of %s not done: %s", telegram_id, error)
    return error is None


# -- delivering notices ------------------------------------------------------------------


async def deliver_notices(app: App) -> int:
    """Hand every owed notice to the outbox (bulk lane), oldest first; returns how many."""
    delivered = 0
    while batch := await app.store.run(notices.claim_unsent, app.clock.now(), NOTICE_BATCH):
        for notice in batch:
            if notice.stale:
                continue  # renewed (or revived) meanwhile: nothing to do or say
            if notice.kind == "expired":
                await app.fulfilment.revoke(notice.telegram_id)
            if notice.blocked:
                continue  # they blocked the bot: access follows the rules, messages don't
            message = _message(app, notice)
            if message is not None:
                await app.outbox.send("sendMessage", message, lane=Lane.BULK)
                delivered += 1
        await app.store.run(notices.mark_sent, batch, app.clock.now())
    return delivered


def _message(app: App, notice: Notice) -> dict[str, Any] | None:
    t, lang, zone = app.texts, notice.language, app.config.timezone
    renew = [button(t(lang, "btn.renew"), "buy")]
    expires = notice.expires_at
    if notice.kind == "expired":
        text, rows = t(lang, "notice.expired"), [renew]
    elif notice.kind.startswith("remind_") and expires is not None:
        today = app.clock.now().astimezone(zone).date()
        days = (expires.astimezone(zone).date() - today).days
        key = {0: "notice.today", 1: "notice.tomorrow"}.get(days, "notice.days")
        text, rows = t(lang, key, days=days, date=when(expires, zone, lang)), [renew]
    elif notice.kind == "renew_failed" and expires is not None:
        plan = app.catalog.plan(str(notice.detail.get("plan", "")))
        price = " / ".join(money(a, c, lang) for c, a in plan.prices.items()) if plan else ""
        text = t(lang, "notice.renew_failed", date=when(expires, zone, lang), price=price)
        rows = [[button(t(lang, "btn.balance"), "bal")], renew]
    else:
        return None
    return {
        "chat_id": notice.telegram_id,
        "text": text,
        "parse_mode": "HTML",
        "reply_markup": to_json(keyboard(*rows)),
    }
