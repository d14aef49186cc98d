"""The scheduled jobs the timer runs.

- ``expiry`` (07:00): one statement marks every ended subscription expired and owes its
  customer an "expired" notice (the fulfilment queue revokes the access, see
  ``actors.fulfilment``); the notice tells the customer once, in the bulk lane.
- ``reminders`` (10:00): auto-renewal from balance for customers who turned it on and
  whose subscription ends within 24 h; then one statement owes the 3-day, 1-day and
  same-day reminders (once per subscription period, never to a customer who blocked the
  bot); then delivery.
- ``sweep`` (hourly): Telegram Stars transactions read for charges and refunds never
  heard of (``actors.stars``), duplicate charges' refunds retried; stale pending
  payments expired or re-checked; leftover notices.
- ``cleanup_state`` (02:00) and ``cleanup_events`` (03:00).
- ``backup`` (only when ``SCHEDULE_BACKUP`` is set): ``shop backup``, see ``shop.backup``;
  a failure is logged as an ``ALERT``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import NoReturn

from ..app import App
from ..backup import backup_job
from ..config import Config
from ..errors import StoreUnavailable
from ..store import customers, ledger, notices, payments, upkeep
from ..store.payments import NewPayment
from ..telegram.outbox import Lane
from .fulfilment import sync_everyone
from .payment import KIND as PAYMENT
from .payment import PayFromBalance
from .shopping import PAYABLE_FOR
from .stars import reconcile_stars, retry_refunds
from .timer import Job

log = logging.getLogger(__name__)

NOTICE_BATCH = 200


def default_jobs(config: Config) -> list[Job]:
    jobs = [
        Job("expiry", config.schedule_expiry, expiry),
        Job("reminders", config.schedule_reminders, reminders),
        Job("sweep", config.schedule_sweep, sweep),
        Job("cleanup_state", config.schedule_cleanup_state, cleanup_state),
        Job("cleanup_events", config.schedule_cleanup_events, cleanup_events),
    ]
    if config.schedule_backup is not None:
        jobs.append(Job("backup", config.schedule_backup, backup_job))
    return jobs


async def expiry(app: App, slot: dt.datetime) -> str:
    ended = await app.store.run(notices.expire_ended, app.clock.now())
    if ended:
        app.fulfilment_due.poke()  # each ended subscription is due to be revoked
    delivered = await deliver_notices(app)
    return f"{ended} expired; {delivered} notices delivered"


async def reminders(app: App, slot: dt.datetime) -> str:
    renewed, failed = await auto_renew(app)
    owed = await app.store.run(notices.owe_reminders, app.clock.now(), app.config.timezone.key)
    delivered = await deliver_notices(app)
    return f"{renewed} renewed, {failed} could not be; {owed} reminders; {delivered} delivered"


async def sweep(app: App, slot: dt.datetime) -> str:
    # Stars first: a charge Telegram took must complete its payment before the payment
    # could be expired below for want of one.
    read = await reconcile_stars(app)
    refunds = await retry_refunds(app)
    now = app.clock.now()
    expired = await app.store.run(upkeep.expire_stale_payments, now)
    rechecks = await app.store.run(upkeep.recheck_overdue, now)
    if rechecks:
        app.checks_due.poke()
    app.broadcaster.due.poke()  # resume running broadcasts: a dead instance's rows, retries
    delivered = await deliver_notices(app)
    repaired = 0
    if app.fulfilment.name != "none":
        repaired = await sync_everyone(
            app.store, app.fulfilment, app.catalog, app.clock, dry_run=False, report=_drift
        )
    return (
        f"{read} Stars transactions read, {refunds} refunds retried; {expired} payments"
        f" expired, {rechecks} re-checked; {delivered} notices delivered;"
        f" {repaired} accounts repaired"
    )


def _drift(line: str) -> None:
    log.warning("fulfilment drift repaired: %s", line)


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
    """Deliver every notice that is owed and free, oldest first; returns how many were sent.

    A batch is leased, handed to the outbox (bulk lane) and waited for until Telegram has
    settled it, before the next batch is leased: so a lease never runs out while its
    notices are still queued here.
    """
    delivered = 0
    while batch := await app.store.run(
        notices.claim_unsent, app.clock.now(), NOTICE_BATCH, app.instance
    ):
        delivered += await app.courier.deliver(batch, Lane.BULK)
        await app.courier.quiet()
    return delivered


async def run_notice_deliverer(app: App) -> NoReturn:
    """Deliver leftover notices: at start (those a dead instance held), then whenever a
    lease runs out or a delivery failed. Sleeps without a statement while none is owed."""
    while True:
        try:
            await deliver_notices(app)
            free_at = await app.store.run(notices.next_free, app.clock.now())
        except StoreUnavailable as exc:
            log.warning("notices: database unreachable (%s); retrying in 30 s", exc)
            free_at = app.clock.now() + dt.timedelta(seconds=30)
        delay = math.inf if free_at is None else (free_at - app.clock.now()).total_seconds()
        await app.notices_due.sleep(max(delay, 1.0))
