"""What an operator relies on: probes, metrics, the outbound rate budget, and bulk replay."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import requests
from click.testing import CliRunner

from integration.cli.commands import main
from integration.core.models import TicketEvent
from integration.runtime import Runtime
from integration.store import Store
from integration.worker import Worker
from tests.support import Live, moved, post_webhook, settings_env


def test_health_and_readiness_probes(live: Live) -> None:
    assert requests.get(f"{live.url}/healthz", timeout=5).json() == {"status": "ok"}
    post_webhook(live.url, {"ticket": {"id": "5"}}, secret=live.runtime.settings.zendesk_webhook_secret or "")
    ready = requests.get(f"{live.url}/readyz", timeout=5)
    assert ready.status_code == 200
    body = ready.json()
    assert body["store_writable"] is True
    assert body["queue"] == {}  # acknowledged into the inbox; no worker has moved it yet
    assert body["inbox"]["files"] == 1
    assert body["inbox"]["unmoved_bytes"] > 0
    assert body["oldest_pending_seconds"] >= 0
    moved(live.runtime)
    body = requests.get(f"{live.url}/readyz", timeout=5).json()
    assert (body["queue"], body["inbox"]["unmoved_bytes"]) == ({"pending": 1}, 0)


HOLDER = """
import fcntl, os, sqlite3, sys, time
fd = os.open(sys.argv[1] + ".lock", os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)  # what another process's store transaction holds
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO models (name, data, computed_at) VALUES ('held', '{}', 'now')")
print("held", flush=True)
time.sleep(60)
"""


def test_probes_and_webhooks_answer_while_the_write_lock_is_held(live: Live) -> None:
    secret = live.runtime.settings.zendesk_webhook_secret or ""
    store = live.runtime.store
    held, release = threading.Event(), threading.Event()

    def long_writer() -> None:  # a recompute's long transaction, in this process
        with store.transaction() as db:
            db.conn.execute("INSERT INTO models (name, data, computed_at) VALUES ('long', '{}', 'now')")
            held.set()
            release.wait(30)

    writer = threading.Thread(target=long_writer)
    writer.start()
    try:
        assert held.wait(5)
        for path in ("/readyz", "/healthz", "/metrics", "/readyz"):  # each within 3 s, or it fails
            assert requests.get(f"{live.url}{path}", timeout=3).status_code == 200, path
        assert post_webhook(live.url, {"ticket": {"id": "7"}}, secret=secret).status_code == 202
    finally:
        release.set()
        writer.join()

    other = subprocess.Popen(  # noqa: S603 - and a writer in another process
        [sys.executable, "-c", HOLDER, store.path], stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "held"
        ready = requests.get(f"{live.url}/readyz", timeout=3)
        assert ready.status_code == 200
        assert ready.json()["store_writable"] is True
        assert requests.get(f"{live.url}/healthz", timeout=3).status_code == 200
    finally:
        other.kill()
        other.wait()
        if other.stdout is not None:
            other.stdout.close()


def test_readiness_fails_when_the_inbox_cannot_be_written(live: Live, tmp_path: Path) -> None:
    from integration.inbox import Inbox

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    live.runtime.queue.inbox = Inbox(blocker / "inbox")  # where webhooks would have to go
    ready = requests.get(f"{live.url}/readyz", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["inbox"]["writable"] is False


def test_metrics_count_webhooks_routing_and_api_calls(live: Live) -> None:
    secret = live.runtime.settings.zendesk_webhook_secret or ""

    def scrape() -> str:
        response = requests.get(f"{live.url}/metrics", timeout=5)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.text

    def value(text: str, name: str) -> float:
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{") and line.split(" ")[0] == name:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = scrape()
    post_webhook(live.url, {"ticket": {"id": "1"}}, secret="wrong")
    requester = live.runtime.store.customers_by_segment()[("lifecycle", "established")][0].rsplit(":", 1)[1]
    live.start_workers()
    ticket = live.zendesk.create_ticket(requester, "metrics", "x")
    live.wait_for_decisions([ticket.external_id])
    after = scrape()
    rejected = 'tierdesk_webhooks_rejected_total{reason="bad_signature",source="zendesk"}'
    accepted = 'tierdesk_webhooks_accepted_total{source="zendesk"}'
    applied = 'tierdesk_events_processed_total{outcome="applied",source="zendesk"}'
    assert value(after, rejected) == value(before, rejected) + 1
    assert value(after, accepted) == value(before, accepted) + 1
    assert value(after, applied) == value(before, applied) + 1
    assert value(after, 'tierdesk_api_calls_total{connector="zendesk",status="200"}') > value(
        before, 'tierdesk_api_calls_total{connector="zendesk",status="200"}'
    )
    assert 'tierdesk_routing_latency_seconds_bucket{le="0.5",source="zendesk"}' in after
    assert 'tierdesk_queue_events{status="done"} 1.0' in after
    assert secret not in after


def test_rate_budget_is_a_sliding_minute_shared_through_the_store(tmp_path: Path) -> None:
    first, second = Store(tmp_path / "t.db"), Store(tmp_path / "t.db")  # two processes, one budget
    assert [first.take_rate_token("api:zendesk", 3, 100.0) for _ in range(2)] == [0.0, 0.0]
    assert second.take_rate_token("api:zendesk", 3, 100.5) == 0.0
    wait = second.take_rate_token("api:zendesk", 3, 101.0)
    assert 58 < wait <= 59.0
    assert first.take_rate_token("api:other", 3, 101.0) == 0.0  # budgets are per connector
    assert first.take_rate_token("api:zendesk", 3, 160.5) == 0.0  # the window slid on


def test_rate_budget_survives_the_clock_stepping_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    assert [store.take_rate_token("api:zendesk", 3, 10_000.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    back = 10_000.0 - 3600  # NTP steps the clock back an hour
    wait = store.take_rate_token("api:zendesk", 3, back)
    assert 0 < wait <= 60  # the three calls count as made just now: one window, not an hour
    assert store.take_rate_token("api:zendesk", 3, back + 30) > 0
    assert store.take_rate_token("api:zendesk", 3, back + 61) == 0.0
    assert [store.take_rate_token("api:zendesk", 3, back + 61.5) for _ in range(2)] == [0.0, 0.0]
    assert store.take_rate_token("api:zendesk", 3, back + 62) > 0  # and the limit still holds


def test_connector_slows_down_instead_of_exceeding_the_budget(live: Live) -> None:
    runtime = Runtime.from_settings(replace(live.runtime.settings, zendesk_rate_limit=4))
    zendesk = runtime.connectors["zendesk"]
    with runtime.store.transaction() as db:  # forget the fixture's own sync calls
        db.conn.execute("DELETE FROM rate_budget")
    # use up the budget as another process would
    for _ in range(4):
        assert runtime.store.take_rate_token("api:zendesk", 4, time.time()) == 0.0
    live.sandbox.clear_request_log()
    waits: list[float] = []
    original = zendesk.http.throttle
    assert original is not None

    def recording() -> float:
        wait = original()
        waits.append(wait)
        if wait > 0:  # pretend the minute passed rather than sleeping through it in a test
            with runtime.store.transaction() as db:
                db.conn.execute("DELETE FROM rate_budget")
        return wait

    zendesk.http.throttle = recording
    zendesk.groups(refresh=True)
    assert waits[0] > 0  # it waited before sending
    assert [r[3] for r in live.sandbox.request_log] == [200]


def test_replay_all_dead_events_matching_a_filter(live: Live) -> None:
    queue = live.runtime.queue
    for ticket, error in (
        ("1", "zendesk: 503 Service Unavailable"),
        ("2", "zendesk: 404"),
        ("3", "zendesk: 503"),
    ):
        queue.put(TicketEvent("zendesk", f"d{ticket}", ticket), {})
        event = queue.claim("w")
        assert event is not None
        queue.failed(event, error, retriable=False)
    runner = CliRunner()
    env = settings_env(live.runtime.settings)
    refused = runner.invoke(main, ["queue", "retry"], env=env)
    assert refused.exit_code != 0
    some = runner.invoke(main, ["queue", "retry", "--error", "503"], env=env)
    assert some.exit_code == 0, some.output
    assert "2 dead event(s) queued again" in some.output
    assert live.runtime.store.queue_counts() == {"pending": 2, "dead": 1}
    rest = runner.invoke(main, ["queue", "retry", "--dead"], env=env)
    assert "1 dead event(s) queued again" in rest.output
    assert live.runtime.store.queue_counts() == {"pending": 3}
    assert Worker(live.runtime).run_once() is not None


def test_log_lines_are_json_with_the_event_name_and_ids() -> None:
    import json
    import logging

    from integration.logs import JsonFormatter

    record = logging.LogRecord("tierdesk.worker", logging.INFO, __file__, 1, "worker.applied", None, None)
    record.__dict__.update({"event_id": 42, "ticket": "zendesk:ticket:7", "event": "clobber?"})
    line = json.loads(JsonFormatter().format(record))
    assert line["event"] == "worker.applied"
    assert (line["event_id"], line["ticket"], line["level"]) == (42, "zendesk:ticket:7", "info")
    assert line["field_event"] == "clobber?"
