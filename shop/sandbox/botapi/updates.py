"""How the fake Telegram Bot API server hands updates to the bot: getUpdates and webhooks.

Like the server, it keeps updates until a getUpdates with a higher offset confirms them,
drops an update whose type the bot's allowed_updates exclude, answers a long poll as soon as
an update comes, and ends a waiting poll with 409 when another getUpdates or a setWebhook
arrives. Left out: the anti-busy-loop rules and the delay on repeated 409s. Updates are
pushed to a webhook by ``webhook_push.WebhookPusher``, which a test (or the sandbox) runs.
"""

from __future__ import annotations

import bisect
import itertools
import re
from urllib.parse import urlsplit

import attrs
import trio

from .errors import TERMINATED, WEBHOOK_ACTIVE, ApiError, Json
from .params import _bool, _int

# Update types a bot gets only when it lists them in allowed_updates.
_OPT_IN = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


@attrs.define
class _Poll:
    """A getUpdates request that is waiting; another getUpdates or setWebhook aborts it."""

    scope: trio.CancelScope
    aborted: str | None = None


class UpdatesMixin:
    """The bot's update queue and the methods that read it, for ``FakeTelegram``.

    Attributes that tests may read: ``pending`` (updates not yet confirmed, in order),
    ``confirmed_offset``, ``webhook_url`` and ``webhook_secret``.
    """

    long_poll_max: int  # set by FakeTelegram
    _updates_changed: trio.Event  # made once by FakeTelegram, kept by reset

    def _reset_updates(self) -> None:
        self.pending: list[Json] = []
        self.confirmed_offset = 0
        self._next_update_id = 1
        self._allowed: frozenset[str] | None = None  # None: the server's default set
        self._poll: _Poll | None = None
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        self.webhook_max_connections = 40

    def add_update(self, update: Json) -> int:
        """Queue an update (numbering it when it has no ``update_id``) and wake a long poll.

        Like the server, it drops an update whose type the bot's allowed_updates exclude.
        """
        update = {"update_id": self._next_update_id, **update}
        update_id = int(update["update_id"])
        self._next_update_id = max(self._next_update_id, update_id + 1)
        if self._allows(next((k for k in update if k != "update_id"), "")):
            bisect.insort(self.pending, update, key=_update_id)
            self._updates_changed.set()
            self._updates_changed = trio.Event()
        return update_id

    def _allows(self, kind: str) -> bool:
        return kind not in _OPT_IN if self._allowed is None else kind in self._allowed

    # Bot API methods (FakeTelegram._handlers lists them all)

    async def _get_updates(self, params: Json) -> list[Json]:
        if self.webhook_url:
            raise ApiError(409, WEBHOOK_ACTIVE)
        self._abort_poll(TERMINATED)
        offset = _int(params, "offset", 0)
        limit = min(max(_int(params, "limit", 100), 1), 100)
        timeout = min(max(_int(params, "timeout", 0), 0), self.long_poll_max)
        self._set_allowed(params)
        if offset > 0:
            self.confirmed_offset = max(self.confirmed_offset, offset)
            del self.pending[: bisect.bisect_left(self.pending, offset, key=_update_id)]
        elif offset < 0:  # keep only the last -offset updates
            del self.pending[: max(0, len(self.pending) + offset)]
        poll = self._poll = _Poll(trio.CancelScope(deadline=trio.current_time() + timeout))
        try:
            with poll.scope:
                while not self._take(offset, limit):
                    await self._updates_changed.wait()
        finally:
            if self._poll is poll:
                self._poll = None
        if poll.aborted:
            raise ApiError(409, poll.aborted)
        return self._take(offset, limit)

    def _take(self, offset: int, limit: int) -> list[Json]:
        ready = (u for u in self.pending if u["update_id"] >= offset)
        return list(itertools.islice(ready, limit))

    def _abort_poll(self, reason: str) -> None:
        if self._poll is not None:
            self._poll.aborted = reason
            self._poll.scope.cancel()
            self._poll = None

    def _set_allowed(self, params: Json) -> None:
        allowed = params.get("allowed_updates")
        if allowed is not None:  # omitted: keep the previous setting, like the server
            self._allowed = frozenset(allowed) if allowed else None

    async def _set_webhook(self, params: Json) -> bool:
        url = str(params.get("url") or "")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if url:
            # WebhookActor / Client::do_set_webhook: https only, on the supported ports.
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname:
                raise ApiError(
                    400, "Bad Request: bad webhook: HTTPS url must be provided for webhook"
                )
            if (parts.port or 443) not in (443, 80, 88, 8443):
                raise ApiError(
                    400,
                    "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443"
                    " or 8443",
                )
            self.webhook_max_connections = min(max(_int(params, "max_connections", 40), 1), 100)
            self._abort_poll("Conflict: terminated by setWebhook request")
        self.webhook_url, self.webhook_secret = url, secret
        self._set_allowed(params)
        if _bool(params, "drop_pending_updates"):
            self.pending.clear()
        return True

    async def _delete_webhook(self, params: Json) -> bool:
        return await self._set_webhook({"drop_pending_updates": params.get("drop_pending_updates")})

    async def _get_webhook_info(self, params: Json) -> Json:
        info = {"url": self.webhook_url, "has_custom_certificate": False}
        info["pending_update_count"] = len(self.pending)
        if self.webhook_url:
            info["max_connections"] = self.webhook_max_connections
        if self._allowed is not None:
            info["allowed_updates"] = sorted(self._allowed)
        return info


def _update_id(update: Json) -> int:
    return int(update["update_id"])
