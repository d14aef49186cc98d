"""The operator's numbers: customers, subscriptions, revenue, payments, conversion.

Read-only, one transaction (a consistent snapshot), a handful of aggregate statements
that the indexes on ``first_seen``, ``payments_by_customer`` and the subscription expiry
keep cheap. Revenue is money that came in from outside (Stars and providers, completed
and not refunded), per currency: a purchase paid from the balance is not revenue again.
"""

from __future__ import annotations

import datetime as dt

import attrs

from .pool import Connection

#: The windows every "new" and "revenue" figure is given for, by name.
WINDOWS = ("today", "7d", "30d")


@attrs.frozen
class Stats:
    customers: int
    new: dict[str, int]  # window -> customers first seen in it
    active: int  # subscriptions giving access now
    lifetime: int
    trials: int  # active subscriptions that are the trial
    revenue: dict[str, dict[str, int]]  # window -> currency -> minor units
    payments: dict[str, int]  # status -> count, all time
    problems: int
    started_30d: int  # customers first seen in the last 30 days
    paid_30d: int  # ... of whom paid at least once
    blocked: int
    banned: int

    @property
    def conversion_30d(self) -> float | None:
        """Share of last month's new customers who paid (a ratio for display only)."""
        return self.paid_30d / self.started_30d if self.started_30d else None


def collect(conn: Connection, now: dt.datetime, today_start: dt.datetime) -> Stats:
    since = {
        "today": today_start,
        "7d": now - dt.timedelta(days=7),
        "30d": now - dt.timedelta(days=30),
    }
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE first_seen >= %(today)s),"
        " count(*) FILTER (WHERE first_seen >= %(d7)s),"
        " count(*) FILTER (WHERE first_seen >= %(d30)s),"
        " count(*) FILTER (WHERE blocked), count(*) FILTER (WHERE banned) FROM customers",
        {"today": since["today"], "d7": since["7d"], "d30": since["30d"]},
    ).fetchone()
    assert row is not None
    customers, new_today, new_7d, new_30d, blocked, banned = (int(v) for v in row)
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE lifetime OR expires_at > %(now)s),"
        " count(*) FILTER (WHERE lifetime),"
        " count(*) FILTER (WHERE plan_id = 'trial' AND NOT lifetime AND expires_at > %(now)s)"
        " FROM subscriptions WHERE status = 'active'",
        {"now": now},
    ).fetchone()
    assert row is not None
    active, lifetime, trials = (int(v) for v in row)
    revenue: dict[str, dict[str, int]] = {window: {} for window in WINDOWS}
    for currency, today, week, month in conn.execute(
        "SELECT currency, sum(amount) FILTER (WHERE completed_at >= %(today)s),"
        " sum(amount) FILTER (WHERE completed_at >= %(d7)s), sum(amount)"
        " FROM payments WHERE status = 'completed' AND provider <> 'balance'"
        " AND completed_at >= %(d30)s GROUP BY currency ORDER BY currency",
        {"today": since["today"], "d7": since["7d"], "d30": since["30d"]},
    ).fetchall():
        for window, amount in zip(WINDOWS, (today, week, month), strict=True):
            if amount:
                revenue[window][currency] = int(amount)
    statuses = dict(
        conn.execute("SELECT status, count(*) FROM payments GROUP BY status ORDER BY status")
    )
    row = conn.execute("SELECT count(*) FROM payments WHERE problem IS NOT NULL").fetchone()
    problems = int(row[0]) if row else 0
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT FROM payments p"
        "  WHERE p.telegram_id = c.telegram_id AND p.status IN ('completed', 'refunded')"
        "  AND p.provider <> 'balance'))"
        " FROM customers c WHERE c.first_seen >= %s",
        (since["30d"],),
    ).fetchone()
    assert row is not None
    return Stats(
        customers=customers,
        new={"today": new_today, "7d": new_7d, "30d": new_30d},
        active=active,
        lifetime=lifetime,
        trials=trials,
        revenue=revenue,
        payments={str(k): int(v) for k, v in statuses.items()},
        problems=problems,
        started_30d=int(row[0]),
        paid_30d=int(row[1]),
        blocked=blocked,
        banned=banned,
    )
