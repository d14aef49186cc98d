"""Operator alerts in Telegram: every ``ALERT`` log line also goes to ``ADMIN_CHAT_ID``.

The shop raises an alert by logging an error that starts with ``ALERT:`` (an amount
mismatch, a duplicate charge, a fulfilment failure, a refund shortfall...), so logs keep
the whole record. With ``ADMIN_CHAT_ID`` set, a logging handler also hands each alert to
the relay, which posts them to that chat: at most one message every
:data:`MIN_INTERVAL` seconds, several alerts in one message when they come in a burst,
text escaped for HTML and secrets redacted. An alert that cannot be posted stays in the
log; nothing else waits on it.
"""

from __future__ import annotations

import contextlib
import html
import logging
from collections import deque
from collections.abc import Iterable
from typing import NoReturn

import trio

from ..logs import redact
from ..telegram.outbox import Lane, Outbox

log = logging.getLogger(__name__)

PREFIX = "ALERT:"
#: Seconds between two messages to the admin chat.
MIN_INTERVAL = 10.0
#: Alerts shown in one message; the rest are counted.
PER_MESSAGE = 10
#: Alerts kept while waiting to be posted (older ones are dropped, and counted).
BACKLOG = 200


class AlertRelay(logging.Handler):
    """Collects ``ALERT:`` log records (from any thread) and posts them to a chat."""

    def __init__(self, outbox: Outbox, chat_id: int, secrets: Iterable[str] = ()) -> None:
        super().__init__(level=logging.ERROR)
        self._outbox = outbox
        self._chat_id = chat_id
        self._secrets = tuple(s for s in secrets if s)
        self._pending: deque[str] = deque(maxlen=BACKLOG)
        self._dropped = 0
        self._token = trio.lowlevel.current_trio_token()
        self._wake = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith(PREFIX):
            return
        if len(self._pending) == self._pending.maxlen:
            self._dropped += 1
        self._pending.append(redact(message.removeprefix(PREFIX).strip(), self._secrets))
        with contextlib.suppress(trio.RunFinishedError):  # the shop stopped meanwhile
            self._token.run_sync_soon(self._wake.set)  # thread-safe, and from trio's own

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._pending:
                await self._post()
                await trio.sleep(MIN_INTERVAL)  # what comes meanwhile goes in the next one

    async def _post(self) -> None:
        shown = [self._pending.popleft() for _ in range(min(PER_MESSAGE, len(self._pending)))]
        more = len(self._pending) + self._dropped
        self._pending.clear()
        self._dropped = 0
        lines = ["🚨 <b>Shop alerts</b>"] + [f"• {html.escape(text[:300])}" for text in shown]
        if more:
            lines.append(f"… and {more} more (see the log)")
        params = {"chat_id": self._chat_id, "text": "\n".join(lines), "parse_mode": "HTML"}
        try:
            await self._outbox.request("sendMessage", params, lane=Lane.INTERACTIVE)
        except Exception as exc:  # the log has them; a dead admin chat must not spread
            log.warning("alerts not posted to the admin chat: %s", exc)
