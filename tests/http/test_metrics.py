"""GET /metrics is Prometheus text with what an operator watches: updates, actors, the
outbox by lane and result, payments by provider and state, jobs, the fulfilment backlog."""

from __future__ import annotations

from typing import Any

import httpx
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from tests.customer import Customer

ANN = 1001


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_parse_and_count_what_happened(
    shop_at: Any, autojump_clock: trio.testing.MockClock
) -> None:
    async with shop_at(poll_timeout=86_400) as shop, httpx.AsyncClient(base_url=shop.url) as http:
        ann = Customer(shop, ANN)
        await ann.send("/start")
        await ann.choose_plan("m1", "stars")
        await ann.pay_last_invoice()
        shop.telegram.block(ANN)
        await ann.press("bal")  # Telegram answers 403 now
        await trio.sleep(3600)  # an hourly sweep
        answer = await http.get("/metrics")
    assert answer.status_code == 200
    found = samples(answer.text)
    assert found[("shop_payments_total", (("provider", "stars"), ("state", "completed")))] == 1
    assert found[("shop_outbox_calls_total", (("lane", "interactive"), ("result", "sent")))] >= 3
    assert found[("shop_outbox_calls_total", (("lane", "interactive"), ("result", "403")))] == 1
    assert found[("shop_outbox_calls_total", (("lane", "answer"), ("result", "sent")))] >= 3
    assert found[("shop_job_runs_total", (("job", "sweep"), ("result", "ok")))] >= 1
    assert found[("shop_job_seconds_count", (("job", "sweep"),))] >= 1
    assert found[("shop_fulfilment_backlog", ())] == 0
    assert found[("shop_update_latency_seconds_count", ())] >= 5
    assert ("shop_actors_live", (("kind", "user"),)) in found
