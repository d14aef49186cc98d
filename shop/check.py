"""``shop check``: the environment and the catalog, checked without starting anything.

It checks what ``shop run`` would need (so a missing ``TELEGRAM_TOKEN`` is reported),
reports every problem of both at once the way ``shop run`` does, and exits with code 2;
otherwise it prints a short summary and exits with 0. It opens no database and calls
no API, so it is quick enough for a container build step or a deploy script, and it
never prints a secret: only names, counts and which providers are enabled.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from .catalog import EXAMPLE, Catalog, load_catalog
from .config import Config, load_config
from .errors import ConfigError
from .telegram.texts import load_texts


def check(environ: Mapping[str, str]) -> int:
    """Check ``environ`` and the catalog it names; print the outcome; return the exit code."""
    problems: list[str] = []
    config: Config | None = None
    try:
        # "run", not "check": the point is to learn whether `shop run` would start, and
        # `required_by` in shop/config.py names the commands that need each variable.
        config = load_config(environ, "run")
        catalog_path = config.shop_catalog
    except ConfigError as exc:
        problems += exc.problems
        # Still check the catalog, so one run reports everything (SHOP_CATALOG is a
        # plain path: an unset or blank value means the shipped example, as in config).
        raw = environ.get("SHOP_CATALOG", "")
        catalog_path = Path(raw) if raw.strip() else None
    try:
        catalog = load_catalog(catalog_path)
    except ConfigError as exc:
        problems += exc.problems
    raw_texts = environ.get("TEXTS_DIR", "")
    texts_dir = config.texts_dir if config is not None else Path(raw_texts) if raw_texts else None
    try:
        load_texts(overrides=texts_dir)
    except ConfigError as exc:
        problems += exc.problems
    if problems or config is None:
        print(ConfigError(problems).render(), file=sys.stderr)
        return 2
    print(summary(config, catalog))
    return 0


def summary(config: Config, catalog: Catalog) -> str:
    """What the shop would run with, in a few lines that hold no secret."""
    source = config.shop_catalog or f"the shipped example ({EXAMPLE.name})"
    trial = f", a {catalog.trial_days}-day trial" if catalog.trial_days else ", no trial"
    database = (
        "DATABASE_URL (external PostgreSQL)"
        if config.database_url
        else f"embedded PostgreSQL in {config.shop_data_dir}"
    )
    providers = ", ".join(("Telegram Stars", *config.payment_providers))
    return "\n".join(
        [
            "shop: configuration OK",
            f"  catalog: {_count(catalog.plans, 'plan')}, "
            f"{_count(catalog.packages, 'package')}{trial} from {source}",
            f"  fulfilment: {config.fulfilment}",
            f"  payment providers: {providers}",
            f"  database: {database}",
        ]
    )


def _count(items: tuple[object, ...], noun: str) -> str:
    return f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")
