"""``shop sandbox`` as a newcomer runs it: a real process, no environment at all, a fresh
directory; and the variables it refuses, because a sandbox must never reach Telegram."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from shop.main import main
from shop.sandbox.panels import hiddify
from shop.sandbox.providers import platega as pl
from shop.sandbox.settings import sandbox_config

ROOT = Path(__file__).resolve().parents[2]


def _command() -> list[str]:
    script = Path(sys.executable).with_name("shop")
    return [str(script)] if script.exists() else [sys.executable, "-m", "shop"]


@pytest.mark.slow
def test_shop_sandbox_with_no_environment_serves_the_page(tmp_path: Path) -> None:
    # Only PATH and HOME, as in a fresh login shell; port 0 so that a busy 8080 on this
    # machine cannot fail the test (`shop sandbox` alone binds 127.0.0.1:8080).
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path))}
    errors: list[str] = []
    with subprocess.Popen(
        [*_command(), "sandbox", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        reader = threading.Thread(target=errors.extend, args=(process.stderr,), daemon=True)
        reader.start()
        try:
            line = process.stdout.readline()  # blocks until the sandbox serves (or exits)
            assert line.startswith("shop sandbox: open http://127.0.0.1:"), (line, errors)
            address = line.split()[3]
            page = httpx.get(address, timeout=10)
            assert page.status_code == 200
            assert '<script src="/sandbox/static/sandbox.js">' in page.text
            script = httpx.get(f"{address}/static/sandbox.js", timeout=10)
            assert script.status_code == 200
            assert script.headers["content-type"].startswith("text/javascript")
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
            reader.join(timeout=10)
    assert code == 0, "".join(errors)
    assert (tmp_path / "var" / "sandbox" / "postgres").is_dir()  # its own embedded database
    assert not [line for line in errors if "Traceback" in line]


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"TELEGRAM_TOKEN": "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ"}, "TELEGRAM_TOKEN"),
        ({"TELEGRAM_API_URL": "https://api.telegram.org"}, "TELEGRAM_API_URL"),
        (
            {"TELEGRAM_TOKEN": "1:x" * 8, "TELEGRAM_API_URL": "https://API.Telegram.org/"},
            "TELEGRAM_API_URL",
        ),
        ({"SCHEDULE_EXPIRY": "at seven"}, "SCHEDULE_EXPIRY"),
    ],
)
def test_the_sandbox_refuses_what_would_reach_outside(
    environ: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(os, "environ", environ)
    assert main(["sandbox", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shop: invalid configuration:")
    assert f"  - {named}" in err
    assert "Traceback" not in err


def test_real_services_never_reach_the_sandbox(tmp_path: Path) -> None:
    """The operator's production environment previews their shop, and nothing of it that
    reaches outside is used: database, keys, addresses, operators."""
    production = {
        "DATABASE_URL": "postgresql://shop:secret@db.example/shop",
        "SHOP_DATA_DIR": str(tmp_path / "data"),
        "BACKUP_DIR": "/backups",
        "HTTP_HOST": "0.0.0.0",
        "STRIPE_SECRET_KEY": "sk_live_real",
        "STRIPE_WEBHOOK_SECRET": "whsec_real",
        "STRIPE_API_URL": "https://api.stripe.com",
        "PUBLIC_URL": "https://shop.example",
        "ADMIN_IDS": "42",
        "FULFILMENT": "hiddify",
        "HIDDIFY_URL": "https://panel.example/admin",
        "HIDDIFY_API_KEY": "real-key",
        "PLATEGA_MERCHANT_ID": "real-merchant",
        "PLATEGA_SECRET": "real-secret",
        "PLATEGA_API_URL": "https://app.platega.io",
        "REDIS_URL": "redis://cache.example:6379",  # a variable the sandbox does not know
        "SCHEDULE_REMINDERS": "30 9 * * *",
        "TIMEZONE": "Europe/Berlin",
    }
    sandbox = sandbox_config(production)
    config = sandbox.config
    assert config.database_url is None
    assert config.shop_data_dir == tmp_path / "data" / "sandbox"
    assert config.backup_dir == tmp_path / "data" / "sandbox" / "backups"
    assert (config.http_host, config.http_port) == ("127.0.0.1", 8080)
    # What production enables, with stand-in keys.
    assert sandbox.providers == config.payment_providers == ("stripe", "platega")
    assert config.stripe_secret_key != "sk_live_real"
    assert config.stripe_api_url.startswith("http://127.0.0.1:")
    assert (config.platega_merchant_id, config.platega_secret) == (pl.MERCHANT_ID, pl.SECRET)
    assert config.platega_api_url.startswith("http://127.0.0.1:")
    assert config.public_url == "http://127.0.0.1:8080"
    assert config.admin_ids == frozenset({1000})
    assert (sandbox.fulfilment, config.hiddify_api_key) == ("hiddify", hiddify.API_KEY)
    assert config.schedule_reminders == "30 9 * * *"  # the shop's behaviour applies
    assert config.timezone.key == "Europe/Berlin"


def test_the_wheel_ships_the_web_chat() -> None:
    """The page is package data: hatchling puts every file under ``shop/`` that git does not
    ignore into the wheel (checked by hand with ``pip wheel .``), so none may be ignored."""
    static = ROOT / "shop" / "sandbox" / "static"
    names = {"index.html", "sandbox.js", "sandbox.css", "checkout.html", "checkout.js"}
    assert {path.name for path in static.iterdir()} >= names
    if shutil.which("git") and (ROOT / ".git").exists():
        paths = [str(static / name) for name in names]
        ignored = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, check=False)
        assert ignored.returncode == 1, "a file of the web chat is ignored by git"
