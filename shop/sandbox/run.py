"""``shop sandbox``: the whole shop in one process, with everything it talks to standing in.

In start order: the Bot API emulator, the stand-in providers and the stand-in panel, each on
its own loopback port; then the shop itself (``serve_shop``, exactly as ``shop run`` runs it,
on its embedded database) with two pieces swapped in: its HTTP server also serves the web
chat (``web``), and its timer starts again whenever the sandbox's clock jumps. Everything
stops with the shop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import attrs
import trio

from ..app import App
from ..catalog import Catalog, load_catalog
from ..errors import ConfigError, StartupFailed
from .chats import Hub, SandboxTelegram
from .checkout import StandInProviders
from .clock import SandboxClock, run_timer_across_jumps
from .panels.hiddify import FakeHiddify
from .panels.remnawave import DEFAULT_SQUAD, FakeRemnawave
from .settings import Sandbox, served
from .web import WebChat

log = logging.getLogger(__name__)

#: Where the stand-ins' servers log; the sandbox names their addresses once, itself.
_STAND_IN_LOGGERS = ("shop.sandbox.botapi.server", "shop.sandbox.providers._base")
#: ``shop.main.serve_shop``, handed in by ``shop.main`` (which imports this package).
ServeShop = Callable[..., Awaitable[None]]


@attrs.frozen
class RunningSandbox:
    """What ``serve_sandbox`` hands to whoever started it once the web chat is up."""

    url: str  # the web chat, e.g. http://127.0.0.1:8080/sandbox
    app: App
    telegram: SandboxTelegram
    providers: StandInProviders
    clock: SandboxClock


async def serve_sandbox(
    sandbox: Sandbox,
    stop: trio.Event,
    *,
    serve_shop: ServeShop,
    catalog: Catalog | None = None,
    clock: SandboxClock | None = None,
    task_status: trio.TaskStatus[RunningSandbox] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the sandbox until ``stop`` is set; prints the web chat's address once it serves."""
    config = sandbox.config
    catalog = catalog or load_catalog(config.shop_catalog)
    clock = clock or SandboxClock.kept_in(config.shop_data_dir / "clock-offset")
    hub = Hub()
    telegram = SandboxTelegram(clock, hub)
    providers = StandInProviders(sandbox.providers, clock)
    for quiet in _STAND_IN_LOGGERS:  # hypercorn's "Running on …" for each stand-in
        logging.getLogger(quiet).setLevel(logging.WARNING)
    async with trio.open_nursery() as stand_ins:
        urls = {"telegram_api_url": await stand_ins.start(telegram.serve)}
        for name, url in (await providers.serve(stand_ins)).items():
            urls[f"{name}_api_url"] = url
        urls |= await _serve_panel(sandbox.fulfilment, clock, catalog, stand_ins)
        log.info("stand-ins on loopback: %s", ", ".join(f"{k} {v}" for k, v in urls.items()))
        try:
            config = served(config, urls)
        except ConfigError as exc:  # a stand-in not on loopback: never start like that
            raise StartupFailed(exc.render(), code=2) from None
        web = WebChat(telegram, providers, clock, hub, config.timezone)
        async with trio.open_nursery() as shop:
            running: Any = await shop.start(
                partial(
                    serve_shop,
                    config,
                    stop,
                    catalog=catalog,
                    clock=clock,
                    http=web.serve_http,
                    timer=partial(run_timer_across_jumps, clock),
                )
            )
            shop_url = str(running.urls[0])
            providers.open_pages(shop_url)
            telegram.checkout_page = providers.page_for
            address = f"{shop_url}/sandbox"
            print(f"shop sandbox: open {address} in a browser (Ctrl+C stops it)", flush=True)
            task_status.started(RunningSandbox(address, running.app, telegram, providers, clock))
        stand_ins.cancel_scope.cancel()  # the shop has stopped: nobody calls them any more


async def _serve_panel(
    fulfilment: str, clock: SandboxClock, catalog: Catalog, nursery: trio.Nursery
) -> dict[str, str]:
    """The stand-in panel ``FULFILMENT`` names, serving; the Config fields that reach it."""
    if fulfilment == "remnawave":
        # The panel knows every squad the catalog names, as the operator's real one would.
        limits = [plan.limits for plan in catalog.plans] + [catalog.trial_limits]
        squads = dict([DEFAULT_SQUAD])
        squads |= {squad: f"Sandbox squad {squad[:8]}" for lim in limits for squad in lim.squads}
        remnawave = FakeRemnawave(clock=clock, squads=squads)
        return {"remnawave_url": await nursery.start(remnawave.serve)}
    if fulfilment == "hiddify":
        hiddify = FakeHiddify(clock=clock)
        url = await nursery.start(hiddify.serve)
        return {"hiddify_url": url, "hiddify_client_url": hiddify.client_url}
    return {}
