"""APScheduler jobs: keep segments and the helpdesk's segment tags fresh, and keep the queue honest.

Jobs (intervals and cron from the environment):
- `sync` every TIERDESK_SYNC_INTERVAL seconds: incremental pull, recompute, push changed tags onto
  users and organizations, re-route open tickets of customers who changed segment (TIERDESK_REROUTE);
- `recompute` on TIERDESK_RECOMPUTE_CRON (nightly): the same after a full pull, so deletions and
  drifted cursors cannot leave stale data behind;
- `sweep` every TIERDESK_SWEEP_INTERVAL seconds: hands expired leases back to the queue and raises a
  dead-letter alert (log line `queue.dead_letters`, metric tierdesk_queue_events{status="dead"});
- `refit` when a published mapping version has no segments computed for it yet: looked for every
  TIERDESK_REFIT_INTERVAL seconds (one indexed read), run and recorded only when needed. Publishing in
  the admin only stores the version, so the request stays fast; this job does the recompute.

Several scheduler processes may run (a second machine, a restart that overlaps); a lock in the store
with an expiry makes sure only one runs a given job at a time. Every run is recorded for `tierdesk jobs`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from integration import reroute, sync, tagsync
from integration.runtime import Runtime
from integration.store import Store

log = logging.getLogger("tierdesk.scheduler")


def _api_calls(runtime: Runtime) -> int:
    return sum(getattr(getattr(c, "http", None), "calls", 0) for c in runtime.connectors.values())


def refresh(runtime: Runtime, *, full: bool = False) -> dict[str, Any]:
    """Pull, recompute, push tag changes and re-route: the body of the `sync` and `recompute` jobs."""
    runtime.refresh_mapping()  # an admin may have published a mapping version since the last run
    counts: dict[str, Any] = {}
    for connector in runtime.connectors.values():
        counts[f"pulled_{connector.name}"] = sync.pull(runtime.store, connector, full=full)
    bookmark = runtime.store.last_segment_change()
    report = sync.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    counts["customers"] = report.customers
    counts["segment_changes"] = report.changes
    for connector in runtime.connectors.values():
        pushed = tagsync.push(runtime.store, connector, runtime.mapping)
        counts[f"tags_{connector.name}"] = {
            "planned": pushed.planned,
            "write_calls": pushed.write_calls,
            "job_polls": pushed.job_polls,
            "failed": pushed.failed,
        }
        rerouted = reroute.reroute(
            runtime.store, connector, runtime.mapping, bookmark, runtime.settings.reroute
        )
        counts[f"rerouted_{connector.name}"] = rerouted.updated
        if pushed.errors or rerouted.errors:
            counts[f"errors_{connector.name}"] = (pushed.errors + rerouted.errors)[:20]
    return counts


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


def refit_pending(store: Store) -> bool:
    """True while the stored segments were fitted for another mapping than the active version."""
    fitted = store.model_digest(sync.MODEL)
    return fitted is None or fitted[0] != store.active_mapping_digest()


def _reads_active_version(runtime: Runtime) -> bool:
    """Swap in the active version; False when this process cannot read it (refresh_mapping logs why):
    fitting the old mapping instead would leave the refit pending and run it again and again."""
    runtime.refresh_mapping()
    return runtime.mapping_digest == runtime.store.active_mapping_digest()


def refit(runtime: Runtime) -> dict[str, Any]:
    """Recompute everyone's segments for the active mapping version (after a publish or a rollback)."""
    if not _reads_active_version(runtime):
        raise RuntimeError("this process cannot read the active mapping version (see mapping.refresh_failed)")
    if not refit_pending(runtime.store):  # another process, or a sync, did it meanwhile
        return {"refit": "already current", "digest": runtime.mapping_digest}
    report = sync.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    return {
        "digest": runtime.mapping_digest,
        "customers": report.customers,
        "segment_changes": report.changes,
    }


def refit_if_pending(runtime: Runtime) -> dict[str, Any] | None:
    """The scheduler's look every TIERDESK_REFIT_INTERVAL s: a read; the job runs only when needed."""
    if not refit_pending(runtime.store) or not _reads_active_version(runtime):
        return None
    return run_job(runtime, "refit")


JOBS: dict[str, Callable[[Runtime], dict[str, Any]]] = {
    "sync": refresh,
    "recompute": lambda runtime: refresh(runtime, full=True),
    "sweep": sweep,
    "refit": refit,
}
LOCKS = {"refit": "sync"}  # a refit rewrites every customer's segments, as a sync does: one at a time


def run_job(runtime: Runtime, job: str, owner: str | None = None) -> dict[str, Any] | None:
    """Run one job now if no other process holds its lock; records the run. None when skipped."""
    owner = owner or f"{socket.gethostname()}:{os.getpid()}"
    ttl = max(600.0, runtime.settings.sync_interval * 2)
    lock = f"job:{LOCKS.get(job, job)}"
    if not runtime.store.acquire_lock(lock, owner, ttl):
        log.info(f"scheduler.{job}.skipped", extra={"reason": "another process holds the lock"})
        return None
    calls_before = _api_calls(runtime)
    run_id = runtime.store.start_job_run(job, owner, time.time())
    status, error, counts = "done", None, {}
    try:
        counts = JOBS[job](runtime)
    except Exception as e:
        status, error = "failed", f"{e.__class__.__name__}: {e}"
        log.exception(f"scheduler.{job}.failed")
    finally:
        runtime.store.finish_job_run(
            run_id, status, counts, _api_calls(runtime) - calls_before, error, time.time()
        )
        runtime.store.release_lock(lock, owner)
    log.info(f"scheduler.{job}.{status}", extra={"counts": counts})
    return counts


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
        refit_if_pending, "interval", args=[runtime], seconds=settings.refit_interval, id="refit", **common
    )
    return scheduler
