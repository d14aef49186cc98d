"""The web chat's side of the shop's HTTP server: the page, its WebSocket, the checkout pages.

Routes, all under ``/sandbox`` on the shop's own server (next to its webhooks):

- ``GET /sandbox``: the web chat (one static HTML/JS/CSS bundle from ``static/``);
- ``WS /sandbox/ws``: a snapshot (``hello``), then every change of every chat as it happens;
  the page sends back what people do (``send``, ``press``, ``pay``, ``person``, ``advance``);
- ``GET /sandbox/files/<file_id>``: a photo the bot sent;
- ``GET /sandbox/checkout/<provider>/<id>``: a stand-in provider's checkout page, which
  reads and acts through ``/sandbox/api/checkout/<provider>/<id>[/pay|fail|twice]``.

The server is on loopback, but any web page the person opens could still reach it from
their browser: the WebSocket and the POSTs accept only this page's own origin.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import hypercorn.trio
import trio
from quart import Blueprint, Response, request, websocket
from quart.typing import ResponseReturnValue

from ..app import App
from ..http.app import create_app
from ..http.serve import hypercorn_config
from ..telegram.texts import LANGUAGES
from .chats import Hub, Refused, SandboxTelegram
from .checkout import StandInProviders
from .clock import SandboxClock
from .views import Json

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
#: The page loads only its own files; bot text never becomes markup (see sandbox.js).
_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self' {ws}; frame-src 'self'; base-uri 'none'; form-action 'none';"
    " frame-ancestors 'self'"
)
#: How far the clock control moves the shop's time (a month is 30 days, like a plan's).
_JUMPS = {
    "hour": dt.timedelta(hours=1),
    "day": dt.timedelta(days=1),
    "week": dt.timedelta(days=7),
    "month": dt.timedelta(days=30),
}


class WebChat:
    """Serves the web chat for one sandbox (see the module's docstring)."""

    def __init__(
        self,
        telegram: SandboxTelegram,
        providers: StandInProviders,
        clock: SandboxClock,
        hub: Hub,
        zone: ZoneInfo,
    ) -> None:
        self.telegram, self.providers, self.clock, self.hub = telegram, providers, clock, hub
        self.zone = zone
        self._stop = trio.Event()  # the HTTP server's; blueprint() is given it

    async def serve_http(
        self,
        app: App,
        stop: trio.Event,
        *,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """``shop.http.serve.serve_http``, with the web chat's routes added."""
        web = create_app(app)
        web.register_blueprint(self.blueprint(stop))
        config = hypercorn_config(
            app.config.http_host, app.config.http_port, app.config.shutdown_grace
        )
        await hypercorn.trio.serve(web, config, shutdown_trigger=stop.wait, task_status=task_status)

    def clock_view(self) -> Json:
        now = self.clock.now().astimezone(self.zone)
        ahead = self.clock.offset
        return {
            "now": now.strftime("%a %d %b %Y, %H:%M ") + self.zone.key,
            "ahead": f"{ahead.days} d {ahead.seconds // 3600} h ahead" if ahead else "real time",
        }

    def blueprint(self, stop: trio.Event) -> Blueprint:
        """The routes; ``stop`` closes the open WebSockets when the shop stops."""
        self._stop = stop
        page = Blueprint("sandbox", __name__, url_prefix="/sandbox")
        page.add_url_rule("", "index", self._index)
        page.add_url_rule("/", "index_slash", self._index)
        page.add_url_rule("/static/<name>", "static", self._static_file)
        page.add_url_rule("/files/<file_id>", "file", self._file)
        page.add_url_rule("/checkout/<provider>/<payment_id>", "checkout", self._checkout_page)
        api = "/api/checkout/<provider>/<payment_id>"
        page.add_url_rule(api, "checkout_state", self._checkout_state)
        page.add_url_rule(
            f"{api}/<action>", "checkout_action", self._checkout_action, methods=["POST"]
        )
        page.add_websocket("/ws", "stream", self._stream)
        page.after_request(_protect)
        return page

    async def _index(self) -> Response:
        return _static("index.html")

    async def _static_file(self, name: str) -> Response:
        return _static(name)

    async def _file(self, file_id: str) -> ResponseReturnValue:
        """A photo the bot sent (served as an image only if it is one)."""
        upload = self.telegram.files.get(file_id)
        if upload is None:
            return {"error": "no such file"}, 404
        kind = upload.content_type if upload.content_type.startswith("image/") else ""
        response = Response(upload.content, content_type=kind or "application/octet-stream")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    async def _checkout_page(self, provider: str, payment_id: str) -> Response:
        return _static("checkout.html")  # it reads the payment through the API below

    async def _checkout_state(self, provider: str, payment_id: str) -> ResponseReturnValue:
        try:
            return self.providers.describe(provider, payment_id)
        except Refused as refused:
            return {"error": str(refused)}, 404

    async def _checkout_action(
        self, provider: str, payment_id: str, action: str
    ) -> ResponseReturnValue:
        if not _same_origin(request.headers.get("Origin"), request.host):
            return {"error": "this page may not be used from another site"}, 403
        try:
            return await self.providers.act(provider, payment_id, action)
        except Refused as refused:
            return {"error": str(refused)}, 409

    async def _stream(self) -> ResponseReturnValue | None:
        """The page's WebSocket: a snapshot, then every event; commands come back."""
        if not _same_origin(websocket.headers.get("Origin"), websocket.host):
            return {"error": "this stream may not be opened from another site"}, 403
        events = self.hub.subscribe()  # before the snapshot, so that nothing falls between
        await websocket.accept()
        await websocket.send(json.dumps(self._hello()))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_forward, events, nursery.cancel_scope)
            nursery.start_soon(_cancel_on, self._stop, nursery.cancel_scope)
            while True:
                command: Any = None
                try:
                    command = json.loads(await websocket.receive())
                    await self._do(command, nursery)
                except Refused as refused:
                    await websocket.send(json.dumps(_refusal(command, refused)))
                except (ValueError, TypeError, KeyError):
                    await websocket.send(json.dumps({"type": "refused", "text": "bad request"}))
        return None

    def _hello(self) -> Json:
        hello = {"type": "hello", "languages": list(LANGUAGES), "clock": self.clock_view()}
        return hello | self.telegram.snapshot() | {"jumps": list(_JUMPS)}

    async def _do(self, command: Any, nursery: trio.Nursery) -> None:
        """One thing a person did in the page (raises Refused with what they are told)."""
        kind = command["type"]
        if kind == "send":
            self.telegram.send(_int(command["chat"]), _str(command["text"]))
        elif kind == "press":
            chat, message = _int(command["chat"]), _int(command["message"])
            self.telegram.press_callback(chat, message, _str(command["data"]))
        elif kind == "pay":
            payer = _int(command["chat"])
            invoice_message = _int(command["message"]) if "message" in command else None
            link = _str(command["link"]) if "link" in command else None
            invoice = self.telegram.invoice_of(payer, invoice_message, link)
            nursery.start_soon(self._pay, command, payer, invoice, invoice_message)
        elif kind == "person":
            person = self.telegram.add_person(_str(command["name"]), _str(command["language"]))
            log.info("sandbox: %s (%s) joined as %d", person.name, person.language, person.id)
        elif kind == "advance":
            jump = _JUMPS.get(_str(command["by"]))
            if jump is None:
                raise Refused(f"the clock moves by one of: {', '.join(_JUMPS)}")
            self.clock.advance(jump)
            self.hub.publish({"type": "clock", "clock": self.clock_view()})
            self.telegram.renew_star_subscriptions()
        else:
            raise Refused(f"unknown command {kind!r}")

    async def _pay(self, command: Json, chat: int, invoice: Json, message: int | None) -> None:
        try:
            await self.telegram.pay(chat, invoice, message_id=message)
        except Refused as refused:
            await websocket.send(json.dumps(_refusal(command, refused)))


async def _forward(events: trio.MemoryReceiveChannel[Json], done: trio.CancelScope) -> None:
    async with events:
        async for event in events:
            await websocket.send(json.dumps(event))
    done.cancel()  # the hub dropped this page (too slow): it reconnects and starts afresh


async def _cancel_on(stop: trio.Event, scope: trio.CancelScope) -> None:
    await stop.wait()
    scope.cancel()


async def _protect(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = _POLICY.format(ws=f"ws://{request.host}")
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _static(name: str) -> Response:
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        return Response("not found", status=404, content_type="text/plain")
    kinds = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
    kind = kinds.get(path.suffix, "application/octet-stream")
    response = Response(path.read_bytes(), content_type=f"{kind}; charset=utf-8")
    response.headers["Cache-Control"] = "no-cache"
    return response


def _same_origin(origin: str | None, host: str) -> bool:
    """Browsers send Origin with every WebSocket and POST; a request without one is not
    from a web page (a script on this machine), which the sandbox allows."""
    return origin is None or origin in (f"http://{host}", f"https://{host}")


def _refusal(command: Any, refused: Refused) -> Json:
    chat = command.get("chat") if isinstance(command, dict) else None
    return {"type": "refused", "chat": chat, "text": str(refused)}


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Refused("expected a whole number")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise Refused("expected text")
    return value
