"""The HTTP application: health, readiness and metrics (webhooks and admin API join it)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlsplit

from quart import Response, request
from quart.json.provider import DefaultJSONProvider
from quart_trio import QuartTrio

from ..app import App
from ..errors import StoreUnavailable
from ..logs import redact
from .admin import admin_api, bearer_matches
from .broadcasts import broadcasts_api
from .growth import growth_api
from .panel import panel_webhooks
from .telegram_webhook import telegram_webhook
from .webhooks import webhooks

log = logging.getLogger(__name__)


class JSONProvider(DefaultJSONProvider):
    """Quart's JSON, except that a body nested too deeply is a ValueError.

    Python's decoder raises RecursionError for ``[[[[…]]]]``; ``request.get_json()``
    turns only ValueError into a 400, so without this such a body would be a 500.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("the JSON is nested too deeply") from None


def create_app(app: App) -> QuartTrio:
    """Build the Quart app for one running shop; nothing here is module-global."""
    web = QuartTrio("shop")
    web.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    web.json = JSONProvider(web)

    @web.get("/healthz")
    async def healthz() -> tuple[dict[str, str], int]:
        return {"status": "ok"}, 200

    @web.get("/readyz")
    async def readyz() -> tuple[dict[str, Any], int]:
        # Redis down degrades (local limits), Telegram not answered yet or a provider's
        # breaker open are reported, but keep the instance ready: it still does its work.
        extra: dict[str, Any] = {
            "telegram": "ok" if app.identity.id else "starting",
            "payments": {g.name: "open" if g.breaker.is_open else "ok" for g in app.gateways},
        }
        if app.redis is not None:
            extra["redis"] = "ok" if await app.redis.ping() else "down"
        if app.draining.is_set():  # SIGTERM: a load balancer should send work elsewhere
            return {"status": "draining", **extra}, 503
        try:
            await app.store.ping()
        except StoreUnavailable as exc:
            # The reason names the dependency only: the driver's text can carry the host,
            # the user or (in a malformed URL) the password. The log gets the detail.
            detail = " ".join(str(exc.__cause__ or exc).split())  # the driver's, in full
            log.warning("not ready: database: %s", _without_credentials(detail, app))
            return {"status": "unavailable", "reason": "database", **extra}, 503
        return {"status": "ready", **extra}, 200

    @web.get("/metrics")
    async def metrics() -> Response | tuple[dict[str, str], int, dict[str, str]]:
        expected = app.config.metrics_token
        if expected and not bearer_matches(request.headers.get("Authorization"), expected):
            return {"error": "unauthorized"}, 401, {"WWW-Authenticate": "Bearer"}
        return Response(app.metrics.render(), content_type="text/plain; version=0.0.4")

    @web.get("/payments/return")
    async def payment_return() -> Response:
        # Where a provider's page sends the customer after paying.
        page = (
            "<!doctype html><meta charset=utf-8><title>Payment</title>"
            "<p>Thank you. You can close this page and return to Telegram.</p>"
        )
        return Response(page, content_type="text/html; charset=utf-8")

    web.register_blueprint(admin_api(app))
    web.register_blueprint(broadcasts_api(app, app.broadcaster.due.poke))
    web.register_blueprint(growth_api(app))
    web.register_blueprint(panel_webhooks(app))  # before the providers' /webhooks/<name>
    web.register_blueprint(webhooks(app))
    web.register_blueprint(telegram_webhook(app, app.dispatcher))
    return web


def _without_credentials(text: str, app: App) -> str:
    """``text`` with the database URL and its password hidden (the log handler redacts
    configured secrets too; this does not depend on it)."""
    url = app.config.database_url or ""
    try:
        password = urlsplit(url).password or ""
    except ValueError:  # a URL too broken to split: hide it whole
        password = ""
    return redact(text, [url, password, unquote(password)])
