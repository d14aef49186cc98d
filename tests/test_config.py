"""Configuration: every problem reported at once, by variable name, with exit code 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shop.config import VARIABLES, load_config
from shop.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults() -> None:
    config = load_config({}, "migrate")
    assert config.database_url is None
    assert config.shop_data_dir == Path("./var")
    assert (config.http_host, config.http_port) == ("0.0.0.0", 8080)
    assert config.timezone == ZoneInfo("UTC")
    assert config.shutdown_grace == 30
    assert (config.log_level, config.log_format) == ("info", "text")


def test_every_invalid_variable_is_reported() -> None:
    bad = {
        "DATABASE_URL": "mysql://nope",
        "LOG_LEVEL": "loud",
        "LOG_FORMAT": "xml",
        "HTTP_PORT": "abc",
        "TIMEZONE": "Mars/Olympus",
        "SHUTDOWN_GRACE": "-1",
    }
    with pytest.raises(ConfigError) as caught:
        load_config(bad, "migrate")
    named = {problem.split(":")[0] for problem in caught.value.problems}
    assert named == set(bad)


def test_a_secret_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"DATABASE_URL": "mysql://user:hunter2@db"}, "migrate")
    assert "hunter2" not in caught.value.render()


@pytest.mark.parametrize(
    ("name", "value"), [("HTTP_PORT", "70000"), ("HTTP_PORT", "8o"), ("SHUTDOWN_GRACE", "nan")]
)
def test_out_of_range_numbers(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_config({name: value}, "migrate")


def test_the_command_exits_2_naming_the_variable_without_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shop", "run"],
        env={"HTTP_PORT": "abc", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "HTTP_PORT" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("name", ["ADMIN_TOKEN", "METRICS_TOKEN"])
@pytest.mark.parametrize(
    "value",
    [
        "x" * 15,  # one short
        " short-token-15c ",  # 15 once trimmed
        "tokén-with-a-non-ascii-letter",  # a header cannot carry it: it could never match
        "tab\tinside-the-token-value",
    ],
)
def test_a_weak_or_unsendable_bearer_token_is_a_config_error(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({name: value}, "migrate")
    (problem,) = caught.value.problems
    assert problem.startswith(f"{name}: expected at least 16 ")
    assert value.strip() not in caught.value.render()  # a secret: never echoed


@pytest.mark.parametrize("name", ["ADMIN_TOKEN", "METRICS_TOKEN"])
def test_bearer_tokens_of_16_characters_or_more_are_taken(name: str) -> None:
    assert getattr(load_config({name: "x" * 16}, "migrate"), name.lower()) == "x" * 16
    padded = load_config({name: "  op-secret-token-1234 \n"}, "migrate")
    assert getattr(padded, name.lower()) == "op-secret-token-1234"
    assert getattr(load_config({}, "migrate"), name.lower()) is None  # unset: off / open


def test_the_metrics_token_never_reaches_a_log_line() -> None:
    from shop.main import _secrets

    config = load_config({"METRICS_TOKEN": "scrape-token-0123456789"}, "migrate")
    assert "scrape-token-0123456789" in _secrets(config)


def test_a_short_admin_token_exits_2_naming_it_without_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shop", "run"],
        env={"ADMIN_TOKEN": "hunter2", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "ADMIN_TOKEN: expected at least 16" in done.stderr
    assert "hunter2" not in done.stderr
    assert "Traceback" not in done.stderr


def test_env_example_and_readme_list_every_variable() -> None:
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    names = {var.name for var in VARIABLES}
    assert listed == names
    for name in names:
        assert f"`{name}`" in readme, name


def test_backups_go_beside_the_embedded_database_unless_told() -> None:
    config = load_config({}, "backup")
    assert config.backup_dir == Path("./var/backups")
    assert (config.backup_keep, config.schedule_backup) == (7, None)
    assert load_config({"SHOP_DATA_DIR": "/data"}, "backup").backup_dir == Path("/data/backups")
    told = load_config({"SHOP_DATA_DIR": "/data", "BACKUP_DIR": "/backups"}, "backup")
    assert told.backup_dir == Path("/backups")


@pytest.mark.parametrize(("name", "value"), [("BACKUP_KEEP", "0"), ("SCHEDULE_BACKUP", "daily")])
def test_bad_backup_settings_are_reported(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_config({name: value}, "backup")


def test_the_backup_job_runs_only_when_scheduled() -> None:
    from shop.actors.jobs import default_jobs

    assert "backup" not in [job.name for job in default_jobs(load_config({}, "migrate"))]
    scheduled = default_jobs(load_config({"SCHEDULE_BACKUP": "30 4 * * *"}, "migrate"))
    assert [(job.name, job.cron) for job in scheduled][-1] == ("backup", "30 4 * * *")
