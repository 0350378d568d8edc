"""The durable event queue's policy: leases, backoff and dead letters (the SQL lives in the store).

A webhook is answered only after its event is committed, so nothing acknowledged is ever lost. Workers
lease events; a worker that dies lets its lease expire and another picks the event up. Failures are
retried with exponential backoff and jitter, and after `max_attempts` the event is dead-lettered with
its last error, to be replayed by hand once the cause is fixed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from integration.models import TicketEvent
from integration.store import Event, Store


class Queue:
    def __init__(
        self,
        store: Store,
        *,
        lease_seconds: float = 60.0,
        max_attempts: int = 8,
        retry_base: float = 2.0,
        retry_max: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.clock = clock
        self.wakeup = threading.Event()  # set by an in-process enqueue so workers need not poll

    def put(self, event: TicketEvent, payload: dict[str, Any]) -> tuple[int, bool]:
        ticket_key = f"{event.source}:ticket:{event.ticket_id}"
        event_id, created = self.store.enqueue(
            event.source, event.event_id, ticket_key, payload, self.clock()
        )
        if created:
            self.wakeup.set()
        return event_id, created

    def claim(self, worker: str) -> Event | None:
        return self.store.claim(worker, self.clock(), self.lease_seconds)

    def done(self, event: Event, worker: str) -> bool:
        return self.store.finish_event(event.id, worker, self.clock())

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt `attempts + 1`: exponential, capped, with +-20% jitter."""
        base = min(self.retry_max, self.retry_base * 2 ** max(0, attempts - 1))
        return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security

    def failed(self, event: Event, worker: str, error: str, retriable: bool) -> str:
        """Schedule another attempt or dead-letter; returns 'retry' or 'dead'."""
        if retriable and event.attempts < self.max_attempts:
            self.store.retry_event(event.id, worker, self.clock() + self.backoff(event.attempts), error)
            return "retry"
        self.store.dead_event(event.id, worker, error, self.clock())
        return "dead"

    def replay(self, event_id: int) -> bool:
        replayed = self.store.replay_event(event_id, self.clock())
        if replayed:
            self.wakeup.set()
        return replayed

    def replay_matching(
        self,
        *,
        source: str | None = None,
        error_contains: str | None = None,
        ticket_id: str | None = None,
    ) -> list[int]:
        """Replay every dead event that matches all the given filters; returns their ids."""
        ids = self.store.replay_dead(
            self.clock(), source=source, error_contains=error_contains, ticket_id=ticket_id
        )
        if ids:
            self.wakeup.set()
        return ids
