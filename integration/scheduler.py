"""APScheduler jobs around sync.py: pull what changed and recompute segments on an interval.

Several scheduler processes may run (a second machine, a restarted one); a lock in the store with an
expiry makes sure only one of them runs a job at a time.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from integration import sync
from integration.runtime import Runtime

log = logging.getLogger("tierdesk.scheduler")


def run_sync(runtime: Runtime, owner: str | None = None) -> bool:
    """One incremental sync + recompute, if no other process holds the job lock; True if it ran."""
    owner = owner or f"{socket.gethostname()}:{os.getpid()}"
    ttl = max(600.0, runtime.settings.sync_interval * 2)
    if not runtime.store.acquire_lock("job:sync", owner, ttl):
        log.info("scheduler.sync.skipped", extra={"reason": "another process holds the lock"})
        return False
    started = time.monotonic()
    try:
        counts = {}
        for connector in runtime.connectors.values():
            counts[connector.name] = sync.pull(runtime.store, connector)
        report = sync.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
        log.info(
            "scheduler.sync.done",
            extra={
                "pulled": counts,
                "customers": report.customers,
                "changes": report.changes,
                "seconds": round(time.monotonic() - started, 2),
            },
        )
    except Exception:
        log.exception("scheduler.sync.failed")
    finally:
        runtime.store.release_lock("job:sync", owner)
    return True


def build(runtime: Runtime, *, blocking: bool) -> BaseScheduler:
    scheduler: BaseScheduler = BlockingScheduler() if blocking else BackgroundScheduler()
    scheduler.add_job(
        run_sync,
        "interval",
        args=[runtime],
        seconds=runtime.settings.sync_interval,
        id="sync",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),  # sync once at start, then on the interval
    )
    return scheduler
