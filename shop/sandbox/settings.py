"""The sandbox's configuration: the operator's environment, with everything that reaches
outside the machine replaced by the sandbox's own stand-ins.

What applies as in ``shop run``: the catalog, texts and languages, ``TIMEZONE``, the
``SCHEDULE_*`` crons, ``RATE_LIMIT*``, ``TRAFFIC_ON_RENEWAL``, ``LOG_*`` and the rest of the
shop's behaviour, so operators preview their own shop. Only the variables named in
``_KEPT`` pass, so one added to the shop later (a new provider, say) stays out until it is
named there. What the sandbox sets itself:

- the database: its own embedded one under ``SHOP_DATA_DIR/sandbox`` (``./var/sandbox``);
  ``DATABASE_URL`` and ``BACKUP_DIR`` are ignored, so fake payments never reach a real
  database and sandbox backups never rotate real ones away;
- Telegram: the Bot API emulator; a ``TELEGRAM_TOKEN`` or ``TELEGRAM_API_URL`` meant for
  the real Bot API is refused (exit 2), because a sandbox must never reach real customers;
- payments: the stand-in providers (those whose credentials the environment enables, or
  all six), with stand-in keys and loopback URLs; ``PUBLIC_URL`` is the sandbox's address;
- fulfilment: ``none``, or a stand-in Remnawave (the default) or Hiddify panel;
- operators: one sandbox operator, as ``ADMIN_IDS`` and ``ADMIN_CHAT_ID``;
- HTTP: ``127.0.0.1:8080`` unless ``shop sandbox --host/--port`` say otherwise.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import attrs

from ..config import Config, load_config
from ..errors import ConfigError
from .botapi import TOKEN
from .chats import OPERATOR_ID
from .checkout import PROVIDERS, credentials
from .panels import hiddify, remnawave

log = logging.getLogger(__name__)

#: Stands for a stand-in's URL until it serves (the discard port: nothing answers there).
UNSERVED = "http://127.0.0.1:9"
#: What passes from the operator's environment: what shapes the shop, nothing that reaches
#: outside. ``SHOP_DATA_DIR`` passes as the parent of the sandbox's own data directory.
_KEPT = (
    *("SHOP_CATALOG", "TIMEZONE", "LOG_LEVEL", "LOG_FORMAT", "SHUTDOWN_GRACE"),
    *("RATE_LIMIT", "RATE_LIMIT_BAN", "TELEGRAM_GLOBAL_RATE", "TELEGRAM_PAID_BROADCAST"),
    *("TRAFFIC_ON_RENEWAL", "CHANNEL_GRACE_HOURS", "PAYMENT_EVENT_RETENTION_DAYS"),
    *("BACKUP_KEEP", "ADMIN_TOKEN", "METRICS_TOKEN"),
)


@attrs.frozen
class Sandbox:
    """The sandbox's configuration: the shop's, and which stand-ins it needs."""

    config: Config
    providers: tuple[str, ...]
    fulfilment: str


def sandbox_config(
    environ: Mapping[str, str],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    data_dir: Path | None = None,
) -> Sandbox:
    """Check the environment as ``shop run`` would and make it the sandbox's; raises
    ConfigError naming every variable that cannot be used (the real Bot API, say)."""
    problems = _real_telegram(environ)
    fulfilment = (environ.get("FULFILMENT") or "remnawave").strip().lower()
    if fulfilment == "channel":
        log.warning("FULFILMENT=channel: the sandbox has no channel; it runs with none")
        fulfilment = "none"
    # The providers the operator's own environment enables (their credentials are never
    # used): the sandbox offers those, or every one when none is (or it does not load).
    try:
        own = load_config(environ, "sandbox").payment_providers
    except ConfigError:
        own = ()
    providers = tuple(name for name in PROVIDERS if name in own) or PROVIDERS
    env = {
        name: value
        for name, value in environ.items()
        if name in _KEPT or name.startswith("SCHEDULE_")
    }
    base = Path(environ.get("SHOP_DATA_DIR") or "./var")
    env |= {
        "SHOP_DATA_DIR": str(data_dir or base / "sandbox"),
        "HTTP_HOST": host,
        "HTTP_PORT": str(port),
        "PUBLIC_URL": f"http://{_url_host(host)}" + (f":{port}" if port else ""),
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": UNSERVED,
        "ADMIN_IDS": str(OPERATOR_ID),
        "ADMIN_CHAT_ID": str(OPERATOR_ID),
        "FULFILMENT": fulfilment,
    }
    for name in PROVIDERS:  # the stand-ins' addresses for all, even those not enabled
        env[f"{name.upper()}_API_URL"] = UNSERVED
    for name in providers:
        env |= credentials(name)
    if fulfilment == "remnawave":
        env |= {"REMNAWAVE_URL": UNSERVED, "REMNAWAVE_TOKEN": remnawave.TOKEN}
    elif fulfilment == "hiddify":
        env |= {"HIDDIFY_URL": UNSERVED, "HIDDIFY_API_KEY": hiddify.API_KEY}
    try:
        config = load_config(env, "sandbox")
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return Sandbox(config, providers, fulfilment)


def _real_telegram(environ: Mapping[str, str]) -> list[str]:
    """The sandbox talks to its own Bot API only: a token or URL for the real one is refused."""
    url = (environ.get("TELEGRAM_API_URL") or "").strip()
    if url and _is_telegram(url):
        return [
            f"TELEGRAM_API_URL: {url} is the real Bot API; the sandbox serves its own and never"
            " talks to Telegram (unset TELEGRAM_API_URL, or use `shop run`)"
        ]
    if (environ.get("TELEGRAM_TOKEN") or "").strip() and not url:
        return [
            "TELEGRAM_TOKEN: is set, and without TELEGRAM_API_URL it is for the real Bot API;"
            " the sandbox makes its own bot and never talks to Telegram (unset TELEGRAM_TOKEN,"
            " or use `shop run`)"
        ]
    return []


def _is_telegram(url: str) -> bool:
    try:
        host = (urlsplit(url if "//" in url else f"//{url}").hostname or "").rstrip(".")
    except ValueError:
        return False
    return host == "telegram.org" or host.endswith(".telegram.org")


def _url_host(host: str) -> str:
    """How an address to bind appears in a URL (``0.0.0.0`` is reached as 127.0.0.1)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "[::1]"
    return f"[{host}]" if address.version == 6 else host


def served(config: Config, urls: Mapping[str, str]) -> Config:
    """``config`` with the stand-ins' real URLs (``urls`` by Config field), checked: every
    address the shop will call is on this machine, and every enabled provider a stand-in."""
    config = config.replace(**urls)
    calls = ["telegram_api_url", *(f"{name}_api_url" for name in config.payment_providers)]
    if config.fulfilment in ("remnawave", "hiddify"):
        calls.append(f"{config.fulfilment}_url")
    outside = [name.upper() for name in calls if not _loopback(getattr(config, name, "") or "")]
    if outside or not set(config.payment_providers) <= set(PROVIDERS):
        names = ", ".join(outside) or ", ".join(config.payment_providers)
        raise ConfigError([f"{names}: the sandbox calls only its stand-ins on this machine"])
    return config


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
