"""Real ``shop run`` processes while the servers under them stop and start again.

- PostgreSQL (a private server: its own data directory and port) is stopped for real in
  the middle of a storm of Telegram updates and of Stripe webhooks, in polling mode and in
  webhook mode. While it is down the webhooks are answered 503 (delivered again later,
  never a 500) and ``/readyz`` names the database; once the same server is started again,
  the same shop process recovers by itself: ``/readyz`` 200, every redelivered payment
  fulfilled exactly once, every customer answered, nothing left in the update journal, and
  the shop again among the live instances.
- Redis (a private ``redis-server``) under two instances in webhook mode is killed
  mid-storm and started again: both keep answering (200 to Telegram, ``/readyz`` 200 with
  ``"redis": "down"``), and once it is back one customer's messages, handled in turn by
  the two instances, count against one window again, kept in the new Redis.

The PostgreSQL test found five bugs, fixed with it: a fulfilment failure that ended the
process, a failed batch that gave all but one of its members the wrong error (a 500, a
customer never answered), handled updates left in the journal, a paid event never handed
over again, and an instance lock never taken again.

Waiting on other processes is real time by nature: each wait here is bounded and polls
for a condition, none is a timing assumption.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import httpx
import psycopg
import pytest

from shop.store.instance import LIVE_INSTANCES
from tests.fakes.providers import FakeStripe
from tests.fakes.providers import stripe as fake_stripe
from tests.fakes.telegram import TOKEN
from tests.test_crash import until
from tests.test_main import ROOT, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SECRET = "restarts-webhook-secret"
TOLD = "Not so fast 🙂 You can try again in"


# -- private servers ------------------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL server of this test's own in a temporary directory, on a free port.

    initdb and postgres refuse to run as root: as root they run as the ``postgres`` user,
    in a directory handed over to it.
    """

    def __init__(self) -> None:
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not (PG_BIN / tool).exists():
                pytest.skip(f"no PostgreSQL server binaries ({PG_BIN / tool} is missing)")
        self.prefix: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                pytest.skip("running as root and no runuser to start PostgreSQL as another user")
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and no postgres user to start PostgreSQL as")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        # Not under pytest's tmp_path: that is private to root, and postgres must get in.
        self.root = Path(tempfile.mkdtemp(prefix="shop-pg-"))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/shop"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [*self.prefix, str(PG_BIN / tool), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{tool} {args}: {done.stdout}{done.stderr}"

    def create(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        self.start()
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE shop")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            # Fast, and still losing no commit when the server is killed: only the
            # machine crashing could lose what fsync=off leaves in the page cache (and so
            # synchronous_commit stays on: off, an immediate stop may lose the last commits).
            " -c fsync=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.root / "log"),
                  "-w", "-t", "30", "-o", options)  # fmt: skip

    def stop(self) -> None:
        """``immediate``: every connection is cut at once, as in a crash or a hard restart."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30")

    def running(self) -> bool:
        done = subprocess.run(
            [*self.prefix, str(PG_BIN / "pg_ctl"), "status", "-D", str(self.data)],
            capture_output=True,
            timeout=30,
            check=False,
        )
        return done.returncode == 0

    def cleanup(self) -> None:
        try:
            if self.data.exists() and self.running():
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A ``redis-server`` of this test's own on a free port, that keeps nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("no redis-server")
        self.binary, self.workdir = binary, workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        until(self.answers, 10, "redis-server answering PING")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def llen(self, key: str) -> int:
        """LLEN, in the protocol's own words (RESP): the length of the list at ``key``."""
        request = b"*2\r\n$4\r\nLLEN\r\n$%d\r\n%s\r\n" % (len(key.encode()), key.encode())
        reply = b""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(request)
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(64)
                assert chunk, reply
                reply += chunk
        assert reply.startswith(b":"), reply
        return int(reply[1:])


# -- shop processes -------------------------------------------------------------------------


class ShopProcess:
    """``shop run`` with its output in a file (a pipe nobody reads would fill up and stall
    a shop that logs every retry while a server is down)."""

    def __init__(self, env: dict[str, str], log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        full = {
            "PATH": os.environ["PATH"],
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.port),
            "TELEGRAM_TOKEN": TOKEN,
            "SHUTDOWN_GRACE": "2",
            **env,
        }
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shop", "run"],
                env=full, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def readyz(self) -> tuple[int, dict[str, object]]:
        answer = httpx.get(self.base + "/readyz", timeout=5)
        return answer.status_code, answer.json()

    def wait_ready(self, patience: float = 30) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, self.output()
            try:
                return httpx.get(self.base + "/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        until(ready, patience, f"shop on {self.base} ready")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def finish(self) -> tuple[int, str]:
        """Once terminated: the exit code and everything the process printed."""
        self.proc.wait(timeout=15)
        return self.proc.returncode, self.output()

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then the exit code and everything the process printed."""
        self.terminate()
        return self.finish()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextmanager
def fake_telegram(deliver_to: Sequence[str] = ()) -> Iterator[tuple[str, httpx.Client]]:
    """The fake Bot API in its own process: its base URL and a client of its control API."""
    port = free_port()
    command = [sys.executable, "-m", "tests.fakes.telegram", "--port", str(port)]
    if deliver_to:
        command += ["--deliver-to", ",".join(deliver_to)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=f"{base}/_fake", timeout=5) as control:

            def up() -> bool:
                try:
                    return httpx.post(f"{base}/bot{TOKEN}/getMe", timeout=2).status_code == 200
                except httpx.TransportError:
                    return False

            until(up, 30, "the fake Bot API up")
            yield base, control
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def answered(control: httpx.Client, chat_id: int) -> list[str]:
    """The texts the bot has sent this chat so far."""
    messages = control.get("/messages", params={"chat_id": chat_id}).json()
    return [str(m.get("text", "")) for m in messages]


def count(url: str, sql: str, *args: object) -> int:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])


def rows(url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(sql, args).fetchall()


JOURNALED = "SELECT count(*) FROM telegram_updates"


def storm(control: httpx.Client, customers: range) -> None:
    """``/start`` from each of ``customers``, queued at the fake Bot API."""
    storm = {"start_storm": {"users": len(customers), "first_id": customers[0]}}
    control.post("/updates", json=storm).raise_for_status()


def sent(control: httpx.Client) -> int:
    return int(control.get("/stats").json()["calls"].get("sendMessage", 0))


# -- provider webhooks, as Stripe documents them --------------------------------------------

SIGNER = FakeStripe()  # only its ``sign``: Stripe's documented scheme, with the fake's secret


def seed_pending_stripe_payments(url: str, payers: Sequence[int]) -> list[str]:
    """One pending Stripe payment per payer, as the shop stores it before creating the
    Checkout Session (``cs_…``) that names it."""
    now = dt.datetime.now(dt.UTC)
    ids = []
    with psycopg.connect(url, autocommit=True) as conn:
        for payer in payers:
            payment_id = f"pay-restart-{payer}"
            conn.execute(
                "INSERT INTO customers (telegram_id, first_seen, last_seen) VALUES (%s, %s, %s)",
                (payer, now, now),
            )
            conn.execute(
                "INSERT INTO payments (id, telegram_id, provider, product_kind, product_id,"
                " title, days, amount, currency, status, created_at, updated_at, expires_at,"
                " idempotency_key, provider_payment_id)"
                " VALUES (%s, %s, 'stripe', 'plan', 'm1', '1 month', 30, 349, 'USD',"
                " 'pending', %s, %s, %s, %s, %s)",
                (payment_id, payer, now, now, now + dt.timedelta(days=1), f"key-{payer}",
                 session_of(payment_id)),
            )  # fmt: skip
            ids.append(payment_id)
    return ids


def session_of(payment_id: str) -> str:
    return "cs_test_" + payment_id.replace("-", "")


def stripe_delivery(payment_id: str) -> tuple[dict[str, str], bytes]:
    """``checkout.session.completed`` for the payment, signed now (Stripe signs every
    delivery of an event afresh; the event id stays the same)."""
    session = {
        "id": session_of(payment_id),
        "object": "checkout.session",
        "amount_total": 349,
        "currency": "usd",
        "payment_status": "paid",
        "status": "complete",
        "client_reference_id": payment_id,
        "metadata": {"reference": payment_id},
        "mode": "payment",
        "livemode": False,
    }
    event = {
        "id": "evt_test_" + payment_id.replace("-", ""),
        "object": "event",
        "api_version": fake_stripe.API_VERSION,
        "created": int(time.time()),
        "data": {"object": session},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "checkout.session.completed",
    }
    body = json.dumps(event, indent=2).encode()
    headers = {
        "content-type": "application/json; charset=utf-8",
        "stripe-signature": SIGNER.sign(body, timestamp=int(time.time())),
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    return headers, body


def at_once(calls: Sequence[Callable[[], int]]) -> list[int]:
    """Make every call at the same time, as providers deliver: the results, in order."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def deliver_stripe(shop: ShopProcess, payment_id: str) -> int:
    """Deliver the payment's event as Stripe does: the status code (0: no answer at all)."""
    headers, body = stripe_delivery(payment_id)
    return post(shop.base + "/webhooks/stripe", headers=headers, content=body)


# -- 1. PostgreSQL restarted mid-traffic ----------------------------------------------------

STORM_BEFORE = range(8000, 8008)  # /start, under way when the database stops
STORM_DURING = range(8100, 8106)  # polling: /start queued at Telegram while it is down
PAYERS = range(8200, 8206)  # a pending Stripe payment each
DELIVERED_DOWN = range(8300, 8303)  # webhook mode: /start delivered while it is down


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["polling", "webhook"])
def test_postgres_restarted_mid_traffic_503_then_recovers_without_a_restart(
    mode: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        pg = PrivatePostgres()
        stack.callback(pg.cleanup)
        pg.create()
        port = free_port()
        webhook = mode == "webhook"
        deliver_to = [f"http://127.0.0.1:{port}"] if webhook else []
        base, control = stack.enter_context(fake_telegram(deliver_to))
        env = {
            "DATABASE_URL": pg.url,
            "TELEGRAM_API_URL": base,
            "PUBLIC_URL": "https://shop.example",
            "STRIPE_SECRET_KEY": fake_stripe.SECRET_KEY,
            "STRIPE_WEBHOOK_SECRET": fake_stripe.WEBHOOK_SECRET,
            # Signed events need no API call; any other call must not leave the machine.
            "STRIPE_API_URL": f"http://127.0.0.1:{free_port()}",
        }
        if webhook:
            env["TELEGRAM_WEBHOOK_URL"] = "https://shop.example/telegram/webhook"
            env["TELEGRAM_WEBHOOK_SECRET"] = SECRET
        shop = ShopProcess(env, tmp_path / "shop.log", port)
        stack.callback(shop.kill)
        shop.wait_ready()
        payments = seed_pending_stripe_payments(pg.url, PAYERS)
        early, late = payments[:3], payments[3:]
        assert at_once([partial(deliver_stripe, shop, p) for p in early]) == [200] * len(early)
        stripe_calls = [partial(deliver_stripe, shop, p) for p in late + early]
        telegram_calls = [
            partial(deliver_update, shop, update(c, 90_000_000 + c, "/start"))
            for c in (DELIVERED_DOWN if webhook else ())
        ]
        everyone = [*STORM_BEFORE, *(DELIVERED_DOWN if webhook else STORM_DURING)]

        # Mid-traffic: a storm under way (Telegram answers slowly) when the server stops.
        control.post("/delay", json={"method": "sendMessage", "seconds": 0.3}).raise_for_status()
        storm(control, STORM_BEFORE)
        until(lambda: sent(control) >= 2, 20, "the storm being answered")
        pg.stop()
        if not webhook:  # in webhook mode Telegram's deliveries are the direct ones
            storm(control, STORM_DURING)
        # While it is down, Stripe's first delivery of the others and a repeat of the
        # early ones (and in webhook mode Telegram's deliveries) come all at once. Each
        # must be a 503, so that it is delivered again: never a 500, never a 200 for
        # what was not kept. The shop answers once its pool has waited out the 10 s
        # connection timeout, queued behind the other work waiting for the database.
        codes = at_once(stripe_calls + telegram_calls)
        stripe_codes, telegram_codes = codes[: len(stripe_calls)], codes[len(stripe_calls) :]
        assert stripe_codes == [503] * len(stripe_calls)
        # (A failed journaling batch once gave all but one of its webhooks a 500:
        # one outcome shared by all, which unwraps once; shop/store/batch.py.)
        assert set(telegram_codes) <= {503}, telegram_codes
        status, ready = shop.readyz()
        assert (status, ready["status"], ready["reason"]) == (503, "unavailable", "database")

        pg.start()  # the same data directory, the same port
        control.post("/delay", json={"method": "sendMessage", "seconds": 0}).raise_for_status()
        until(lambda: shop.readyz()[0] == 200, 20, "/readyz 200 again")
        assert shop.alive()  # the same process: nothing restarted it

        # The providers' next deliveries: each until it is taken, the taken ones again.
        def all_taken() -> bool:
            codes = at_once(stripe_calls + telegram_calls)
            assert set(codes) <= {200, 503}, codes
            return codes == [200] * len(codes)

        until(all_taken, 30, "every delivery taken")

        # Every payment completed.
        def state_of(payment_id: str) -> str:
            found = rows(pg.url, "SELECT status FROM payments WHERE id = %s", payment_id)
            return str(found[0][0])

        def all_completed() -> bool:
            return all(state_of(p) == "completed" for p in payments)

        # An event stored and answered 200 just before the stop, whose handling then
        # failed with the database, is handed over again when Stripe delivers it
        # again (it was once answered "duplicate" and left pending until a restart).
        until(all_completed, 10, "every payment completed")
        done = payments

        # Exactly once: one grant and one confirmation owed per completed payment, one
        # stored event per event id, however many deliveries there were.
        grants = "SELECT count(*), count(DISTINCT payment_id) FROM grants"
        assert rows(pg.url, grants) == [(len(done), len(done))]
        assert count(pg.url, "SELECT count(*) FROM grants WHERE payment_id = ANY(%s)", done) == len(
            done
        )
        assert count(pg.url, "SELECT count(*) FROM provider_events") == len(payments)
        notices = "SELECT count(*) FROM notices WHERE ref = ANY(%s)"
        assert count(pg.url, notices, done) == len(done)
        assert count(pg.url, "SELECT count(*) FROM notices") == len(done)

        def confirmed(payment_id: str) -> bool:
            payer = int(payment_id.rsplit("-", 1)[1])
            return any("Payment received" in text for text in answered(control, payer))

        until(lambda: all(confirmed(p) for p in done), 20, "every payer told it arrived")

        # Every customer answered, those whose /start was under way at the stop too
        # (a failed greeting batch once lost all but one of its customers).
        until(lambda: all(answered(control, c) for c in everyone), 30, "all answered")

        # Nothing left in the journal: every update handled has left it, the ones
        # finished while the database was down too (they were once dropped).
        until(lambda: count(pg.url, JOURNALED) == 0, 10, "the update journal emptied")

        # Other instances see the shop as alive again: its instance lock, which went
        # with its connection, was taken again (store/instance.py).
        live = f"SELECT count(*) FROM ({LIVE_INSTANCES}) AS live"
        until(lambda: count(pg.url, live) == 1, 10, "the instance alive again")

        # And it is still whole (fulfilment's StoreUnavailable, raised in a nursery,
        # once escaped its handler as an ExceptionGroup and ended the process).
        code, output = shop.stop()
        assert code == 0, output


# -- 2. Redis stopped and started under two instances ---------------------------------------

WHILE_DOWN = range(9000, 9020)  # /start through the fake's webhook, Redis killed meanwhile
DIRECT = (9100, 9101)  # /start delivered straight to each instance while Redis is down
ZOE = 9500  # once Redis is back, her messages go to the two instances in turn
WINDOW = 3  # RATE_LIMIT_MESSAGES: 3 a minute


@pytest.mark.slow
def test_redis_stopped_and_started_still_serving_then_limits_shared_again(
    clean_database: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        redis = PrivateRedis(tmp_path)
        stack.callback(redis.kill)
        redis.start()
        ports = [free_port(), free_port()]
        targets = [f"http://127.0.0.1:{p}" for p in ports]
        base, control = stack.enter_context(fake_telegram(deliver_to=targets))
        env = {
            "DATABASE_URL": clean_database,
            "REDIS_URL": redis.url,
            "TELEGRAM_API_URL": base,
            "TELEGRAM_WEBHOOK_URL": "https://shop.example/telegram/webhook",
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "INSTANCES": "2",
            "RATE_LIMIT_MESSAGES": f"{WINDOW}/60",
        }
        shops = [ShopProcess(env, tmp_path / f"shop{i}.log", port) for i, port in enumerate(ports)]
        for shop in shops:
            stack.callback(shop.kill)
        for shop in shops:
            shop.wait_ready()
            assert redis_state(shop) == (200, "ready", "ok")

        # Mid-traffic: a storm under way (Telegram answers slowly) when Redis is killed.
        control.post("/delay", json={"method": "sendMessage", "seconds": 0.2}).raise_for_status()
        storm(control, WHILE_DOWN)
        until(lambda: sent(control) >= 2, 20, "the storm being answered")
        redis.kill()
        for shop, customer in zip(shops, DIRECT, strict=True):
            assert deliver_update(shop, update(customer, 60_000_000 + customer, "/start")) == 200
        for shop in shops:
            # Degraded, not down: still ready, and says Redis is not there.
            until(partial(redis_is, shop, "down"), 10, "redis: down, and still ready")
        everyone = [*WHILE_DOWN, *DIRECT]
        until(lambda: all(answered(control, c) for c in everyone), 30, "everyone answered")
        assert all(shop.alive() for shop in shops)
        control.post("/delay", json={"method": "sendMessage", "seconds": 0}).raise_for_status()

        redis.start()  # the same port, nothing kept
        for shop in shops:
            until(partial(redis_is, shop, "ok"), 10, "redis: ok again")

        # One customer, her messages handled by the instances in turn: one window.
        handled_before = [handled(shop) for shop in shops]
        for n in range(WINDOW + 2):
            shop = shops[n % 2]
            assert deliver_update(shop, update(ZOE, 70_000_000 + n, "/menu")) == 200
            until(lambda: settled(clean_database, ZOE), 10, f"message {n + 1} handled")
        handled_by = [
            handled(shop) - before for shop, before in zip(shops, handled_before, strict=True)
        ]
        assert handled_by == [WINDOW + 2 - (WINDOW + 2) // 2, (WINDOW + 2) // 2]  # both took part
        texts = answered(control, ZOE)
        assert len(texts) == WINDOW + 1, texts  # three menus, one notice, then silence
        assert [t.startswith(TOLD) for t in texts] == [False] * WINDOW + [True], texts
        # Kept in the Redis that came back empty: the three she was let through, by both.
        window = f"shop:{TOKEN.split(':')[0]}:limit:{{message:{ZOE}}}"
        assert redis.llen(window) == WINDOW
        for shop in shops:
            shop.terminate()
        for shop in shops:
            code, output = shop.finish()
            assert code == 0, output
            assert "Traceback" not in output, output
        assert count(clean_database, JOURNALED) == 0


def update(customer: int, update_id: int, text: str) -> dict[str, object]:
    """A private message as the Bot API documents an Update."""
    user = {"id": customer, "is_bot": False, "first_name": "Zoe", "language_code": "en"}
    message: dict[str, object] = {
        "message_id": update_id % 1_000_000,
        "from": user,
        "chat": {"id": customer, "type": "private", "first_name": "Zoe"},
        "date": int(time.time()),
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
    return {"update_id": update_id, "message": message}


def deliver_update(shop: ShopProcess, raw: dict[str, object]) -> int:
    """Deliver ``raw`` to this instance as Telegram's webhook does: the status code."""
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "content-type": "application/json"}
    return post(shop.base + "/telegram/webhook", headers=headers, content=json.dumps(raw).encode())


def post(url: str, *, headers: dict[str, str], content: bytes) -> int:
    """POST: the status code, or 0 when the request got no answer (refused, cut)."""
    try:
        return httpx.post(url, headers=headers, content=content, timeout=60).status_code
    except httpx.TransportError:
        return 0


def redis_state(shop: ShopProcess) -> tuple[int, object, object]:
    status, body = shop.readyz()
    return status, body["status"], body.get("redis")


def redis_is(shop: ShopProcess, state: str) -> bool:
    """Ready (200) with Redis in ``state``; anything else but Redis's state is a failure."""
    status, overall, redis = redis_state(shop)
    assert (status, overall) == (200, "ready"), (status, overall, redis)
    return redis == state


def handled(shop: ShopProcess) -> float:
    """Updates this instance has handled so far (its update latency histogram's count)."""
    text = httpx.get(shop.base + "/metrics", timeout=5).text
    found = re.search(r"^shop_update_latency_seconds_count (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def settled(url: str, customer: int) -> bool:
    """Nothing of the customer's left in the journal, and no instance holding her."""
    journaled = count(url, "SELECT count(*) FROM telegram_updates")
    held = count(url, "SELECT count(*) FROM customer_leases WHERE telegram_id = %s", customer)
    return journaled == 0 and held == 0
