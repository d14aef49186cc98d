"""The fake Remnawave panel keeps the real panel's promises (2.8.1 and 3.3.2), over HTTP."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import attrs
import httpx
import pytest
import trio

from shop.clock import UTC
from shop.sandbox.panels import FakeRemnawave
from shop.sandbox.panels.remnawave import DEFAULT_SQUAD, TOKEN

NOW = dt.datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
FUTURE = "2026-10-01T12:00:00.000Z"
PAST = "2026-08-01T12:00:00.000Z"
PROXY = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
HEADERS = PROXY | {"Authorization": f"Bearer {TOKEN}"}
GB = 1024**3
BOTH = pytest.mark.parametrize("version", ["2.8.1", "3.3.2"])


@attrs.define
class FrozenClock:
    """Calendar time that moves only when a test moves it."""

    at: dt.datetime = NOW

    def now(self) -> dt.datetime:
        return self.at


@pytest.fixture
def version() -> str:
    return "3.3.2"


@pytest.fixture
async def panel(nursery: trio.Nursery, version: str) -> FakeRemnawave:
    panel = FakeRemnawave(version=version, clock=FrozenClock())
    await nursery.start(panel.serve)
    return panel


@pytest.fixture
async def api(panel: FakeRemnawave) -> AsyncIterator[httpx.AsyncClient]:
    # verify=False only skips loading CA certificates: it is plain HTTP on loopback.
    async with httpx.AsyncClient(
        base_url=panel.base_url, headers=HEADERS, timeout=5, verify=False
    ) as client:
        yield client


async def create(api: httpx.AsyncClient, username: str = "tg_42", **fields: Any) -> Any:
    body = {"username": username, "expireAt": FUTURE} | fields
    response = await api.post("/api/users", json=body)
    assert response.status_code == 201, response.text
    return response.json()["response"]


def key(user: dict[str, Any]) -> str:
    """The path key of actions and DELETE: uuid in 2.x, numeric id in 3.x."""
    return user["uuid"] if "uuid" in user else str(user["id"])


@BOTH
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Forwarded-For": "203.0.113.7"},
        {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "http"},
        {"X-Forwarded-Proto": "https"},
    ],
)
async def test_without_the_proxy_headers_the_connection_closes_unanswered(
    panel: FakeRemnawave, headers: dict[str, str]
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        base_url=panel.base_url, headers=headers | auth, verify=False
    ) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.get("/api/system/metadata")
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.get("/api/no-such-route")  # the middleware runs before routing
    assert [c.status for c in panel.calls] == [0, 0]


@BOTH
async def test_bearer_token_is_required(panel: FakeRemnawave, api: httpx.AsyncClient) -> None:
    for auth in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        async with httpx.AsyncClient(
            base_url=panel.base_url, headers=PROXY | auth, verify=False
        ) as client:
            response = await client.get("/api/users/by-username/tg_42")
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthorized", "statusCode": 401}
    lowercase = await api.get("/api/system/metadata", headers={"Authorization": f"bearer {TOKEN}"})
    assert lowercase.status_code == 200
    unknown = await api.get("/api/nope", headers={"Authorization": ""})
    assert unknown.json() == {
        "message": "Cannot GET /api/nope",
        "error": "Not Found",
        "statusCode": 404,
    }


async def test_caddy_api_key_comes_first(nursery: trio.Nursery) -> None:
    panel = FakeRemnawave(caddy_token="caddy-key", clock=FrozenClock())
    await nursery.start(panel.serve)
    async with httpx.AsyncClient(base_url=panel.base_url, headers=HEADERS, verify=False) as client:
        refused = await client.get("/api/system/metadata")
        wrong = await client.get("/api/system/metadata", headers={"X-Api-Key": "nope"})
        ok = await client.get("/api/system/metadata", headers={"X-Api-Key": "caddy-key"})
    assert (refused.status_code, refused.text) == (401, "401 Unauthorized")
    assert wrong.status_code == 401
    assert ok.status_code == 200


@BOTH
async def test_metadata_tells_the_version(api: httpx.AsyncClient, version: str) -> None:
    response = (await api.get("/api/system/metadata")).json()["response"]
    assert response["version"] == version
    assert set(response["build"]) == {"time", "number"}
    assert set(response["git"]["backend"]) == {"commitSha", "branch", "commitUrl"}


async def test_create_in_3x_assigns_a_numeric_id_and_strips_uuid(
    panel: FakeRemnawave, api: httpx.AsyncClient
) -> None:
    squad, name = DEFAULT_SQUAD
    user = await create(
        api,
        uuid="0b6f9c1e-4a2b-4c3d-8e9f-0a1b2c3d4e5f",
        telegramId=42,
        trafficLimitBytes=50 * GB,
        activeInternalSquads=[squad],
    )
    assert "uuid" not in user
    assert user["id"] == 1
    assert user["status"] == "ACTIVE"
    assert user["expireAt"] == FUTURE
    assert user["trafficLimitStrategy"] == "NO_RESET"
    assert user["activeInternalSquads"] == [{"uuid": squad, "name": name}]
    assert user["subscriptionUrl"] == f"https://sub.example/{user['shortUuid']}"
    assert user["userTraffic"]["usedTrafficBytes"] == 0
    assert user["createdAt"] == "2026-09-01T12:00:00.000Z"
    assert panel.users["tg_42"] == user
    assert panel.created == 1


@pytest.mark.parametrize("version", ["2.8.1"])
async def test_create_in_2x_keeps_a_given_uuid(api: httpx.AsyncClient) -> None:
    wanted = "0b6f9c1e-4a2b-4c3d-8e9f-0a1b2c3d4e5f"
    user = await create(api, uuid=wanted)
    assert (user["uuid"], user["id"]) == (wanted, 1)
    other = await create(api, "tg_43")
    assert (other["id"], other["uuid"] == wanted) == (2, False)


@BOTH
async def test_taken_username_is_a019(panel: FakeRemnawave, api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.post("/api/users", json={"username": "tg_42", "expireAt": FUTURE})
    assert response.status_code == 400
    body = response.json()
    assert body["errorCode"] == "A019"
    assert body["message"] == "User username already exists"
    assert body["path"] == "/api/users"
    assert body["timestamp"] == "2026-09-01T12:00:00.000Z"
    assert panel.created == 1


@pytest.mark.parametrize(
    ("version", "messages"),
    [
        (
            "2.8.1",
            [
                "Username can only contain letters, numbers, underscores and dashes",
                "Username must be at least 3 characters",
                "Expiration date is required",
            ],
        ),
        (
            "3.3.2",
            [
                "Username can only contain letters, numbers, underscores and dashes",
                "Username must be at least 3 characters",
                "Invalid input: expected string, received undefined",
            ],
        ),
    ],
)
async def test_validation_failures_look_like_nestjs_zod(
    api: httpx.AsyncClient, messages: list[str]
) -> None:
    response = await api.post("/api/users", json={"username": "é"})
    assert response.status_code == 400
    body = response.json()
    assert (body["statusCode"], body["message"]) == (400, "Validation failed")
    assert "errorCode" not in body
    assert [e["message"] for e in body["errors"]] == messages
    assert [e["path"] for e in body["errors"]] == [["username"], ["username"], ["expireAt"]]


@BOTH
async def test_unknown_squad_fails_the_create_and_stores_nothing(
    panel: FakeRemnawave, api: httpx.AsyncClient
) -> None:
    squads = ["0b6f9c1e-4a2b-4c3d-8e9f-0a1b2c3d4e5f"]
    body = {"username": "tg_42", "expireAt": FUTURE, "activeInternalSquads": squads}
    response = await api.post("/api/users", json=body)
    assert (response.status_code, response.json()["errorCode"]) == (500, "A018")
    assert panel.users == {}


@BOTH
async def test_absent_user_is_a063_by_username(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/users/by-username/tg_404")
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"timestamp", "path", "message", "errorCode"}
    assert body["errorCode"] == "A063"
    assert body["message"] == "User with specified params not found"
    assert body["path"] == "/api/users/by-username/tg_404"


@BOTH
async def test_patch_rejects_a_past_expiry(api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.patch("/api/users", json={"username": "tg_42", "expireAt": PAST})
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["code"] == "custom"
    assert error["path"] == ["expireAt"]
    assert error["message"] == "Expiration date cannot be in the past"


@BOTH
async def test_patch_with_a_future_expiry_reactivates_an_expired_user(
    panel: FakeRemnawave, api: httpx.AsyncClient
) -> None:
    await create(api, expireAt=PAST)  # the panel takes a past date on create
    assert panel.users["tg_42"]["status"] == "EXPIRED"  # after its 30 s watchdog
    response = await api.patch("/api/users", json={"username": "tg_42", "expireAt": FUTURE})
    assert response.json()["response"]["status"] == "ACTIVE"
    assert response.json()["response"]["expireAt"] == FUTURE


@BOTH
async def test_patch_status_is_active_or_disabled_only(api: httpx.AsyncClient) -> None:
    await create(api)
    response = await api.patch("/api/users", json={"username": "tg_42", "status": "LIMITED"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == ["status"]
    disabled = await api.patch("/api/users", json={"username": "tg_42", "status": "DISABLED"})
    assert disabled.json()["response"]["status"] == "DISABLED"


@BOTH
async def test_patch_of_an_unknown_user_is_a025(api: httpx.AsyncClient) -> None:
    response = await api.patch("/api/users", json={"username": "tg_404", "description": "x"})
    assert (response.status_code, response.json()["errorCode"]) == (404, "A025")


@BOTH
async def test_traffic_limits_and_patch_keeps_used_traffic(
    panel: FakeRemnawave, api: httpx.AsyncClient
) -> None:
    await create(api, trafficLimitBytes=10 * GB)
    panel.use_traffic("tg_42", 10 * GB)
    assert panel.users["tg_42"]["status"] == "LIMITED"
    body = {"username": "tg_42", "trafficLimitBytes": 30 * GB, "expireAt": FUTURE}
    user = (await api.patch("/api/users", json=body)).json()["response"]
    assert user["status"] == "ACTIVE"
    assert user["userTraffic"]["usedTrafficBytes"] == 10 * GB
    reset = await api.post(f"/api/users/{key(user)}/actions/reset-traffic")
    assert reset.json()["response"]["userTraffic"]["usedTrafficBytes"] == 0


async def test_3x_keys_users_by_numeric_id(api: httpx.AsyncClient) -> None:
    user = await create(api)
    assert (await api.get("/api/users/1")).json()["response"]["username"] == "tg_42"
    bad = await api.get("/api/users/abc")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["path"] == ["userId"]
    assert (await api.get("/api/users/7")).json()["errorCode"] == "A063"
    by_id = await api.patch("/api/users", json={"id": user["id"], "description": "vip"})
    assert by_id.json()["response"]["description"] == "vip"
    by_uuid = await api.patch("/api/users", json={"uuid": "0b6f9c1e-4a2b-4c3d-8e9f-0a1b2c3d4e5f"})
    assert by_uuid.status_code == 400  # uuid is stripped: neither username nor id
    legacy = await api.get("/api/users/by-telegram-id/42")
    assert legacy.status_code == 404  # removed in 3.0


@pytest.mark.parametrize("version", ["2.8.1"])
async def test_2x_keys_users_by_uuid(api: httpx.AsyncClient) -> None:
    user = await create(api, telegramId=42)
    assert (await api.get(f"/api/users/{user['uuid']}")).json()["response"]["id"] == 1
    bad = await api.get("/api/users/1")
    assert (bad.status_code, bad.json()["errors"][0]["path"]) == (400, ["uuid"])
    by_uuid = await api.patch("/api/users", json={"uuid": user["uuid"], "description": "vip"})
    assert by_uuid.json()["response"]["description"] == "vip"
    listed = (await api.get("/api/users/by-telegram-id/42")).json()["response"]
    assert [u["username"] for u in listed] == ["tg_42"]
    assert (await api.get("/api/users/by-telegram-id/7")).json() == {"response": []}


async def test_3x_stream_filters_by_telegram_id(api: httpx.AsyncClient) -> None:
    await create(api, "tg_42", telegramId=42)
    await create(api, "tg_43", telegramId=43)
    page = (await api.get("/api/users/stream", params={"telegramId": "42"})).json()["response"]
    assert [u["username"] for u in page["users"]] == ["tg_42"]
    assert (page["nextCursor"], page["hasMore"]) == (None, False)


@pytest.mark.parametrize("version", ["2.8.1"])
async def test_2x_stream_ignores_a_telegram_id_filter(api: httpx.AsyncClient) -> None:
    await create(api, "tg_42", telegramId=42)
    await create(api, "tg_43", telegramId=43)
    page = (await api.get("/api/users/stream", params={"telegramId": "42"})).json()["response"]
    assert [u["username"] for u in page["users"]] == ["tg_42", "tg_43"]


@BOTH
async def test_repeated_enable_or_disable_is_refused(api: httpx.AsyncClient) -> None:
    user = await create(api)
    again = await api.post(f"/api/users/{key(user)}/actions/enable")
    assert (again.status_code, again.json()["errorCode"]) == (400, "A030")
    off = await api.post(f"/api/users/{key(user)}/actions/disable")
    assert off.json()["response"]["status"] == "DISABLED"
    off_again = await api.post(f"/api/users/{key(user)}/actions/disable")
    assert (off_again.status_code, off_again.json()["errorCode"]) == (400, "A029")


@pytest.mark.parametrize(
    ("version", "status", "content"),
    [("2.8.1", 200, b'{"response":{"isDeleted":true}}'), ("3.3.2", 204, b"")],
)
async def test_delete(api: httpx.AsyncClient, status: int, content: bytes) -> None:
    user = await create(api)
    response = await api.delete(f"/api/users/{key(user)}")
    assert (response.status_code, response.content) == (status, content)
    again = await api.delete(f"/api/users/{key(user)}")
    assert (again.status_code, again.json()["errorCode"]) == (404, "A025")


@BOTH
async def test_revoke_gives_a_new_subscription_url(api: httpx.AsyncClient) -> None:
    user = await create(api)
    revoked = (await api.post(f"/api/users/{key(user)}/actions/revoke")).json()["response"]
    assert revoked["subscriptionUrl"] != user["subscriptionUrl"]
    assert revoked["subRevokedAt"] == "2026-09-01T12:00:00.000Z"


async def test_3x_extend_adds_days_to_the_later_of_now_and_expiry(api: httpx.AsyncClient) -> None:
    user = await create(api)
    extended = await api.post(f"/api/users/{user['id']}/actions/extend", json={"days": 30})
    assert extended.json()["response"]["expireAt"] == "2026-10-31T12:00:00.000Z"


async def test_lost_answer_after_the_create_was_stored(
    panel: FakeRemnawave, api: httpx.AsyncClient
) -> None:
    panel.lose_answers()
    with pytest.raises(httpx.RemoteProtocolError):
        await api.post("/api/users", json={"username": "tg_42", "expireAt": FUTURE})
    assert "tg_42" in panel.users
    retry = await api.post("/api/users", json={"username": "tg_42", "expireAt": FUTURE})
    assert retry.json()["errorCode"] == "A019"


async def test_reset_connections_and_outage(panel: FakeRemnawave, api: httpx.AsyncClient) -> None:
    panel.reset_connections()
    with pytest.raises(httpx.RemoteProtocolError):
        await api.post("/api/users", json={"username": "tg_42", "expireAt": FUTURE})
    assert panel.users == {}
    panel.outage(502)
    assert (await api.get("/api/system/metadata")).status_code == 502
    panel.end_outage()
    await create(api)


async def test_changes_by_hand(panel: FakeRemnawave, api: httpx.AsyncClient) -> None:
    await create(api)
    panel.disable_by_hand("tg_42")
    user = (await api.get("/api/users/by-username/tg_42")).json()["response"]
    assert user["status"] == "DISABLED"
    panel.delete_by_hand("tg_42")
    assert (await api.get("/api/users/by-username/tg_42")).status_code == 404


@BOTH
async def test_webhook_is_signed_like_the_panel(
    panel: FakeRemnawave, api: httpx.AsyncClient
) -> None:
    secret = "a" * 32
    await create(api)
    headers, body = panel.webhook("user.expiration", "tg_42", secret, meta={"expiration": -24})
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Remnawave-Signature"] == expected
    assert headers["User-Agent"] == "Remnawave"
    payload = json.loads(body)
    assert payload["timestamp"] == headers["X-Remnawave-Timestamp"]
    assert (payload["scope"], payload["event"]) == ("user", "user.expiration")
    assert payload["data"] == panel.users["tg_42"]
    assert payload["meta"] == {"expiration": -24}
    panel.delete_by_hand("tg_42")
    _, gone = panel.webhook("user.deleted", "tg_42", secret)
    assert json.loads(gone)["meta"] is None
    with pytest.raises(ValueError, match="not a user event"):
        panel.webhook("node.created", "tg_42", secret)
