"""Codes a customer redeems: operators' promos, resellers' vouchers, bought gifts.

Redeeming is one transaction, and each guard is a statement, not an ``if``:

1. ``code_uses`` gets (code, customer) first: its primary key makes a code once per
   customer (a double tap, a replay, two shops: the second insert conflicts);
2. ``codes.uses`` is raised only ``WHERE`` the code is live (not revoked, not expired,
   under ``max_uses``, and for ``new_only`` codes the customer never paid), so a limit
   holds however many redeem at once;
3. then what the code gives: days (as an operator's grant: not a renewal of the plan's
   traffic), credit (a ledger entry), or a discount held for the next purchase.

Anything refused raises :class:`CodeRefused` with the reason, which rolls back step 1.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import attrs
from psycopg.rows import class_row

from ..errors import DomainError
from . import ledger, notices, subscriptions
from .notices import Notice
from .pool import Connection

#: Letters for generated codes: no 0/O or 1/I/L to misread.
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_PAID = "('completed', 'refunded')"


class CodeRefused(DomainError):
    """Raised when a code cannot be redeemed; ``reason`` is a text key's last part:
    ``unknown``, ``used``, ``expired``, ``exhausted``, ``revoked``, ``not_new``, ``own``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@attrs.frozen
class Code:
    code: str
    source: str  # promo | voucher | gift
    kind: str  # days | balance | discount
    value: int
    currency: str | None
    max_uses: int | None
    uses: int
    expires_at: dt.datetime | None
    new_only: bool
    batch_id: int | None
    payment_id: str | None
    plan_id: str | None
    created_by: int | None
    revoked_at: dt.datetime | None


_COLUMNS = (
    "code, source, kind, value, currency, max_uses, uses, expires_at, new_only, batch_id,"
    " payment_id, plan_id, created_by, revoked_at"
)


@attrs.frozen
class Redeemed:
    code: Code
    expires_at: dt.datetime | None  # days: the subscription's new end
    balance: int | None  # balance: the balance after
    notice: Notice | None  # gift: the buyer's "your gift was redeemed"


def generate(length: int = 10) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def normalise(code: str) -> str:
    """Codes are matched without regard to case or surrounding space."""
    return code.strip().upper()


def create_promo(
    conn: Connection,
    code: str,
    kind: str,
    value: int,
    currency: str | None,
    max_uses: int | None,
    expires_at: dt.datetime | None,
    new_only: bool,
    created_by: int | None,
    now: dt.datetime,
) -> bool:
    """A promo code; False if the code exists already."""
    row = conn.execute(
        "INSERT INTO codes (code, source, kind, value, currency, max_uses, expires_at,"
        " new_only, created_by, created_at) VALUES (%s, 'promo', %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (code) DO NOTHING RETURNING 1",
        (normalise(code), kind, value, currency, max_uses, expires_at, new_only, created_by, now),
    ).fetchone()
    return row is not None


def create_batch(
    conn: Connection,
    kind: str,
    value: int,
    currency: str | None,
    count: int,
    expires_at: dt.datetime | None,
    now: dt.datetime,
) -> tuple[int, list[str]]:
    """A voucher batch of ``count`` single-use codes: (batch id, codes)."""
    row = conn.execute(
        "INSERT INTO voucher_batches (kind, value, currency, count, expires_at, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (kind, value, currency, count, expires_at, now),
    ).fetchone()
    assert row is not None
    batch = int(row[0])
    made: list[str] = []
    while len(made) < count:  # a collision with an existing code is simply drawn again
        wanted = [generate(12) for _ in range(count - len(made))]
        rows = conn.execute(
            "INSERT INTO codes (code, source, kind, value, currency, max_uses, expires_at,"
            " batch_id, created_at)"
            " SELECT c, 'voucher', %s, %s, %s, 1, %s, %s, %s FROM unnest(%s::text[]) AS c"
            " ON CONFLICT (code) DO NOTHING RETURNING code",
            (kind, value, currency, expires_at, batch, now, wanted),
        ).fetchall()
        made += [str(r[0]) for r in rows]
    return batch, made


def batch_codes(conn: Connection, batch_id: int) -> list[tuple[str, int]] | None:
    """A batch's codes with how often each was used; None if there is no such batch."""
    if conn.execute("SELECT 1 FROM voucher_batches WHERE id = %s", (batch_id,)).fetchone() is None:
        return None
    rows = conn.execute(
        "SELECT code, uses FROM codes WHERE batch_id = %s ORDER BY code", (batch_id,)
    ).fetchall()
    return [(str(code), int(uses)) for code, uses in rows]


def revoke_batch(conn: Connection, batch_id: int, now: dt.datetime) -> int | None:
    """Stop the batch's unused codes; returns how many were stopped (None: no batch)."""
    found = conn.execute(
        "UPDATE voucher_batches SET revoked_at = COALESCE(revoked_at, %s) WHERE id = %s"
        " RETURNING id",
        (now, batch_id),
    ).fetchone()
    if found is None:
        return None
    return conn.execute(
        "UPDATE codes SET revoked_at = %s WHERE batch_id = %s AND revoked_at IS NULL AND uses = 0",
        (now, batch_id),
    ).rowcount


def create_gift(
    conn: Connection, payment_id: str, buyer: int, plan_id: str, days: int, now: dt.datetime
) -> str:
    """The code a gift purchase makes (once per payment: the caller's grant is once)."""
    while True:
        code = "G" + generate(11)
        row = conn.execute(
            "INSERT INTO codes (code, source, kind, value, max_uses, payment_id, plan_id,"
            " created_by, created_at) VALUES (%s, 'gift', 'days', %s, 1, %s, %s, %s, %s)"
            " ON CONFLICT (code) DO NOTHING RETURNING code",
            (code, days, payment_id, plan_id, buyer, now),
        ).fetchone()
        if row is not None:
            return code


def revoke_gift(conn: Connection, payment_id: str, now: dt.datetime) -> bool:
    """A refunded gift's code stops working, if nobody redeemed it yet."""
    row = conn.execute(
        "UPDATE codes SET revoked_at = %s WHERE payment_id = %s AND uses = 0"
        " AND revoked_at IS NULL RETURNING 1",
        (now, payment_id),
    ).fetchone()
    return row is not None


def redeem(
    conn: Connection, code_text: str, telegram_id: int, now: dt.datetime, holder: int
) -> Redeemed:
    """Redeem a code for a customer (see the module docstring); raises CodeRefused."""
    code_text = normalise(code_text)
    if not code_text or len(code_text) > 64:
        raise CodeRefused("unknown")
    used = conn.execute(
        "INSERT INTO code_uses (code, telegram_id, used_at)"
        " SELECT code, %s, %s FROM codes WHERE code = %s"
        " ON CONFLICT DO NOTHING RETURNING 1",
        (telegram_id, now, code_text),
    ).fetchone()
    if used is None:
        exists = conn.execute("SELECT 1 FROM codes WHERE code = %s", (code_text,)).fetchone()
        raise CodeRefused("used" if exists else "unknown")
    with conn.cursor(row_factory=class_row(Code)) as cur:
        cur.execute(
            "UPDATE codes SET uses = uses + 1 WHERE code = %(code)s AND revoked_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > %(now)s)"
            " AND (max_uses IS NULL OR uses < max_uses)"
            " AND (NOT new_only OR NOT EXISTS (SELECT FROM payments"
            f"  WHERE telegram_id = %(who)s AND status IN {_PAID} AND provider <> 'balance'))"
            f" RETURNING {_COLUMNS}",
            {"code": code_text, "now": now, "who": telegram_id},
        )
        code = cur.fetchone()
    if code is None:
        raise CodeRefused(_why_not(conn, code_text, now))
    if code.kind == "days":
        expires = subscriptions.add_days(
            conn, telegram_id, code.value, code.plan_id, now
        ).expires_at
        notice = _gift_redeemed(conn, code, telegram_id, now, holder)
        return Redeemed(code, expires, None, notice)
    if code.kind == "balance":
        assert code.currency is not None
        balance = ledger.credit(
            conn, telegram_id, code.currency, code.value, "promo", None, now, note=code.code
        )
        return Redeemed(code, None, balance, None)
    conn.execute(
        "INSERT INTO discounts (telegram_id, code, percent) VALUES (%s, %s, %s)"
        " ON CONFLICT (telegram_id) DO UPDATE SET code = EXCLUDED.code,"
        " percent = EXCLUDED.percent, payment_id = NULL, used_at = NULL",
        (telegram_id, code.code, code.value),
    )
    return Redeemed(code, None, None, None)


def _why_not(conn: Connection, code_text: str, now: dt.datetime) -> str:
    with conn.cursor(row_factory=class_row(Code)) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM codes WHERE code = %s", (code_text,))
        code = cur.fetchone()
    if code is None:
        return "unknown"
    if code.revoked_at is not None:
        return "revoked"
    if code.expires_at is not None and code.expires_at <= now:
        return "expired"
    if code.max_uses is not None and code.uses >= code.max_uses:
        return "exhausted"
    return "not_new"


def _gift_redeemed(
    conn: Connection, code: Code, redeemer: int, now: dt.datetime, holder: int
) -> Notice | None:
    if code.source != "gift" or code.created_by is None or code.created_by == redeemer:
        return None
    detail: dict[str, Any] = {"days": code.value}
    return notices.owe_once(
        conn, code.created_by, "gift_redeemed", f"gift:{code.code}", detail, now, holder
    )
