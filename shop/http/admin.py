"""The operator JSON API, under ``/admin/api``, behind ``Authorization: Bearer $ADMIN_TOKEN``.

With no ``ADMIN_TOKEN`` set the API does not exist (404). A missing or wrong token gets
401 and nothing else; tokens are compared in constant time.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Any

from quart import Blueprint, request
from quart.typing import ResponseReturnValue

from ..app import App
from ..money import decimal_string
from ..store import customers, ledger, payments, subscriptions
from ..store.pool import Connection


def admin_api(app: App) -> Blueprint:
    api = Blueprint("admin_api", __name__, url_prefix="/admin/api")

    @api.before_request
    async def authorise() -> ResponseReturnValue | None:
        expected = app.config.admin_token
        if not expected:
            return {"error": "not found"}, 404
        given = request.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), expected.encode()
        ):
            return {"error": "unauthorized"}, 401, {"WWW-Authenticate": "Bearer"}
        return None

    @api.get("/users/<telegram_id>")
    async def user(telegram_id: str) -> ResponseReturnValue:
        if not telegram_id.lstrip("-").isdigit() or len(telegram_id) > 20:
            return {"error": "telegram_id must be an integer"}, 400
        found = await app.store.run(_user, int(telegram_id))
        if found is None:
            return {"error": "no such customer"}, 404
        return found

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


def _iso(moment: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC, e.g. ``2026-12-01T12:00:00Z``."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
