"""What a completed payment does beyond its own grant: spends the discount it was created
with, and rewards a referral on the referee's first paid purchase.

Called inside the fulfilling transaction (``payments._grant``), so it commits with the
grant or not at all. The referral reward is once per referee by the primary key of
``referral_rewards``: a duplicate event, a replay or a second shop finds the row taken.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..catalog import Referral
from . import ledger, notices, subscriptions
from .notices import Notice
from .pool import Connection


def spend_discount(conn: Connection, telegram_id: int, payment_id: str, now: dt.datetime) -> None:
    """The discount this payment carried is used up (a later payment pays full price)."""
    conn.execute(
        "UPDATE discounts SET used_at = %s WHERE telegram_id = %s AND payment_id = %s"
        " AND used_at IS NULL",
        (now, telegram_id, payment_id),
    )


def record_referral(conn: Connection, referee: int, referrer: int) -> bool:
    """Remember who invited a customer who has just arrived: once, never oneself, never
    by someone the shop does not know."""
    if referee == referrer:
        return False
    row = conn.execute(
        "UPDATE customers SET referred_by = %s WHERE telegram_id = %s AND referred_by IS NULL"
        " AND EXISTS (SELECT FROM customers WHERE telegram_id = %s) RETURNING 1",
        (referrer, referee, referrer),
    ).fetchone()
    return row is not None


def reward_referral(
    conn: Connection,
    referee: int,
    payment_id: str,
    referral: Referral,
    now: dt.datetime,
    holder: int,
) -> list[Notice]:
    """The referrer's reward (and the referee's welcome) for the referee's first paid
    purchase; the notices it owes. Nothing if there is no referrer or it was rewarded."""
    if not referral.rewards:
        return []
    row = conn.execute(
        "INSERT INTO referral_rewards (referee, referrer, payment_id, rewarded_at)"
        " SELECT telegram_id, referred_by, %s, %s FROM customers"
        " WHERE telegram_id = %s AND referred_by IS NOT NULL"
        " ON CONFLICT (referee) DO NOTHING RETURNING referrer",
        (payment_id, now, referee),
    ).fetchone()
    if row is None:
        return []
    referrer = int(row[0])
    owed: list[Notice] = []
    detail: dict[str, Any] = {"days": referral.days, "credit": dict(referral.credit)}
    if referral.days:
        subscriptions.add_days(conn, referrer, referral.days, None, now)
    for currency, amount in referral.credit.items():
        ledger.credit(conn, referrer, currency, amount, "referral", payment_id, now)
    notice = notices.owe_once(
        conn, referrer, "referral_reward", f"ref:{referee}", detail, now, holder
    )
    owed += [notice] if notice is not None else []
    if referral.welcome_days or referral.welcome_credit:
        if referral.welcome_days:
            subscriptions.add_days(conn, referee, referral.welcome_days, None, now)
        for currency, amount in referral.welcome_credit.items():
            ledger.credit(conn, referee, currency, amount, "bonus", payment_id, now)
        welcome = {"days": referral.welcome_days, "credit": dict(referral.welcome_credit)}
        notice = notices.owe_once(
            conn, referee, "referral_welcome", f"ref:{referee}", welcome, now, holder
        )
        owed += [notice] if notice is not None else []
    return owed


def earned(conn: Connection, referrer: int) -> tuple[int, int]:
    """(customers invited, of whom rewarded) for the "Invite friends" screen."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM customers WHERE referred_by = %s),"
        " (SELECT count(*) FROM referral_rewards WHERE referrer = %s)",
        (referrer, referrer),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
