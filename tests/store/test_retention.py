"""Retention: the daily `prune` job deletes old history in bounded batches and never what is still live."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from integration import reroute
from integration.cli.commands import main
from integration.core.models import Assignment, Decision, Ticket, TicketEvent
from integration.runtime import Runtime
from integration.scheduler import build
from integration.settings import Settings, SettingsError
from integration.store import Store

DAY = 86_400.0
NOW = time.time()


def _env(db: Path, **retention: str) -> dict[str, str]:
    return {"TIERDESK_DB": str(db), "TIERDESK_INSECURE_DEV": "1", "TIERDESK_LOG_LEVEL": "ERROR", **retention}


def _history(db: Path) -> dict[str, list]:
    """A store with old and new rows of every kind the prune looks at; returns what to expect."""
    runtime = Runtime.from_settings(Settings(db=str(db), insecure_dev=True))
    store, queue = runtime.store, runtime.queue
    at = [NOW]
    queue.clock = lambda: at[0]

    def event(name: str, age_days: float, end: str | None) -> int:
        at[0] = NOW - age_days * DAY
        event_id, _ = queue.put(TicketEvent("zendesk", name, name.removeprefix("t")), {})
        if end is not None:
            claimed = queue.claim("w")
            assert claimed is not None
            assert claimed.id == event_id
            if end == "done":
                assert queue.done(claimed)
            else:
                assert queue.failed(claimed, "HTTP 404", retriable=False) == "dead"
        at[0] = NOW
        return event_id

    events = {
        "old done": event("t1", 31, "done"),
        "new done": event("t2", 29, "done"),
        "old dead": event("t3", 91, "dead"),
        "dead within its retention": event("t4", 60, "dead"),
        "old pending": event("t5", 400, None),
    }
    at[0] = NOW - 400 * DAY
    assert queue.claim("w") is not None  # t5: leased long ago by a worker that never came back
    at[0] = NOW
    events["old leased"] = events.pop("old pending")

    store.upsert_tickets(
        [
            Ticket("zendesk", "100", requester_id="1", status="closed"),
            Ticket("zendesk", "101", requester_id="1", status="open"),
        ]
    )
    for key, age in (("zendesk:ticket:100", 400), ("zendesk:ticket:101", 400), ("zendesk:ticket:102", 10)):
        store.record_decision(
            key,
            event_id=None,
            customer_key="zendesk:user:1",
            outcome="applied",
            decision=Decision(priority="normal"),
            segments={},
            response=None,
            received_at=NOW - age * DAY,
            decided_at=NOW - age * DAY,
        )

    def labels(label: str, age_days: float) -> None:
        when = datetime.fromtimestamp(NOW - age_days * DAY, UTC)
        store.replace_segments([("zendesk:user:1", "tier", label, "[]")], when)

    labels("C", 800)
    labels("B", 731)
    labels("A", 10)
    store.save_model(reroute.BOOKMARK, {"after": store.last_segment_change()}, datetime.now(UTC))
    labels("B", 740)  # stamped old, but recorded after the last re-route: not handled yet

    runs = (("sync", 40, True), ("sync", 40, False), ("sweep", 1, True), ("recompute", 0.01, False))
    for job, age, finished in runs:
        run_id = store.start_job_run(job, "host:1", NOW - age * DAY)
        if finished:
            store.finish_job_run(run_id, "done", {}, 0, None, NOW - age * DAY + 5)
    store.close()
    return {"events": list(events.values())}


def _rows(db: Path) -> dict[str, list]:
    store = Store(db)
    try:
        return {
            "events": [r[0] for r in store.db.conn.execute("SELECT event_id FROM events ORDER BY id")],
            "decisions": [r[0] for r in store.db.conn.execute("SELECT ticket_key FROM decisions ORDER BY 1")],
            "changes": [
                r[0] for r in store.db.conn.execute("SELECT to_label FROM segment_changes ORDER BY id")
            ],
            "job_runs": [
                (r[0], r[1]) for r in store.db.conn.execute("SELECT job, status FROM job_runs ORDER BY id")
            ],
        }
    finally:
        store.close()


def test_prune_deletes_old_history_and_keeps_new_and_live_rows(tmp_path: Path) -> None:
    db = tmp_path / "tierdesk.db"
    _history(db)
    before = _rows(db)
    assert before["events"] == ["t1", "t2", "t3", "t4", "t5"]
    assert before["changes"] == ["C", "B", "A", "B"]

    ran = CliRunner().invoke(main, ["jobs", "--run", "prune"], env=_env(db))
    assert ran.exit_code == 0, ran.output
    counts = json.loads(ran.output.split(":", 1)[1])
    assert counts == {
        "events_done": 1,
        "events_dead": 1,
        "decisions": 1,
        "segment_changes": 2,
        "job_runs": 2,
    }
    after = _rows(db)
    # done after 30 days, dead after 90; a leased event stays however old
    assert after["events"] == ["t2", "t4", "t5"]
    # the decision of a ticket still open stays, like the new one
    assert after["decisions"] == ["zendesk:ticket:101", "zendesk:ticket:102"]
    # older than 730 days and handled by the re-route: gone; the unhandled one stays
    assert after["changes"] == ["A", "B"]
    # old runs go, finished or left "running" by a process that died; a run in progress stays
    assert after["job_runs"] == [("sweep", "done"), ("recompute", "running"), ("prune", "done")]

    again = CliRunner().invoke(main, ["jobs", "--run", "prune"], env=_env(db))
    assert '"events_done": 0' in again.output


def test_zero_keeps_forever_and_a_negative_retention_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "tierdesk.db"
    _history(db)
    forever = {
        "TIERDESK_RETAIN_EVENTS_DAYS": "0",
        "TIERDESK_RETAIN_DEAD_DAYS": "0",
        "TIERDESK_RETAIN_DECISIONS_DAYS": "0",
        "TIERDESK_RETAIN_SEGMENT_CHANGES_DAYS": "0",
    }
    before = _rows(db)
    ran = CliRunner().invoke(main, ["jobs", "--run", "prune"], env=_env(db, **forever))
    assert ran.exit_code == 0, ran.output
    assert ran.output.strip() == "prune: {}"
    after = _rows(db)
    assert {k: after[k] for k in ("events", "decisions", "changes")} == {
        k: before[k] for k in ("events", "decisions", "changes")
    }

    refused = CliRunner().invoke(
        main, ["jobs", "--run", "prune"], env=_env(db, TIERDESK_RETAIN_DECISIONS_DAYS="-1")
    )
    assert refused.exit_code != 0
    assert "TIERDESK_RETAIN_DECISIONS_DAYS=-1.0" in refused.output
    assert "0 to keep forever" in refused.output
    with pytest.raises(SettingsError, match="TIERDESK_RETAIN_EVENTS_DAYS"):
        Settings(insecure_dev=True, retain_events_days=float("nan")).check()


def test_prune_deletes_in_batches_until_nothing_old_is_left(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    stamp = datetime.fromtimestamp(NOW - 800 * DAY, UTC)
    for n in range(7):
        store.replace_segments([(f"zendesk:user:{n}", "tier", "A", "[]")], stamp)
    store.replace_segments([("zendesk:user:new", "tier", "A", "[]")], datetime.now(UTC))
    cutoff = datetime.fromtimestamp(NOW - 730 * DAY, UTC)
    deleted = store.prune_segment_changes(cutoff, store.last_segment_change(), batch=3)
    assert deleted == 7  # three batches: 3, 3, 1
    assert store.customers_changed_since(0) == ["zendesk:user:new"]
    with pytest.raises(ValueError, match="done or dead"):
        store.prune_events("pending", NOW)
    assert store.segments_for("zendesk:user:3") == {"tier": Assignment("tier", "A", ())}  # labels stay


def test_the_scheduler_runs_prune_daily(tmp_path: Path) -> None:
    runtime = Runtime.from_settings(Settings(db=str(tmp_path / "t.db"), insecure_dev=True))
    scheduler = build(runtime, blocking=False)
    job = scheduler.get_job("prune")
    assert job is not None
    start = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    first = job.trigger.get_next_fire_time(None, start)
    assert (first.hour, first.minute) == (4, 30)
    assert job.trigger.get_next_fire_time(first, first + timedelta(seconds=1)) - first == timedelta(days=1)
