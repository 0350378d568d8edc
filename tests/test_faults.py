"""Fault tests: crashes, outages, rate-limit storms and a slow helpdesk lose nothing and apply once.

Loopback only, bounded in count and time. The crash test runs the real deployment (gunicorn web + a
`tierdesk worker` process) and kills them with SIGKILL in the middle of a burst of 2,000 webhooks.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from integration.cli.processes import start_workers
from integration.core.models import Event
from integration.runtime import Runtime
from integration.store import Store
from integration.worker import Worker
from sandbox.base import SeedSummary
from sandbox.zendesk import ZendeskSandbox
from tests.support import (
    EMAIL,
    SECRET,
    TOKEN,
    Live,
    free_port,
    inbox_lines,
    moved,
    signed_headers,
    wait_for,
    wait_http,
)

BIN = Path(sys.executable).parent
BURST = 2000

pytestmark = pytest.mark.slow


def _private_notes(sandbox: ZendeskSandbox, ticket_id: int) -> int:
    return sum(1 for c in sandbox.ticket_comments(ticket_id) if not c["public"])


class Deliverer:
    """Sends webhooks the way Zendesk does: each invocation retried until it gets a 2xx."""

    def __init__(self, url: str, ticket_ids: list[int]) -> None:
        self.url = url
        self.ticket_ids = ticket_ids
        self.acked = 0
        self.failures = 0
        self.statuses: list[int] = []
        self._lock = threading.Lock()

    def _deliver(self, ticket_id: int) -> None:
        body = json.dumps({"ticket": {"id": str(ticket_id)}}).encode()
        invocation = f"inv-{ticket_id}"
        session = requests.Session()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            headers = {**signed_headers(body), "x-zendesk-webhook-invocation-id": invocation}
            try:
                response = session.post(self.url, data=body, headers=headers, timeout=5)
            except requests.RequestException:
                with self._lock:
                    self.failures += 1
                time.sleep(0.1)
                continue
            with self._lock:
                self.statuses.append(response.status_code)
            if response.status_code < 300:
                with self._lock:
                    self.acked += 1
                return
            time.sleep(0.1)
        raise AssertionError(f"delivery for ticket {ticket_id} never acknowledged")

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(self._deliver, self.ticket_ids))


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("a") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(  # noqa: S603
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _kill9(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill9(proc)


def test_kill_9_of_web_and_worker_mid_burst_applies_every_event_exactly_once(
    tmp_path: Path, sandbox: ZendeskSandbox, seeded: SeedSummary
) -> None:
    rng = random.Random(3)
    tickets = [
        sandbox.add_ticket(rng.choice(seeded.customer_ids), f"burst {i}", "x")["id"] for i in range(BURST)
    ]
    port = free_port()
    env = {
        **os.environ,
        "TIERDESK_DB": str(tmp_path / "tierdesk.db"),
        "TIERDESK_ZENDESK_URL": sandbox.base_url,
        "TIERDESK_ZENDESK_EMAIL": EMAIL,
        "TIERDESK_ZENDESK_TOKEN": TOKEN,
        "TIERDESK_ZENDESK_WEBHOOK_SECRET": SECRET,
        "TIERDESK_ZENDESK_RATE_LIMIT": "0",
        "TIERDESK_LEASE_SECONDS": "2",
        "TIERDESK_RETRY_BASE": "0.2",
        "TIERDESK_LOG_LEVEL": "WARNING",
        "TIERDESK_SYNC_INTERVAL": "3600",
    }
    web_cmd = [
        str(BIN / "gunicorn"),
        "--workers",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        "integration.web.app:create_app()",
    ]
    worker_cmd = [str(BIN / "tierdesk"), "worker"]
    subprocess.run([str(BIN / "tierdesk"), "sync"], env=env, check=True, capture_output=True)  # noqa: S603
    store = Store(tmp_path / "tierdesk.db")
    log = tmp_path / "processes.log"
    web = _start(web_cmd, env, log)
    worker = _start(worker_cmd, env, log)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        deliverer = Deliverer(f"http://127.0.0.1:{port}/webhooks/zendesk", tickets)
        sending = threading.Thread(target=deliverer.run)
        sending.start()

        wait_for(lambda: deliverer.acked >= 500, "500 acknowledged deliveries", 60)
        _kill9(web)  # the web tier crashes with requests in flight
        failed = deliverer.failures
        wait_for(lambda: deliverer.failures > failed, "a delivery to fail while the web tier is down", 30)
        web = _start(web_cmd, env, log)

        wait_for(lambda: store.count("decisions") >= 300, "300 routed tickets", 60)
        _kill9(worker)  # a worker dies holding leases, maybe between our PUT and its bookkeeping
        worker = _start(worker_cmd, env, log)
        second_worker = _start(worker_cmd, env, log)

        sending.join(timeout=120)
        assert not sending.is_alive()
        wait_for(lambda: store.queue_counts().get("done", 0) >= BURST, "every event done", 120)
        _stop(second_worker)
    finally:
        _stop(web)
        _stop(worker)

    assert deliverer.acked == BURST
    assert deliverer.failures > 0  # the web crash was felt: deliveries failed and were sent again
    assert store.queue_counts() == {"done": BURST}
    events = {e.ticket_key for e in store.list_events(["done"], limit=BURST * 2)}
    assert len(events) == BURST
    notes = [_private_notes(sandbox, t) for t in tickets]
    assert notes.count(1) == BURST, (
        f"tickets with a note count other than 1: {[n for n in notes if n != 1][:10]}"
    )
    assert all("tierdesk_routed" in sandbox.get_ticket(t)["tags"] for t in tickets)


@pytest.fixture
def patient(live: Live) -> Runtime:
    """A runtime that keeps retrying long enough to outlast a short outage."""
    return Runtime.from_settings(
        replace(live.runtime.settings, max_attempts=30, retry_base=0.05, retry_max=0.3, http_timeout=0.5)
    )


def _queue_tickets(live: Live, count: int) -> list[str]:
    requester = live.runtime.store.customers_by_segment()[("lifecycle", "established")][0].rsplit(":", 1)[1]
    ids = [live.zendesk.create_ticket(requester, f"fault {i}", "x").external_id for i in range(count)]
    wait_for(lambda: inbox_lines(live.runtime) >= count, "webhooks acknowledged", 10)
    return ids


def _drain(runtime: Runtime, expected: int, timeout: float = 40) -> list[str]:
    worker = Worker(runtime)
    outcomes: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and runtime.store.queue_counts().get("done", 0) < expected:
        outcome = worker.run_once()
        if outcome:
            outcomes.append(outcome.status)
        else:
            time.sleep(0.02)
    return outcomes


def test_outage_of_503s_then_recovery_applies_everything(live: Live, patient: Runtime) -> None:
    ids = _queue_tickets(live, 10)
    live.sandbox.inject_faults(503, count=100_000)
    threading.Timer(1.5, lambda: live.sandbox.inject_faults(503, count=0)).start()
    outcomes = _drain(patient, 10)
    assert "retry" in outcomes
    assert "dead" not in outcomes
    assert patient.store.queue_counts() == {"done": 10}
    for ticket_id in ids:
        assert _private_notes(live.sandbox, int(ticket_id)) == 1


def test_rate_limit_storm_is_waited_out(live: Live, patient: Runtime) -> None:
    ids = _queue_tickets(live, 5)
    live.sandbox.inject_faults(429, count=12, retry_after=1)
    outcomes = _drain(patient, 5)
    assert "dead" not in outcomes
    assert patient.store.queue_counts() == {"done": 5}
    assert patient.connectors["zendesk"].http.rate_limited >= 1
    for ticket_id in ids:
        assert _private_notes(live.sandbox, int(ticket_id)) == 1


def test_slow_helpdesk_times_out_and_is_retried_without_double_notes(live: Live, patient: Runtime) -> None:
    ids = _queue_tickets(live, 3)
    live.sandbox.set_delay(1.0)  # longer than the 0.5 s read timeout
    threading.Timer(2.0, lambda: live.sandbox.set_delay(0)).start()
    outcomes = _drain(patient, 3)
    assert "retry" in outcomes
    assert "dead" not in outcomes
    assert patient.store.queue_counts() == {"done": 3}
    for ticket_id in ids:
        assert _private_notes(live.sandbox, int(ticket_id)) == 1


# -- leases, bounded waits and cut-off answers ----------------------------------------------------------


def _event_of(runtime: Runtime, ticket_id: str) -> Event:
    moved(runtime)
    events = runtime.store.events_for_ticket(f"zendesk:ticket:{ticket_id}")
    assert len(events) == 1
    return events[0]


def _writes(sandbox: ZendeskSandbox, ticket_id: str) -> int:
    return sum(1 for m, p, _, _ in sandbox.request_log if m == "PUT" and p == f"/api/v2/tickets/{ticket_id}")


def test_a_call_slower_than_the_lease_keeps_its_event_one_write_and_one_decision(live: Live) -> None:
    runtime = Runtime.from_settings(replace(live.runtime.settings, lease_seconds=1.0))
    (ticket_id,) = _queue_tickets(live, 1)
    live.sandbox.clear_request_log()
    live.sandbox.set_delay(1.5)  # every answer takes longer than the whole lease
    stop = threading.Event()
    threads = start_workers(runtime, stop, 2)  # two worker threads of one process, as `tierdesk worker`
    try:
        wait_for(lambda: runtime.store.queue_counts() == {"done": 1}, "the event done", 30)
    finally:
        stop.set()  # each worker finishes what it holds, so a second claim's write would be in by the join
        for thread in threads:
            thread.join(timeout=15)
        live.sandbox.set_delay(0)
    assert not [t.name for t in threads if t.is_alive()], "a worker thread did not stop"
    assert _writes(live.sandbox, ticket_id) == 1
    assert _private_notes(live.sandbox, int(ticket_id)) == 1
    decision = runtime.store.get_decision(f"zendesk:ticket:{ticket_id}")
    assert decision is not None
    assert decision.outcome == "applied"
    event = _event_of(runtime, ticket_id)
    assert (event.status, event.attempts) == ("done", 1)


def test_a_retry_after_longer_than_the_lease_allows_goes_back_to_the_queue(
    live: Live, patient: Runtime
) -> None:
    (ticket_id,) = _queue_tickets(live, 1)
    moved(patient)
    live.sandbox.clear_request_log()
    live.sandbox.inject_faults(429, count=1, retry_after=4)  # lease 5 s: waits may take 2.5 s in all
    worker = Worker(patient)
    outcome = worker.run_once()
    assert outcome is not None
    assert outcome.status == "retry"
    assert len(live.sandbox.request_log) == 1  # not slept on and tried again while holding the lease
    event = _event_of(patient, ticket_id)
    assert event.status == "pending"
    assert event.attempts == 0  # a rate limit waited out is no failed attempt
    assert event.available_at >= time.time() + 3
    wait_for(lambda: (worker.run_once() or True) and patient.store.queue_counts() == {"done": 1}, "done", 15)
    assert _private_notes(live.sandbox, int(ticket_id)) == 1


def test_a_spent_rate_budget_sends_the_event_back_instead_of_sleeping_on_it(live: Live) -> None:
    runtime = Runtime.from_settings(replace(live.runtime.settings, zendesk_rate_limit=3))
    (ticket_id,) = _queue_tickets(live, 1)
    moved(runtime)
    with runtime.store.transaction() as db:  # another process spent the minute's budget just now
        db.conn.execute("DELETE FROM rate_budget")
    for _ in range(3):
        assert runtime.store.take_rate_token("api:zendesk", 3, time.time()) == 0.0
    live.sandbox.clear_request_log()
    outcome = Worker(runtime).run_once()
    assert outcome is not None
    assert outcome.status == "retry"
    assert live.sandbox.request_log == []  # nothing was sent over the budget
    event = _event_of(runtime, ticket_id)
    assert (event.status, event.attempts) == ("pending", 0)
    assert event.available_at >= time.time() + 30  # when the budget has room again
    assert "rate budget" in (event.last_error or "")


def test_an_answer_cut_off_mid_body_is_retried(live: Live, patient: Runtime) -> None:
    (ticket_id,) = _queue_tickets(live, 1)
    moved(patient)
    live.sandbox.clear_request_log()
    live.sandbox.cut_responses(1)  # the ticket read: headers, half the body, then the connection drops
    outcome = Worker(patient).run_once()
    assert outcome is not None
    assert outcome.status == "applied"
    reads = [
        s for m, p, _, s in live.sandbox.request_log if m == "GET" and p == f"/api/v2/tickets/{ticket_id}"
    ]
    assert len(reads) == 2
    assert _event_of(patient, ticket_id).status == "done"
    assert _private_notes(live.sandbox, int(ticket_id)) == 1
