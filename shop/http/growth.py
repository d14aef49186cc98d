"""Promo codes and voucher batches over the operator API (``/admin/api``, bearer token).

``POST /promos`` ``{"code", "kind", "value", "currency"?, "max_uses"?, "expires_at"?,
"new_customers_only"?}`` → ``201 {"code"}`` (409 if the code exists). ``POST /vouchers``
``{"kind", "value", "count", "expires_at", "currency"?}`` → ``201 {"id", "codes": [{"code",
"link"}]}``; ``GET /vouchers/<id>`` the same with ``used``; ``GET /vouchers/<id>.csv`` as
CSV (``code,link,used``); ``POST /vouchers/<id>/revoke`` → ``{"revoked": <unused codes
stopped>}``. Links are ``https://t.me/<bot>?start=v_<code>``. Anything malformed: 400 with
the reason, and nothing stored.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from quart import Blueprint, Response, request
from quart.typing import ResponseReturnValue

from ..app import App
from ..growth.offers import Invalid, checked_code, checked_moment, checked_offer, whole_in
from ..store import codes
from .admin import admin_only

_ID = re.compile(r"[0-9]{1,18}")
MAX_BATCH = 10_000


def growth_api(app: App) -> Blueprint:
    api = Blueprint("growth_api", __name__, url_prefix="/admin/api")
    api.before_request(admin_only(app))

    @api.post("/promos")
    async def create_promo() -> ResponseReturnValue:
        body = await request.get_json(force=True, silent=True)
        now = app.clock.now()
        try:
            if not isinstance(body, dict):
                raise Invalid("the body must be a JSON object")
            code = checked_code(body.get("code"))
            offer = checked_offer(body.get("kind"), body.get("value"), body.get("currency"))
            uses = body.get("max_uses")
            max_uses = None if uses is None else whole_in(uses, "max_uses", 1, 10**8)
            expires = checked_moment(body.get("expires_at"), "expires_at", now)
            new_only = body.get("new_customers_only", False)
            if not isinstance(new_only, bool):
                raise Invalid("new_customers_only must be true or false")
        except Invalid as exc:
            return {"error": str(exc)}, 400
        made = await app.store.run_statement(
            codes.create_promo, code, offer.kind, offer.value, offer.currency, max_uses,
            expires, new_only, None, now,
        )  # fmt: skip
        if not made:
            return {"error": "the code exists already"}, 409
        return {"code": code}, 201

    @api.post("/vouchers")
    async def create_batch() -> ResponseReturnValue:
        body = await request.get_json(force=True, silent=True)
        now = app.clock.now()
        try:
            if not isinstance(body, dict):
                raise Invalid("the body must be a JSON object")
            offer = checked_offer(body.get("kind"), body.get("value"), body.get("currency"))
            count = whole_in(body.get("count"), "count", 1, MAX_BATCH)
            expires = checked_moment(body.get("expires_at"), "expires_at", now)
        except Invalid as exc:
            return {"error": str(exc)}, 400
        batch, made = await app.store.run(
            codes.create_batch, offer.kind, offer.value, offer.currency, count, expires, now
        )
        return {"id": batch, "codes": [_voucher(app, code) for code in made]}, 201

    @api.get("/vouchers/<batch_id>")
    async def show_batch(batch_id: str) -> ResponseReturnValue:
        as_csv = batch_id.endswith(".csv")
        batch_id = batch_id.removesuffix(".csv")
        found = await _batch(batch_id)
        if found is None:
            return {"error": "no such batch"}, 404
        rows = [_voucher(app, code) | {"used": used > 0} for code, used in found]
        if not as_csv:
            return {"id": int(batch_id), "codes": rows}
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["code", "link", "used"])
        writer.writerows([row["code"], row["link"], str(row["used"]).lower()] for row in rows)
        return Response(out.getvalue(), content_type="text/csv; charset=utf-8")

    @api.post("/vouchers/<batch_id>/revoke")
    async def revoke_batch(batch_id: str) -> ResponseReturnValue:
        if not _ID.fullmatch(batch_id):
            return {"error": "no such batch"}, 404
        stopped = await app.store.run(codes.revoke_batch, int(batch_id), app.clock.now())
        if stopped is None:
            return {"error": "no such batch"}, 404
        return {"revoked": stopped}

    async def _batch(batch_id: str) -> list[tuple[str, int]] | None:
        if not _ID.fullmatch(batch_id):
            return None
        return await app.store.run(codes.batch_codes, int(batch_id))

    return api


def _voucher(app: App, code: str) -> dict[str, Any]:
    return {"code": code, "link": app.identity.link(f"v_{code}")}
