"""The operator JSON API, under ``/admin/api``, behind ``Authorization: Bearer $ADMIN_TOKEN``.

With no ``ADMIN_TOKEN`` set the API does not exist (404). A missing or wrong token gets
401 and nothing else; tokens are compared in constant time.

Routes: ``GET /users/<telegram_id>`` (a customer as the operator sees them),
``GET /problems`` (payments an operator must look at, newest first) and
``GET /audit?limit=&before=`` (operator actions, newest first: ``{"audit": [...],
"next": <before for the next page> | null}``).
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, request
from quart.typing import ResponseReturnValue

from ..app import App
from ..money import EXPONENTS, decimal_string
from ..store import audit, customers, ledger, payments, problems, subscriptions
from ..store.pool import Connection

#: A Telegram id in a path: ASCII digits only (``str.isdigit`` and ``int`` also take
#: "²" and "１２３"), and within PostgreSQL's BIGINT.
_TELEGRAM_ID = re.compile(r"-?[0-9]{1,19}")
_BIGINT = range(-(2**63), 2**63)


def bearer_matches(header: str | None, expected: str) -> bool:
    """Whether an ``Authorization`` header is ``Bearer <expected>``, in constant time."""
    scheme, _, token = (header or "").partition(" ")
    given = token.strip().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given, expected.encode())


def admin_only(app: App) -> Callable[[], Awaitable[ResponseReturnValue | None]]:
    """A ``before_request`` for every operator route: 404 while ``ADMIN_TOKEN`` is unset,
    401 for a missing or wrong bearer token, nothing (go on) for the right one."""

    async def authorise() -> ResponseReturnValue | None:
        expected = app.config.admin_token
        if not expected:
            return {"error": "not found"}, 404
        if not bearer_matches(request.headers.get("Authorization"), expected):
            return {"error": "unauthorized"}, 401, {"WWW-Authenticate": "Bearer"}
        return None

    return authorise


def admin_api(app: App) -> Blueprint:
    api = Blueprint("admin_api", __name__, url_prefix="/admin/api")
    api.before_request(admin_only(app))

    @api.get("/users/<telegram_id>")
    async def user(telegram_id: str) -> ResponseReturnValue:
        if not _TELEGRAM_ID.fullmatch(telegram_id) or int(telegram_id) not in _BIGINT:
            return {"error": "telegram_id must be an integer"}, 400
        found = await app.store.run(_user, int(telegram_id))
        if found is None:
            return {"error": "no such customer"}, 404
        return found

    @api.get("/problems")
    async def open_problems() -> ResponseReturnValue:
        found = await app.store.run_statement(problems.open_problems)
        return [
            {
                "payment_id": problem.payment_id,
                "telegram_id": problem.telegram_id,
                "problem": problem.problem,
                "amount": _amount(problem.amount, problem.currency),
                "currency": problem.currency,
                "at": _iso(problem.at),
            }
            for problem in found
        ]

    @api.get("/audit")
    async def audit_trail() -> ResponseReturnValue:
        limit, before = request.args.get("limit", "100"), request.args.get("before")
        if not limit.isascii() or not limit.isdigit() or not 1 <= int(limit) <= 1000:
            return {"error": "limit must be an integer from 1 to 1000"}, 400
        if before is not None and not (before.isascii() and before.isdigit() and len(before) < 19):
            return {"error": "before must be an audit row id"}, 400
        rows = await app.store.run_statement(
            audit.latest, int(limit), None if before is None else int(before)
        )
        more = len(rows) == int(limit)
        return {"audit": [row.as_json() for row in rows], "next": rows[-1].id if more else None}

    return api


def _user(conn: Connection, telegram_id: int) -> dict[str, Any] | None:
    customer = customers.load(conn, telegram_id)
    if customer is None:
        return None
    subscription = subscriptions.load(conn, telegram_id)
    return {
        "telegram_id": telegram_id,
        "language": customer.language,
        "blocked": customer.blocked,
        "balances": {
            currency: decimal_string(amount, currency)
            for currency, amount in ledger.balances(conn, telegram_id).items()
        },
        "subscription": {
            "status": subscription.status if subscription else "none",
            "expires_at": _iso(subscription.expires_at) if subscription else None,
            "lifetime": subscription.lifetime if subscription else False,
        },
        "payments": [
            {
                "id": row["id"],
                "provider": row["provider"],
                "status": row["status"],
                "amount": decimal_string(row["amount"], row["currency"]),
                "currency": row["currency"],
                "created_at": _iso(row["created_at"]),
            }
            for row in payments.recent(conn, telegram_id)
        ],
    }


def _amount(minor: int | None, currency: str | None) -> str | None:
    """A decimal string; None when there is no amount, or its currency is one the shop
    does not know (without its minor unit, any figure shown could be wrong)."""
    if minor is None or currency is None or currency not in EXPONENTS:
        return None
    return decimal_string(minor, currency)


def _iso(moment: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC, e.g. ``2026-12-01T12:00:00Z``."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
