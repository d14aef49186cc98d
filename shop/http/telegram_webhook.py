"""``POST /telegram/webhook``: Telegram's updates in webhook mode.

Checks ``X-Telegram-Bot-Api-Secret-Token`` in constant time (401 otherwise), journals the
update (batched with those arriving at the same moment) and only then answers 200, so an
update Telegram was told we have is never lost: a crash after the 200 replays it from
the journal. A duplicate
``update_id`` (Telegram retrying) is 200 and ignored. Not JSON, or no ``update_id``:
400. The database unreachable, or the shop not ready to dispatch yet: 503, and Telegram
delivers it again. Off (404) unless TELEGRAM_WEBHOOK_URL is set.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
from typing import Any

import trio
from quart import Blueprint, request
from quart.typing import ResponseReturnValue

from ..actors.dispatcher import Dispatcher
from ..app import App
from ..errors import StoreUnavailable, UnstorableData
from ..store import updates as journal
from ..store.batch import Batcher

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def telegram_webhook(app: App, dispatcher: Dispatcher | None) -> Blueprint:
    hook = Blueprint("telegram_webhook", __name__)
    # Telegram delivers on up to max_connections connections at once: their updates are
    # journaled together, one statement per batch, instead of a connection each.
    journaling: Batcher[tuple[int, dict[str, Any], dt.datetime], bool] = Batcher(
        app.store, journal.store_each, key=lambda request: request[1]["update_id"]
    )

    @hook.post("/telegram/webhook")
    async def receive() -> ResponseReturnValue:
        arrived = trio.current_time()
        secret = app.config.telegram_webhook_secret
        if secret is None or app.config.telegram_webhook_url is None or dispatcher is None:
            return {"error": "not found"}, 404
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            log.warning("telegram webhook: wrong or missing secret token")
            return {"error": "unauthorized"}, 401
        if dispatcher.bot_id == 0:
            return {"error": "starting"}, 503
        data = await request.get_data(cache=False, as_text=False)
        try:
            update = json.loads(data)
        except ValueError:
            return {"error": "not JSON"}, 400
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            return {"error": "not an update"}, 400
        try:
            try:
                new = await journaling.submit((dispatcher.bot_id, update, app.clock.now()))
            except UnstorableData:  # this update, or another in its batch: alone, then
                stored = await app.store.run_statement(
                    journal.store, dispatcher.bot_id, [update], app.clock.now()
                )
                new = bool(stored)
        except StoreUnavailable:
            return {"error": "temporarily unavailable"}, 503
        except UnstorableData as exc:  # would be refused forever: skip it, as polling does
            log.warning("skipping update %s the database refuses: %s", update["update_id"], exc)
            return {"ok": True}, 200
        if new:
            dispatcher.offer([update], arrived)
        return {"ok": True}, 200

    return hook
