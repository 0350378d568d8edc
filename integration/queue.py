"""The durable event queue's policy: leases, backoff and dead letters (the SQL lives in the store).

A webhook is answered only after it is written to the web process's inbox (integration/inbox.py), so
nothing acknowledged is ever lost; workers move inbox lines into the events table. Workers lease
events; a worker that dies lets its lease expire and another picks the event up. Failures are retried
with exponential backoff and jitter, and after `max_attempts` the event is dead-lettered with its last
error, to be replayed by hand once the cause is fixed.

Each claim gets a token of its own, and every transition (done, retry, dead, renewal) must present it:
a lease is held by one claim, not by a worker's name, so a claim whose lease ran out and was taken
over can change nothing. While an event is worked on (`keep`), its lease is renewed every third of
its length, so a slow helpdesk call keeps its event; only a worker that stops (killed, or its process
frozen) lets the lease run out.
"""

from __future__ import annotations

import logging
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from integration import metrics
from integration.core import keys
from integration.core.models import Event, TicketEvent
from integration.inbox import Drained, Inbox
from integration.store import Store

log = logging.getLogger("tierdesk.queue")
MOVE_EVERY = 0.01  # seconds between inbox looks while a worker is busy


def _ticket_key(event: TicketEvent) -> str:
    return keys.ticket(event.source, event.ticket_id)


class LeaseKeeper:
    """Renews the leases of the events this process is working on, from one thread of its own.

    The thread runs only while something is held. A renewal that finds the lease gone (the process
    stalled past it and another claim took the event) marks the claim lost; `Queue.confirm` reports it.
    """

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self._held: dict[int, str] = {}  # event id -> claim token
        self._renewed: dict[int, float] = {}  # event id -> monotonic time of its last renewal
        self._lost: set[int] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        return self.queue.lease_seconds / 3

    def hold(self, event: Event) -> None:
        with self._lock:
            self._held[event.id] = event.lease or ""
            self._renewed[event.id] = time.monotonic()
            self._lost.discard(event.id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self._thread.start()

    def release(self, event: Event) -> None:
        with self._lock:
            self._held.pop(event.id, None)
            self._renewed.pop(event.id, None)
            self._lost.discard(event.id)

    def fresh(self, event: Event) -> bool | None:
        """False when lost; True when renewed less than half a lease ago; None when it is not known."""
        with self._lock:
            if event.id in self._lost:
                return False
            renewed = self._renewed.get(event.id)
        if renewed is not None and time.monotonic() - renewed < self.queue.lease_seconds / 2:
            return True
        return None

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                claims = dict(self._held)
                if not claims:
                    self._thread = None
                    return
            self.renew(claims)

    def renew(self, claims: dict[int, str]) -> set[int]:
        """Renew these claims now; returns the ids still held."""
        started = time.monotonic()
        try:
            kept = self.queue.store.renew_leases(claims, self.queue.clock() + self.queue.lease_seconds)
        except sqlite3.Error:
            log.exception("queue.lease_renewal_failed")  # the next round tries again
            return set(claims)
        with self._lock:
            for event_id, token in claims.items():
                if self._held.get(event_id) != token:
                    continue  # released meanwhile
                if event_id in kept:
                    self._renewed[event_id] = started
                else:
                    self._lost.add(event_id)
        lost = set(claims) - kept
        if lost:
            log.warning("queue.lease_lost", extra={"events": sorted(lost)})
        return kept


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
        self.keeper = LeaseKeeper(self)

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

    def health(self, now: float) -> dict[str, Any]:
        """What /readyz and /metrics report: the store's probe (no write lock, bounded) and the inbox
        backlog (one file opened per web process at most), with the age of the oldest delivery not yet
        applied, in the inbox or the queue."""
        probe = self.store.probe(now)
        inbox: dict[str, Any] = {"writable": self.inbox.writable()}
        if probe["answering"]:  # without the offsets the inbox backlog cannot be told
            files, unmoved, oldest = self.inbox.backlog(probe.pop("inbox_offsets"))
            inbox_age = None if oldest is None else max(0.0, now - oldest)
            ages = [a for a in (probe["oldest_pending_seconds"], inbox_age) if a is not None]
            probe["oldest_pending_seconds"] = max(ages) if ages else None
            inbox.update(files=files, unmoved_bytes=unmoved)
        else:
            probe["oldest_pending_seconds"] = None
        probe["inbox"] = inbox
        return probe

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
        """Lease the next ready event to a new claim of `worker` (its name, for people reading the
        queue); the claim's own token, on the returned event, is what its transitions present."""
        return self.store.claim(f"{worker}#{secrets.token_hex(8)}", self.clock(), self.lease_seconds)

    @contextmanager
    def keep(self, event: Event) -> Iterator[None]:
        """Renew the event's lease for as long as the block runs."""
        self.keeper.hold(event)
        try:
            yield
        finally:
            self.keeper.release(event)

    def confirm(self, event: Event) -> bool:
        """Whether the claim still holds its lease, checked in the store unless renewed just now.

        Called right before a write to the helpdesk: a process that was frozen past its lease learns it
        here, before writing over the claim that took the event over.
        """
        fresh = self.keeper.fresh(event)
        if fresh is not None:
            return fresh
        return event.id in self.keeper.renew({event.id: event.lease or ""})

    def done(self, event: Event) -> bool:
        """Mark done; False when the claim had lost its lease (someone else holds the event now)."""
        return self.store.finish_event(event.id, event.lease or "", self.clock())

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt `attempts + 1`: exponential, capped, with +-20% jitter."""
        base = min(self.retry_max, self.retry_base * 2 ** max(0, attempts - 1))
        return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security

    def failed(self, event: Event, error: str, retriable: bool, retry_after: float | None = None) -> str:
        """Schedule another attempt or dead-letter; returns 'retry', 'dead', or 'lost' when the claim
        no longer held the lease (the event is someone else's now and was left as it is).

        `retry_after`: the helpdesk (a 429's Retry-After) or our own rate budget asked to wait this long.
        Such an event comes back at that time, not earlier, and the attempt does not count towards
        `max_attempts`: waiting out a rate limit is no failure of the event.
        """
        lease, now = event.lease or "", self.clock()
        if retry_after is not None:
            wait = max(retry_after, self.backoff(1))  # a "Retry-After: 0" must not spin
            held = self.store.retry_event(event.id, lease, now + wait, error, count_attempt=False)
            return "retry" if held else "lost"
        if retriable and event.attempts < self.max_attempts:
            held = self.store.retry_event(event.id, lease, now + self.backoff(event.attempts), error)
            return "retry" if held else "lost"
        return "dead" if self.store.dead_event(event.id, lease, error, now) else "lost"

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
