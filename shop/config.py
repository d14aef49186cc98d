"""Configuration from environment variables, validated at start.

Every variable is declared once in :data:`VARIABLES` (name, meaning, default, parser).
:func:`load_config` reads them all, collects *every* problem, and raises one
:class:`~shop.errors.ConfigError` naming each variable and what it expects; ``shop``
turns that into a message on stderr and exit code 2. ``.env.example`` and the README
table list the same variables (a test keeps them in step).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from croniter import croniter

from .errors import ConfigError

Parser = Callable[[str], Any]


# -- parsers: each returns the value or raises ValueError("expected ...") ----------------


def text(raw: str) -> str:
    return raw


def integer(lo: int, hi: int) -> Parser:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected an integer from {lo} to {hi}") from None
        if not lo <= value <= hi:
            raise ValueError(f"expected an integer from {lo} to {hi}")
        return value

    return parse


def seconds(lo: float, hi: float) -> Parser:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"expected a number of seconds from {lo:g} to {hi:g}") from None
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ValueError(f"expected a number of seconds from {lo:g} to {hi:g}")
        return value

    return parse


def choice(*options: str) -> Parser:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError("expected one of " + ", ".join(options))
        return value

    return parse


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected 1 or 0 (true/false)")


def zone(raw: str) -> ZoneInfo:
    try:
        return ZoneInfo(raw.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone name such as Europe/Berlin") from None


def url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("expected an http:// or https:// URL")
    return value


def database_url(raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^postgres(ql)?://", value):
        raise ValueError("expected a postgresql:// URL")
    return value


def redis_url(raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^(rediss?|unix)://", value):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return value


def id_list(raw: str) -> frozenset[int]:
    ids = set()
    for part in re.split(r"[,\s]+", raw.strip()):
        if not part:
            continue
        if not re.fullmatch(r"-?\d{1,19}", part):
            raise ValueError("expected Telegram user ids separated by commas")
        ids.add(int(part))
    return frozenset(ids)


def networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for part in re.split(r"[,\s]+", raw.strip()):
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError("expected IP addresses or CIDR networks separated by commas") from None
    return tuple(nets)


def webhook_secret(raw: str) -> str:
    """What setWebhook accepts as ``secret_token``: 1-256 characters A-Z, a-z, 0-9, _ and -."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", raw):
        raise ValueError("expected 1-256 characters from A-Z, a-z, 0-9, _ and -")
    return raw


def channel_id(raw: str) -> int:
    value = raw.strip()
    if not re.fullmatch(r"-100\d{1,16}", value):
        raise ValueError("expected a channel id such as -1001234567890")
    return int(value)


def chat(raw: str) -> int:
    value = raw.strip()
    if not re.fullmatch(r"-?\d{1,20}", value) or not -(2**63) <= int(value) < 2**63:
        raise ValueError("expected a Telegram chat id such as -1001234567890 or 123456789")
    return int(value)


def cron(raw: str) -> str:
    value = raw.strip()
    if not croniter.is_valid(value) or len(value.split()) != 5:
        raise ValueError("expected a five-field cron expression such as '0 7 * * *'")
    return value


def rate_limit(raw: str) -> tuple[int, float]:
    """``20`` (per 60 s) or ``20/60`` (updates / seconds)."""
    count, _, window = raw.strip().partition("/")
    try:
        parsed = int(count), float(window) if window else 60.0
    except ValueError:
        raise ValueError("expected a number of updates, optionally /seconds, e.g. 20/60") from None
    if parsed[0] < 1 or not 1 <= parsed[1] <= 86400:
        raise ValueError("expected a number of updates, optionally /seconds, e.g. 20/60")
    return parsed


#: Shortest bearer token accepted (ADMIN_TOKEN, METRICS_TOKEN): 16 characters.
MIN_BEARER_TOKEN = 16


def bearer_token(raw: str) -> str:
    """A token for ``Authorization: Bearer``: at least 16 printable ASCII characters (an
    HTTP header cannot carry other text intact, so such a token could never match)."""
    value = raw.strip()
    if len(value) < MIN_BEARER_TOKEN or not re.fullmatch(r"[\x20-\x7e]+", value):
        raise ValueError(
            f"expected at least {MIN_BEARER_TOKEN} printable ASCII characters"
            " (for example from `openssl rand -hex 32`)"
        )
    return value


def token(raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"\d{1,20}:[A-Za-z0-9_-]{20,}", value):
        raise ValueError("expected a bot token like 123456:ABC... from @BotFather")
    return value


# -- the variables ---------------------------------------------------------------------


@attrs.frozen
class Var:
    name: str
    doc: str
    parse: Parser
    default: str | None = None
    #: commands that cannot work without this variable
    required_by: frozenset[str] = frozenset()
    #: never echo the value (tokens, keys)
    secret: bool = False

    @property
    def field(self) -> str:
        return self.name.lower()


RUN = frozenset({"run"})

VARIABLES: tuple[Var, ...] = (
    Var(
        "DATABASE_URL",
        "PostgreSQL URL; unset = embedded PostgreSQL under SHOP_DATA_DIR",
        database_url,
        secret=True,
    ),
    Var(
        "REDIS_URL",
        "Redis URL (redis://, rediss:// or unix://): rate limits and the Telegram send budget"
        " shared by all instances; unset = each instance keeps its own",
        redis_url,
        secret=True,
    ),
    Var(
        "SHOP_DATA_DIR",
        "where the embedded database and other local state live",
        Path,
        default="./var",
    ),
    Var(
        "LOG_LEVEL",
        "debug, info, warning or error",
        choice("debug", "info", "warning", "error"),
        default="info",
    ),
    Var(
        "LOG_FORMAT",
        "text (for people) or json (one object per line)",
        choice("text", "json"),
        default="text",
    ),
    Var("HTTP_HOST", "address the HTTP server binds", text, default="0.0.0.0"),
    Var(
        "HTTP_PORT",
        "port of the HTTP server (health, webhooks, admin API)",
        integer(0, 65535),
        default="8080",
    ),
    Var(
        "TIMEZONE", "IANA time zone for schedules and dates shown to customers", zone, default="UTC"
    ),
    Var(
        "SHUTDOWN_GRACE",
        "seconds to finish work after SIGTERM before stopping",
        seconds(0, 3600),
        default="30",
    ),
    Var("TELEGRAM_TOKEN", "the bot token from @BotFather", token, required_by=RUN, secret=True),
    Var(
        "TELEGRAM_API_URL",
        "Bot API base URL (a local Bot API server, or a test server)",
        url,
        default="https://api.telegram.org",
    ),
    Var(
        "TELEGRAM_GLOBAL_RATE",
        "messages per second across all chats (at most 30 unless paid)",
        integer(1, 1000),
        default="25",
    ),
    Var(
        "TELEGRAM_PAID_BROADCAST",
        "1 when paid broadcasts are enabled in @BotFather (up to 1000/s)",
        boolean,
        default="0",
    ),
    Var(
        "RATE_LIMIT",
        "updates a customer may send per window: N or N/seconds",
        rate_limit,
        default="20/60",
    ),
    Var(
        "RATE_LIMIT_BAN",
        "seconds of silence for a customer over RATE_LIMIT",
        seconds(0, 86400),
        default="300",
    ),
    Var(
        "RATE_LIMIT_MESSAGES",
        "messages a customer may send per window: N or N/seconds (then told when to retry)",
        rate_limit,
        default="10/60",
    ),
    Var(
        "RATE_LIMIT_CALLBACKS",
        "buttons a customer may press per window: N or N/seconds (then told when to retry)",
        rate_limit,
        default="20/60",
    ),
    Var(
        "RATE_LIMIT_PAYMENTS",
        "payments a customer may create per window: N or N/seconds (then told when to retry)",
        rate_limit,
        default="2/60",
    ),
    Var(
        "SHOP_CATALOG",
        "the catalog TOML file (plans, packages, trial); unset = the shipped example",
        Path,
    ),
    Var(
        "ADMIN_TOKEN",
        "bearer token (16+ characters) of the operator JSON API under /admin/api; unset = API off",
        bearer_token,
        secret=True,
    ),
    Var(
        "METRICS_TOKEN",
        "bearer token (16+ characters) that GET /metrics requires; unset = metrics open",
        bearer_token,
        secret=True,
    ),
    Var(
        "PUBLIC_URL",
        "the shop's external base URL, for payment return and callback links",
        url,
    ),
    Var(
        "TRUSTED_PROXIES",
        "proxies (IPs/CIDRs) whose X-Forwarded-For is believed, comma-separated",
        networks,
        default="",
    ),
    Var("YOOKASSA_SHOP_ID", "YooKassa shop id (enables YooKassa with the secret key)", text),
    Var("YOOKASSA_SECRET_KEY", "YooKassa secret key", text, secret=True),
    Var("YOOKASSA_API_URL", "YooKassa API base URL", url, default="https://api.yookassa.ru/v3"),
    Var(
        "YOOKASSA_ALLOWED_IPS",
        "addresses YooKassa notifications may come from; unset = the official list",
        networks,
    ),
    Var(
        "STRIPE_SECRET_KEY",
        "Stripe secret key (enables Stripe with the webhook secret)",
        text,
        secret=True,
    ),
    Var("STRIPE_WEBHOOK_SECRET", "Stripe webhook signing secret (whsec_...)", text, secret=True),
    Var("STRIPE_API_URL", "Stripe API base URL", url, default="https://api.stripe.com"),
    Var("CRYPTOPAY_TOKEN", "Crypto Pay API token (enables Crypto Pay)", text, secret=True),
    Var("CRYPTOPAY_API_URL", "Crypto Pay API base URL", url, default="https://pay.crypt.bot/api"),
    Var("HELEKET_MERCHANT", "Heleket merchant id (enables Heleket with the API key)", text),
    Var("HELEKET_API_KEY", "Heleket payment API key", text, secret=True),
    Var("HELEKET_API_URL", "Heleket API base URL", url, default="https://api.heleket.com"),
    Var("PLATEGA_MERCHANT_ID", "Platega merchant id (enables Platega with the secret)", text),
    Var("PLATEGA_SECRET", "Platega API key (X-Secret); callbacks carry it too", text, secret=True),
    Var("PLATEGA_API_URL", "Platega API base URL", url, default="https://app.platega.io"),
    Var(
        "YOOMONEY_WALLET",
        "YooMoney wallet number that receives payments (enables YooMoney with the secret)",
        text,
    ),
    Var(
        "YOOMONEY_NOTIFICATION_SECRET",
        "the secret of the wallet's HTTP notifications: checks POST /webhooks/yoomoney",
        text,
        secret=True,
    ),
    Var(
        "YOOMONEY_TOKEN",
        "YooMoney OAuth token with the operation-history right, to look up payments whose"
        " notification was lost; unset = a payment waits for its notification",
        text,
        secret=True,
    ),
    Var("YOOMONEY_API_URL", "YooMoney wallet API base URL", url, default="https://yoomoney.ru/api"),
    Var(
        "FULFILMENT",
        "what a subscription grants: none (a record), remnawave or hiddify (a VPN panel"
        " account), channel (a place in a private Telegram channel)",
        choice("none", "remnawave", "hiddify", "channel"),
        default="none",
    ),
    Var("REMNAWAVE_URL", "Remnawave panel base URL (with FULFILMENT=remnawave)", url),
    Var("REMNAWAVE_TOKEN", "Remnawave API token", text, secret=True),
    Var(
        "REMNAWAVE_CADDY_TOKEN",
        "API key of a Caddy auth portal in front of the panel (sent as X-Api-Key)",
        text,
        secret=True,
    ),
    Var(
        "REMNAWAVE_WEBHOOK_SECRET",
        "the panel's WEBHOOK_SECRET_HEADER: checks POST /webhooks/remnawave",
        text,
        secret=True,
    ),
    Var(
        "HIDDIFY_URL",
        "Hiddify panel URL including the admin proxy path (with FULFILMENT=hiddify)",
        url,
    ),
    Var("HIDDIFY_API_KEY", "Hiddify admin API key (the admin's UUID)", text, secret=True),
    Var(
        "HIDDIFY_CLIENT_URL",
        "Hiddify URL including the client proxy path: subscription links are shown under it",
        url,
    ),
    Var(
        "CHANNEL_ID",
        "the private channel's id, -100... (with FULFILMENT=channel); the bot must be an"
        " administrator there, allowed to invite users and to ban users",
        channel_id,
    ),
    Var(
        "CHANNEL_GRACE_HOURS",
        "hours a member whose subscription ended stays in the channel (warned first)",
        integer(0, 8760),
        default="24",
    ),
    Var(
        "TRAFFIC_ON_RENEWAL",
        "carry: a renewal adds the plan's traffic to what is left; reset: starts again",
        choice("carry", "reset"),
        default="carry",
    ),
    Var("SCHEDULE_EXPIRY", "cron: mark ended subscriptions expired", cron, default="0 7 * * *"),
    Var(
        "SCHEDULE_REMINDERS", "cron: expiry reminders and auto-renewal", cron, default="0 10 * * *"
    ),
    Var(
        "SCHEDULE_SWEEP",
        "cron: stale pending payments and other hourly work",
        cron,
        default="0 * * * *",
    ),
    Var("SCHEDULE_CLEANUP_STATE", "cron: forget old conversation state", cron, default="0 2 * * *"),
    Var("SCHEDULE_CLEANUP_EVENTS", "cron: delete old provider events", cron, default="0 3 * * *"),
    Var(
        "PAYMENT_EVENT_RETENTION_DAYS",
        "days stored provider webhooks are kept",
        integer(1, 36_500),
        default="90",
    ),
    Var(
        "BACKUP_DIR",
        "where `shop backup` writes its pg_dump archives; unset = SHOP_DATA_DIR/backups",
        Path,
    ),
    Var(
        "BACKUP_KEEP",
        "how many of the newest backups to keep; older shop-*.dump files are deleted",
        integer(1, 10_000),
        default="7",
    ),
    Var("SCHEDULE_BACKUP", "cron: run `shop backup`; unset = no scheduled backups", cron),
    Var(
        "ADMIN_CHAT_ID",
        "a chat (a group, or an operator) where alerts are posted too; unset = log only",
        chat,
    ),
    Var(
        "ADMIN_IDS",
        "Telegram user ids of operators, comma-separated (exempt from limits)",
        id_list,
        default="",
    ),
    Var(
        "SUPPORT_CHAT_ID",
        "the group or forum where support tickets go (a topic per ticket in a forum);"
        " unset = to the ADMIN_IDS",
        chat,
    ),
    Var(
        "REQUIRED_CHANNEL_ID",
        "a channel customers must join before buying or taking the trial (-100...); the"
        " bot must be an administrator there to see its members",
        channel_id,
    ),
    Var(
        "REQUIRED_CHANNEL_URL",
        "the join link shown for REQUIRED_CHANNEL_ID; unset = an invite link the bot makes",
        url,
    ),
    Var(
        "TELEGRAM_WEBHOOK_URL",
        "https URL Telegram posts updates to (…/telegram/webhook); unset = long polling",
        url,
    ),
    Var(
        "TELEGRAM_WEBHOOK_SECRET",
        "the secret Telegram sends with each update (1-256 of A-Z a-z 0-9 _ -); required"
        " with TELEGRAM_WEBHOOK_URL",
        webhook_secret,
        secret=True,
    ),
    Var(
        "TELEGRAM_WEBHOOK_MAX_CONNECTIONS",
        "how many connections Telegram may open to deliver updates at once",
        integer(1, 100),
        default="40",
    ),
    Var(
        "INSTANCES",
        "how many shop instances share this database; above 1, customers' updates are"
        " leased to one instance at a time (without REDIS_URL each instance also takes"
        " 1/INSTANCES of TELEGRAM_GLOBAL_RATE)",
        integer(1, 64),
        default="1",
    ),
    Var(
        "TEXTS_DIR",
        "a directory of <language>.po files whose texts replace the shipped ones",
        Path,
    ),
)


@attrs.frozen(kw_only=True)
class Config:
    """The validated configuration; one field per variable, named in lower case."""

    database_url: str | None
    redis_url: str | None
    shop_data_dir: Path
    log_level: str
    log_format: str
    http_host: str
    http_port: int
    timezone: ZoneInfo
    shutdown_grace: float
    telegram_token: str | None
    telegram_api_url: str
    telegram_global_rate: int
    telegram_paid_broadcast: bool
    rate_limit: tuple[int, float]
    rate_limit_ban: float
    rate_limit_messages: tuple[int, float]
    rate_limit_callbacks: tuple[int, float]
    rate_limit_payments: tuple[int, float]
    admin_ids: frozenset[int]
    admin_chat_id: int | None
    shop_catalog: Path | None
    admin_token: str | None
    metrics_token: str | None
    public_url: str | None
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    yookassa_shop_id: str | None
    yookassa_secret_key: str | None
    yookassa_api_url: str
    yookassa_allowed_ips: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None
    stripe_secret_key: str | None
    stripe_webhook_secret: str | None
    stripe_api_url: str
    cryptopay_token: str | None
    cryptopay_api_url: str
    heleket_merchant: str | None
    heleket_api_key: str | None
    heleket_api_url: str
    platega_merchant_id: str | None
    platega_secret: str | None
    platega_api_url: str
    yoomoney_wallet: str | None
    yoomoney_notification_secret: str | None
    yoomoney_token: str | None
    yoomoney_api_url: str
    fulfilment: str
    remnawave_url: str | None
    remnawave_token: str | None
    remnawave_caddy_token: str | None
    remnawave_webhook_secret: str | None
    hiddify_url: str | None
    hiddify_api_key: str | None
    hiddify_client_url: str | None
    channel_id: int | None
    channel_grace_hours: int
    traffic_on_renewal: str
    schedule_expiry: str
    schedule_reminders: str
    schedule_sweep: str
    schedule_cleanup_state: str
    schedule_cleanup_events: str
    payment_event_retention_days: int
    backup_dir: Path
    backup_keep: int
    schedule_backup: str | None
    support_chat_id: int | None
    required_channel_id: int | None
    required_channel_url: str | None
    texts_dir: Path | None
    telegram_webhook_url: str | None
    telegram_webhook_secret: str | None
    telegram_webhook_max_connections: int
    instances: int

    @property
    def shared(self) -> bool:
        """Whether other instances may handle this shop's updates too (webhook mode, or
        INSTANCES above 1): then customers are leased (``actors.dispatcher``)."""
        return self.instances > 1 or self.telegram_webhook_url is not None

    @property
    def payment_providers(self) -> tuple[str, ...]:
        """The external providers whose credentials are set."""
        enabled = {
            "yookassa": self.yookassa_shop_id and self.yookassa_secret_key,
            "stripe": self.stripe_secret_key and self.stripe_webhook_secret,
            "cryptopay": self.cryptopay_token,
            "heleket": self.heleket_merchant and self.heleket_api_key,
            "platega": self.platega_merchant_id and self.platega_secret,
            "yoomoney": self.yoomoney_wallet and self.yoomoney_notification_secret,
        }
        return tuple(name for name, on in enabled.items() if on)

    def replace(self, **changes: Any) -> Config:
        return attrs.evolve(self, **changes)


def load_config(environ: Mapping[str, str], command: str = "run") -> Config:
    """Read and check every variable; raise ConfigError listing all problems."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for var in VARIABLES:
        raw = environ.get(var.name, "")
        if raw.strip() == "":
            if command in var.required_by:
                problems.append(f"{var.name} is required: {var.doc}")
            values[var.field] = None if var.default is None else var.parse(var.default)
            continue
        try:
            values[var.field] = var.parse(raw)
        except ValueError as exc:
            shown = "" if var.secret else f", got {raw!r}"
            problems.append(f"{var.name}: {exc}{shown}")
    problems += _cross_checks(values)
    if problems:
        raise ConfigError(problems)
    if values["backup_dir"] is None:  # unset: beside the embedded database, on its volume
        values["backup_dir"] = values["shop_data_dir"] / "backups"
    return Config(**values)


_CREDENTIAL_PAIRS = (
    ("YOOKASSA_SHOP_ID", "YOOKASSA_SECRET_KEY"),
    ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"),
    ("HELEKET_MERCHANT", "HELEKET_API_KEY"),
    ("PLATEGA_MERCHANT_ID", "PLATEGA_SECRET"),
    ("YOOMONEY_WALLET", "YOOMONEY_NOTIFICATION_SECRET"),
)


def _cross_checks(values: dict[str, Any]) -> list[str]:
    """Rules that involve more than one variable (run only on values that parsed)."""
    problems = []
    if values.get("telegram_webhook_url") and not values.get("telegram_webhook_secret"):
        problems.append(
            "TELEGRAM_WEBHOOK_SECRET is required with TELEGRAM_WEBHOOK_URL: without it anyone"
            " could post updates to the shop"
        )
    if (values.get("telegram_webhook_url") or "").startswith("http://"):
        problems.append("TELEGRAM_WEBHOOK_URL: Telegram delivers updates to https URLs only")
    for pair in _CREDENTIAL_PAIRS:
        given = [name for name in pair if values.get(name.lower())]
        if given and len(given) < len(pair):
            missing = [name for name in pair if name not in given]
            problems.append(f"{missing[0]}: needed together with {given[0]} to enable the provider")
    providers = [pair[0] for pair in _CREDENTIAL_PAIRS if all(values.get(n.lower()) for n in pair)]
    if (providers or values.get("cryptopay_token")) and not values.get("public_url"):
        problems.append(
            "PUBLIC_URL is required when a payment provider is enabled:"
            " the shop's external https:// base URL, for return and webhook links"
        )
    needed = {
        "remnawave": ("REMNAWAVE_URL", "REMNAWAVE_TOKEN"),
        "hiddify": ("HIDDIFY_URL", "HIDDIFY_API_KEY"),
        "channel": ("CHANNEL_ID",),
    }
    for name in needed.get(values.get("fulfilment") or "", ()):
        if not values.get(name.lower()):
            problems.append(f"{name} is required with FULFILMENT={values['fulfilment']}")
    rate, paid = values.get("telegram_global_rate"), values.get("telegram_paid_broadcast")
    if rate is not None and (values.get("instances") or 1) > rate and not values.get("redis_url"):
        problems.append(
            "INSTANCES: without REDIS_URL each instance sends TELEGRAM_GLOBAL_RATE / INSTANCES"
            " messages a second, and that must be at least 1"
        )
    if rate is not None and paid is False and rate > 30:
        problems.append(
            "TELEGRAM_GLOBAL_RATE: Telegram allows at most 30 messages/s without paid "
            "broadcasts; set TELEGRAM_PAID_BROADCAST=1 or a rate of 30 or less"
        )
    return problems
