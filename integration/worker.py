"""Takes events off the queue and routes their tickets.

For each event: read the ticket, skip it if it is already routed, resolve the requester (pulling them from
the helpdesk when we have never seen them), classify them with the last fitted model (never a refit:
segment_service.py), decide with routing.py, apply the decision in one write, and record what was decided
and why, with the model's version. Retriable failures go back to the queue with backoff;
anything else is dead-lettered with its error.

An event is worked on under its claim's lease, renewed while the work runs (Queue.keep), and every wait
of its helpdesk calls (retries, Retry-After, the rate budget) is bounded by half the lease: a wait that
does not fit sends the event back to the queue for that time instead of holding it. Right before the
write the worker confirms it still holds the lease, so a worker that was frozen past it writes nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.base import ApplyResult, Helpdesk
from connectors.http import ApiError, ApiNotFound, ApiRateLimited, wait_limit
from integration import metrics, segment_service
from integration.core import keys, routing
from integration.core.models import Assignment, Customer, Decision, Event
from integration.inbox import SETTLE
from integration.queue import MOVE_EVERY
from integration.runtime import Runtime

log = logging.getLogger("tierdesk.worker")


@dataclass(frozen=True)
class Outcome:
    status: str  # applied | skipped | retry | dead | lost (lease lost before the write: nothing done)
    detail: str = ""


class LeaseLost(Exception):
    """The claim no longer holds the event's lease: stop before writing anything."""


class Worker:
    """One worker loop. `name` only labels its claims for people reading the queue; each claim gets a
    token of its own (Queue.claim), so Workers sharing a name, or threads sharing a Worker, never share
    a lease."""

    def __init__(self, runtime: Runtime, name: str | None = None) -> None:
        self.runtime = runtime
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"

    # -- the loop -----------------------------------------------------------------------------------

    def run_once(self) -> Outcome | None:
        """Process one ready event, if any."""
        queue = self.runtime.queue
        queue.move_inbox()
        if not queue.store.has_ready(queue.clock()):
            due = queue.inbox_due  # a delivery that arrived just now moves once it has settled
            if due is None or due - queue.clock() > SETTLE + MOVE_EVERY:
                return None
            time.sleep(max(0.0, due - queue.clock()))
            queue.move_inbox(force=True)
            if not queue.store.has_ready(queue.clock()):
                return None
        event = queue.claim(self.name)
        if event is None:
            return None
        return self.process(event)

    def run(self, stop: threading.Event) -> None:
        """Work until `stop` is set. When idle, wake on an in-process enqueue or poll the store.

        The poll is a read-only query, so a short interval (TIERDESK_WORKER_POLL) costs little and keeps
        webhook-to-update latency low when web and worker are separate processes.
        """
        wakeup = self.runtime.queue.wakeup
        idle_wait = self.runtime.settings.worker_poll
        while not stop.is_set():
            try:
                outcome = self.run_once()
            except Exception:
                log.exception("worker.loop_error")
                outcome = None
                stop.wait(1.0)
            if outcome is None:
                wakeup.wait(idle_wait)
                wakeup.clear()

    # -- one event ----------------------------------------------------------------------------------

    def process(self, event: Event) -> Outcome:
        """Route one claimed event, its lease renewed meanwhile and its calls' waits bounded below it."""
        queue = self.runtime.queue
        with queue.keep(event), wait_limit(queue.lease_seconds / 2):
            outcome = self._process(event)
        metrics.EVENTS_PROCESSED.labels(event.source, outcome.status).inc()
        if outcome.status == "dead":
            metrics.DEAD_LETTERS.labels(event.source).inc()
        elif outcome.status == "applied":
            metrics.ROUTING_LATENCY.labels(event.source).observe(max(0.0, time.time() - event.received_at))
        return outcome

    def _process(self, event: Event) -> Outcome:
        queue = self.runtime.queue
        extra = {"event_id": event.id, "ticket": event.ticket_key, "attempt": event.attempts}
        try:
            outcome = self._route(event)
        except LeaseLost:
            log.warning("worker.lease_lost", extra={**extra, "stage": "before the write"})
            return Outcome("lost", "lease lost before the write; nothing written")
        except ApiError as e:
            wait = e.retry_after if isinstance(e, ApiRateLimited) else None
            status = queue.failed(event, str(e), e.retriable, retry_after=wait)
            log.warning(f"worker.{status}", extra={**extra, "error": str(e), "retry_after": wait})
            return Outcome(status, str(e))
        except Exception as e:  # a bug must not kill the worker; keep the event for a replay
            status = queue.failed(event, f"{e.__class__.__name__}: {e}", False)
            log.exception("worker.crashed", extra=extra)
            return Outcome(status, str(e))
        if not queue.done(event):  # what was written stands; the claim that took over finds our marker
            log.warning("worker.lease_lost", extra={**extra, "stage": "after the write"})
        log.info(f"worker.{outcome.status}", extra={**extra, "detail": outcome.detail})
        return outcome

    def _connector(self, source: str) -> Helpdesk:
        connector = self.runtime.helpdesks.get(source)
        if connector is None:
            raise ApiError(source, f"no connector configured for {source!r}")
        return connector

    def _customer(self, connector: Helpdesk, requester_id: str) -> Customer | None:
        """The requester as a customer to classify; None when they are none (docs/mapping.md, "Who counts").

        Staff (an agent or admin who opened the ticket) are never stored, as the sync keeps only end users;
        an inactive (deleted, suspended) person is stored as inactive but not classified. Either way the
        ticket is routed without segments.
        """
        store = self.runtime.store
        key = keys.user(connector.name, requester_id)
        customer = store.get_customer(key)
        if customer is None:  # never synced: pull them (and their organization) on the spot
            customer = connector.get_customer(requester_id)
            if customer is None:
                return None
            store.upsert_customers([customer])
            if not customer.active:
                return None
            org_key = customer.organization_key
            if org_key and store.get_organization(org_key) is None and customer.organization_id:
                store.upsert_organizations([connector.get_organization(customer.organization_id)])
        return customer if customer.active else None

    def _route(self, event: Event) -> Outcome:
        self.runtime.refresh_mapping()  # a version published in the admin applies from the next event on
        rt = self.runtime
        store = rt.store
        connector = self._connector(event.source)
        if (previous := store.get_decision(event.ticket_key)) and previous.outcome == "applied":
            return Outcome("skipped", "ticket already routed")
        ticket_id = keys.external_id(event.ticket_key)
        try:
            ticket = connector.get_ticket(ticket_id)
        except ApiNotFound as e:
            raise ApiNotFound(connector.name, f"ticket {ticket_id} no longer exists", 404) from e
        now = datetime.now(UTC)
        decided_at = time.time()
        if rt.mapping.tags.routed in ticket.tags:
            store.record_decision(
                event.ticket_key,
                event_id=event.id,
                customer_key=None,
                outcome="skipped",
                decision=None,
                segments={},
                response={"detail": "ticket already carries the routed marker"},
                received_at=event.received_at,
                decided_at=decided_at,
            )
            return Outcome("skipped", "routed marker present")
        assignments: dict[str, Assignment] = {}
        customer_key = None
        feats: dict = {}
        model_digest = None  # the model version the segments came from (segment_service.py)
        customer = self._customer(connector, ticket.requester_id) if ticket.requester_id else None
        if customer is not None:
            customer_key = customer.key
            store.record_arrival(ticket)  # counted from its arrival, as the next sync will (docs/mapping.md)
            # with the last fitted model: a mapping published since is refitted by its job, never here
            classified = segment_service.classify_customer(
                store, rt.mapping, rt.mapping_digest, customer, now
            )
            assignments, feats = classified.assignments, classified.features
            model_digest = classified.model_digest
        decision: Decision = routing.decide(assignments, rt.mapping, feats)
        if not rt.queue.confirm(event):
            raise LeaseLost
        result: ApplyResult = connector.apply(ticket, decision)
        store.record_decision(
            event.ticket_key,
            event_id=event.id,
            customer_key=customer_key,
            outcome=result.outcome,
            decision=decision,
            segments=assignments,
            response={**result.response, "calls": result.calls, "detail": result.detail},
            received_at=event.received_at,
            decided_at=time.time(),
            model_digest=model_digest,
        )
        return Outcome(result.outcome, result.detail)
