"""The embedded PostgreSQL used when no ``DATABASE_URL`` is given.

pgserver ships PostgreSQL binaries in a wheel; the cluster lives in the data directory,
so its contents survive restarts. The server stops when the shop stops.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_embedded_postgres(data_dir: Path) -> AsyncIterator[str]:
    """Start (or reuse) a private PostgreSQL in ``data_dir/postgres``; yield its URL."""
    # pgserver narrates every pg_ctl call at INFO; its warnings are worth keeping.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    server = await trio.to_thread.run_sync(_start, data_dir)
    try:
        yield str(server.get_uri())
    finally:
        with trio.CancelScope(shield=True):
            log.info("stopping embedded PostgreSQL")
            await trio.to_thread.run_sync(server.cleanup)


def _start(data_dir: Path) -> Any:
    import pgserver  # imported lazily: only this path needs it

    pgdata = data_dir.resolve() / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    log.info("starting embedded PostgreSQL in %s", pgdata)
    with warnings.catch_warnings():
        # platformdirs warns when a container has no XDG_RUNTIME_DIR; harmless here.
        warnings.simplefilter("ignore")
        return pgserver.get_server(  # type: ignore[attr-defined]
            pgdata, cleanup_mode="stop"
        )
