"""Maintenance mode: no new purchases while it is on; what was paid is still fulfilled.

On when an operator says so (``/maintenance on``, kept in ``settings`` across restarts)
or by itself while the fulfilment backend has been failing for :data:`AUTO_AFTER`
seconds with no success in between (the fulfilment actor reports both); off again at
the backend's first success. Customers then see a short notice instead of the buying
buttons; operators are never held back. Read from memory: checking costs no statement.
"""

from __future__ import annotations

import datetime as dt
import json

import attrs
import trio

from .store.pool import Connection

#: Seconds of fulfilment failures, with no success between, before it switches on.
AUTO_AFTER = 300.0
_KEY = "maintenance"


@attrs.define
class Maintenance:
    manual: bool = False
    failing_since: float | None = None  # trio time of the first failure in a row

    @property
    def on(self) -> bool:
        return self.manual or self.automatic

    @property
    def automatic(self) -> bool:
        since = self.failing_since
        return since is not None and trio.current_time() - since >= AUTO_AFTER

    def backend_failed(self) -> None:
        if self.failing_since is None:
            self.failing_since = trio.current_time()

    def backend_worked(self) -> None:
        self.failing_since = None


def load(conn: Connection) -> bool:
    row = conn.execute("SELECT value FROM settings WHERE key = %s", (_KEY,)).fetchone()
    return bool(row and row[0].get("on"))


def save(conn: Connection, on: bool, now: dt.datetime) -> None:
    conn.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES (%s, %s::jsonb, %s)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
        (_KEY, json.dumps({"on": on}), now),
    )
