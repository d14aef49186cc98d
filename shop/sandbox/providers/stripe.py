"""A fake Stripe API: Checkout Sessions, refunds, ``Idempotency-Key``, signed events."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Sequence

from shop.clock import WallClock

from ._base import ApiError, Call, FakeProvider, Json

SECRET_KEY = "sk_test_51Hfake00000000000000000000000000000000"
WEBHOOK_SECRET = "whsec_test_5b0e2f0c1d9a4e8b8f3c2a1d0e9f8a7b"
API_VERSION = "2025-09-30.clover"


def _error(
    status: int, message: str, type_: str = "invalid_request_error", **more: str
) -> ApiError:
    return ApiError(status, {"error": {"type": type_, "message": message, **more}})


class FakeStripe(FakeProvider):
    """Holds ``sessions`` (id -> Checkout Session), ``charges`` (PaymentIntent id ->
    Charge) and ``refunds``. A PaymentIntent and its Charge exist once a session is paid.

    Like Stripe, a repeated ``Idempotency-Key`` replays the first answer, and the same key
    with other parameters is a 400 ``idempotency_error``.
    """

    def __init__(
        self,
        *,
        secret_key: str = SECRET_KEY,
        webhook_secret: str = WEBHOOK_SECRET,
        clock: WallClock | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self.secret_key, self.webhook_secret = secret_key, webhook_secret
        self.sessions: dict[str, Json] = {}
        self.charges: dict[str, Json] = {}
        self.refunds: dict[str, Json] = {}
        self._replies: dict[str, tuple[bytes, Json]] = {}

    # ----------------------------------------------------------------- the API

    async def handle(self, call: Call) -> Json:
        if call.headers.get("authorization") != f"Bearer {self.secret_key}":
            raise _error(401, "Invalid API Key provided: sk_test_****0000")
        if call.method == "GET" and call.path.startswith("/v1/checkout/sessions/"):
            session_id = call.path.removeprefix("/v1/checkout/sessions/")
            if session_id not in self.sessions:
                message = f"No such checkout.session: '{session_id}'"
                raise _error(404, message, code="resource_missing")
            return copy.deepcopy(self._public(self.sessions[session_id]))
        if call.method == "POST" and call.path in ("/v1/checkout/sessions", "/v1/refunds"):
            key = call.headers.get("idempotency-key")
            if key is not None and key in self._replies:
                body, reply = self._replies[key]
                if body != call.body:
                    message = "Keys for idempotent requests can only be used with the same "
                    raise _error(
                        400, message + "parameters they were first used with.", "idempotency_error"
                    )
                return copy.deepcopy(reply)
            form = call.form()
            made = (
                self._create(form) if call.path == "/v1/checkout/sessions" else self._refund(form)
            )
            if key is not None:
                self._replies[key] = (call.body, copy.deepcopy(made))
            return copy.deepcopy(made)
        raise _error(404, f"Unrecognized request URL ({call.method}: {call.path}).")

    def _create(self, form: dict[str, str]) -> Json:
        for name in ("mode", "success_url", "line_items[0][quantity]"):
            if not form.get(name):
                raise _error(400, f"Missing required param: {name}.", param=name)
        try:
            unit_amount = int(form["line_items[0][price_data][unit_amount]"])
            currency = form["line_items[0][price_data][currency]"]
            quantity = int(form["line_items[0][quantity]"])
        except (KeyError, ValueError):
            raise _error(400, "Invalid line_items[0][price_data].", param="line_items") from None
        if currency != currency.lower():
            raise _error(400, f"Invalid currency: {currency}.", param="currency")
        serial = self.next_serial()
        session_id = f"cs_test_a1{serial:030d}"
        created = int(self.now().timestamp())
        metadata = _metadata(form)
        intent_metadata = {
            k[len("payment_intent_data[metadata][") : -1]: v
            for k, v in form.items()
            if k.startswith("payment_intent_data[metadata][")
        }
        self.created += 1
        self.sessions[session_id] = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": unit_amount * quantity,
            "amount_total": unit_amount * quantity,
            "cancel_url": form.get("cancel_url"),
            "client_reference_id": form.get("client_reference_id"),
            "created": created,
            "currency": currency,
            "expires_at": created + 24 * 3600,
            "livemode": False,
            "metadata": metadata,
            "mode": form["mode"],
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": form["success_url"],
            "url": self.checkout_url(
                session_id,
                f"https://checkout.stripe.com/c/pay/{session_id}#fidkdWxOYHwnPyd1blpxYHZxWjA0",
            ),
            "_intent_metadata": intent_metadata,  # the fake's own: copied onto the charge
        }
        return self._public(self.sessions[session_id])

    def _refund(self, form: dict[str, str]) -> Json:
        intent = form.get("payment_intent", "")
        if intent not in self.charges:
            raise _error(400, f"No such payment_intent: '{intent}'", code="resource_missing")
        charge = self.charges[intent]
        amount = int(form.get("amount") or charge["amount"] - charge["amount_refunded"])
        return self._refund_charge(charge, amount, _metadata(form))

    def _refund_charge(self, charge: Json, amount: int, metadata: dict[str, str]) -> Json:
        if amount <= 0 or charge["amount_refunded"] + amount > charge["amount"]:
            message = f"Refund amount ({amount}) is greater than unrefunded amount on charge"
            raise _error(400, message, code="amount_too_large")
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        refund_id = f"re_test_{self.next_serial():024d}"
        self.refunds[refund_id] = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "currency": charge["currency"],
            "metadata": metadata,
            "payment_intent": charge["payment_intent"],
            "status": "succeeded",
        }
        return self.refunds[refund_id]

    # ----------------------------------------------------------------- commands

    def pay(self, session_id: str, amount: int | None = None) -> None:
        """The customer paid; the session gets a PaymentIntent and a Charge."""
        session = self.sessions[session_id]
        intent = f"pi_test_{self.next_serial():024d}"
        if amount is not None:
            session["amount_total"] = amount
        session |= {"status": "complete", "payment_status": "paid", "payment_intent": intent}
        self.charges[intent] = {
            "id": f"ch_test_{self.next_serial():024d}",
            "object": "charge",
            "amount": session["amount_total"],
            "amount_captured": session["amount_total"],
            "amount_refunded": 0,
            "currency": session["currency"],
            "metadata": dict(session["_intent_metadata"]),
            "paid": True,
            "payment_intent": intent,
            "refunded": False,
            "status": "succeeded",
        }

    def expire(self, session_id: str) -> None:
        self.sessions[session_id]["status"] = "expired"

    def refund(self, session_id: str, amount: int | None = None) -> Json:
        """Refund (all by default) as from the dashboard; returns the refund object."""
        charge = self.charges[self.sessions[session_id]["payment_intent"]]
        remaining = charge["amount"] - charge["amount_refunded"]
        return self._refund_charge(charge, remaining if amount is None else amount, {})

    def event_for(self, session_id: str, kind: str | None = None) -> bytes:
        """The event body Stripe would send (pretty-printed, as Stripe does). By default
        ``checkout.session.completed``/``.expired``, or ``charge.refunded`` once refunded."""
        session = self.sessions[session_id]
        charge = self.charges.get(session["payment_intent"] or "")
        if kind is None:
            if charge is not None and charge["amount_refunded"]:
                kind = "charge.refunded"
            elif session["status"] == "expired":
                kind = "checkout.session.expired"
            else:
                kind = "checkout.session.completed"
        thing = charge if kind.startswith("charge.") else self._public(session)
        event = {
            "id": f"evt_test_{self.next_serial():024d}",
            "object": "event",
            "api_version": API_VERSION,
            "created": int(self.now().timestamp()),
            "data": {"object": thing},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }
        return json.dumps(event, indent=2).encode()

    def webhook_for(
        self,
        session_id: str,
        kind: str | None = None,
        *,
        timestamp: int | None = None,
        secrets: Sequence[str] | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """``(headers, body)`` of a signed delivery; see :meth:`event_for` and :meth:`sign`."""
        body = self.event_for(session_id, kind)
        headers = {
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": self.sign(body, timestamp=timestamp, secrets=secrets),
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        return headers, body

    def sign(
        self, body: bytes, *, timestamp: int | None = None, secrets: Sequence[str] | None = None
    ) -> str:
        """``t=…,v1=…[,v1=…],v0=…``: one v1 per secret (several while a secret rolls over),
        and a v0 as test-mode deliveries carry. ``timestamp`` defaults to now."""
        t = int(self.now().timestamp()) if timestamp is None else timestamp
        parts = [f"t={t}"]
        for secret in secrets if secrets is not None else [self.webhook_secret]:
            signed = f"{t}.".encode() + body
            parts.append("v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest())
        parts.append("v0=" + hashlib.sha256(body).hexdigest())
        return ",".join(parts)

    @staticmethod
    def _public(session: Json) -> Json:
        return {k: v for k, v in session.items() if not k.startswith("_")}


def _metadata(form: dict[str, str]) -> dict[str, str]:
    return {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")}
