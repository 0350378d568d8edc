"""The store and the queue on a temporary SQLite file."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from integration.core.models import Assignment, Customer, Decision, Ticket, TicketEvent
from integration.inbox import Inbox
from integration.queue import Queue
from integration.store import MIGRATIONS, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "t.db")


def _event(ticket: str, delivery: str) -> TicketEvent:
    return TicketEvent(source="zendesk", event_id=delivery, ticket_id=ticket)


def test_schema_is_created_once_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    Store(path)
    again = Store(path)  # opening an existing database re-runs nothing
    assert again.schema_version() == max(version for version, _ in MIGRATIONS)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "customers",
        "organizations",
        "tickets",
        "segments",
        "events",
        "decisions",
        "sync_cursors",
    } <= tables


def test_claim_leases_one_event_to_one_worker(store: Store) -> None:
    now = [1000.0]
    queue = Queue(store, lease_seconds=30, clock=lambda: now[0])
    queue.put(_event("1", "a"), {})
    first = queue.claim("w1")
    assert first is not None
    assert first.attempts == 1
    assert queue.claim("w2") is None  # leased
    now[0] += 31  # w1 died; its lease expires
    second = queue.claim("w2")
    assert second is not None
    assert (second.id, second.attempts) == (first.id, 2)
    assert not queue.done(first)  # w1's late finish does not count
    assert queue.done(second)
    assert store.queue_counts() == {"done": 1}


def test_events_of_one_ticket_are_handed_out_in_order(store: Store) -> None:
    queue = Queue(store)
    queue.put(_event("1", "a"), {})
    queue.put(_event("1", "b"), {})
    queue.put(_event("2", "c"), {})
    first = queue.claim("w1")
    other = queue.claim("w2")
    assert first is not None
    assert other is not None
    assert (first.event_id, other.event_id) == ("a", "c")  # b waits behind a
    assert queue.claim("w3") is None
    queue.done(first)
    nxt = queue.claim("w3")
    assert nxt is not None
    assert nxt.event_id == "b"


def test_duplicate_delivery_is_stored_once(store: Store) -> None:
    queue = Queue(store)
    assert queue.put(_event("1", "a"), {})[1] is True
    assert queue.put(_event("1", "a"), {})[1] is False
    assert store.queue_counts() == {"pending": 1}


def test_retry_backoff_then_dead_letter_then_replay(store: Store) -> None:
    now = [0.0]
    queue = Queue(store, max_attempts=3, retry_base=10, retry_max=100, clock=lambda: now[0])
    queue.put(_event("1", "a"), {})
    for attempt in (1, 2):
        event = queue.claim("w")
        assert event is not None
        assert event.attempts == attempt
        assert queue.failed(event, "503 from helpdesk", retriable=True) == "retry"
        assert queue.claim("w") is None  # backing off
        now[0] += 10 * 2 ** (attempt - 1) * 1.2 + 0.01
    event = queue.claim("w")
    assert event is not None
    assert queue.failed(event, "503 from helpdesk", retriable=True) == "dead"
    dead = store.get_event(event.id)
    assert dead is not None
    assert (dead.status, dead.last_error) == ("dead", "503 from helpdesk")
    assert queue.replay(event.id)
    replayed = queue.claim("w")
    assert replayed is not None
    assert replayed.attempts == 1


def test_fatal_error_dead_letters_at_once(store: Store) -> None:
    queue = Queue(store, max_attempts=5)
    queue.put(_event("1", "a"), {})
    event = queue.claim("w")
    assert event is not None
    assert queue.failed(event, "404 ticket gone", retriable=False) == "dead"


def test_concurrent_workers_never_share_an_event(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = Store(path)
    queue = Queue(store)
    for i in range(200):
        queue.put(_event(str(i), f"d{i}"), {})
    claimed: list[int] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        own = Store(path)  # as a separate process would
        q = Queue(own)
        while (event := q.claim(name)) is not None:
            q.done(event)
            with lock:
                claimed.append(event.id)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == 200


def test_segment_changes_are_kept_as_history(store: Store) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    store.save_segments({"zendesk:user:1": {"tier": Assignment("tier", "B", ("score 6",))}}, now)
    assert store.save_segments({"zendesk:user:1": {"tier": Assignment("tier", "B", ("score 6",))}}, now) == 0
    assert store.save_segments({"zendesk:user:1": {"tier": Assignment("tier", "A", ("score 8",))}}, now) == 1
    rows = list(store.db.query("SELECT from_label, to_label FROM segment_changes ORDER BY id"))
    assert rows == [{"from_label": None, "to_label": "B"}, {"from_label": "B", "to_label": "A"}]
    assert store.segments_for("zendesk:user:1")["tier"].reasons == ("score 8",)


def test_ticket_stats_count_recent_history(store: Store) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    store.upsert_customers([Customer("zendesk", "1", email="a@example.com")])
    store.upsert_tickets(
        [
            Ticket(
                "zendesk",
                "10",
                requester_id="1",
                created_at=now - timedelta(days=5),
                satisfaction="bad",
            ),
            Ticket(
                "zendesk",
                "11",
                requester_id="1",
                created_at=now - timedelta(days=40),
                satisfaction="good",
            ),
            Ticket("zendesk", "12", requester_id="1", created_at=now - timedelta(days=400)),
        ]
    )
    stats = store.ticket_stats(now)["zendesk:user:1"]
    assert (stats.tickets_30d, stats.tickets_90d, stats.tickets_total) == (1, 2, 3)
    assert (stats.csat_good, stats.csat_bad) == (1, 1)


def test_lock_is_exclusive_until_it_expires(store: Store) -> None:
    assert store.acquire_lock("job", "a", ttl=10, now=0)
    assert not store.acquire_lock("job", "b", ttl=10, now=5)
    assert store.acquire_lock("job", "a", ttl=10, now=5)  # renew
    assert store.acquire_lock("job", "b", ttl=10, now=16)
    store.release_lock("job", "b")
    assert store.acquire_lock("job", "c", ttl=10, now=16)


def test_a_claim_that_lost_its_lease_can_change_nothing(store: Store) -> None:
    now = [1000.0]
    queue = Queue(store, lease_seconds=30, max_attempts=1, clock=lambda: now[0])
    queue.put(_event("1", "a"), {})
    stale = queue.claim("host:1")  # two threads of one process: the same worker name
    assert stale is not None
    now[0] += 31  # the first thread stalled past its lease
    fresh = queue.claim("host:1")
    assert fresh is not None
    assert stale.lease != fresh.lease  # each claim has its own token
    assert queue.failed(stale, "503", retriable=True) == "lost"
    assert queue.failed(stale, "404", retriable=False) == "lost"
    assert not queue.done(stale)
    held = store.get_event(fresh.id)
    assert held is not None
    assert (held.status, held.lease, held.attempts) == ("leased", fresh.lease, 2)
    assert queue.done(fresh)
    assert queue.failed(stale, "404", retriable=False) == "lost"  # a late thread cannot bury a done event
    done = store.get_event(fresh.id)
    assert done is not None
    assert (done.status, done.last_error) == ("done", None)


def test_a_kept_lease_outlives_its_length_and_a_dropped_one_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    mine, other = Queue(Store(path), lease_seconds=0.3), Queue(Store(path), lease_seconds=0.3)
    mine.put(_event("1", "a"), {})
    event = mine.claim("a")
    assert event is not None
    with mine.keep(event):  # a helpdesk call three leases long
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert other.claim("b") is None
            time.sleep(0.05)
        assert mine.confirm(event)
    assert mine.done(event)
    mine.put(_event("2", "b"), {})
    dropped = mine.claim("a")  # claimed, then its worker froze: nobody renews it
    assert dropped is not None
    time.sleep(0.4)
    taken = other.claim("b")
    assert taken is not None
    assert taken.id == dropped.id
    assert not mine.confirm(dropped)  # checked before writing: the frozen worker writes nothing
    assert other.done(taken)


def test_a_rate_limit_deferral_comes_back_at_its_time_and_costs_no_attempt(store: Store) -> None:
    now = [0.0]
    queue = Queue(store, max_attempts=2, retry_base=1, clock=lambda: now[0])
    queue.put(_event("1", "a"), {})
    for _ in range(5):  # more deferrals than attempts allowed: none of them is a failure
        event = queue.claim("w")
        assert event is not None
        assert queue.failed(event, "429", retriable=True, retry_after=120) == "retry"
        now[0] += 119
        assert queue.claim("w") is None
        now[0] += 1.0
    event = queue.claim("w")
    assert event is not None
    assert event.attempts == 1


def test_a_skipped_decision_never_replaces_the_record_of_a_write(store: Store) -> None:
    decision = Decision(priority="high", sla="gold", group="Senior Support", tags=("tierdesk_routed",))

    def record(outcome: str) -> None:
        store.record_decision(
            "zendesk:ticket:1",
            event_id=1,
            customer_key=None,
            outcome=outcome,
            decision=decision if outcome == "applied" else None,
            segments={},
            response={"detail": outcome},
            received_at=1.0,
            decided_at=2.0,
        )

    record("skipped")  # a second claim saw our marker before the first recorded its write
    record("applied")
    record("skipped")  # ... or after
    recorded = store.get_decision("zendesk:ticket:1")
    assert recorded is not None
    assert (recorded.outcome, recorded.priority, recorded.response) == (
        "applied",
        "high",
        {"detail": "applied"},
    )


def test_database_and_inbox_files_are_private_under_umask_022(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = Store(tmp_path / "t.db")
        store.add_events([("zendesk", "d1", "zendesk:ticket:1", {}, 1.0)])  # the WAL has pages now
        inbox = Inbox(f"{store.path}.inbox")
        inbox.append("zendesk", "d2", "zendesk:ticket:2", {})
    finally:
        os.umask(old)

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    for suffix in ("", "-wal", "-shm", ".lock"):
        assert mode(tmp_path / f"t.db{suffix}") == 0o600, suffix
    assert mode(tmp_path / "t.db.inbox") == 0o700
    assert {mode(p) for p in (tmp_path / "t.db.inbox").iterdir()} == {0o600}
