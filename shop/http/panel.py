"""Remnawave's webhooks: ``POST /webhooks/remnawave``.

Signed as the panel signs them (EXTERNAL-APIS.md §C.1): ``X-Remnawave-Signature`` is the
hex HMAC-SHA256 of the raw body with ``REMNAWAVE_WEBHOOK_SECRET``, compared in constant
time (401 otherwise; 404 while no secret is set). What the shop does with an event:

- ``user.limited``, ``user.bandwidth_usage_threshold_reached``: the customer is told,
  with a button to buy more (a notice, owed once per event, delivered by the courier);
- ``user.deleted``, ``user.disabled``: done by hand on the panel, so an operator is
  alerted and the customer is marked due in the fulfilment queue, which puts the panel
  back as the subscription says;
- anything else: accepted and ignored (the panel retries only a failed delivery).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from typing import Any

from quart import Blueprint, request
from quart.typing import ResponseReturnValue

from ..app import App
from ..errors import StoreUnavailable
from ..store import fulfilment, notices
from ..telegram.outbox import Lane

log = logging.getLogger(__name__)

_USERNAME = re.compile(r"tg_(\d{1,20})")
TELL = {
    "user.limited": "panel_limited",
    "user.bandwidth_usage_threshold_reached": "panel_threshold",
}
REPAIR = ("user.deleted", "user.disabled")


def panel_webhooks(app: App) -> Blueprint:
    hooks = Blueprint("panel_webhooks", __name__)

    @hooks.post("/webhooks/remnawave")
    async def remnawave() -> ResponseReturnValue:
        secret = app.config.remnawave_webhook_secret
        if not secret:
            return {"error": "not found"}, 404
        body = await request.get_data(cache=False, as_text=False)
        raw = body if isinstance(body, bytes) else body.encode()
        given = request.headers.get("X-Remnawave-Signature", "")
        expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.strip().lower().encode(), expected.encode()):
            log.warning("remnawave webhook with a bad signature refused")
            return {"error": "bad signature"}, 401
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError):
            return {"error": "malformed body"}, 400
        if not isinstance(event, dict):
            return {"error": "malformed body"}, 400
        try:
            await _handle(app, event)
        except StoreUnavailable:
            return {"error": "temporarily unavailable"}, 503
        return {"ok": True}, 200

    return hooks


async def _handle(app: App, event: dict[str, Any]) -> None:
    name = str(event.get("event") or "")
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    assert isinstance(data, dict)
    telegram_id = _customer(data)
    if telegram_id is None or (name not in TELL and name not in REPAIR):
        return  # not one of ours, or nothing to do
    now = app.clock.now()
    if name in REPAIR:
        log.error(
            "ALERT: Remnawave user %s was %s on the panel by hand; putting it back as the"
            " subscription says",
            data.get("username"),
            name.removeprefix("user."),
            extra={"telegram_id": telegram_id},
        )
        await app.store.run(fulfilment.mark_due, telegram_id, now)
        app.fulfilment_due.poke()
        return
    # One notice per delivery of the event: the panel's retries repeat its timestamp.
    ref = f"{name}:{event.get('timestamp') or ''}"[:120]
    notice = await app.store.run(
        notices.owe_once, telegram_id, TELL[name], ref, {}, now, app.instance
    )
    if notice is not None:
        await app.courier.deliver([notice], Lane.INTERACTIVE)


def _customer(data: dict[str, Any]) -> int | None:
    """The customer a panel user is, by the username the shop gave it."""
    match = _USERNAME.fullmatch(str(data.get("username") or ""))
    return int(match.group(1)) if match else None
