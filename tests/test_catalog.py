"""The catalog file: the documented shape loads; every mistake is named; exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shop.catalog import load_catalog
from shop.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

DOCUMENTED = """
[trial]
days = 3
[[plans]]
id = "m1"
days = 30
title = { en = "1 month", ru = "1 месяц", uk = "1 місяць" }
prices = { XTR = 250, RUB = "299.00", USD = "3.49" }
stars_subscription = true      # also offered as a 30-day Telegram Stars subscription
[[packages]]
id = "p100"
credit = { XTR = 100 }
bonus = { XTR = 10 }
title = { en = "100 ⭐ +10 bonus" }
prices = { XTR = 100 }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_documented_shape_loads(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, DOCUMENTED))
    assert catalog.trial_days == 3
    (plan,) = catalog.plans
    assert (plan.id, plan.days, plan.stars_subscription) == ("m1", 30, True)
    assert dict(plan.prices) == {"XTR": 250, "RUB": 29900, "USD": 349}
    assert plan.title("uk") == "1 місяць"
    (package,) = catalog.packages
    assert dict(package.credit) == {"XTR": 110}  # credit plus bonus
    assert package.title("ru") == "100 ⭐ +10 bonus"  # falls back to English


def test_no_trial_table_means_no_trial(tmp_path: Path) -> None:
    text = DOCUMENTED.replace("[trial]\ndays = 3\n", "")
    assert load_catalog(write(tmp_path, text)).trial_days == 0


def test_every_mistake_is_named(tmp_path: Path) -> None:
    text = """
[trial]
days = -1
[[plans]]
id = "Month 1"
days = 0
title = { ru = "нет английского" }
prices = { XTR = 2.5, RUB = "299.001", ZZZ = "1.00" }
stars_subscription = "yes"
[[plans]]
id = "m2"
days = 30
title = "Two"
prices = { RUB = "0" }
stars_subscription = true
[[packages]]
id = "p1"
title = "P"
prices = { XTR = 10 }
"""
    with pytest.raises(ConfigError) as caught:
        load_catalog(write(tmp_path, text))
    found = "\n".join(caught.value.problems)
    for expected in (
        "[trial] days",
        "plans[0] id",
        "plans[0] days",
        "plans[0] title",
        "plans[0] prices XTR: Stars are whole numbers",
        "plans[0] prices RUB: 299.001 RUB has more than 2 decimal places",
        "plans[0] prices ZZZ: unknown currency",
        "plans[0] stars_subscription: expected true or false",
        "plans[1] prices RUB: expected an amount above zero",
        "plans[1] stars_subscription: needs an XTR price",
        "packages[0] credit",
    ):
        assert expected in found, expected


def test_a_bad_catalog_stops_the_shop_with_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, "[[plans]]\nid = 1\n")
    done = subprocess.run(
        [sys.executable, "-m", "shop", "run"],
        env={
            "PATH": os.environ["PATH"],
            "SHOP_CATALOG": str(path),
            "TELEGRAM_TOKEN": "123456:TEST-token-abcdefghijklmnopqrstuvwxyz",
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "SHOP_CATALOG" in done.stderr
    assert "plans[0] id" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_catalog_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_catalog(tmp_path / "nope.toml")
