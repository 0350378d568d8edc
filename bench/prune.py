"""Retention benchmark: how fast the `prune` job deletes, and how long other writers wait meanwhile.

    .venv/bin/python bench/prune.py [--events 500000] [--decisions 100000] [--changes 200000]

A store is filled with a backlog of old history (done events, decisions of solved tickets, label changes),
as the first prune after an upgrade finds it, plus recent rows that must stay. The prune job runs while
another thread keeps writing small transactions, as webhook moves and workers do; each of its writes
records how long it waited for the write lock, which is what the batch size bounds. The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration import reroute  # noqa: E402
from integration.runtime import Runtime  # noqa: E402
from integration.scheduler import prune  # noqa: E402
from integration.settings import Settings  # noqa: E402

DAY = 86_400.0


def fill(runtime: Runtime, events: int, decisions: int, changes: int, now: float) -> None:
    """Old rows to delete and 1% recent ones to keep, written with sqlite-utils in large chunks."""
    db = runtime.store.db
    old, recent = now - 400 * DAY, now - DAY
    chunk = 50_000

    def rows(count: int, make):  # noqa: ANN001, ANN202 - a local helper
        for start in range(0, count, chunk):
            yield [make(i) for i in range(start, min(count, start + chunk))]

    def event(i: int) -> dict:
        at = recent if i % 100 == 0 else old
        status = "pending" if i % 1000 == 1 else "done"
        return {
            "source": "zendesk",
            "event_id": f"inv-{i}",
            "ticket_key": f"zendesk:ticket:{i}",
            "payload": "{}",
            "status": status,
            "attempts": 1,
            "available_at": at,
            "received_at": at,
            "finished_at": at if status == "done" else None,
        }

    def decision(i: int) -> dict:
        at = recent if i % 100 == 0 else old
        return {
            "ticket_key": f"zendesk:ticket:{i}",
            "outcome": "applied",
            "decided_at": at,
            "received_at": at,
        }

    def change(i: int) -> dict:
        at = datetime.fromtimestamp(recent if i % 100 == 0 else now - 800 * DAY, UTC).isoformat()
        return {
            "customer_key": f"zendesk:user:{i}",
            "dimension": "tier",
            "from_label": "B",
            "to_label": "A",
            "reasons": "[]",
            "changed_at": at,
        }

    with runtime.store.transaction():
        for batch in rows(events, event):
            db["events"].insert_all(batch)
        for batch in rows(decisions, decision):
            db["decisions"].insert_all(batch)
        for batch in rows(changes, change):
            db["segment_changes"].insert_all(batch)
    runtime.store.save_model(
        reroute.BOOKMARK, {"after": runtime.store.last_segment_change()}, datetime.now(UTC)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=200_000)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="tierdesk-bench-prune-"))
    runtime = Runtime.from_settings(Settings(db=str(workdir / "prune.db"), insecure_dev=True))
    now = time.time()
    t = time.perf_counter()
    fill(runtime, args.events, args.decisions, args.changes, now)
    print(
        f"filled {args.events:,} events, {args.decisions:,} decisions, {args.changes:,} changes in "
        f"{time.perf_counter() - t:.1f} s"
    )

    waits: list[float] = []
    done = threading.Event()

    def writer() -> None:  # a worker's small write, again and again, while the prune runs
        other = Runtime.from_settings(runtime.settings).store
        while not done.is_set():
            t0 = time.perf_counter()
            other.take_rate_token("bench", 10**9, time.time())
            waits.append(time.perf_counter() - t0)
            time.sleep(0.002)
        other.close()

    thread = threading.Thread(target=writer)
    thread.start()
    t = time.perf_counter()
    counts = prune(runtime, now)
    took = time.perf_counter() - t
    done.set()
    thread.join()
    deleted = sum(counts.values())
    ordered = sorted(waits) or [0.0]
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    print(f"pruned {deleted:,} rows in {took:.1f} s ({deleted / took:,.0f} rows/s): {counts}")
    median, top = statistics.median(ordered) * 1000, ordered[-1] * 1000
    print(
        f"a concurrent writer made {len(waits):,} writes meanwhile: wait p50 {median:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {top:.1f} ms"
    )
    left = runtime.store.queue_counts()
    print(
        json.dumps(
            {
                "deleted": counts,
                "seconds": round(took, 2),
                "rows_per_second": round(deleted / took),
                "writer_writes": len(waits),
                "writer_wait_ms": {
                    "p50": round(statistics.median(ordered) * 1000, 2),
                    "p99": round(p99 * 1000, 2),
                    "max": round(ordered[-1] * 1000, 2),
                },
                "events_left": left,
                "decisions_left": runtime.store.count("decisions"),
            }
        )
    )


if __name__ == "__main__":
    main()
