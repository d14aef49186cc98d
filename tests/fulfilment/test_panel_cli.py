"""``shop panel sync [--dry-run]`` as a process, against a fake panel on loopback."""

from __future__ import annotations

import datetime as dt
import os
import sys

import psycopg
import trio

from shop.sandbox.panels.remnawave import TOKEN, FakeRemnawave
from tests.fulfilment.test_remnawave import AS_AN_OPERATOR
from tests.test_main import ROOT

ANN = 1001


async def run_shop(*args: str, environ: dict[str, str]) -> tuple[int, str]:
    env = {"PATH": os.environ["PATH"], **environ}
    done = await trio.run_process(
        [sys.executable, "-m", "shop", *args], env=env, cwd=ROOT, capture_stdout=True,
        capture_stderr=True, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout.decode() + done.stderr.decode()


async def test_panel_sync_reports_then_repairs(clean_database: str, nursery: trio.Nursery) -> None:
    panel = FakeRemnawave(version="3.3.2")
    await nursery.start(panel.serve)
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(clean_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO customers (telegram_id, first_seen, last_seen) VALUES (%s, %s, %s)",
            (ANN, now, now),
        )
        conn.execute(
            "INSERT INTO subscriptions (telegram_id, status, expires_at, plan_id, started_at,"
            " updated_at) VALUES (%s, 'active', %s, 'm1', %s, %s)",
            (ANN, now + dt.timedelta(days=30), now, now),
        )
    environ = {
        "DATABASE_URL": clean_database,
        "FULFILMENT": "remnawave",
        "REMNAWAVE_URL": panel.base_url,
        "REMNAWAVE_TOKEN": TOKEN,
    }
    with trio.fail_after(60):
        code, output = await run_shop("panel", "sync", "--dry-run", environ=environ)
        assert code == 0, output
        assert "1001: no account" in output
        assert "1 accounts differ" in output
        assert panel.users == {}
        code, output = await run_shop("panel", "sync", environ=environ)
        assert code == 0, output
        assert "1 accounts were repaired" in output
        assert panel.users["tg_1001"]["status"] == "ACTIVE"
        code, output = await run_shop("panel", "sync", "--dry-run", environ=environ)
        assert "0 accounts differ" in output
    assert TOKEN not in output


async def test_panel_import_adopts_and_says_so(clean_database: str, nursery: trio.Nursery) -> None:
    import httpx

    panel = FakeRemnawave(version="2.8.1")
    await nursery.start(panel.serve)
    headers = AS_AN_OPERATOR
    async with httpx.AsyncClient() as http:
        made = await http.post(
            f"{panel.base_url}/api/users",
            json={"username": "rs_1001", "expireAt": "2030-01-01T00:00:00.000Z", "telegramId": ANN},
            headers=headers,
        )
        assert made.status_code == 201
    environ = {"DATABASE_URL": clean_database}
    with trio.fail_after(60):
        code, output = await run_shop("panel", "import", environ=environ)
        assert code == 2
        assert "available with FULFILMENT=remnawave" in output
        assert "Traceback" not in output
        environ |= {
            "FULFILMENT": "remnawave",
            "REMNAWAVE_URL": panel.base_url,
            "REMNAWAVE_TOKEN": TOKEN,
        }
        code, output = await run_shop("panel", "import", environ=environ)
        assert code == 0, output
        assert "1001: adopted rs_1001 (active, until 2030-01-01" in output
        assert "1 accounts adopted" in output
    with psycopg.connect(clean_database) as conn:
        assert conn.execute("SELECT account_id FROM panel_accounts").fetchall() == [("rs_1001",)]
