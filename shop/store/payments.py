"""Payments and the one transaction that fulfils each.

Every state change is a conditional ``UPDATE ... WHERE status IN (...) RETURNING``:
when two events race (two processes, a webhook and a poll), exactly one statement finds
the row in the state it expects and the other finds nothing and changes nothing. The
grant a payment pays for is written in the same transaction, and ``grants`` has the
payment id as primary key: a second grant for one payment cannot exist.

States: pending -> paid -> completed; pending -> canceled | expired; pending | paid |
expired | canceled | problem | completed -> refunded (a refund that overtakes the success
wins; only a completed payment had something to reverse); pending -> problem (paid short
or in another currency). A success reported for an expired, canceled or problem payment
is still honoured: the customer's money was taken. A notice to the customer about the
change is owed in the same transaction (``store.notices``).
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from ..catalog import Referral
from . import codes, ledger, notices, rewards, subscriptions
from .notices import Notice
from .pool import Connection
from .subscriptions import SubscriptionRow

#: States from which money arriving completes the payment.
PAYABLE = ("pending", "paid", "expired", "canceled", "problem")
#: States from which a refund moves a payment to ``refunded``.
REFUNDABLE = (*PAYABLE, "completed")


@attrs.frozen
class PaymentRow:
    id: str
    telegram_id: int
    provider: str
    product_kind: str
    product_id: str
    title: str
    days: int
    credit: dict[str, int]
    amount: int
    currency: str
    recurring: bool
    parent_id: str | None
    status: str
    created_at: dt.datetime
    expires_at: dt.datetime
    completed_at: dt.datetime | None
    telegram_payment_charge_id: str | None
    provider_payment_id: str | None
    idempotency_key: str
    checkout_url: str | None
    checks: int
    discount_percent: int | None = None  # a promo's discount, applied to ``amount``
    gift: bool = False  # a plan bought for someone else: completing it makes a gift code


_COLUMNS = (
    "id, telegram_id, provider, product_kind, product_id, title, days, credit, amount,"
    " currency, recurring, parent_id, status, created_at, expires_at, completed_at,"
    " telegram_payment_charge_id, provider_payment_id, idempotency_key, checkout_url, checks,"
    " discount_percent, gift"
)


@attrs.frozen
class NewPayment:
    telegram_id: int
    provider: str
    product_kind: str  # plan | package
    product_id: str
    title: str
    days: int
    credit: Mapping[str, int]
    amount: int
    currency: str
    recurring: bool = False
    discount_percent: int | None = None
    gift: bool = False


@attrs.frozen
class Grant:
    """What a fulfilled payment gave, and the confirmation owed for it."""

    payment: PaymentRow
    subscription: SubscriptionRow | None  # after the grant (plans)
    balances: dict[str, int]  # after the grant (packages)
    notice: Notice | None  # the confirmation, leased to the caller to deliver
    #: other notices the grant owed (a referrer's reward), leased to the caller too
    more: tuple[Notice, ...] = ()


def new_reference() -> str:
    """An opaque payment reference: 16 URL-safe characters, fit for invoice payloads."""
    return secrets.token_urlsafe(12)


def create(
    conn: Connection, new: NewPayment, now: dt.datetime, payable_for: dt.timedelta
) -> PaymentRow:
    """Store a pending payment (before any invoice or provider call names it)."""
    with conn.cursor(row_factory=class_row(PaymentRow)) as cur:
        cur.execute(
            "INSERT INTO payments (id, telegram_id, provider, product_kind, product_id, title,"
            " days, credit, amount, currency, recurring, status, created_at, updated_at,"
            " expires_at, idempotency_key, discount_percent, gift) VALUES (%s, %s, %s, %s, %s,"
            f" %s, %s, %s, %s, %s, %s, 'pending', %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (
                new_reference(),
                new.telegram_id,
                new.provider,
                new.product_kind,
                new.product_id,
                new.title,
                new.days,
                Jsonb(dict(new.credit)),
                new.amount,
                new.currency,
                new.recurring,
                now,
                now,
                now + payable_for,
                str(uuid.uuid4()),
                new.discount_percent,
                new.gift,
            ),
        )
        row = cur.fetchone()
    assert row is not None
    return row


def load(conn: Connection, payment_id: str) -> PaymentRow | None:
    with conn.cursor(row_factory=class_row(PaymentRow)) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM payments WHERE id = %s", (payment_id,))
        return cur.fetchone()


def load_owned(conn: Connection, payment_id: str, telegram_id: int) -> PaymentRow | None:
    """The payment, only if it belongs to ``telegram_id`` (callback data is customer input)."""
    with conn.cursor(row_factory=class_row(PaymentRow)) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM payments WHERE id = %s AND telegram_id = %s",
            (payment_id, telegram_id),
        )
        return cur.fetchone()


def by_charge(conn: Connection, charge_id: str) -> PaymentRow | None:
    with conn.cursor(row_factory=class_row(PaymentRow)) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM payments WHERE telegram_payment_charge_id = %s",
            (charge_id,),
        )
        return cur.fetchone()


@attrs.frozen
class Charge:
    """The money a provider reports for a payment."""

    amount: int
    currency: str
    telegram_charge_id: str | None = None
    provider_payment_id: str | None = None


def fulfil(
    conn: Connection,
    payment_id: str,
    charge: Charge,
    now: dt.datetime,
    holder: int,
    referral: Referral | None = None,
) -> Grant | None:
    """Complete a payable payment and grant what it pays for; None if it was not payable.

    Call inside one transaction (``Store.run``): the state change and the grant commit
    together or not at all. ``referral``: the catalog's rewards, when money came in from
    outside (a purchase paid from the balance earns no referral reward).
    """
    with conn.cursor(row_factory=class_row(PaymentRow)) as cur:
        cur.execute(
            "UPDATE payments SET status = 'completed', updated_at = %s, completed_at = %s,"
            " next_check_at = NULL,"
            " telegram_payment_charge_id = COALESCE(%s, telegram_payment_charge_id),"
            " provider_payment_id = COALESCE(provider_payment_id, %s),"
            " paid_amount = %s, paid_currency = %s"
            f" WHERE id = %s AND status = ANY(%s) RETURNING {_COLUMNS}",
            (
                now,
                now,
                charge.telegram_charge_id,
                charge.provider_payment_id,
                charge.amount,
                charge.currency,
                payment_id,
                list(PAYABLE),
            ),
        )
        payment = cur.fetchone()
    if payment is None:
        return None
    grant = _grant(conn, payment, now, holder)
    if referral is not None and payment.provider != "balance":
        more = rewards.reward_referral(conn, payment.telegram_id, payment.id, referral, now, holder)
        grant = attrs.evolve(grant, more=tuple(more))
    return grant


def fulfil_renewal(
    conn: Connection, parent: PaymentRow, charge: Charge, now: dt.datetime, holder: int
) -> Grant | None:
    """A Stars subscription renewed: one new completed payment per charge id, granted once."""
    with conn.cursor(row_factory=class_row(PaymentRow)) as cur:
        cur.execute(
            "INSERT INTO payments (id, telegram_id, provider, product_kind, product_id, title,"
            " days, credit, amount, currency, recurring, parent_id, status, created_at,"
            " updated_at, expires_at, completed_at, telegram_payment_charge_id, paid_amount,"
            " paid_currency, idempotency_key)"
            " SELECT %s, telegram_id, provider, product_kind, product_id, title, days, credit,"
            " amount, currency, TRUE, id, 'completed', %s, %s, %s, %s, %s, %s, %s, %s"
            " FROM payments WHERE id = %s"
            " ON CONFLICT (telegram_payment_charge_id) DO NOTHING"
            f" RETURNING {_COLUMNS}",
            (
                new_reference(),
                now,
                now,
                now,
                now,
                charge.telegram_charge_id,
                charge.amount,
                charge.currency,
                str(uuid.uuid4()),
                parent.id,
            ),
        )
        payment = cur.fetchone()
    if payment is None:
        return None
    return _grant(conn, payment, now, holder)


def _grant(conn: Connection, payment: PaymentRow, now: dt.datetime, holder: int) -> Grant:
    subscription, gift = None, None
    if payment.gift:  # for someone else: a code to pass on, redeemed once (store.codes)
        gift = codes.create_gift(
            conn, payment.id, payment.telegram_id, payment.product_id, payment.days, now
        )
    elif payment.product_kind == "plan":
        subscription = subscriptions.extend(
            conn, payment.telegram_id, payment.days, payment.product_id, now
        )
    if payment.discount_percent:
        rewards.spend_discount(conn, payment.telegram_id, payment.id, now)
    for currency, amount in payment.credit.items():
        ledger.credit(conn, payment.telegram_id, currency, amount, "topup", payment.id, now)
    # The grant row before the notice: its primary key backs up "at most once".
    conn.execute(
        "INSERT INTO grants (payment_id, telegram_id, days, granted_at, expires_after)"
        " VALUES (%s, %s, %s, %s, %s)",
        (
            payment.id,
            payment.telegram_id,
            payment.days,
            now,
            subscription.expires_at if subscription else None,
        ),
    )
    balances = ledger.balances(conn, payment.telegram_id) if payment.credit else {}
    detail = {
        "title": payment.title,
        "expires_at": _iso(subscription.expires_at) if subscription else None,
        "lifetime": bool(subscription and subscription.lifetime),
        "credited": dict(payment.credit),
        "balances": balances,
        "gift_code": gift,
        "days": payment.days,
    }
    notice = notices.owe_about_payment(
        conn, payment.telegram_id, "paid", payment.id, detail, now, holder
    )
    return Grant(payment, subscription, balances, notice)


def pay_from_balance(
    conn: Connection, payment_id: str, now: dt.datetime, holder: int
) -> Grant | None:
    """Claim, grant and debit, in one transaction; None if the payment is not payable.

    The claim comes first, so of two confirmations racing (two taps, two processes) one
    finds the payment no longer pending. Raises InsufficientBalance when the balance is
    short, which rolls the claim and the grant back with it.
    """
    payment = load(conn, payment_id)
    if payment is None or payment.provider != "balance":
        return None
    if payment.status != "pending" or payment.expires_at <= now:
        return None
    grant = fulfil(conn, payment_id, Charge(payment.amount, payment.currency), now, holder)
    if grant is not None:
        ledger.debit(
            conn, payment.telegram_id, payment.currency, payment.amount, "purchase", payment.id, now
        )
    return grant


def close(conn: Connection, payment_id: str, status: str, now: dt.datetime) -> bool:
    """pending -> canceled | expired (no money was taken); False if it was not pending."""
    assert status in ("canceled", "expired")
    row = conn.execute(
        "UPDATE payments SET status = %s, updated_at = %s, next_check_at = NULL"
        " WHERE id = %s AND status = 'pending' RETURNING 1",
        (status, now, payment_id),
    ).fetchone()
    return row is not None


def history(
    conn: Connection, telegram_id: int, since: dt.datetime, offset: int, limit: int
) -> tuple[list[PaymentRow], int]:
    """Completed and refunded payments since ``since``, newest first; and how many in all."""
    where = "telegram_id = %s AND created_at >= %s AND status IN ('completed', 'refunded')"
    with conn.cursor(row_factory=class_row(PaymentRow)) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM payments WHERE {where}"
            " ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
            (telegram_id, since, limit, offset),
        )
        rows = cur.fetchall()
    total = conn.execute(
        f"SELECT count(*) FROM payments WHERE {where}", (telegram_id, since)
    ).fetchone()
    return rows, int(total[0]) if total else 0


def recent(conn: Connection, telegram_id: int, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, provider, status, amount, currency, created_at FROM payments"
        " WHERE telegram_id = %s ORDER BY created_at DESC, id LIMIT %s",
        (telegram_id, limit),
    ).fetchall()
    keys = ("id", "provider", "status", "amount", "currency", "created_at")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
