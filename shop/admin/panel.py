"""``/admin``: the operator's panel and its numbers; ``/audit``: who did what, latest first."""

from __future__ import annotations

import datetime as dt
import html

from .. import maintenance
from ..actors.conversation import Conversation
from ..actors.screens import Screen
from ..money import format_money
from ..store import audit, stats
from ..store.audit import AuditRow
from ..store.pool import Connection
from ..telegram.keyboards import button, keyboard
from ..telegram.types import InlineKeyboardButton, Message
from .keys import act

AUDIT_PAGE = 15
BACK = [button("⬅️ Admin", "adm")]


def panel() -> Screen:
    rows = [
        [button("📊 Stats", "adm:st"), button("👤 Customer", "adm:fu")],
        [button("📣 Broadcast", "adm:bc"), button("🧾 Audit", "adm:au")],
    ]
    return Screen("adm", "🛠 <b>Admin</b>", keyboard(*rows))


async def stats_screen(conv: Conversation) -> Screen:
    now = conv.app.clock.now()
    local = now.astimezone(conv.app.config.timezone)
    today = local.replace(hour=0, minute=0, second=0, microsecond=0)
    s = await conv.app.store.run(stats.collect, now, today)
    conversion = f"{s.conversion_30d:.1%}" if s.conversion_30d is not None else "—"
    lines = [
        "📊 <b>Stats</b>",
        f"Customers: <b>{s.customers}</b> · new today {s.new['today']}, 7d {s.new['7d']},"
        f" 30d {s.new['30d']}",
        f"Blocked the bot: {s.blocked} · banned: {s.banned}",
        f"Active subscriptions: <b>{s.active}</b> (lifetime {s.lifetime}, trials {s.trials})",
        "",
        "<b>Revenue</b>",
    ]
    for window in stats.WINDOWS:
        amounts = ", ".join(format_money(a, c, "en") for c, a in s.revenue[window].items())
        lines.append(f"{window}: {amounts or '—'}")
    states = ", ".join(f"{state} {count}" for state, count in s.payments.items())
    lines += [
        "",
        f"Payments: {states or '—'}",
        f"Open problems: <b>{s.problems}</b>",
        f"Conversion start → paid (30d): {conversion} ({s.paid_30d} of {s.started_30d})",
    ]
    return Screen("adm:stats", "\n".join(lines), keyboard([button("🔄", "adm:st"), *BACK]))


async def audit_screen(conv: Conversation, before_id: int | None = None) -> Screen:
    rows = await conv.app.store.run_statement(audit.latest, AUDIT_PAGE, before_id)
    zone = conv.app.config.timezone
    lines = ["🧾 <b>Audit</b>"] + [_line(row, zone) for row in rows]
    if not rows:
        lines.append("Nothing yet.")
    nav: list[InlineKeyboardButton] = []
    if len(rows) == AUDIT_PAGE:
        nav.append(button("Older", f"adm:au:{rows[-1].id}"))
    return Screen("adm:audit", "\n".join(lines), keyboard(nav, BACK))


def _line(row: AuditRow, zone: dt.tzinfo) -> str:
    at = row.at.astimezone(zone).strftime("%m-%d %H:%M")
    change = html.escape(f"{_short(row.before)} → {_short(row.after)}")
    return (
        f"{at} <code>{row.admin_id}</code> <b>{html.escape(row.action)}</b>"
        f" {html.escape(row.target)}: {change}"
    )


def _short(value: object) -> str:
    text = "—" if value is None else str(value)
    return text if len(text) <= 80 else text[:79] + "…"


async def switch_maintenance(conv: Conversation, message: Message, argument: str) -> None:
    """``/maintenance on|off``: no new purchases while on (kept across restarts)."""
    app = conv.app
    wanted = argument.strip().lower()
    if wanted not in ("on", "off"):
        state = "on" if app.maintenance.on else "off"
        why = " (the fulfilment backend is failing)" if app.maintenance.automatic else ""
        await conv.send_text(f"Maintenance is {state}{why}. /maintenance on or /maintenance off.")
        return
    on = wanted == "on"
    key = f"msg:{message.chat.id}:{message.message_id}"
    await app.store.run(_switch, act(conv, key), app.maintenance.manual, on)
    app.maintenance.manual = on
    if app.maintenance.automatic and not on:
        note = " It stays on by itself while the fulfilment backend keeps failing."
    else:
        note = ""
    await conv.send_text(f"Maintenance {wanted}.{note}")


def _switch(conn: Connection, act: audit.Act, before: bool, on: bool) -> None:
    row_id = audit.begin(conn, act, "maintenance", "shop")
    if row_id is not None:  # not a replay of this very message
        maintenance.save(conn, on, act.now)
        audit.settle(conn, row_id, {"on": before}, {"on": on})
