"""Prometheus metrics: what an operator watches to trust the pipeline.

Counters and histograms live in the process that does the work (web for webhooks, worker for events and
API calls). Run under gunicorn and a separate worker, set PROMETHEUS_MULTIPROC_DIR (the variable
prometheus-client itself reads) to one empty directory for all processes, and /metrics adds them up.
Queue depth and dead letters are read from the store at scrape time, so every process reports the same.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

WEBHOOKS_RECEIVED = Counter(
    "tierdesk_webhooks_received", "Webhook requests received, before any check", ["source"]
)
WEBHOOKS_ACCEPTED = Counter("tierdesk_webhooks_accepted", "Webhook deliveries queued (202)", ["source"])
WEBHOOKS_DUPLICATE = Counter(
    "tierdesk_webhooks_duplicate", "Deliveries already queued before, or echoes of our own update", ["source"]
)
WEBHOOKS_REJECTED = Counter(
    "tierdesk_webhooks_rejected", "Webhook requests refused, by reason", ["source", "reason"]
)
EVENTS_PROCESSED = Counter(
    "tierdesk_events_processed", "Queued events processed, by outcome", ["source", "outcome"]
)
DEAD_LETTERS = Counter("tierdesk_dead_letters", "Events dead-lettered", ["source"])
ROUTING_LATENCY = Histogram(
    "tierdesk_routing_latency_seconds",
    "From webhook received to the helpdesk's answer to our update",
    ["source"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
API_CALLS = Counter("tierdesk_api_calls", "Requests sent to outside APIs, by status", ["connector", "status"])
API_RATE_LIMITED = Counter("tierdesk_api_rate_limited", "429 answers from outside APIs", ["connector"])


def observe_api(connector: str, status: int | None) -> None:
    """Hook for connectors.http.HttpClient: one call per HTTP request sent (status None: no answer)."""
    API_CALLS.labels(connector, str(status) if status is not None else "error").inc()
    if status == 429:
        API_RATE_LIMITED.labels(connector).inc()


# The queue's health at a time (Queue.health): the store's probe and the inbox backlog. Passed in, so
# that metrics imports nothing of the queue (the queue counts its duplicates here).
Health = Callable[[float], dict[str, Any]]


class QueueCollector(Collector):
    """Queue depth by status, the inbox backlog and the oldest waiting delivery's age, read at scrape time."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        health = self.health(time.time())  # no write lock; bounded like /readyz
        if not health["answering"]:
            return  # the store did not answer in time: leave the gauges out rather than report zeros
        depth = GaugeMetricFamily("tierdesk_queue_events", "Events in the queue by status", labels=["status"])
        counts = health["queue"]
        for status in ("pending", "leased", "done", "dead"):
            depth.add_metric([status], counts.get(status, 0))
        yield depth
        yield GaugeMetricFamily(
            "tierdesk_inbox_unmoved_bytes",
            "Acknowledged deliveries in web processes' inbox files not yet moved into the queue",
            value=health["inbox"]["unmoved_bytes"],
        )
        yield GaugeMetricFamily(
            "tierdesk_queue_oldest_pending_seconds",
            "Age of the oldest delivery not yet applied, in the inbox or the queue (0 when none)",
            value=health["oldest_pending_seconds"] or 0.0,
        )


def render(health: Health) -> bytes:
    """The /metrics body: this process's (or all processes') metrics plus the queue read from the store
    (``health``: the queue's, Queue.health)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        own = generate_latest(registry)
    else:
        own = generate_latest(REGISTRY)
    reading = CollectorRegistry(auto_describe=False)
    reading.register(QueueCollector(health))
    return own + generate_latest(reading)
