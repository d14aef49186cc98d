"""The hourly sweep's Telegram Stars work: what Telegram charged that we never heard of,
and duplicate charges whose refund has not gone through yet.

Telegram keeps an undelivered update for 24 hours only, so a ``successful_payment`` can
be lost (the bot down for a day, a bad deploy). The bot's Stars transactions are kept
for good: the sweep reads them with ``getStarTransactions`` from a stored cursor
(chronological; the cursor counts the transactions looked at) and hands each incoming
charge and each refund to the payment's actor, exactly as the update would have been:
the actor's charge-id checks make a charge seen twice (update and sweep) count once.
A charge whose payload names nothing of ours is alerted by the actor, once, because the
cursor moves past it.
"""

from __future__ import annotations

import logging
from typing import Any

from ..app import App
from ..errors import TelegramError
from ..money import STARS
from ..store import payments, stars
from ..telegram.outbox import Lane
from .payment import KIND as PAYMENT
from .payment import RetryRefund, StarsPaid, StarsRefunded

log = logging.getLogger(__name__)

PAGE = 100  # the most getStarTransactions returns at once


async def reconcile_stars(app: App) -> int:
    """Read the Stars transactions not looked at yet; returns how many were read."""
    bot_id = _bot_id(app)
    seen = await app.store.run(stars.transactions_seen, bot_id)
    read = 0
    while True:
        try:
            page = await app.outbox.request(
                "getStarTransactions", {"offset": seen, "limit": PAGE}, lane=Lane.ANSWER
            )
        except TelegramError as exc:
            log.warning("cannot read Stars transactions (%s); next sweep tries again", exc)
            return read
        transactions = page.get("transactions", []) if isinstance(page, dict) else []
        for transaction in transactions:
            await _hand_over(app, transaction)
        if transactions:
            seen += len(transactions)
            read += len(transactions)
            await app.store.run(stars.saw_transactions, bot_id, seen)
        if len(transactions) < PAGE:
            return read


async def _hand_over(app: App, transaction: dict[str, Any]) -> None:
    charge_id = str(transaction.get("id") or "")
    partner = transaction.get("source") or transaction.get("receiver") or {}
    if not charge_id or partner.get("type") != "user":
        return  # withdrawals, ads, Fragment: not a customer's payment
    if partner.get("transaction_type", "invoice_payment") != "invoice_payment":
        return
    customer = int((partner.get("user") or {}).get("id") or 0)
    payload = partner.get("invoice_payload")
    if "source" in transaction:
        if not payload:
            log.error("ALERT: Stars charge %s from %s names no invoice", charge_id, customer)
            return
        paid = StarsPaid(
            customer,
            charge_id,
            int(transaction.get("amount") or 0),
            STARS,
            recurring=bool(partner.get("subscription_period")),
        )
        await app.actors.ask(PAYMENT, str(payload), paid)
        return
    if not payload:  # a refund names the charge; find whose it was
        refunded_payment = await app.store.run(payments.by_charge, charge_id)
        if refunded_payment is None:
            log.error("ALERT: refund of Stars charge %s that is not ours", charge_id)
            return
        payload = refunded_payment.parent_id or refunded_payment.id
    await app.actors.ask(PAYMENT, str(payload), StarsRefunded(customer, charge_id))


async def retry_refunds(app: App) -> int:
    """Try again to refund the duplicate charges that are due; returns how many."""
    due = await app.store.run(stars.due_refunds, app.clock.now(), 100)
    for payment_id in due:
        await app.actors.ask(PAYMENT, payment_id, RetryRefund())
    return len(due)


def _bot_id(app: App) -> int:
    """The bot's id, which begins its token: the cursor is the bot's, whoever runs it."""
    token = app.config.telegram_token or ""
    prefix = token.partition(":")[0]
    return int(prefix) if prefix.isascii() and prefix.isdecimal() else 0
