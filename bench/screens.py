"""Benchmark: how fast a button press becomes the edited screen, with many customers at once.

``--customers`` customers (default 200) each open the menu with /start, then keep pressing
buttons (Buy, Back, Help, Back, ...) with a random pause of ``--think`` seconds between
the edited screen arriving and the next press. The fake Bot API runs in its own process,
which also plays the customers, so latency is measured on one clock: from the update
leaving the fake (the getUpdates answer that carries the press) to the editMessageText
that shows the new screen arriving there. The shop runs in this process, against a real
PostgreSQL, over real HTTP.

    python bench/screens.py [--customers 200 --seconds 30 --chat-burst 3]

The outbox may send ``--send-rate`` messages a second in all (default 1000, Telegram's
paid-broadcast ceiling): at the default 25 a second, 200 busy customers (about 150
presses a second) would wait on the global limit, not on the shop. ``--chat-burst`` sets
how many messages a chat may get at once before the outbox paces it to one a second
(``shop.main.CHAT_BURST``); 1 is the strict pacing of before issue 15.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import (  # noqa: E402
    bench_database,
    cpu_seconds,
    free_port,
    machine_busy_seconds,
    percentile,
)
from shop import main as shop_main  # noqa: E402
from shop.config import load_config  # noqa: E402
from shop.sandbox.botapi import TOKEN, FakeTelegram  # noqa: E402

PRESSES = ("buy", "menu", "help", "menu")
FIRST_ID = 6_000_000


class Customers(FakeTelegram):
    """The fake Bot API, timing each press from leaving here to its edit arriving here."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(history=False)
        self.args = args
        self.go = trio.Event()
        self.done = False
        self.latencies: list[float] = []
        self.timeouts = 0
        self.measure_from = math.inf
        self._left: dict[int, float] = {}  # chat -> when its press left in a getUpdates
        self._pressed: dict[int, int] = {}  # chat -> the press's update_id
        self._edited: dict[int, trio.Event] = {}
        self._menus: dict[int, trio.Event] = {}

    def _control(self, verb: str, name: str, query: dict[str, str], body: bytes) -> Any:
        if (verb, name) == ("POST", "screens"):
            self.go.set()
            return 200, {"ok": True}
        if (verb, name) == ("GET", "screens"):
            return 200, {
                "done": self.done,
                "latencies": self.latencies if self.done else [],
                "timeouts": self.timeouts,
            }
        return super()._control(verb, name, query, body)

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        updates = await super()._get_updates(params)
        now = trio.current_time()
        for update in updates:
            query = update.get("callback_query")
            if query is not None:
                chat = query["from"]["id"]
                if self._pressed.get(chat) == update["update_id"]:
                    self._left.setdefault(chat, now)
        return updates

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        message = await super()._send_message(params)
        if (menu := self._menus.get(message["chat"]["id"])) is not None:
            menu.set()
        return message

    async def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        now = trio.current_time()
        message = await super()._edit_message_text(params)
        chat = message["chat"]["id"]
        if (edited := self._edited.pop(chat, None)) is not None and chat in self._left:
            if self.done is False and now >= self.measure_from:
                self.latencies.append(now - self._left.pop(chat))
            edited.set()
        return message

    async def customer(self, user_id: int, rng: random.Random, until: float) -> None:
        self._menus[user_id] = menu = trio.Event()
        self.send_text(user_id, "/start")
        await menu.wait()
        del self._menus[user_id]
        message_id = self.last_message(user_id)["message_id"]  # type: ignore[index]
        low, high = self.args.think
        await trio.sleep(rng.uniform(0, high))  # not all at once
        turn = 0
        while trio.current_time() < until:
            self._edited[user_id] = edited = trio.Event()
            self._left.pop(user_id, None)
            self._pressed[user_id] = self.press(user_id, PRESSES[turn % 4], message_id=message_id)
            turn += 1
            with trio.move_on_after(10) as waited:
                await edited.wait()
            if waited.cancelled_caught:
                self.timeouts += 1
            await trio.sleep(rng.uniform(low, high))

    async def play(self) -> None:
        await self.go.wait()
        rng = random.Random(15)
        start = trio.current_time()
        self.measure_from = start + self.args.warmup
        until = self.measure_from + self.args.seconds
        async with trio.open_nursery() as nursery:
            for n in range(self.args.customers):
                nursery.start_soon(self.customer, FIRST_ID + n, rng, until)
        self.done = True


def drive(args: argparse.Namespace) -> None:
    """The fake's process: serve the Bot API and play the customers once told to."""
    fake = Customers(args)

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fake.play)
            await fake.serve(port=args.port)

    trio.run(serve)


async def run(args: argparse.Namespace, database_url: str, fake_url: str, pid: int) -> list[str]:
    shop_main.CHAT_BURST = args.chat_burst
    environ = {
        "DATABASE_URL": database_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": fake_url,
        "RATE_LIMIT": "1000/60",
        "RATE_LIMIT_CALLBACKS": "1000/60",  # these customers press faster than 20 a minute
        "TELEGRAM_PAID_BROADCAST": "1",
        "TELEGRAM_GLOBAL_RATE": str(args.send_rate),
        "LOG_LEVEL": "warning",
    }
    config = load_config(environ)
    stop = trio.Event()
    async with trio.open_nursery() as nursery, httpx.AsyncClient(base_url=fake_url) as fake:
        shop_main.tune_garbage_collector()  # as `shop run` does
        await nursery.start(
            lambda task_status: shop_main.serve_shop(config, stop, task_status=task_status)
        )
        await fake.post("/_fake/screens")
        await trio.sleep(args.warmup)
        cpu = cpu_seconds(pid), time.process_time(), machine_busy_seconds()
        while True:  # the customers play in another process: ask until they are done
            result = (await fake.get("/_fake/screens")).json()
            if result["done"]:
                break
            await trio.sleep(0.5)
        busy, total = machine_busy_seconds()
        fake_cpu = cpu_seconds(pid) - cpu[0]
        shop_cpu = time.process_time() - cpu[1]
        stop.set()
    latencies: list[float] = result["latencies"]
    ms = [v * 1000 for v in latencies]
    presses = len(ms) / args.seconds
    return [
        f"{args.customers} customers, think {args.think[0]}-{args.think[1]} s, chat burst"
        f" {args.chat_burst}, global rate {args.send_rate}/s: {len(ms)} presses in"
        f" {args.seconds:.0f} s ({presses:.0f}/s),"
        f" {result['timeouts']} unanswered",
        f"press -> edited screen: p50 {percentile(ms, 0.5):.1f} ms, p90 {percentile(ms, 0.9):.1f}"
        f" ms, p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms,"
        f" mean {statistics.fmean(ms):.1f} ms",
        f"CPU: shop {shop_cpu / args.seconds * 100:.0f} %, fake + customers"
        f" {fake_cpu / args.seconds * 100:.0f} % of a core;"
        f" machine {(busy - cpu[2][0]) / (total - cpu[2][1]) * 100:.0f} % busy",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--think", type=float, nargs=2, default=(0.3, 2.0))
    parser.add_argument("--send-rate", type=int, default=1000)
    parser.add_argument("--chat-burst", type=int, default=shop_main.CHAT_BURST)
    parser.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        drive(args)
        return
    port = free_port()
    command = [sys.executable, __file__, "--driver", "--port", str(port)]
    command += ["--customers", str(args.customers), "--seconds", str(args.seconds)]
    command += ["--warmup", str(args.warmup), "--think", *map(str, args.think)]
    fake_url = f"http://127.0.0.1:{port}"
    with bench_database(schema=False) as database_url:
        proc = subprocess.Popen(command, cwd=ROOT)
        try:
            for _ in range(200):
                try:
                    httpx.get(f"{fake_url}/_fake/stats", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            lines = trio.run(run, args, database_url, fake_url, proc.pid)
        finally:
            proc.terminate()
            proc.wait()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
