"""The progress of a broadcast composed in Telegram, shown in its operator's chat.

While the broadcast runs, one message there says how far it got and carries a cancel
button; it is edited every few seconds, only when the figures changed. When the
broadcast ends (done or canceled) that message shows the final figures and a summary is
sent; ``take_summary`` makes the summary once across restarts and instances. Everything
is read from the broadcast's rows, so a restart picks up where it was: the resumed
broadcast keeps editing the same message.

It sleeps without a statement until poked (a broadcast composed), then reports every
``PROGRESS_EVERY`` seconds while one is unfinished.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import trio

from ..clock import WallClock
from ..errors import BadRequest, StoreUnavailable, TelegramError
from ..store import Store, broadcasts
from ..store.broadcasts import Report
from ..telegram.keyboards import button, keyboard
from ..telegram.outbox import Outbox
from ..telegram.types import to_json
from ..wakeup import Wakeup

log = logging.getLogger(__name__)

PROGRESS_EVERY = 5.0


def progress_text(report: Report) -> str:
    p = report.progress
    answered = p.sent + p.blocked + p.failed
    head = {
        "running": "📣 Broadcast #{id} is sending",
        "done": "✅ Broadcast #{id} is done",
        "canceled": "✖️ Broadcast #{id} was canceled",
    }[p.status].format(id=report.id)
    return (
        f"{head}: {answered} of {p.total}\nsent {p.sent} · blocked {p.blocked} · failed {p.failed}"
    )


class ProgressReporter:
    def __init__(self, store: Store, outbox: Outbox, clock: WallClock) -> None:
        self._store = store
        self._outbox = outbox
        self._clock = clock
        self.due = Wakeup()
        self._shown: dict[int, str] = {}  # broadcast -> the text its message shows

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                reports = await self._store.run(broadcasts.reports_due)
            except StoreUnavailable as exc:
                log.warning("broadcast progress: database unreachable (%s)", exc)
                await self.due.sleep(30.0)
                continue
            for report in reports:
                await self.report(report)
            await self.due.sleep(PROGRESS_EVERY if reports else math.inf)

    async def report(self, report: Report) -> None:
        text = progress_text(report)
        try:
            if report.progress.status == "running":
                await self._show(report, text, cancel=True)
            elif await self._store.run_statement(
                broadcasts.take_summary, report.id, self._clock.now()
            ):
                await self._show(report, text, cancel=False)
                self._shown.pop(report.id, None)
                await self._outbox.request("sendMessage", _summary(report))
        except TelegramError as exc:  # the operator blocked the bot, say: sending goes on
            log.warning("broadcast %s: progress not shown (%s)", report.id, exc)

    async def _show(self, report: Report, text: str, *, cancel: bool) -> None:
        if self._shown.get(report.id) == text:
            return
        markup = keyboard([button("✖️ Cancel", f"adm:bk:{report.id}")]) if cancel else None
        params: dict[str, Any] = {"chat_id": report.chat_id, "text": text}
        if markup is not None:
            params["reply_markup"] = to_json(markup)
        if report.message_id is None:
            sent = await self._outbox.request("sendMessage", params)
            await self._store.run_statement(
                broadcasts.set_progress_message, report.id, int(sent["message_id"])
            )
        else:
            try:
                await self._outbox.request(
                    "editMessageText", params | {"message_id": report.message_id}
                )
            except BadRequest as exc:
                if "message is not modified" not in exc.description:
                    raise
        self._shown[report.id] = text


def _summary(report: Report) -> dict[str, Any]:
    p = report.progress
    verdict = "finished" if p.status == "done" else "was canceled"
    owed = p.total - p.sent - p.blocked - p.failed
    text = (
        f"📣 Broadcast #{report.id} {verdict}.\n"
        f"Recipients: {p.total}\nDelivered: {p.sent}\nBlocked the bot: {p.blocked}\n"
        f"Refused by Telegram: {p.failed}"
    )
    if owed:
        text += f"\nNot sent (canceled): {owed}"
    return {"chat_id": report.chat_id, "text": text}
