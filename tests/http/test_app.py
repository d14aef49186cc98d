"""Health, readiness and metrics; the app's JSON reader."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing
from quart import request

from shop.errors import StoreUnavailable
from shop.http import create_app

METRICS_TOKEN = "scrape-token-0123456789"
PASSWORD = "hunter2-db-password"


class _DownStore:
    """A store whose database is down, saying so the way psycopg does: host, user, and
    here (as a malformed URL could make it) the password."""

    async def ping(self) -> None:
        raise StoreUnavailable(
            'connection to server at "db.internal" (10.0.0.5), port 5432 failed: FATAL:'
            f'  password authentication failed for user "shop" (password={PASSWORD})'
        )


async def test_readyz_names_the_dependency_and_logs_the_detail_without_the_password(
    shop_at: Any, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shop.http.app")
    async with shop_at() as shop:
        await trio.sleep(1)  # the first long poll under way (see tests/http/test_webhooks.py)
        config = shop.app.config.replace(
            database_url=f"postgresql://shop:{PASSWORD}@db.internal:5432/shop"
        )
        down = attrs.evolve(shop.app, store=_DownStore(), config=config)
        answer = await create_app(down).test_client().get("/readyz")

        assert answer.status_code == 503
        assert await answer.get_json() == {
            "status": "unavailable",
            "reason": "database",
            "telegram": "ok",
            "payments": {},
        }
        assert "db.internal" not in (await answer.get_data(as_text=True))
        (logged,) = [r.getMessage() for r in caplog.records if r.name == "shop.http.app"]
        assert "database" in logged
        assert "password authentication failed" in logged  # the detail is in the log
        assert PASSWORD not in logged


async def test_readyz_when_ready(shop_at: Any, autojump_clock: trio.testing.MockClock) -> None:
    async with shop_at() as shop, httpx.AsyncClient(base_url=shop.url) as http:
        await trio.sleep(1)
        answer = await http.get("/readyz")
        assert (answer.status_code, answer.json()) == (
            200,
            {"status": "ready", "telegram": "ok", "payments": {}},
        )


async def test_readyz_reports_an_open_breaker_and_draining_after_sigterm(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    from shop.payments.base import ProviderUnavailable

    async def down() -> None:
        raise ProviderUnavailable("cryptopay", "502 from the API")

    env = {
        "CRYPTOPAY_TOKEN": "12345:AAzQcZWQqQAbsfgPnOLr4FHC8Doa4L7KryC",
        "PUBLIC_URL": "https://s.example",
    }
    async with shop_at(environ=env) as shop, httpx.AsyncClient(base_url=shop.url) as http:
        await trio.sleep(1)
        gateway = shop.app.gateways.get("cryptopay")
        assert gateway is not None
        for _ in range(gateway.breaker.failure_threshold):
            with pytest.raises(ProviderUnavailable):
                await gateway.breaker.call(down)
        opened = (await http.get("/readyz")).json()
        shop.app.draining.set()
        draining = await http.get("/readyz")
    assert opened["status"] == "ready"
    assert opened["payments"] == {"cryptopay": "open"}
    assert draining.status_code == 503
    assert draining.json()["status"] == "draining"


async def test_metrics_need_the_token_when_one_is_set(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with (
        shop_at(environ={"METRICS_TOKEN": METRICS_TOKEN}) as shop,
        httpx.AsyncClient(base_url=shop.url) as http,
    ):
        await trio.sleep(1)
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {METRICS_TOKEN}"},
            {"Authorization": f"Bearer {METRICS_TOKEN}x"},
            {"Authorization": f"Bearer {METRICS_TOKEN[:-1]}"},
        ):
            refused = await http.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "shop_" not in refused.text
        answer = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert answer.status_code == 200
        assert "shop_actors_live" in answer.text
        # The token guards /metrics only.
        assert (await http.get("/healthz")).status_code == 200


async def test_metrics_are_open_without_a_token(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at() as shop, httpx.AsyncClient(base_url=shop.url) as http:
        await trio.sleep(1)
        answer = await http.get("/metrics")
        assert answer.status_code == 200
        assert "shop_actors_live" in answer.text


@pytest.mark.parametrize(
    "body",
    [b"[" * 30_000 + b"]" * 30_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000, b"{not json"],
)
async def test_a_json_body_too_deep_to_read_is_400(
    shop_at: Any, autojump_clock: trio.testing.MockClock, body: bytes
) -> None:
    """Any route that reads JSON with ``request.get_json()`` (the admin API's, should it
    take bodies) answers 400 for a body nested deeper than Python's decoder goes."""
    async with shop_at() as shop:
        await trio.sleep(1)
        web = create_app(shop.app)

        @web.post("/echo")
        async def echo() -> Any:
            return {"got": type(await request.get_json(force=True)).__name__}

        client = web.test_client()
        answer = await client.post("/echo", data=body)
        assert answer.status_code == 400
        fine = await client.post("/echo", data=b'{"a": [1, 2]}')
        assert (fine.status_code, await fine.get_json()) == (200, {"got": "dict"})
