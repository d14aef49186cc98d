"""The ``shop`` command: ``shop run`` serves the shop, ``shop sandbox`` tries it out offline,
``shop migrate`` applies the schema,
``shop panel sync [--dry-run]`` repairs the panel, ``shop panel import`` adopts its users,
``shop check`` checks the environment and the catalog, ``shop --version`` names the version,
``shop backup`` saves the database and ``shop restore FILE [--force]`` brings it back.

``shop sandbox`` runs the same shop with everything it talks to standing in on this machine
(see :mod:`shop.sandbox`), and a web chat to try it in.

``shop run`` is one ``trio.run`` with one root nursery. Parts start in dependency
order (database, store, actors, then intake: the HTTP server and the Telegram poller)
and stop in reverse: on SIGTERM or SIGINT intake stops first, the actors drain their
mailboxes, then everything closes, all within ``SHUTDOWN_GRACE``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import logging
import os
import random
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import attrs
import trio

from . import maintenance
from .actors.alerts import AlertRelay
from .actors.broadcast import Broadcaster
from .actors.broadcast_progress import ProgressReporter
from .actors.courier import Courier
from .actors.dispatcher import Dispatcher
from .actors.fulfilment import import_accounts, run_fulfilment, sync_everyone
from .actors.intake import lead, run_dispatcher, run_webhook_intake
from .actors.jobs import default_jobs, run_notice_deliverer
from .actors.notices import render as render_notice
from .actors.payment import payment_kind
from .actors.poller import Poller
from .actors.reconciler import run_reconciler
from .actors.runtime import Registry, open_registry
from .actors.timer import Job, run_timer
from .actors.user import KIND as USER
from .actors.user import MarkBlocked, user_kind
from .app import App
from .backup import backup, restore
from .catalog import Catalog, load_catalog
from .check import check
from .clock import SystemClock, WallClock
from .config import Config, load_config
from .errors import ConfigError, ShuttingDown, StartupFailed, StoreUnavailable
from .fulfilment import Fulfilment
from .fulfilment.backends import open_fulfilment
from .fulfilment.channel import ChannelAccess
from .fulfilment.hiddify import Hiddify
from .fulfilment.remnawave import Remnawave
from .growth.channel_gate import ChannelGate
from .http.serve import serve_http
from .limits import bulk_headroom, open_limits
from .logs import setup_logging
from .metrics import Metrics
from .payments.gateways import open_gateways
from .sandbox.run import serve_sandbox
from .sandbox.settings import Sandbox, sandbox_config
from .store import Store, apply_schema, open_embedded_postgres, open_store
from .store.instance import open_instance
from .store.pool import BusyHook
from .telegram.api import BotClient, open_bot_client
from .telegram.outbox import Outbox, current_receipts
from .telegram.texts import load_texts
from .wakeup import Wakeup

log = logging.getLogger("shop")

#: How long ``shop run`` keeps retrying a database that does not answer at start.
STARTUP_DB_PATIENCE = 60.0


@attrs.frozen
class Running:
    """What ``serve_shop`` hands to whoever started it once the shop is up."""

    app: App
    urls: list[str]


@asynccontextmanager
async def open_database(config: Config) -> AsyncIterator[str]:
    """Yield the database URL: the configured one, or an embedded server's."""
    if config.database_url:
        yield config.database_url
    else:
        async with open_embedded_postgres(config.shop_data_dir) as url:
            yield url


async def apply_schema_patiently(store: Store, patience: float) -> None:
    """Apply the schema, retrying with backoff while the database is not up yet."""
    delay, deadline = 0.5, trio.current_time() + patience
    while True:
        try:
            await apply_schema(store)
            return
        except StoreUnavailable as exc:
            if trio.current_time() + delay > deadline:
                raise StartupFailed(f"database unreachable: {exc}") from None
            log.warning("database not reachable yet (%s); retrying in %.1f s", exc, delay)
            await trio.sleep(delay)
            delay = min(delay * 2, 10.0)


#: Seconds /readyz says "draining" before the HTTP server closes, after SIGTERM.
DRAIN_NOTICE = 2.0

#: Messages a chat may get at once before the outbox paces it to one a second (issue 15:
#: an invoice and then a screen are not held back; Telegram allows short bursts).
CHAT_BURST = 3


async def serve_shop(
    config: Config,
    stop: trio.Event,
    *,
    catalog: Catalog | None = None,
    clock: WallClock | None = None,
    rng: random.Random | None = None,
    on_busy: BusyHook | None = None,
    on_update_handled: Callable[[float], None] | None = None,
    store_timeout: float = 10.0,
    jobs: Sequence[Job] | None = None,
    fulfilment: Fulfilment | None = None,
    poll_timeout: int = 50,
    http: Callable[..., Awaitable[None]] = serve_http,
    timer: Callable[[App, Sequence[Job]], Awaitable[object]] = run_timer,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the whole shop until ``stop`` is set, then shut down within the grace period.

    ``on_update_handled`` also hears each update's latency (for ``bench/``);
    ``store_timeout`` is how long to wait for a database connection; ``http`` serves the
    HTTP app and ``timer`` runs the jobs (``shop sandbox`` adds its web chat to the one and
    restarts the other when its clock jumps).
    """
    assert config.telegram_token is not None
    rng = rng or random.Random()
    wall = clock or SystemClock()
    async with (
        open_database(config) as url,
        open_store(url, on_busy=on_busy, patience=store_timeout) as store,
        open_bot_client(config.telegram_api_url, config.telegram_token) as bot,
        open_limits(config) as limiting,  # Redis when REDIS_URL is set
        open_gateways(config, wall, rng) as gateways,
        _fulfilment(config, fulfilment, store, wall) as backend,
        contextlib.AsyncExitStack() as stack,  # the instance lock, taken once the schema is in
    ):
        await apply_schema_patiently(store, STARTUP_DB_PATIENCE)
        instance = await _open_instance_patiently(stack, store)
        metrics = Metrics()
        with trio.CancelScope() as hard_stop:
            async with trio.open_nursery() as services:
                async with open_registry(
                    [], on_handled=metrics.on_handled, carried=(current_receipts,)
                ) as actors:
                    metrics.watch_actors(actors.stats)
                    outbox = Outbox(
                        bot,
                        global_rate=limiting.send_rate,
                        # Paid broadcasts are decided on the rate of all instances
                        # together: this one's share may be under Telegram's free 30/s.
                        paid_broadcast=config.telegram_paid_broadcast
                        and config.telegram_global_rate > 30,
                        bulk_headroom=bulk_headroom(
                            limiting.send_rate, config.instances if limiting.budget else 1
                        ),
                        budget=limiting.budget,
                        chat_burst=CHAT_BURST,
                        on_blocked=partial(_report_blocked, actors),
                        on_event=metrics.outbox_event,
                        rng=rng,
                    )
                    await services.start(outbox.run)
                    if config.admin_chat_id is not None:
                        relay = AlertRelay(outbox, config.admin_chat_id, _secrets(config))
                        await services.start(relay.run)
                        stack.callback(logging.getLogger().removeHandler, relay)
                        logging.getLogger().addHandler(relay)
                    notices_due = Wakeup()
                    courier = Courier(store, outbox, wall, notices_due)
                    await services.start(courier.run)

                    def update_handled(seconds: float) -> None:
                        metrics.update_latency.observe(seconds)
                        if on_update_handled is not None:
                            on_update_handled(seconds)

                    app = App(
                        config=config,
                        clock=wall,
                        store=store,
                        actors=actors,
                        metrics=metrics,
                        bot=bot,
                        outbox=outbox,
                        texts=load_texts(overrides=config.texts_dir),
                        catalog=catalog or load_catalog(config.shop_catalog),
                        fulfilment=backend,
                        gateways=gateways,
                        checks_due=Wakeup(),
                        courier=courier,
                        notices_due=notices_due,
                        fulfilment_due=Wakeup(),
                        broadcaster=Broadcaster(
                            store, outbox, wall, instance, Wakeup(), metrics.broadcast_outcome
                        ),
                        broadcast_progress=ProgressReporter(store, outbox, wall),
                        instance=instance,
                        channel_gate=_channel_gate(config, bot),
                        limits=limiting.limits,
                        redis=limiting.redis,
                        dispatcher=Dispatcher(
                            store,
                            actors,
                            wall,
                            instance=instance,
                            shared=True,
                            on_handled=update_handled,
                            backoff=lambda: 1.0 + rng.random(),
                        )
                        if config.shared
                        else None,
                    )
                    courier.render = partial(render_notice, app)
                    app.maintenance.manual = await store.run_statement(maintenance.load)
                    if isinstance(backend, ChannelAccess):
                        backend.attach(outbox)  # it tells customers through the outbox
                    actors.register(user_kind(app))
                    actors.register(payment_kind(app))

                    poller = Poller(
                        bot,
                        store,
                        actors,
                        app.clock,
                        rng=rng,
                        on_handled=update_handled,
                        poll_timeout=poll_timeout,
                        identity=app.identity,
                        dispatcher=app.dispatcher,
                    )
                    http_stop = trio.Event()
                    async with trio.open_nursery() as intake:
                        urls = await intake.start(http, app, http_stop)
                        _start_intake(intake, app, bot, poller, rng, stop)
                        intake.start_soon(_until, stop, run_reconciler, app)
                        intake.start_soon(_until, stop, run_notice_deliverer, app)
                        intake.start_soon(_until, stop, run_fulfilment, app)
                        intake.start_soon(app.broadcaster.run, stop)  # stops by itself
                        intake.start_soon(_until, stop, app.broadcast_progress.run)
                        if app.channel_gate is not None:
                            intake.start_soon(_until, stop, app.channel_gate.prepare)
                        schedule = jobs or default_jobs(config)
                        if config.shared:  # one timer across instances
                            run_timer_until = partial(_timer_until, timer, app, schedule)
                            intake.start_soon(
                                lead, store, wall, instance, "timer", run_timer_until, stop
                            )
                        else:
                            intake.start_soon(_until, stop, timer, app, schedule)
                        task_status.started(Running(app, urls))
                        await stop.wait()
                        log.info(
                            "shutting down: no new work, draining (up to %g s)",
                            config.shutdown_grace,
                        )
                        hard_stop.deadline = trio.current_time() + config.shutdown_grace
                        # Not ready any more, and still serving for a moment, so a load
                        # balancer moves new requests elsewhere before the server closes.
                        app.draining.set()
                        await trio.sleep(min(DRAIN_NOTICE, config.shutdown_grace / 4))
                        http_stop.set()
                    await actors.drain()
                await outbox.drain()
                await courier.quiet()
                services.cancel_scope.cancel()
        if hard_stop.cancelled_caught:
            log.warning("grace period over: stopped with work unfinished")
    log.info("stopped")


@asynccontextmanager
async def _fulfilment(
    config: Config, given: Fulfilment | None, store: Store, clock: WallClock
) -> AsyncIterator[Fulfilment]:
    """The backend a test hands in, or the one ``FULFILMENT`` names."""
    if given is not None:
        yield given
    else:
        async with open_fulfilment(
            config, store, clock, load_texts(overrides=config.texts_dir)
        ) as backend:
            yield backend


def _start_intake(
    intake: trio.Nursery,
    app: App,
    bot: BotClient,
    poller: Poller,
    rng: random.Random,
    stop: trio.Event,
) -> None:
    """Updates come in by webhook, or by polling (one poller across instances)."""
    config, dispatcher = app.config, app.dispatcher
    if config.telegram_webhook_url is not None:
        assert dispatcher is not None
        intake.start_soon(run_webhook_intake, bot, config, dispatcher, app.identity, rng, stop)
    elif dispatcher is not None:
        intake.start_soon(run_dispatcher, bot, dispatcher, app.identity, rng, stop)
        intake.start_soon(lead, app.store, app.clock, app.instance, "poller", poller.run, stop)
    else:
        intake.start_soon(poller.run, stop)


def _channel_gate(config: Config, bot: BotClient) -> ChannelGate | None:
    if config.required_channel_id is None:
        return None
    return ChannelGate(bot, config.required_channel_id, config.required_channel_url)


async def _open_instance_patiently(stack: contextlib.AsyncExitStack, store: Store) -> int:
    """This shop's instance id (``store.instance``), held until the shop stops."""
    delay = 0.5
    while True:
        try:
            return await stack.enter_async_context(open_instance(store))
        except StoreUnavailable as exc:
            log.warning("database not reachable yet (%s); retrying in %.1f s", exc, delay)
            await trio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def _until(stop: trio.Event, run: Callable[..., Awaitable[object]], *args: object) -> None:
    """Run ``run(*args)`` until ``stop`` is set."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, *args)
        await stop.wait()
        nursery.cancel_scope.cancel()


async def _timer_until(
    timer: Callable[..., Awaitable[object]], app: App, jobs: Sequence[Job], until: trio.Event
) -> None:
    await _until(until, timer, app, jobs)


async def _report_blocked(actors: Registry, chat_id: int) -> None:
    try:
        await actors.tell(USER, chat_id, MarkBlocked())
    except ShuttingDown:
        log.info("customer %s blocked the bot (noticed while stopping)", chat_id)


async def _watch_signals(stop: trio.Event, cancel: Callable[[], None]) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if stop.is_set():
                log.warning("second %s: stopping now", signal.Signals(signum).name)
                cancel()
                return
            log.info("received %s", signal.Signals(signum).name)
            stop.set()


def tune_garbage_collector() -> None:
    """Fewer, cheaper collections for a long-running service (issue #15).

    What is loaded by now (modules, the catalog, texts) lives as long as the process, so it
    is frozen out of every later collection; and the youngest generation is collected every
    50,000 allocations instead of 700, which under a storm of updates had the collector
    walking thousands of live actors many times a second.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


async def _run(config: Config, catalog: Catalog) -> None:
    tune_garbage_collector()
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, stop, nursery.cancel_scope.cancel)
        await serve_shop(config, stop, catalog=catalog)
        nursery.cancel_scope.cancel()


async def _sandbox(sandbox: Sandbox, catalog: Catalog) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, stop, nursery.cancel_scope.cancel)
        await serve_sandbox(sandbox, stop, serve_shop=serve_shop, catalog=catalog)
        nursery.cancel_scope.cancel()


async def _migrate(config: Config) -> None:
    async with open_database(config) as url, open_store(url) as store:
        await apply_schema_patiently(store, patience=10.0)
    log.info("schema applied")


async def _panel_sync(config: Config, catalog: Catalog, dry_run: bool) -> None:
    """``shop panel sync [--dry-run]``: one line per customer whose access differs."""
    async with (
        open_database(config) as url,
        open_store(url) as store,
        open_fulfilment(config, store, SystemClock()) as backend,
    ):
        await apply_schema_patiently(store, patience=10.0)
        if backend.name == "none":
            print("FULFILMENT=none: there is no panel to compare with")
            return
        differed = await sync_everyone(
            store, backend, catalog, SystemClock(), dry_run=dry_run, report=print
        )
        verb = "differ" if dry_run else "were repaired"
        print(f"{differed} accounts {verb}")


async def _panel_import(config: Config) -> None:
    """``shop panel import``: one line per account on the panel."""
    async with (
        open_database(config) as url,
        open_store(url) as store,
        open_fulfilment(config, store, SystemClock()) as backend,
    ):
        await apply_schema_patiently(store, patience=10.0)
        if not isinstance(backend, Remnawave | Hiddify):
            raise StartupFailed(
                "shop panel import: available with FULFILMENT=remnawave or hiddify", code=2
            )
        adopted = await import_accounts(store, backend, SystemClock(), report=print)
        print(f"{adopted} accounts adopted")


async def _backup(config: Config) -> None:
    """``shop backup``: prints the path of the archive it wrote."""
    async with open_database(config) as url:
        path = await backup(url, config.backup_dir, config.backup_keep, SystemClock())
    print(path)


async def _restore(config: Config, file: Path, force: bool) -> None:
    """``shop restore FILE [--force]`` (the next ``shop run`` updates the schema)."""
    async with open_database(config) as url:
        await restore(url, file, force=force)
    log.info("restored %s", file)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shop", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--version", action="version", version=f"shop {importlib.metadata.version('shop')}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="serve the shop")
    trying = commands.add_parser(
        "sandbox",
        help="the shop offline with a web chat, stand-in Telegram, providers and panel",
    )
    trying.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    trying.add_argument("--port", type=int, default=8080, help="port to bind (8080; 0: any)")
    commands.add_parser("migrate", help="apply schema.sql to the database")
    commands.add_parser(
        "check", help="check the environment and the catalog as `shop run` would, start nothing"
    )
    panel = commands.add_parser("panel", help="the fulfilment backend (FULFILMENT)")
    panel_commands = panel.add_subparsers(dest="panel_command", required=True)
    sync = panel_commands.add_parser(
        "sync", help="compare every subscription with the panel and repair what differs"
    )
    sync.add_argument("--dry-run", action="store_true", help="only print what differs")
    panel_commands.add_parser(
        "import", help="adopt the panel's accounts that carry a telegramId as customers"
    )
    commands.add_parser(
        "backup", help="write a pg_dump archive into BACKUP_DIR; keep the newest BACKUP_KEEP"
    )
    restoring = commands.add_parser(
        "restore", help="restore a `shop backup` archive into an empty database"
    )
    restoring.add_argument("file", type=Path, help="the archive, a shop-*.dump file")
    restoring.add_argument(
        "--force", action="store_true", help="replace the data of a database that holds some"
    )
    args = parser.parse_args(argv)
    if args.command == "check":
        # Before load_config below: check() reads the environment as `shop run` would and
        # reports the catalog's problems as well, not only the first ConfigError.
        return check(os.environ)

    sandbox: Sandbox | None = None
    try:
        if args.command == "sandbox":
            sandbox = sandbox_config(os.environ, host=args.host, port=args.port)
            config = sandbox.config
        else:
            config = load_config(os.environ, args.command)
        catalog = load_catalog(config.shop_catalog)
        load_texts(overrides=config.texts_dir)  # TEXTS_DIR's mistakes stop the start here
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.log_format, secrets=_secrets(config))
    try:
        if args.command == "run":
            trio.run(_run, config, catalog)
        elif sandbox is not None:
            trio.run(_sandbox, sandbox, catalog)
        elif args.command == "panel" and args.panel_command == "import":
            trio.run(_panel_import, config)
        elif args.command == "panel":
            trio.run(_panel_sync, config, catalog, args.dry_run)
        elif args.command == "backup":
            trio.run(_backup, config)
        elif args.command == "restore":
            trio.run(_restore, config, args.file, args.force)
        else:
            trio.run(_migrate, config)
    except BaseException as exc:
        failure = _startup_failure(exc)
        if failure is None:
            raise
        log.error("%s", failure)
        return failure.code
    return 0


def _startup_failure(exc: BaseException) -> StartupFailed | None:
    """The StartupFailed behind ``exc``, looking through trio's exception groups."""
    if isinstance(exc, StartupFailed):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if found := _startup_failure(inner):
                return found
    return None


def _secrets(config: Config) -> list[str]:
    """Values that must never reach a log line."""
    values = (
        config.database_url,
        config.redis_url,
        config.telegram_token,
        config.admin_token,
        config.metrics_token,
        config.remnawave_token,
        config.remnawave_caddy_token,
        config.remnawave_webhook_secret,
        config.yookassa_secret_key,
        config.stripe_secret_key,
        config.stripe_webhook_secret,
        config.cryptopay_token,
        config.heleket_api_key,
        config.platega_secret,
        config.yoomoney_notification_secret,
        config.yoomoney_token,
    )
    return [value for value in values if value]


if __name__ == "__main__":
    sys.exit(main())
