"""Serving the HTTP app with hypercorn inside the shop's own trio run."""

from __future__ import annotations

import logging

import hypercorn.config
import hypercorn.trio
import trio

from ..app import App
from .app import create_app


def hypercorn_config(host: str, port: int, grace: float) -> hypercorn.config.Config:
    config = hypercorn.config.Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = grace
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


async def serve_http(
    app: App,
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``stop`` is set, then let in-flight requests finish; reports bound URLs."""
    config = hypercorn_config(app.config.http_host, app.config.http_port, app.config.shutdown_grace)
    await hypercorn.trio.serve(
        create_app(app), config, shutdown_trigger=stop.wait, task_status=task_status
    )
