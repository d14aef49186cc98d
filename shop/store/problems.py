"""Payments an operator must look at: paid short, in another currency, failed at the
provider, a refund that found the credit spent (``payments.problem`` and its columns)."""

from __future__ import annotations

import datetime as dt

import attrs

from .pool import Connection


@attrs.frozen
class Problem:
    payment_id: str
    telegram_id: int
    problem: str
    amount: int | None  # problem_amount: minor units of ``currency``, when known
    currency: str | None  # problem_currency: possibly one the shop does not know
    at: dt.datetime | None  # problem_at


def open_problems(conn: Connection, limit: int = 200) -> list[Problem]:
    """Payments with a problem, newest first (those with no time last); one statement."""
    rows = conn.execute(
        "SELECT id, telegram_id, problem, problem_amount, problem_currency, problem_at"
        " FROM payments WHERE problem IS NOT NULL"
        " ORDER BY problem_at DESC NULLS LAST, id LIMIT %s",
        (limit,),
    ).fetchall()
    return [
        Problem(
            payment_id=str(row[0]),
            telegram_id=int(row[1]),
            problem=str(row[2]),
            amount=None if row[3] is None else int(row[3]),
            currency=row[4],
            at=row[5],
        )
        for row in rows
    ]
