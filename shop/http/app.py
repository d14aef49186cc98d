"""The HTTP application: health, readiness and metrics (webhooks and admin API join it)."""

from __future__ import annotations

from quart import Response
from quart_trio import QuartTrio

from ..app import App
from ..errors import StoreUnavailable
from .admin import admin_api
from .webhooks import webhooks


def create_app(app: App) -> QuartTrio:
    """Build the Quart app for one running shop; nothing here is module-global."""
    web = QuartTrio("shop")
    web.config["MAX_CONTENT_LENGTH"] = 64 * 1024

    @web.get("/healthz")
    async def healthz() -> tuple[dict[str, str], int]:
        return {"status": "ok"}, 200

    @web.get("/readyz")
    async def readyz() -> tuple[dict[str, str], int]:
        try:
            await app.store.ping()
        except StoreUnavailable as exc:
            return {"status": "unavailable", "reason": f"database: {exc}"}, 503
        return {"status": "ready"}, 200

    @web.get("/metrics")
    async def metrics() -> Response:
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
    web.register_blueprint(webhooks(app))
    return web
