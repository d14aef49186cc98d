"""Prometheus metrics, one registry per running shop (no module globals)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .actors.runtime import KindStats


class _ActorCollector(Collector):
    """Reads live actors and mailbox depth at scrape time, so nothing counts them eagerly."""

    def __init__(self, read: Callable[[], dict[str, KindStats]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Any]:
        live = GaugeMetricFamily("shop_actors_live", "Live actors per kind", labels=["kind"])
        depth = GaugeMetricFamily(
            "shop_actor_mailbox_depth", "Messages queued per actor kind", labels=["kind"]
        )
        for kind, stats in self._read().items():
            live.add_metric([kind], stats.live)
            depth.add_metric([kind], stats.mailbox_depth)
        yield live
        yield depth


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.actor_handling = Histogram(
            "shop_actor_handling_seconds",
            "Time an actor spent handling one message",
            ["kind"],
            registry=self.registry,
        )
        self.actor_failures = Counter(
            "shop_actor_failures", "Handlers that raised", ["kind"], registry=self.registry
        )
        self.update_latency = Histogram(
            "shop_update_latency_seconds",
            "Time from receiving a Telegram update to the end of its handling",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

        self.webhook_latency = Histogram(
            "shop_webhook_to_confirmation_seconds",
            "Time from a provider webhook's arrival to the customer's confirmation being queued",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        #: when a list, every webhook latency is also appended here (for ``bench/``)
        self.webhook_samples: list[float] | None = None
        self.outbox_calls = Counter(
            "shop_outbox_calls",
            "Bot API calls the outbox made, by lane and result (sent, 429, 403, 400, failed)",
            ["lane", "result"],
            registry=self.registry,
        )
        self.payments = Counter(
            "shop_payments",
            "Payments that reached a state here, by provider",
            ["provider", "state"],
            registry=self.registry,
        )
        self.job_runs = Counter(
            "shop_job_runs",
            "Scheduled job runs, by result",
            ["job", "result"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "shop_job_seconds",
            "How long a scheduled job ran",
            ["job"],
            buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 1800),
            registry=self.registry,
        )
        self.fulfilment_backlog = Gauge(
            "shop_fulfilment_backlog",
            "Customers whose access the panel or channel does not match yet",
            registry=self.registry,
        )

        self.broadcast_recipients = Counter(
            "shop_broadcast_recipients",
            "Broadcast sends by result (sent, blocked, failed; retry: to be tried again)",
            ["result"],
            registry=self.registry,
        )

    def broadcast_outcome(self, result: str) -> None:
        self.broadcast_recipients.labels(result).inc()

    def outbox_event(self, lane: str, result: str) -> None:
        self.outbox_calls.labels(lane, result).inc()

    def payment_reached(self, provider: str, state: str) -> None:
        self.payments.labels(provider, state).inc()

    def webhook_confirmed(self, seconds: float) -> None:
        self.webhook_latency.observe(seconds)
        if self.webhook_samples is not None:
            self.webhook_samples.append(seconds)

    def on_handled(self, kind: str, seconds: float, failed: bool) -> None:
        self.actor_handling.labels(kind).observe(seconds)
        if failed:
            self.actor_failures.labels(kind).inc()

    def watch_actors(self, read: Callable[[], dict[str, KindStats]]) -> None:
        self.registry.register(_ActorCollector(read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
