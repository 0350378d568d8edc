"""Freshdesk contact calls per sync: what reading contacts' tags costs against the rate budget.

    .venv/bin/python bench/freshdesk_contacts.py [--customers 1000] [--change 10]

Freshdesk's contact list has no tags, so a sync reads each contact that changed since tierdesk last held
it (GET /api/v2/contacts/{id}). The Freshdesk sandbox is seeded with --customers contacts; then three
scheduled syncs (pull, recompute, tag push) run back to back: the first (every contact read and tagged),
the next (every pushed contact is listed again and must cost no read and no write), and one after
--change contacts were edited by someone else. Counts come from the sandbox's request log. The last line
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration.runtime import Runtime  # noqa: E402
from integration.scheduler import refresh  # noqa: E402
from integration.settings import Settings  # noqa: E402
from sandbox.freshdesk import FreshdeskSandbox  # noqa: E402
from sandbox.freshdesk.seed import seed  # noqa: E402

KEY = "bench-api-key"


def contact_calls(box: FreshdeskSandbox) -> dict[str, int]:
    log = box.request_log
    return {
        "list_pages": sum(1 for m, p, _q, _s in log if m == "GET" and p == "/api/v2/contacts"),
        "contact_reads": sum(1 for m, p, _q, _s in log if m == "GET" and p.startswith("/api/v2/contacts/")),
        "contact_writes": sum(1 for m, p, _q, _s in log if m == "PUT" and p.startswith("/api/v2/contacts/")),
        "all_calls": len(log),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--change", type=int, default=10)
    args = parser.parse_args()

    box = FreshdeskSandbox(KEY, rate_limit_per_minute=10_000_000)
    url = box.start()
    summary = seed(box, customers=args.customers, seed=3)
    runtime = Runtime.from_settings(
        Settings(
            db=str(Path(tempfile.mkdtemp(prefix="tierdesk-bench-fd-")) / "fd.db"),
            freshdesk_url=url,
            freshdesk_api_key=KEY,
            insecure_dev=True,
            freshdesk_rate_limit=0,  # count calls, not the budget's pacing
        )
    )
    results: dict[str, dict[str, float]] = {}
    for name in ("first_sync", "next_sync", "sync_after_changes"):
        if name == "sync_after_changes":
            for contact_id in summary.customer_ids[: args.change]:
                requests.put(
                    f"{url}/api/v2/contacts/{contact_id}",
                    json={"job_title": "changed"},
                    auth=(KEY, "X"),
                    timeout=10,
                ).raise_for_status()
        box.clear_request_log()
        started = time.perf_counter()
        refresh(runtime)
        results[name] = {**contact_calls(box), "seconds": round(time.perf_counter() - started, 2)}
        print(f"{name}: {results[name]}")
    box.stop()
    runtime.store.close()
    print(json.dumps({"contacts": args.customers, "changed": args.change, **results}))


if __name__ == "__main__":
    main()
