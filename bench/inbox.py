"""Inbox drain benchmark: how fast a backlog of acknowledged deliveries moves into the queue.

    .venv/bin/python bench/inbox.py [--lines 160000] [--writers 2]

--writers processes (as gunicorn's web workers) append --lines deliveries to their inbox files through
Inbox.append, with the payload the webhook view writes, and stay alive (their newest file still open, as a
running web tier's is). Then a fresh process drains the backlog into the events table the way a worker
does, batch after batch, and reports the time, the rate, the bytes it read from the inbox files and its
peak memory above what it held before the drain. A drain that re-reads the whole backlog for every batch
reads (lines / batch) times the backlog; one that reads only what each batch needs reads it about once.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration import inbox as inbox_module  # noqa: E402
from integration.inbox import Inbox  # noqa: E402
from integration.store import Store  # noqa: E402


def _write(directory: str, index: int, count: int, ready: mp.Event, done: mp.Event) -> None:
    """One web process: append `count` deliveries, then hold the inbox open until the drain is over."""
    inbox = Inbox(directory)
    for n in range(count):
        ticket = 1_000_000 + index * 10_000_000 + n
        payload = {
            "ticket_id": str(ticket),
            "requester_id": str(400_000 + n % 5000),
            "organization_id": str(9000 + n % 300),
            "tags": ["billing", "web_form"],
        }
        inbox.append("zendesk", f"bench-{index}-{n}", f"zendesk:ticket:{ticket}", payload)
    ready.set()
    done.wait(600)
    inbox.close()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _drain(db: str, out: mp.Queue) -> None:
    """A fresh worker process: move the whole backlog, batch by batch, counting the bytes read."""
    store = Store(db)
    inbox = Inbox(f"{db}.inbox")
    read = [0]
    pread = os.pread

    def counting(fd: int, n: int, offset: int) -> bytes:
        data = pread(fd, n, offset)
        read[0] += len(data)
        return data

    inbox_module.os.pread = counting  # type: ignore[attr-defined]  # the inbox module's own `os`
    before = _rss_mb()
    batches = moved = 0
    started = time.perf_counter()
    while True:
        drained = inbox.drain(store, settle=0)
        batches += 1
        moved += len(drained.moved)
        if not drained.more:
            break
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    out.put({"moved": moved, "batches": batches, "seconds": seconds, "read": read[0], "peak": peak - before})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=160_000)
    parser.add_argument("--writers", type=int, default=2)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")  # the drain starts from a clean process, as a worker does
    with tempfile.TemporaryDirectory(prefix="tierdesk-bench-inbox-") as tmp:
        db = str(Path(tmp) / "inbox.db")
        Store(db)
        done = ctx.Event()
        readies = [ctx.Event() for _ in range(args.writers)]
        share = [args.lines // args.writers + (i < args.lines % args.writers) for i in range(args.writers)]
        writers = [
            ctx.Process(target=_write, args=(f"{db}.inbox", i, share[i], readies[i], done))
            for i in range(args.writers)
        ]
        started = time.perf_counter()
        for w in writers:
            w.start()
        for ready in readies:
            ready.wait(600)
        write_seconds = time.perf_counter() - started
        files = list(Path(f"{db}.inbox").glob("*.jsonl"))
        backlog = sum(f.stat().st_size for f in files)
        out: mp.Queue = ctx.Queue()
        drainer = ctx.Process(target=_drain, args=(db, out))
        drainer.start()
        result = out.get(timeout=1800)
        drainer.join()
        done.set()
        for w in writers:
            w.join()
    print(
        f"wrote {args.lines} deliveries from {args.writers} processes in {write_seconds:.1f} s "
        f"({len(files)} files, {backlog / 2**20:.1f} MB)"
    )
    print(
        f"drained {result['moved']} in {result['batches']} batches in {result['seconds']:.2f} s "
        f"({result['moved'] / result['seconds']:.0f}/s), read {result['read'] / 2**20:.1f} MB from the "
        f"inbox, peak memory +{result['peak']:.1f} MB"
    )
    print(
        json.dumps(
            {
                "lines": args.lines,
                "moved": result["moved"],
                "batches": result["batches"],
                "backlog_mb": round(backlog / 2**20, 1),
                "drain_s": round(result["seconds"], 3),
                "moved_per_s": round(result["moved"] / result["seconds"], 1),
                "read_mb": round(result["read"] / 2**20, 1),
                "peak_mb": round(result["peak"], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
