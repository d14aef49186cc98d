"""The reconciler: makes each pending payment's actor ask its provider when a check is due.

A missed webhook must not cost a customer their purchase: every pending payment with an
external provider is checked about 1, 2, 5, 15 and 60 minutes after it was opened, then
hourly until it stops being payable (``store.checkouts.check_times``). The schedule lives
in the database (``payments.next_check_at``), so it survives restarts, and a due check
is claimed with ``SKIP LOCKED``, so two instances do not both take it. With nothing
pending the reconciler sleeps without touching the database.

At start it also hands over provider events that were stored but never handled (the
process stopped between answering the webhook and handling it).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import NoReturn

from ..app import App
from ..errors import StoreUnavailable
from ..payments.base import MalformedWebhook
from ..store import checkouts, events
from .payment import KIND as PAYMENT
from .payment import ProviderEventReceived, Reconcile

log = logging.getLogger(__name__)

BATCH = 100
#: Events older than this are left to an operator rather than replayed at start.
REPLAY_WINDOW = dt.timedelta(days=7)


async def run_reconciler(app: App) -> NoReturn:
    await _replay_stored_events(app)
    while True:
        try:
            delay = await _hand_out_due_checks(app)
        except StoreUnavailable as exc:
            log.warning("reconciler: database unreachable (%s); retrying in 30 s", exc)
            delay = 30.0
        await app.checks_due.sleep(delay)


async def _hand_out_due_checks(app: App) -> float:
    """Tell every payment whose check is due; return the seconds until the next one."""
    while True:
        due = await app.store.run(checkouts.claim_due_checks, app.clock.now(), BATCH)
        for payment_id in due:
            await app.actors.tell(PAYMENT, payment_id, Reconcile())
        if len(due) < BATCH:
            break
    upcoming = await app.store.run(checkouts.next_check)
    if upcoming is None:
        return math.inf
    return max(0.0, (upcoming - app.clock.now()).total_seconds())


async def _replay_stored_events(app: App) -> None:
    since = app.clock.now() - REPLAY_WINDOW
    try:
        stored = await app.store.run(events.unprocessed, since)
    except StoreUnavailable as exc:
        log.warning("cannot look for unhandled provider events: %s", exc)
        return
    for row, provider, reference, body in stored:
        gateway = app.gateways.get(provider)
        if gateway is None or reference is None:
            continue
        try:
            event = gateway.provider.parse(body)
        except MalformedWebhook:
            continue
        log.info("handing over stored %s event %s again", provider, event.event_id)
        await app.actors.tell(PAYMENT, reference, ProviderEventReceived(row, event))
