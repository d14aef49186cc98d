"""Backups: ``shop backup`` writes a ``pg_dump`` archive, ``shop restore FILE`` reads one back.

A backup is one custom-format archive (``pg_dump --format=custom``) named
``shop-<UTC time>.dump`` in ``BACKUP_DIR``. It is written under a hidden temporary name
and renamed into place once complete and flushed, so a ``shop-*.dump`` file is always a
whole archive. Then the oldest archives beyond ``BACKUP_KEEP`` are deleted; only files
named like the shop's own are ever touched. ``SCHEDULE_BACKUP`` runs the same thing as
the ``backup`` timer job.

The PostgreSQL client tools come from the pgserver wheel (which the embedded database
needs anyway) or from ``PATH``, whichever is newer: ``pg_dump`` refuses a server of a
newer major version than its own, and ``pg_restore`` cannot read an archive written by a
newer ``pg_dump``; a newer tool works with every older server and archive.

The database password never reaches a command line (``ps`` shows those to every user)
nor a log line: the tools get ``--dbname`` as a conninfo string without it, and the
password through ``PGPASSWORD`` in their own environment, which only the same user (and
root) can read.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path

import attrs
import psycopg
import trio
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .app import App
from .clock import WallClock
from .errors import StartupFailed
from .store.schema import schema_text

log = logging.getLogger(__name__)

#: The shop's own archives; rotation never touches any other file.
BACKUP_NAME = re.compile(r"shop-\d{8}T\d{6}Z\.dump")

#: How a custom-format archive starts (``pg_backup_archiver.c``, ``WriteHead``).
MAGIC = b"PGDMP"
_CUSTOM_FORMAT = 1

#: Longest wait for a table lock before pg_dump gives up (a migration holding one).
LOCK_WAIT = "60s"


class BackupFailed(StartupFailed):
    """Raised when a backup cannot be written or restored; ``code`` is the exit code."""


@attrs.frozen
class Tool:
    """A PostgreSQL client program and its major version."""

    path: Path
    major: int


@attrs.frozen
class Archive:
    """What a custom-format archive's header says about it."""

    database: str
    server_version: str  # of the server it was dumped from
    pg_dump_version: str  # of the pg_dump that wrote it

    @property
    def pg_dump_major(self) -> int:
        return _major_of(self.pg_dump_version)  # checked by read_archive


@attrs.frozen
class Target:
    """The database a restore would write into."""

    server_major: int
    tables: tuple[str, ...]  # the shop's tables that exist there
    filled: tuple[str, ...]  # those of them that hold rows


# -- the tools ---------------------------------------------------------------------------


def pgserver_bin() -> Path | None:
    """The bin directory of the PostgreSQL inside the pgserver wheel, if it is installed.

    Found without importing pgserver: its import creates runtime directories and locks.
    """
    spec = importlib.util.find_spec("pgserver")
    for location in (spec and spec.submodule_search_locations) or ():
        bin_dir = Path(location) / "pginstall" / "bin"
        if bin_dir.is_dir():
            return bin_dir
    return None


def _candidates(name: str) -> list[Path]:
    found: list[Path] = []
    bundled = pgserver_bin()
    if bundled is not None and os.access(bundled / name, os.X_OK):
        found.append(bundled / name)
    on_path = shutil.which(name)
    if on_path is not None and Path(on_path).resolve() not in {p.resolve() for p in found}:
        found.append(Path(on_path))
    return found


async def find_tool(name: str, at_least: int) -> Tool:
    """The newest ``name`` (``pg_dump``, ``pg_restore``) of major version ``at_least`` or
    later; on a tie the pgserver one. Raises :class:`BackupFailed` naming what is missing."""
    tools = []
    for path in _candidates(name):
        major = await _tool_major(path)
        if major is not None:
            tools.append(Tool(path, major))
    if not tools:
        raise BackupFailed(
            f"{name} not found: install the PostgreSQL client tools (such as the"
            " postgresql-client package) or the pgserver Python package"
        )
    newest = max(tools, key=lambda tool: tool.major)  # max() keeps the first of equals
    if newest.major < at_least:
        found = ", ".join(f"{tool.path} ({tool.major})" for tool in tools)
        raise BackupFailed(
            f"{name} {at_least} or newer is needed, found only {found}: install the"
            f" PostgreSQL {at_least} client tools (or newer) and put them on PATH"
        )
    return newest


async def _tool_major(path: Path) -> int | None:
    """The tool's major version; None if it does not run (Debian's ``pg_wrapper`` without
    any client version installed, a binary for another platform)."""
    # "pg_dump (PostgreSQL) 16.2", "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
    try:
        done = await trio.run_process(
            [str(path), "--version"], capture_stdout=True, capture_stderr=True, check=False
        )
    except OSError as exc:
        log.warning("%s does not run: %s", path, exc)
        return None
    said = re.search(r"\(PostgreSQL\)\s*(\d+)", done.stdout.decode(errors="replace"))
    if done.returncode != 0 or said is None:
        log.warning("%s --version did not say its version; not used", path)
        return None
    return int(said.group(1))


def _major_of(version: str) -> int:
    """``16`` from ``16.2``, ``15.20 (Debian 15.20-0+deb12u1)`` or ``17beta1``."""
    found = re.match(r"\s*(\d+)", version)
    if found is None:
        raise ValueError(f"not a PostgreSQL version: {version!r}")
    return int(found.group(1))


def client_connection(database_url: str) -> tuple[str, dict[str, str]]:
    """The ``--dbname`` conninfo for a client tool, and the environment to run it in.

    The password moves from the conninfo to ``PGPASSWORD`` in the tool's environment.
    """
    params = conninfo_to_dict(database_url)
    password = params.pop("password", None)
    params.setdefault("application_name", "shop-backup")
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


async def _run(tool: Tool, args: Sequence[str], env: dict[str, str]) -> None:
    done = await trio.run_process(
        [str(tool.path), *args], env=env, capture_stdout=True, capture_stderr=True, check=False
    )
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()[-2000:]
        raise BackupFailed(f"{tool.path.name} failed (exit {done.returncode}): {said}")


# -- backup ------------------------------------------------------------------------------


async def backup(database_url: str, backup_dir: Path, keep: int, clock: WallClock) -> Path:
    """Write a custom-format archive of the database into ``backup_dir``; return its path.

    Then delete the oldest of the shop's archives there beyond the newest ``keep``.
    """
    server_major = (await _inspect(database_url, ())).server_major
    pg_dump = await find_tool("pg_dump", server_major)
    final = backup_dir / f"shop-{clock.now().astimezone(dt.UTC):%Y%m%dT%H%M%SZ}.dump"
    partial = await trio.to_thread.run_sync(_reserve, final)
    try:
        conninfo, env = client_connection(database_url)
        args = ["--format=custom", f"--file={partial}", f"--lock-wait-timeout={LOCK_WAIT}"]
        await _run(pg_dump, [*args, "--no-password", f"--dbname={conninfo}"], env)
        size = await trio.to_thread.run_sync(_publish, partial, final)
    finally:
        # Synchronous, so that it also runs when cancelled: no partial file is left behind.
        partial.unlink(missing_ok=True)
    log.info("backup written: %s (%d bytes)", final, size)
    for old in await trio.to_thread.run_sync(_rotate, backup_dir, keep, final):
        log.info("old backup deleted: %s", old)
    return final


def _reserve(final: Path) -> Path:
    """Create the hidden file pg_dump writes into: readable by this user only, since it
    will hold every customer's data (pg_dump keeps the mode of a file it overwrites)."""
    try:
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.{secrets.token_hex(4)}.partial")
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise BackupFailed(f"cannot write to BACKUP_DIR {final.parent}: {exc}") from None
    return partial


def _publish(partial: Path, final: Path) -> int:
    """Flush the archive to disk, then rename it into place (atomic on one filesystem);
    return its size."""
    with partial.open("rb") as archive:
        if archive.read(len(MAGIC)) != MAGIC:
            raise BackupFailed(f"pg_dump wrote no archive to {partial}")
        os.fsync(archive.fileno())
        size = os.fstat(archive.fileno()).st_size
    partial.replace(final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)
    return size


def _rotate(backup_dir: Path, keep: int, spare: Path) -> list[Path]:
    """Delete the shop's archives older than the newest ``keep`` (never ``spare``, the one
    just written, even if the clock went back); return what was deleted."""
    ours = sorted(p for p in backup_dir.iterdir() if BACKUP_NAME.fullmatch(p.name))
    doomed = [p for p in ours[: max(len(ours) - keep, 0)] if p != spare]
    for path in doomed:
        path.unlink(missing_ok=True)  # another backup may have rotated it already
    return doomed


# -- restore -----------------------------------------------------------------------------


async def restore(database_url: str, file: Path, *, force: bool = False) -> None:
    """Restore the archive ``file`` into the database, in one transaction.

    Refuses (exit code 2) a file that is not a custom-format archive, and a database in
    which any of the shop's tables holds a row unless ``force``. Where the shop's tables
    exist, they are dropped and created anew (``--clean --if-exists``); without ``force``
    they are empty, so nothing is lost.
    """
    archive = await trio.to_thread.run_sync(read_archive, file)
    target = await _inspect(database_url, shop_tables())
    if target.filled and not force:
        raise BackupFailed(
            f"refusing to restore {file}: the database already holds the shop's data"
            f" (rows in {', '.join(target.filled)}); stop the shop and pass --force to"
            " replace it with the backup",
            code=2,
        )
    pg_restore = await find_tool("pg_restore", archive.pg_dump_major)
    conninfo, env = client_connection(database_url)
    args = ["--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges"]
    if force or target.tables:
        args += ["--clean", "--if-exists"]
    log.info(
        "restoring %s (database %s of PostgreSQL %s, by pg_dump %s)%s",
        file,
        archive.database,
        archive.server_version,
        archive.pg_dump_version,
        ", replacing the shop's data" if target.filled else "",
    )
    await _run(pg_restore, [*args, "--no-password", f"--dbname={conninfo}", str(file)], env)


def shop_tables() -> tuple[str, ...]:
    """The tables ``schema.sql`` creates."""
    return tuple(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", schema_text()))


async def _inspect(database_url: str, tables: Sequence[str]) -> Target:
    try:
        return await trio.to_thread.run_sync(_inspect_sync, database_url, tables)
    except psycopg.OperationalError as exc:
        raise BackupFailed(f"database unreachable: {exc}") from None


def _inspect_sync(database_url: str, tables: Sequence[str]) -> Target:
    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        present = [
            name
            for name in tables
            if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() != (None,)
        ]
        filled = [
            name
            for name in present
            if conn.execute(
                sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.Identifier(name))
            ).fetchone()
            == (True,)
        ]
        return Target(conn.info.server_version // 10_000, tuple(present), tuple(filled))


def read_archive(file: Path) -> Archive:
    """Read a custom-format archive's header; :class:`BackupFailed` (exit code 2) if
    ``file`` is not one."""
    try:
        with file.open("rb") as stream:
            head = stream.read(4096)
    except OSError as exc:
        raise BackupFailed(f"cannot read {file}: {exc.strerror}", code=2) from None
    if not head.startswith(MAGIC):
        raise BackupFailed(
            f"{file} is not a pg_dump custom-format archive (written by `shop backup`"
            " or `pg_dump --format=custom`)",
            code=2,
        )
    try:
        archive = _parse_header(head)
        _major_of(archive.pg_dump_version)
        return archive
    except (IndexError, ValueError):
        raise BackupFailed(
            f"{file}: the archive's header is damaged or cut short", code=2
        ) from None


def _parse_header(head: bytes) -> Archive:
    """``WriteHead`` of ``pg_backup_archiver.c``: magic, format version (3 bytes), int
    and offset sizes, format, compression, creation time (7 ints), then three strings."""
    version = (head[5], head[6])
    int_size, archive_format = head[8], head[10]
    if archive_format != _CUSTOM_FORMAT or not 1 <= int_size <= 8 or version < (1, 12):
        raise ValueError("not a custom-format archive this shop can restore")
    at = 11

    def read_int() -> int:
        nonlocal at
        raw = head[at + 1 : at + 1 + int_size]
        if len(raw) != int_size:
            raise IndexError("header cut short")
        value = int.from_bytes(raw, "little")
        negative, at = head[at], at + 1 + int_size
        return -value if negative else value

    def read_text() -> str:
        nonlocal at
        length = read_int()
        raw = head[at : at + max(length, 0)]
        if len(raw) != max(length, 0):
            raise IndexError("header cut short")
        at += len(raw)
        return raw.decode(errors="replace")

    if version >= (1, 15):
        at += 1  # the compression algorithm, one byte
    else:
        read_int()  # the compression level
    for _ in range(7):  # sec, min, hour, mday, mon, year, isdst
        read_int()
    return Archive(read_text(), read_text(), read_text())


# -- the scheduled job -------------------------------------------------------------------


async def backup_job(app: App, slot: dt.datetime) -> str:
    """The ``backup`` timer job (``SCHEDULE_BACKUP``): a failure is an operator alert."""
    config = app.config
    try:
        path = await backup(app.store.url, config.backup_dir, config.backup_keep, app.clock)
    except BackupFailed as exc:
        log.error("ALERT: scheduled backup failed: %s", exc)
        return f"failed: {exc}"
    return f"wrote {path.name}"
