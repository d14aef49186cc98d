"""`shop check` reports every problem of the environment and the catalog (exit 2) or a
summary without secrets (exit 0); `shop --version` names the installed version."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from shop.check import check
from tests.fakes.telegram import TOKEN

ROOT = Path(__file__).resolve().parents[1]
STRIPE_KEY = "sk_test_never-print-me-0123456789"


def shop(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shop", *args],
        env={"PATH": os.environ["PATH"], **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_good_environment_is_summed_up_without_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {
        "TELEGRAM_TOKEN": TOKEN,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": "whsec_never-print-me",
        "PUBLIC_URL": "https://shop.example",
        "DATABASE_URL": "postgresql://shop:hunter2@db/shop",
    }
    assert check(env) == 0
    out = capsys.readouterr().out
    assert "catalog: 4 plans, 4 packages, a 3-day trial" in out
    assert "fulfilment: none" in out
    assert "payment providers: Telegram Stars, stripe" in out
    for secret in (TOKEN, STRIPE_KEY, "whsec_", "hunter2"):
        assert secret not in out


def test_a_missing_token_is_reported_because_shop_run_needs_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert check({}) == 2
    assert "TELEGRAM_TOKEN is required" in capsys.readouterr().err


def test_environment_and_catalog_problems_are_reported_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text("[[plans]]\nid = 'Bad Id'\n", encoding="utf-8")
    assert check({"HTTP_PORT": "abc", "SHOP_CATALOG": str(catalog)}) == 2
    err = capsys.readouterr().err
    assert "HTTP_PORT" in err
    assert "TELEGRAM_TOKEN is required" in err
    assert f"SHOP_CATALOG ({catalog}): plans[0] id" in err


@pytest.mark.slow
def test_shop_check_exits_0_with_a_good_environment() -> None:
    done = shop("check", env={"TELEGRAM_TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    assert "shop: configuration OK" in done.stdout
    assert TOKEN not in done.stdout + done.stderr


@pytest.mark.slow
def test_shop_check_exits_2_naming_the_variable_without_a_traceback() -> None:
    done = shop("check", env={"TELEGRAM_TOKEN": TOKEN, "HTTP_PORT": "abc"})
    assert done.returncode == 2
    assert "HTTP_PORT" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_shop_check_exits_2_naming_a_broken_catalog(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text("[[plans]\n", encoding="utf-8")
    done = shop("check", env={"TELEGRAM_TOKEN": TOKEN, "SHOP_CATALOG": str(catalog)})
    assert done.returncode == 2
    assert f"SHOP_CATALOG ({catalog}): not valid TOML" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_shop_version_prints_the_installed_version() -> None:
    done = shop("--version", env={})
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"shop {version('shop')}\n"
