"""What an operator does to a customer: days, lifetime, balance, ban. One transaction each.

Every action claims its audit key first (``store.audit``), so a double tap or a replayed
update does it once; then it reads what it is about to change (locked), changes it with
the same SQL guards as the rest of the shop (expiry arithmetic in SQL, a debit that
cannot overdraw) and writes before and after to the audit row. A change of access bumps
the fulfilment queue: the subscription trigger does it for days and lifetime, and a ban
does it by hand, so the backend revokes (or restores) access too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
from psycopg.rows import class_row

from . import audit, fulfilment, ledger, subscriptions
from .audit import Act
from .payments import _COLUMNS as PAYMENT_COLUMNS
from .payments import PaymentRow
from .pool import Connection
from .subscriptions import SubscriptionRow


@attrs.frozen
class Profile:
    telegram_id: int
    first_name: str
    username: str | None
    language: str
    blocked: bool
    banned: bool
    first_seen: dt.datetime
    last_seen: dt.datetime
    subscription: SubscriptionRow | None
    balances: dict[str, int]
    payments: list[PaymentRow]


@attrs.frozen
class Done:
    """An action that happened: what it found and what it left."""

    before: Any
    after: Any


def find(conn: Connection, query: str) -> int | None:
    """A customer by Telegram id, or by ``@username`` (any case); None if unknown."""
    query = query.strip()
    if query.lstrip("-").isdigit():
        row = conn.execute(
            "SELECT telegram_id FROM customers WHERE telegram_id = %s", (int(query),)
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT telegram_id FROM customers WHERE lower(username) = lower(%s)"
            " ORDER BY last_seen DESC LIMIT 1",
            (query.removeprefix("@"),),
        ).fetchone()
    return None if row is None else int(row[0])


def profile(conn: Connection, telegram_id: int, payments: int = 5) -> Profile | None:
    row = conn.execute(
        "SELECT first_name, username, language, blocked, banned, first_seen, last_seen"
        " FROM customers WHERE telegram_id = %s",
        (telegram_id,),
    ).fetchone()
    if row is None:
        return None
    with conn.cursor(row_factory=class_row(PaymentRow)) as cur:
        cur.execute(
            f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE telegram_id = %s"
            " AND status <> 'pending' ORDER BY created_at DESC LIMIT %s",
            (telegram_id, payments),
        )
        recent = cur.fetchall()
    first_name, username, language, blocked, banned, first_seen, last_seen = row
    return Profile(
        telegram_id,
        first_name,
        username,
        language,
        blocked,
        banned,
        first_seen,
        last_seen,
        subscription=subscriptions.load(conn, telegram_id),
        balances=ledger.balances(conn, telegram_id),
        payments=recent,
    )


def grant_days(conn: Connection, act: Act, telegram_id: int, days: int) -> Done | None:
    """Add ``days`` from the later of now and the current expiry (a lifetime stays so)."""
    return _change_subscription(conn, act, "grant_days", telegram_id, days)


def take_days(conn: Connection, act: Act, telegram_id: int, days: int) -> Done | None:
    """Take ``days`` back, never below now."""
    return _change_subscription(conn, act, "take_days", telegram_id, -days)


def _change_subscription(
    conn: Connection, act: Act, action: str, telegram_id: int, days: int
) -> Done | None:
    row_id = audit.begin(conn, act, action, str(telegram_id))
    if row_id is None:
        return None
    before = subscriptions.load(conn, telegram_id, lock=True)
    if days > 0:
        subscriptions.add_days(conn, telegram_id, days, None, act.now)
    else:
        subscriptions.shorten(conn, telegram_id, -days, act.now)
    return _settled(conn, row_id, _as_json(before), _as_json(subscriptions.load(conn, telegram_id)))


def set_lifetime(conn: Connection, act: Act, telegram_id: int, on: bool) -> Done | None:
    """Lifetime on (access with no end) or off (access ends at the stored expiry, or now)."""
    row_id = audit.begin(conn, act, "lifetime_on" if on else "lifetime_off", str(telegram_id))
    if row_id is None:
        return None
    before = subscriptions.load(conn, telegram_id, lock=True)
    if on:
        conn.execute(
            "INSERT INTO subscriptions (telegram_id, status, lifetime, started_at, updated_at)"
            " VALUES (%(id)s, 'active', TRUE, %(now)s, %(now)s) ON CONFLICT (telegram_id)"
            " DO UPDATE SET lifetime = TRUE, status = 'active', updated_at = %(now)s",
            {"id": telegram_id, "now": act.now},
        )
    else:
        conn.execute(
            "UPDATE subscriptions SET lifetime = FALSE,"
            " expires_at = COALESCE(expires_at, %(now)s),"
            " status = CASE WHEN expires_at > %(now)s THEN 'active' ELSE 'expired' END,"
            " updated_at = %(now)s WHERE telegram_id = %(id)s AND lifetime",
            {"id": telegram_id, "now": act.now},
        )
    return _settled(conn, row_id, _as_json(before), _as_json(subscriptions.load(conn, telegram_id)))


def adjust_balance(
    conn: Connection, act: Act, telegram_id: int, currency: str, delta: int, note: str
) -> Done | None:
    """Credit (``delta`` > 0) or debit a balance, with the operator's reason in the ledger;
    a debit beyond the balance raises InsufficientBalance and changes nothing."""
    row_id = audit.begin(conn, act, "balance", str(telegram_id))
    if row_id is None:
        return None
    before = ledger.balance(conn, telegram_id, currency)
    if delta > 0:
        after = ledger.credit(
            conn, telegram_id, currency, delta, "adjustment", None, act.now, note=note
        )
    else:
        after = ledger.debit(
            conn, telegram_id, currency, -delta, "adjustment", None, act.now, note=note
        )
    return _settled(
        conn,
        row_id,
        {"currency": currency, "balance": before},
        {"currency": currency, "balance": after, "delta": delta, "note": note},
    )


def set_banned(conn: Connection, act: Act, telegram_id: int, banned: bool) -> Done | None:
    """Ban (no access, no shop) or unban; the backend is told either way."""
    row_id = audit.begin(conn, act, "ban" if banned else "unban", str(telegram_id))
    if row_id is None:
        return None
    row = conn.execute(
        "SELECT banned FROM customers WHERE telegram_id = %s FOR UPDATE", (telegram_id,)
    ).fetchone()
    assert row is not None  # the profile was shown, and customers are never deleted
    conn.execute(
        "UPDATE customers SET banned = %s, ban_noticed = FALSE WHERE telegram_id = %s",
        (banned, telegram_id),
    )
    if bool(row[0]) != banned:
        fulfilment.mark_due(conn, telegram_id, act.now)
    return _settled(conn, row_id, {"banned": bool(row[0])}, {"banned": banned})


def take_ban_notice(conn: Connection, telegram_id: int) -> bool:
    """Whether a banned customer is still owed their one notice (and it is theirs now)."""
    row = conn.execute(
        "UPDATE customers SET ban_noticed = TRUE WHERE telegram_id = %s AND banned"
        " AND NOT ban_noticed RETURNING 1",
        (telegram_id,),
    ).fetchone()
    return row is not None


def _as_json(subscription: SubscriptionRow | None) -> dict[str, Any] | None:
    if subscription is None:
        return None
    expires = subscription.expires_at
    return {
        "status": subscription.status,
        "expires_at": expires.isoformat() if expires else None,
        "lifetime": subscription.lifetime,
    }


def _settled(conn: Connection, row_id: int, before: Any, after: Any) -> Done:
    audit.settle(conn, row_id, before, after)
    return Done(before, after)
