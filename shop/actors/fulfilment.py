"""The fulfilment actor: makes the outside world match every customer's subscription.

Each change of a subscription (grant, renewal, refund, expiry, an operator's hand) marks
the customer due in ``fulfilment_queue`` within the same transaction (a trigger, see
``store.fulfilment``). This actor claims due customers, a batch at a time, and hands
each one's subscription *as it is now* to the backend as an absolute state, several
customers at once and each customer once per batch (so one customer's changes are
applied in order). A failure is retried with growing waits for as long as it takes: a
panel that is down for days delays access, never loses it, and never touches the money.
After :data:`ALERT_AFTER` failures in a row an operator is alerted, once; meanwhile the
customer's My subscription says their access is being set up.

Woken by ``app.fulfilment_due`` (poked after every change the shop makes) and at the
next retry; with nothing due it sleeps without a database statement.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import NoReturn, Protocol

import trio

from ..app import App
from ..catalog import Catalog
from ..clock import WallClock
from ..errors import FulfilmentFailed, StoreUnavailable
from ..fulfilment import Access, Adoptable, Fulfilment
from ..store import Store
from ..store import fulfilment as queue
from ..store.fulfilment import Wanted

log = logging.getLogger(__name__)

BATCH = 100
#: Customers applied at the same time (a panel is one server; be gentle with it).
CONCURRENCY = 8
#: Failed attempts in a row before an operator is told.
ALERT_AFTER = 5


async def run_fulfilment(app: App) -> NoReturn:
    while True:
        try:
            await apply_due(app)
            due, waiting = await app.store.run(queue.outlook)
            app.metrics.fulfilment_backlog.set(waiting)
        except* StoreUnavailable as failed:  # from apply_due's nursery too: a group
            reason = failed.exceptions[0]
            log.warning("fulfilment: database unreachable (%s); retrying in 30 s", reason)
            due = app.clock.now() + dt.timedelta(seconds=30)
        delay = math.inf if due is None else (due - app.clock.now()).total_seconds()
        # At least a second: a customer claimed by another instance stays due meanwhile.
        await app.fulfilment_due.sleep(max(delay, 1.0))


async def apply_due(app: App) -> int:
    """Apply every customer due now; returns how many were tried."""
    tried = 0
    limiter = trio.CapacityLimiter(CONCURRENCY)
    while batch := await app.store.run(queue.claim_due, app.clock.now(), BATCH, app.instance):
        async with trio.open_nursery() as nursery:
            for wanted in batch:
                nursery.start_soon(_apply, app, wanted, limiter)
        tried += len(batch)
        if len(batch) < BATCH:
            break
    return tried


async def sync_everyone(
    store: Store,
    backend: Fulfilment,
    catalog: Catalog,
    clock: WallClock,
    *,
    dry_run: bool,
    report: Callable[[str], None],
) -> int:
    """Compare every customer's subscription with the outside world and repair what
    differs (``shop panel sync``, and the hourly sweep); returns how many differed.

    A page of customers at a time, :data:`CONCURRENCY` of them checked at once (the
    panel answers one call in milliseconds; one after another, a large shop's sync
    would take most of the hour)."""
    differed: list[int] = []
    limiter = trio.CapacityLimiter(CONCURRENCY)

    async def check(wanted: Wanted) -> None:
        access = _access(catalog, wanted)
        async with limiter:
            try:
                found = await backend.drift(access)
                if found and not dry_run:
                    await backend.apply(access)
            except FulfilmentFailed as exc:
                report(f"{wanted.telegram_id}: not checked: {exc.reason}")
                return
        if found:
            differed.append(wanted.telegram_id)
            report(f"{wanted.telegram_id}: " + "; ".join(found))

    after = 0
    while rows := await store.run(queue.everyone, clock.now(), after, 200):
        async with trio.open_nursery() as nursery:
            for wanted in rows:
                nursery.start_soon(check, wanted)
        after = rows[-1].telegram_id
    return len(differed)


def _access(catalog: Catalog, wanted: Wanted) -> Access:
    return Access(
        telegram_id=wanted.telegram_id,
        active=bool(wanted.active),
        expires_at=wanted.expires_at,
        lifetime=wanted.lifetime,
        limits=catalog.limits(wanted.plan_id),
        grants=wanted.period,
    )


async def _apply(app: App, wanted: Wanted, limiter: trio.CapacityLimiter) -> None:
    access = _access(app.catalog, wanted)
    async with limiter:
        try:
            await app.fulfilment.apply(access)
        except FulfilmentFailed as exc:
            error = exc.reason
        except Exception as exc:  # a backend bug must not stop everyone else's access
            log.exception("fulfilment of %s failed", wanted.telegram_id)
            error = f"{type(exc).__name__}: {exc}"
        else:
            app.maintenance.backend_worked()
            await app.store.run(queue.applied, wanted, app.clock.now())
            return
    app.maintenance.backend_failed()  # failing long enough, no new purchases meanwhile
    alert = not wanted.alerted and wanted.attempts + 1 >= ALERT_AFTER
    if alert:
        log.error(
            "ALERT: access of %s not applied by %s after %d attempts (failing since %s): %s",
            wanted.telegram_id,
            app.fulfilment.name,
            wanted.attempts + 1,
            (wanted.failing_since or app.clock.now()).isoformat(),
            error,
            extra={"telegram_id": wanted.telegram_id},
        )
    else:
        log.warning("access of %s not applied yet: %s", wanted.telegram_id, error)
    await app.store.run(queue.failed, wanted, error, app.clock.now(), alert)


class Importable(Protocol):
    name: str

    def adoptable(self) -> AsyncIterator[Adoptable]: ...


async def import_accounts(
    store: Store, panel: Importable, clock: WallClock, *, report: Callable[[str], None]
) -> int:
    """Adopt the panel's accounts that carry a Telegram id as customers with their expiry
    (``shop panel import``), so a shop moving from another bot loses no one; returns how
    many were adopted. Customers the shop already has are left as they are."""
    adopted = 0
    async for account in panel.adoptable():
        if account.telegram_id is None:
            report(f"{account.label}: no Telegram id, skipped")
            continue
        now = clock.now()
        active = account.usable and account.expires_at is not None and account.expires_at > now
        if await store.run(
            queue.adopt,
            account.telegram_id,
            panel.name,
            account.account,
            account.expires_at,
            active,
            now,
        ):
            adopted += 1
            until = account.expires_at.isoformat() if account.expires_at else "?"
            state = "active" if active else "ended"
            report(f"{account.telegram_id}: adopted {account.label} ({state}, until {until})")
        else:
            report(f"{account.telegram_id}: already a customer, left as is")
    return adopted
