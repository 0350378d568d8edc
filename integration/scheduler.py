"""APScheduler jobs: keep segments and the helpdesk's segment tags fresh, and keep the queue honest.

Jobs (intervals and cron from the environment):
- `sync` every TIERDESK_SYNC_INTERVAL seconds: one refresh cycle (refresh.py, the same `tierdesk sync`
  runs): incremental pull, recompute, push changed tags onto users and organizations, re-route open
  tickets of customers who changed segment (TIERDESK_REROUTE); a source that fails to pull is reported
  and the others go on, and the run is recorded as failed with what it did;
- `recompute` on TIERDESK_RECOMPUTE_CRON (nightly): the same after a full pull, so deletions and
  drifted cursors cannot leave stale data behind;
- `sweep` every TIERDESK_SWEEP_INTERVAL seconds: hands expired leases back to the queue and raises a
  dead-letter alert (log line `queue.dead_letters`, metric tierdesk_queue_events{status="dead"});
- `prune` on TIERDESK_PRUNE_CRON (daily): deletes what is older than the TIERDESK_RETAIN_* settings.
- `refit` when a published mapping version has no segments computed for it yet: looked for every
  TIERDESK_REFIT_INTERVAL seconds (one indexed read), run and recorded only when needed. Publishing in
  the admin only stores the version, so the request stays fast; this job does the recompute.

Several scheduler processes may run (a second machine, a restart that overlaps); a lock in the store
with an expiry makes sure only one runs a given job at a time. Jobs that must not overlap share a lock
(`sync`, `recompute` and `refit` all recompute segments: SHARED_LOCKS); any other job locks by its own
name. Each run takes the lock under an owner of its own (two jobs of one process exclude each other
too) and renews it every third of LOCK_TTL while it runs, so a run longer than the TTL keeps it, and
a killed scheduler's lock frees itself within LOCK_TTL. Every run is recorded for `tierdesk jobs`;
`tierdesk sync` takes the same lock and is recorded the same way (run_locked).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from integration import refresh as cycle
from integration import reroute, segment_service
from integration.runtime import Runtime
from integration.store import Store

log = logging.getLogger("tierdesk.scheduler")

LOCK_TTL = 120.0  # seconds a job's lock outlives a holder that stopped renewing it (killed, frozen)

# Jobs that must never run at the same time share a lock name; the others lock by their own name.
# a refit rewrites every customer's segments, as a sync does: one at a time
SHARED_LOCKS: dict[str, str] = {"sync": "refresh", "recompute": "refresh", "refit": "refresh"}


def lock_name(job: str) -> str:
    return f"job:{SHARED_LOCKS.get(job, job)}"


def _api_calls(runtime: Runtime) -> int:
    return sum(c.http.calls for c in runtime.connectors.values() if c.http is not None)


class JobIncomplete(Exception):
    """A run that did its work except for some part (a source that failed to pull; the others went on):
    recorded as failed, with the error and with the counts of what it did."""

    def __init__(self, error: str, counts: dict[str, Any]) -> None:
        super().__init__(error)
        self.counts = counts


def job_counts(report: cycle.RefreshReport) -> dict[str, Any]:
    """A refresh cycle's counts for its job record; JobIncomplete when part of the cycle failed."""
    counts = report.counts()
    if report.failures:
        raise JobIncomplete("; ".join(report.failures), counts)
    return counts


def refresh(runtime: Runtime, *, full: bool = False) -> dict[str, Any]:
    """The body of the `sync` and `recompute` jobs: one refresh cycle (refresh.py), as `tierdesk sync`
    runs it. A failing source does not stop the others; the cycle's end raises JobIncomplete then."""
    return job_counts(cycle.run(runtime, full=full))


def sweep(runtime: Runtime) -> dict[str, Any]:
    now = time.time()
    released = runtime.store.sweep_leases(now)
    counts = runtime.store.queue_counts()
    if counts.get("dead"):
        log.warning(
            "queue.dead_letters",
            extra={"dead": counts["dead"], "hint": "tierdesk queue; tierdesk queue retry --dead"},
        )
    return {"released_leases": released, "dead": counts.get("dead", 0)}


def prune(runtime: Runtime, now: float | None = None) -> dict[str, Any]:
    """Delete history older than the retention settings, in bounded batches (docs/operations.md).

    Never a pending or leased event; dead events only past their own, longer retention; decisions of
    open tickets stay; label changes not yet re-routed stay."""
    now = time.time() if now is None else now
    store, keep = runtime.store, runtime.settings.retention()

    def before(name: str) -> float | None:
        days = keep[name]
        return now - days * 86_400 if days > 0 else None  # 0: keep forever

    counts: dict[str, Any] = {}
    if (cutoff := before("retain_events_days")) is not None:
        counts["events_done"] = store.prune_events("done", cutoff)
        counts["job_runs"] = store.prune_job_runs(cutoff)
    if (cutoff := before("retain_dead_days")) is not None:
        counts["events_dead"] = store.prune_events("dead", cutoff)
    if (cutoff := before("retain_decisions_days")) is not None:
        counts["decisions"] = store.prune_decisions(cutoff)
    if (cutoff := before("retain_segment_changes_days")) is not None:
        saved = store.load_model(reroute.BOOKMARK)
        handled = int(saved["after"]) if saved else store.last_segment_change()
        counts["segment_changes"] = store.prune_segment_changes(datetime.fromtimestamp(cutoff, UTC), handled)
    return counts


def _reads_active_version(runtime: Runtime) -> bool:
    """Swap in the active version; False when this process cannot read it (refresh_mapping logs why):
    fitting the old mapping instead would leave the refit pending and run it again and again."""
    runtime.refresh_mapping()
    return runtime.mapping_digest == runtime.store.active_mapping_digest()


def refit(runtime: Runtime) -> dict[str, Any]:
    """Recompute everyone's segments for the active mapping version (after a publish or a rollback)."""
    if not _reads_active_version(runtime):
        raise RuntimeError("this process cannot read the active mapping version (see mapping.refresh_failed)")
    if not segment_service.refit_pending(runtime.store):  # another process, or a sync, did it meanwhile
        return {"refit": "already current", "digest": runtime.mapping_digest}
    report = segment_service.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    return {
        "digest": runtime.mapping_digest,
        "customers": report.customers,
        "segment_changes": report.changes,
    }


def refit_if_pending(runtime: Runtime) -> dict[str, Any] | None:
    """The scheduler's look every TIERDESK_REFIT_INTERVAL s: a read; the job runs only when needed."""
    if not segment_service.refit_pending(runtime.store) or not _reads_active_version(runtime):
        return None
    return run_job(runtime, "refit")


JOBS: dict[str, Callable[[Runtime], dict[str, Any]]] = {
    "sync": refresh,
    "recompute": lambda runtime: refresh(runtime, full=True),
    "sweep": sweep,
    "prune": prune,
    "refit": refit,
}


@contextmanager
def _renewed(store: Store, name: str, holder: str, ttl: float) -> Iterator[threading.Event]:
    """Renew a held lock every third of its TTL until the block ends; the event is set if it was lost
    (this process stalled past the TTL and another took it)."""
    stop, lost = threading.Event(), threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            try:
                kept = store.acquire_lock(name, holder, ttl)
            except sqlite3.Error:
                log.exception("scheduler.lock_renewal_failed", extra={"lock": name})
                continue
            if not kept:
                lost.set()
                log.warning("scheduler.lock_lost", extra={"lock": name, "holder": holder})
                return

    thread = threading.Thread(target=renew, name=f"renew-{name}", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True)
class JobRun:
    status: str  # done | failed
    counts: dict[str, Any]
    error: str | None = None


def run_locked(
    runtime: Runtime,
    job: str,
    body: Callable[[Runtime], dict[str, Any]],
    owner: str | None = None,
    ttl: float = LOCK_TTL,
) -> JobRun | None:
    """Run ``body`` as one run of ``job`` unless the job's lock is held (by any process, this one
    included): the lock is renewed while it runs, and the run is recorded. None when skipped.

    The scheduler runs its jobs through here, and `tierdesk sync` its refresh cycle, so the two never
    overlap and both show in `tierdesk jobs`."""
    owner = owner or f"{socket.gethostname()}:{os.getpid()}"
    holder = f"{owner}#{secrets.token_hex(4)}"  # this run's own: a lock is never re-entered
    lock = lock_name(job)
    if not runtime.store.acquire_lock(lock, holder, ttl):
        log.info(f"scheduler.{job}.skipped", extra={"reason": f"{lock} is held by another run"})
        return None
    calls_before = _api_calls(runtime)
    run_id = runtime.store.start_job_run(job, owner, time.time())
    status, error, counts = "done", None, {}
    try:
        with _renewed(runtime.store, lock, holder, ttl):
            counts = body(runtime)
    except JobIncomplete as e:  # the failing part logged itself; the rest of the work stands
        status, error, counts = "failed", str(e), e.counts
    except Exception as e:
        status, error = "failed", f"{e.__class__.__name__}: {e}"
        log.exception(f"scheduler.{job}.failed")
    finally:
        runtime.store.finish_job_run(
            run_id, status, counts, _api_calls(runtime) - calls_before, error, time.time()
        )
        runtime.store.release_lock(lock, holder)
    log.info(f"scheduler.{job}.{status}", extra={"counts": counts, **({"error": error} if error else {})})
    return JobRun(status, counts, error)


def run_job(
    runtime: Runtime, job: str, owner: str | None = None, ttl: float = LOCK_TTL
) -> dict[str, Any] | None:
    """Run one job now unless its lock is held (by any process, this one included); records the run.
    None when skipped."""
    run = run_locked(runtime, job, JOBS[job], owner, ttl)
    return None if run is None else run.counts


def build(runtime: Runtime, *, blocking: bool) -> BaseScheduler:
    settings = runtime.settings
    scheduler: BaseScheduler = BlockingScheduler() if blocking else BackgroundScheduler()
    common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 300}
    scheduler.add_job(
        run_job,
        "interval",
        args=[runtime, "sync"],
        seconds=settings.sync_interval,
        id="sync",
        next_run_time=datetime.now(UTC),  # once at start, then on the interval
        **common,
    )
    scheduler.add_job(
        run_job,
        CronTrigger.from_crontab(settings.recompute_cron, timezone=UTC),
        args=[runtime, "recompute"],
        id="recompute",
        **common,
    )
    scheduler.add_job(
        run_job, "interval", args=[runtime, "sweep"], seconds=settings.sweep_interval, id="sweep", **common
    )
    scheduler.add_job(
        run_job,
        CronTrigger.from_crontab(settings.prune_cron, timezone=UTC),
        args=[runtime, "prune"],
        id="prune",
        **common,
    )
    scheduler.add_job(
        refit_if_pending, "interval", args=[runtime], seconds=settings.refit_interval, id="refit", **common
    )
    return scheduler
