"""The long-running parts a command starts: worker threads and the scheduler.

`tierdesk serve`, `worker` and `scheduler` (commands.py) and `tierdesk demo` (demo.py) start them from
here, so neither of those modules imports the other.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from apscheduler.schedulers.base import BaseScheduler

from integration import scheduler
from integration.runtime import Runtime
from integration.worker import Worker


def on_term(stop: threading.Event) -> None:
    """SIGTERM sets ``stop``: the workers finish the event in hand and end."""

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)


def start_workers(runtime: Runtime, stop: threading.Event, count: int) -> list[threading.Thread]:
    threads = []
    for i in range(count):
        worker = Worker(runtime)
        thread = threading.Thread(target=worker.run, args=(stop,), name=f"worker-{i}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def start_scheduler(runtime: Runtime) -> BaseScheduler:
    """The scheduler's jobs on a background thread of this process (`tierdesk serve`)."""
    jobs = scheduler.build(runtime, blocking=False)
    jobs.start()
    return jobs


def run_scheduler(runtime: Runtime) -> None:
    """The scheduler's jobs in this thread until SIGTERM or Ctrl-C (`tierdesk scheduler`)."""
    jobs = scheduler.build(runtime, blocking=True)
    signal.signal(signal.SIGTERM, lambda *_: jobs.shutdown(wait=False))
    with contextlib.suppress(KeyboardInterrupt):
        jobs.start()
