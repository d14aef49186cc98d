"""``shop backup`` and ``shop restore``: round trips on real PostgreSQL, rotation, refusals."""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import attrs
import psycopg
import pytest
import trio

from shop.backup import (
    BACKUP_NAME,
    BackupFailed,
    backup,
    backup_job,
    client_connection,
    find_tool,
    pgserver_bin,
    read_archive,
    restore,
    shop_tables,
)
from shop.store.schema import schema_text
from tests.conftest import truncate_all, with_database

UTC = dt.UTC
NOON = dt.datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DAY = dt.timedelta(days=1)


@attrs.frozen
class FixedClock:
    at: dt.datetime

    def now(self) -> dt.datetime:
        return self.at


def names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@contextmanager
def new_database(admin_url: str) -> Iterator[str]:
    """A throwaway database on the test server, dropped afterwards."""
    name = f"shop_backup_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wipe(url: str, *, schema: bool = False) -> None:
    """Make the database as empty as a new one (then apply the shop's schema if told).

    Much faster than a new database: DROP DATABASE waits for a checkpoint.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        if schema:
            conn.execute(schema_text().encode())


@pytest.fixture(scope="session")
def two_databases(admin_url: str) -> Iterator[tuple[str, str]]:
    """A database to back up and one to restore into, for the whole session."""
    with new_database(admin_url) as one, new_database(admin_url) as two:
        with psycopg.connect(one, autocommit=True) as conn:
            conn.execute(schema_text().encode())
        yield one, two


def fill(url: str) -> None:
    """Customers with a subscription, payments, a grant, ledger entries, a balance."""
    with psycopg.connect(url) as conn:
        for telegram_id, name in ((1001, "Ann"), (1002, "Бо́рис 🐻")):
            conn.execute(
                "INSERT INTO customers (telegram_id, first_name, first_seen, last_seen)"
                " VALUES (%s, %s, %s, %s)",
                (telegram_id, name, NOON - 60 * DAY, NOON),
            )
        conn.execute(
            "INSERT INTO subscriptions (telegram_id, status, expires_at, plan_id, started_at,"
            " updated_at) VALUES (1001, 'active', %s, 'm1', %s, %s)",
            (NOON + 30 * DAY, NOON, NOON),
        )  # its trigger also queues a fulfilment_queue row
        for pid, status in (("p-1", "completed"), ("p-2", "pending")):
            conn.execute(
                "INSERT INTO payments (id, telegram_id, provider, product_kind, product_id,"
                " title, days, credit, amount, currency, status, created_at, updated_at,"
                " expires_at, idempotency_key) VALUES (%s, 1001, 'stars', 'plan', 'm1',"
                " '1 month', 30, '{\"XTR\": 110}', 100, 'XTR', %s, %s, %s, %s, %s)",
                (pid, status, NOON, NOON, NOON + DAY, f"key-{pid}"),
            )
        conn.execute(
            "INSERT INTO grants (payment_id, telegram_id, days, granted_at)"
            " VALUES ('p-1', 1001, 30, %s)",
            (NOON,),
        )
        for delta, reason in ((250, "topup"), (-100, "purchase")):
            conn.execute(
                "INSERT INTO ledger (telegram_id, currency, delta, reason, created_at)"
                " VALUES (1002, 'XTR', %s, %s, %s)",
                (delta, reason, NOON),
            )
        conn.execute("INSERT INTO balances VALUES (1002, 'XTR', 150)")
        conn.execute(
            "INSERT INTO provider_events (provider, event_id, body, received_at)"
            " VALUES ('stripe', 'evt_1', %s, %s)",
            (b"\x00\xffraw", NOON),
        )


def contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every shop table, in a stable order."""
    with psycopg.connect(url) as conn:
        return {
            table: sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
            for table in shop_tables()
        }


@pytest.fixture
def source(two_databases: tuple[str, str]) -> str:
    """A database with the shop's schema and some of everything in it."""
    url = two_databases[0]
    truncate_all(url)
    fill(url)
    return url


@pytest.fixture
def empty(two_databases: tuple[str, str]) -> str:
    """A database with nothing in it."""
    url = two_databases[1]
    wipe(url)
    return url


async def test_a_backup_restores_into_an_empty_database(
    source: str, empty: str, tmp_path: Path
) -> None:
    with trio.fail_after(30):
        path = await backup(source, tmp_path / "backups", 7, FixedClock(NOON))
        assert path == tmp_path / "backups" / "shop-20261101T120000Z.dump"
        assert path.stat().st_mode & 0o777 == 0o600  # every customer's data is in it
        assert names(path.parent) == [path.name]  # no partial file left behind
        await restore(empty, path)

    assert contents(empty) == contents(source)
    assert contents(empty)["ledger"]
    assert contents(empty)["fulfilment_queue"]  # rows a trigger wrote: not written twice
    with psycopg.connect(empty) as conn:
        # Sequences come along: the next ledger entry does not collide with a restored one.
        (new_id,) = conn.execute(
            "INSERT INTO ledger (telegram_id, currency, delta, reason, created_at)"
            " VALUES (1002, 'XTR', 5, 'bonus', now()) RETURNING id"
        ).fetchone() or (None,)
        assert new_id == 3
    with psycopg.connect(empty) as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute("DELETE FROM ledger")  # and triggers: the ledger is still append-only


async def test_a_database_with_the_schema_but_no_rows_counts_as_empty(
    source: str, empty: str, tmp_path: Path
) -> None:
    wipe(empty, schema=True)  # as `shop migrate` leaves it
    with trio.fail_after(30):
        path = await backup(source, tmp_path, 7, FixedClock(NOON))
        await restore(empty, path)
    assert contents(empty) == contents(source)


async def test_a_filled_database_is_refused_without_force_and_replaced_with_it(
    source: str, tmp_path: Path
) -> None:
    with trio.fail_after(30):
        path = await backup(source, tmp_path, 7, FixedClock(NOON))
    backed_up = contents(source)
    with psycopg.connect(source) as conn:
        conn.execute(
            "INSERT INTO customers (telegram_id, first_seen, last_seen) VALUES (7, now(), now())"
        )
    changed = contents(source)

    with trio.fail_after(30), pytest.raises(BackupFailed) as refused:
        await restore(source, path)
    assert refused.value.code == 2
    assert "--force" in str(refused.value)
    assert "customers" in str(refused.value)
    assert contents(source) == changed  # untouched

    with trio.fail_after(30):
        await restore(source, path, force=True)
    assert contents(source) == backed_up


async def test_rotation_keeps_the_newest_and_touches_no_other_file(
    source: str, tmp_path: Path
) -> None:
    older = [f"shop-2026{month:02}01T120000Z.dump" for month in range(1, 6)]
    others = ["notes.txt", "shop-manual.dump", "shop-20260101T120000Z.dump.bak"]
    for name in older + others:
        (tmp_path / name).write_bytes(b"")
    with trio.fail_after(30):
        path = await backup(source, tmp_path, 3, FixedClock(NOON))
    assert names(tmp_path) == sorted([*older[-2:], path.name, *others])


async def test_a_backup_written_with_a_clock_behind_is_kept(source: str, tmp_path: Path) -> None:
    future = tmp_path / "shop-20991231T000000Z.dump"
    future.write_bytes(b"")
    with trio.fail_after(30):
        path = await backup(source, tmp_path, 1, FixedClock(NOON))
    assert names(tmp_path) == sorted([path.name, future.name])


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n",
        b"PGDMP",  # the magic, then nothing
        b"PGDMP\x01\x0f\x00\x04\x08\x03" + bytes(200),  # format 3: a tar archive's toc.dat
    ],
    ids=["empty", "plain SQL", "magic only", "tar format"],
)
async def test_a_file_that_is_not_a_custom_archive_is_refused(
    head: bytes, empty: str, tmp_path: Path
) -> None:
    file = tmp_path / "shop.dump"
    file.write_bytes(head)
    with pytest.raises(BackupFailed) as refused:
        await restore(empty, file)
    assert refused.value.code == 2
    assert str(file) in str(refused.value)
    assert not has_tables(empty)  # nothing was run against the database


async def test_an_archive_cut_short_is_refused(source: str, empty: str, tmp_path: Path) -> None:
    with trio.fail_after(30):
        path = await backup(source, tmp_path, 7, FixedClock(NOON))
    cut = tmp_path / "cut.dump"
    cut.write_bytes(path.read_bytes()[:40])
    with pytest.raises(BackupFailed, match="damaged or cut short") as refused:
        await restore(empty, cut)
    assert refused.value.code == 2
    assert not has_tables(empty)


async def test_a_restore_that_fails_midway_changes_nothing(
    source: str, empty: str, tmp_path: Path
) -> None:
    with trio.fail_after(30):
        path = await backup(source, tmp_path, 7, FixedClock(NOON))
    cut = tmp_path / "cut.dump"
    whole = path.read_bytes()
    cut.write_bytes(whole[: len(whole) * 2 // 3])  # the header is whole, the data is not
    wipe(empty, schema=True)
    with trio.fail_after(30), pytest.raises(BackupFailed, match="pg_restore failed") as failed:
        await restore(empty, cut)
    assert failed.value.code == 1
    assert has_tables(empty)  # one transaction: the tables it dropped are back
    assert not any(contents(empty).values())


def has_tables(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT to_regclass('customers')").fetchone() != (None,)


async def test_a_missing_file_is_refused(empty: str, tmp_path: Path) -> None:
    with pytest.raises(BackupFailed, match="cannot read") as refused:
        await restore(empty, tmp_path / "nope.dump")
    assert refused.value.code == 2


def every_pg_dump() -> list[Path]:
    """The system's pg_dump and pgserver's, those that are there."""
    bundled = pgserver_bin()
    found = [shutil.which("pg_dump"), bundled and bundled / "pg_dump"]
    return [Path(path) for path in found if path]


@pytest.mark.parametrize("pg_dump", every_pg_dump(), ids=str)
async def test_the_archive_header_is_read_whichever_pg_dump_wrote_it(
    pg_dump: Path, source: str, tmp_path: Path
) -> None:
    # PostgreSQL 16 changed the header (archive version 1.15): both layouts are read.
    file = tmp_path / "any.dump"
    with trio.fail_after(30):
        await trio.run_process([pg_dump, "--format=custom", f"--file={file}", source])
    archive = read_archive(file)
    assert archive.database == source.rpartition("/")[2]
    with psycopg.connect(source) as conn:
        assert archive.server_version == conn.info.parameter_status("server_version")
    done = await trio.run_process([pg_dump, "--version"], capture_stdout=True)
    assert f"(PostgreSQL) {archive.pg_dump_version}" in done.stdout.decode()
    assert str(archive.pg_dump_major) == archive.pg_dump_version[:2]


def test_the_password_goes_to_the_environment_not_the_command_line() -> None:
    conninfo, env = client_connection("postgresql://shop:hunter%232@db.example:6432/shop")
    assert "hunter" not in conninfo
    assert env["PGPASSWORD"] == "hunter#2"
    assert psycopg.conninfo.conninfo_to_dict(conninfo) == {
        "host": "db.example",
        "port": "6432",
        "dbname": "shop",
        "user": "shop",
        "application_name": "shop-backup",
    }
    embedded = "postgresql://postgres:@/postgres?host=/tmp/pg"
    conninfo, env = client_connection(embedded)
    assert env.get("PGPASSWORD") == os.environ.get("PGPASSWORD")  # nothing added
    assert "host=/tmp/pg" in conninfo


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    auth, _, host = parts.netloc.rpartition("@")
    user = auth.partition(":")[0] or getpass.getuser()
    return parts._replace(netloc=f"{user}:{password}@{host}").geturl()


def fake_pg_dump(bin_dir: Path, body: str) -> None:
    """A ``pg_dump`` on PATH that says it is version 99 (so it is the one chosen)."""
    bin_dir.mkdir()
    script = bin_dir / "pg_dump"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) 99.1"; exit 0; fi\n' + body
    )
    script.chmod(0o755)


async def test_the_password_never_reaches_the_command_line(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = every_pg_dump()[-1]
    fake_pg_dump(
        tmp_path / "bin",
        f'printf "%s\\n" "$@" > {tmp_path}/argv\n'
        f'printf "%s" "$PGPASSWORD" > {tmp_path}/password\n'
        f'exec {real} "$@"\n',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    url = with_password(source, "s3cr%40t-pw")  # the test server trusts: it is not asked for
    with trio.fail_after(30):
        path = await backup(url, tmp_path / "out", 7, FixedClock(NOON))
    assert read_archive(path).database == source.rpartition("/")[2]
    assert "s3cr" not in (tmp_path / "argv").read_text()
    assert (tmp_path / "password").read_text() == "s3cr@t-pw"


async def test_a_failed_dump_leaves_no_file_behind(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_pg_dump(
        tmp_path / "bin",
        'for arg; do case $arg in --file=*) echo half > "${arg#--file=}";; esac; done\n'
        'echo "pg_dump: error: the disk is on fire" >&2; exit 1\n',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    (tmp_path / "out").mkdir()
    with (
        trio.fail_after(30),
        pytest.raises(BackupFailed, match=r"exit 1\): pg_dump: error: the disk is on fire"),
    ):
        await backup(source, tmp_path / "out", 7, FixedClock(NOON))
    assert names(tmp_path / "out") == []


async def test_the_tools_are_found_and_their_versions_checked() -> None:
    pg_dump = await find_tool("pg_dump", 12)
    if pgserver_bin() is not None:  # it is a dependency, so normally present
        assert pg_dump.major >= 16
    with pytest.raises(BackupFailed, match="pg_dump 99 or newer is needed"):
        await find_tool("pg_dump", 99)
    with pytest.raises(BackupFailed, match="pg_nothing not found"):
        await find_tool("pg_nothing", 12)


async def test_a_tool_that_does_not_run_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_pg_dump(tmp_path / "bin", "")
    (tmp_path / "bin" / "pg_dump").write_text("#!/bin/sh\necho 'no client installed' >&2; exit 1\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}")
    bundled = pgserver_bin()
    if bundled is None:
        with pytest.raises(BackupFailed, match="pg_dump not found"):
            await find_tool("pg_dump", 12)
    else:
        assert (await find_tool("pg_dump", 12)).path == bundled / "pg_dump"


async def test_an_unreachable_database_fails_the_backup_and_writes_nothing(
    admin_url: str, tmp_path: Path
) -> None:
    gone = with_database(admin_url, f"shop_missing_{secrets.token_hex(3)}")
    with trio.fail_after(30), pytest.raises(BackupFailed, match="database unreachable"):
        await backup(gone, tmp_path / "backups", 7, FixedClock(NOON))
    assert not (tmp_path / "backups").exists()


async def test_the_scheduled_job_writes_a_backup_and_alerts_when_it_cannot(
    source: str, admin_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def app(url: str) -> Any:
        return SimpleNamespace(
            store=SimpleNamespace(url=url),
            config=SimpleNamespace(backup_dir=tmp_path, backup_keep=2),
            clock=FixedClock(NOON),
        )

    with trio.fail_after(30):
        assert await backup_job(app(source), NOON) == "wrote shop-20261101T120000Z.dump"
        gone = with_database(admin_url, f"shop_missing_{secrets.token_hex(3)}")
        with caplog.at_level(logging.ERROR, logger="shop.backup"):
            outcome = await backup_job(app(gone), NOON)
    assert outcome.startswith("failed: database unreachable")
    assert [r.getMessage()[:6] for r in caplog.records if r.name == "shop.backup"] == ["ALERT:"]


@pytest.mark.slow
async def test_the_embedded_database_backs_up_and_restores(tmp_path: Path) -> None:
    from shop.store import open_embedded_postgres

    with trio.fail_after(120):
        async with open_embedded_postgres(tmp_path) as url:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(schema_text().encode())
                conn.execute("CREATE DATABASE restored")
            fill(url)
            path = await backup(url, tmp_path / "backups", 7, FixedClock(NOON))
            restored = with_database(url, "restored")
            await restore(restored, path)
            assert contents(restored) == contents(url)
            with pytest.raises(BackupFailed, match="--force"):
                await restore(url, path)


def test_backup_names_are_the_shops_own() -> None:
    assert BACKUP_NAME.fullmatch("shop-20261101T120000Z.dump")
    assert not BACKUP_NAME.fullmatch(".shop-20261101T120000Z.dump.1a2b3c4d.partial")


@pytest.mark.slow
def test_the_commands_back_up_refuse_and_restore(source: str, empty: str, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]

    def shop(*args: str, url: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ["PATH"], "DATABASE_URL": url, "BACKUP_DIR": str(tmp_path)}
        return subprocess.run(
            [sys.executable, "-m", "shop", *args],
            env=env, cwd=root, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    made = shop("backup", url=source)
    assert made.returncode == 0, made.stderr
    path = Path(made.stdout.strip())
    assert path.parent == tmp_path
    refused = shop("restore", str(path), url=source)
    assert refused.returncode == 2
    assert "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert shop("restore", str(path), url=empty).returncode == 0
    assert shop("restore", "--force", str(path), url=source).returncode == 0
