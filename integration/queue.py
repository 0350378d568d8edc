"""The durable event queue's policy: leases, backoff and dead letters (the SQL lives in the store).

A webhook is answered only after it is written to the web process's inbox (integration/inbox.py), so
nothing acknowledged is ever lost; workers move inbox lines into the events table. Workers lease
events; a worker that dies lets its lease expire and another picks the event up. Failures are retried
with exponential backoff and jitter, and after `max_attempts` the event is dead-lettered with its last
error, to be replayed by hand once the cause is fixed.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from integration import metrics
from integration.inbox import Drained, Inbox
from integration.models import TicketEvent
from integration.store import Event, Store

log = logging.getLogger("tierdesk.queue")
MOVE_EVERY = 0.01  # seconds between inbox looks while a worker is busy


def _ticket_key(event: TicketEvent) -> str:
    return f"{event.source}:ticket:{event.ticket_id}"


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
        inbox: Inbox | None = None,
    ) -> None:
        self.store = store
        self.inbox = inbox or Inbox(Path(f"{store.path}.inbox"))
        self._next_move = 0.0
        self.inbox_due: float | None = None  # when the oldest line still settling may move
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.clock = clock
        self.wakeup = threading.Event()  # set by an in-process enqueue so workers need not poll

    def accept(self, event: TicketEvent, payload: dict[str, Any]) -> float:
        """The webhook's path: append to this process's inbox; returns the received time."""
        received_at = self.inbox.append(event.source, event.event_id, _ticket_key(event), payload)
        self.wakeup.set()
        return received_at

    def move_inbox(self, force: bool = False) -> Drained:
        """Move settled inbox lines into events; at most every MOVE_EVERY seconds unless forced."""
        now = self.clock()
        if not force and now < self._next_move:
            return Drained()
        self._next_move = now + MOVE_EVERY
        drained = self.inbox.drain(self.store, now)
        for line, event_id in drained.moved:
            log.debug(
                f"{line.source}.webhook.queued",
                extra={"event_id": event_id, "ticket": line.ticket_key, "delivery": line.delivery},
            )
        for line in drained.duplicates:
            metrics.WEBHOOKS_DUPLICATE.labels(line.source).inc()
            log.info(
                f"{line.source}.webhook.duplicate",
                extra={"ticket": line.ticket_key, "delivery": line.delivery},
            )
        if drained.more:
            self._next_move = 0.0
        self.inbox_due = drained.next_due
        return drained

    def backlog(self, now: float) -> tuple[int, int, float | None]:
        """(inbox files, inbox bytes not yet moved, age of the oldest delivery not yet applied)."""
        files, unmoved, oldest = self.inbox.backlog(self.store.inbox_offsets())
        inbox_age = None if oldest is None else max(0.0, now - oldest)
        ages = [a for a in (self.store.oldest_pending_age(now), inbox_age) if a is not None]
        return files, unmoved, max(ages) if ages else None

    def put(self, event: TicketEvent, payload: dict[str, Any]) -> tuple[int, bool]:
        """One event straight into the queue, past the inbox, for callers that need its id at once (tests,
        tools); returns (id, created). Webhooks go through accept()."""
        row = (event.source, event.event_id, _ticket_key(event), payload, self.clock())
        (event_id,) = self.store.add_events([row])
        if event_id is not None:
            self.wakeup.set()
            return event_id, True
        existing = self.store.find_event(event.source, event.event_id)
        assert existing is not None  # noqa: S101 - the insert just found it there
        return existing.id, False

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
