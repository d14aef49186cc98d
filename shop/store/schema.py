"""Applying ``schema.sql``: the whole current schema, idempotent, run at every start."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .pool import Connection, Store

# Any constant works; it only has to be the same in every process applying the schema.
_SCHEMA_LOCK = 727_001


def schema_text() -> str:
    """The schema: ``schema.sql`` beside the package (a checkout) or inside it (a wheel)."""
    checkout = Path(__file__).resolve().parents[2] / "schema.sql"
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    return resources.files("shop").joinpath("schema.sql").read_text(encoding="utf-8")


def _apply(conn: Connection, sql: str) -> None:
    # Two instances starting together would otherwise race on CREATE ... IF NOT EXISTS.
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
    conn.execute(sql.encode())


async def apply_schema(store: Store) -> None:
    await store.run(_apply, schema_text())
