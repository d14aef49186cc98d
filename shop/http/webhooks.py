"""Provider webhooks: ``POST /webhooks/<provider>``.

Order of work: verify (signature, or source address) -> parse -> store the raw event
once -> hand it to the payment's actor -> 200. The answer waits only for the store, so
a provider never retries an event that is safe, and one that was stored is handled even
after a crash (the reconciler replays unhandled events at start).

Answers: bad signature 401; source not allowed 403; malformed body 400 (nested too
deeply included); over 64 KiB 413; wrong method 405; a duplicate, a payment we do not
know, or one in a currency the shop does not use, 200 (a provider must not retry those
forever); Platega's empty check of the URL, 200 and nothing stored; 503 only when the
database is unreachable, so it retries.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Sequence

import trio
from quart import Blueprint, request
from quart.typing import ResponseReturnValue

from ..actors.payment import KIND as PAYMENT
from ..actors.payment import ProviderEventReceived
from ..app import App
from ..errors import ShuttingDown, StoreUnavailable, UnstorableData
from ..payments.base import MalformedWebhook, VerificationPing, WebhookRejected
from ..store import events

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(remote: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy, in which case
    the right-most ``X-Forwarded-For`` hop that is not itself a trusted proxy.

    An IPv4 address seen through a dual-stack socket (``::ffff:10.0.0.1``) is the IPv4
    address: it is matched, and returned, as ``10.0.0.1``.
    """
    remote = _plain(remote)
    if not forwarded_for or not _within(remote, trusted):
        return remote
    address = remote
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        address = _plain(hop)
        if not _within(address, trusted):
            break
    return address


def _plain(address: str) -> str:
    """An IPv4-mapped IPv6 address as its IPv4 address; anything else as given."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return address


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def webhooks(app: App) -> Blueprint:
    hooks = Blueprint("webhooks", __name__, url_prefix="/webhooks")

    @hooks.route("/<name>", methods=["POST"])
    async def receive(name: str) -> ResponseReturnValue:
        arrived = trio.current_time()
        gateway = app.gateways.get(name)
        if gateway is None:
            return {"error": "no such provider"}, 404
        data = await request.get_data(cache=False, as_text=False)
        body = data if isinstance(data, bytes) else data.encode()
        headers = {key.lower(): value for key, value in request.headers.items()}
        peer = client_address(
            request.remote_addr or "", headers.get("x-forwarded-for"), app.config.trusted_proxies
        )
        try:
            gateway.provider.verify(headers, body, peer)
            event = gateway.provider.parse(body)
        except VerificationPing:  # a provider checking the URL: nothing to store
            return {"ok": True}, 200
        except WebhookRejected as exc:
            log.warning("%s webhook rejected from %s: %s", name, peer, exc.reason)
            return {"error": exc.reason}, exc.status
        except MalformedWebhook as exc:
            log.warning("%s webhook malformed: %s", name, exc)
            return {"error": "malformed body"}, 400
        try:
            row, reference = await app.store.run_statement(
                events.record,
                name,
                event.event_id,
                event.reference,
                event.provider_payment_id,
                body,
                app.clock.now(),
            )
        except StoreUnavailable:
            return {"error": "temporarily unavailable"}, 503
        except UnstorableData as exc:  # a NUL in an id, say: it can never be stored
            log.warning("%s event %r cannot be stored: %s", name, event.event_id, exc)
            return {"error": "malformed body"}, 400
        if row is None:
            return {"ok": True, "duplicate": True}, 200
        if reference is None:
            log.warning("%s event %s names no payment of ours", name, event.event_id)
            handled = events.Handled(row, "unknown payment", app.clock.now())
            with contextlib.suppress(StoreUnavailable):  # stored: answering matters more
                await app.store.run_statement(events.mark_handled, [handled])
            return {"ok": True}, 200
        with contextlib.suppress(ShuttingDown):  # stored: the next start hands it over
            await app.actors.tell(PAYMENT, reference, ProviderEventReceived(row, event, arrived))
        return {"ok": True}, 200

    return hooks
