"""Tag push benchmark: write calls against the lower bound, and zero calls when nothing changed.

    .venv/bin/python bench/sync.py [--customers 100000] [--change 0.01]

The Zendesk sandbox is seeded with --customers customers; tierdesk pulls and segments them and pushes
every segment tag (the initial push). Then --change of the customers stop being profitable (their
revenue drops to zero), tierdesk pulls what changed, recomputes and pushes again: the write calls are
compared with ceil(changed / 100), update_many's batch size, and the job-status polls are counted apart.
A third push with nothing changed must send nothing. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration import segment_service, tagsync  # noqa: E402
from integration.pull import pull  # noqa: E402
from integration.runtime import Runtime  # noqa: E402
from integration.settings import Settings  # noqa: E402
from sandbox.zendesk import ZendeskSandbox  # noqa: E402
from sandbox.zendesk.seed import seed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--change", type=float, default=0.01)
    args = parser.parse_args()

    box = ZendeskSandbox(email="bench@example.com", token="bench-token")  # noqa: S106
    t = time.perf_counter()
    summary = seed(box, customers=args.customers, seed=5)
    url = box.start()
    print(f"seeded {args.customers:,} customers in {time.perf_counter() - t:.1f} s")
    workdir = Path(tempfile.mkdtemp(prefix="tierdesk-bench-sync-"))
    runtime = Runtime.from_settings(
        Settings(
            db=str(workdir / "sync.db"),
            zendesk_url=url,
            zendesk_email=box.email,
            zendesk_token=box.token,
            insecure_dev=True,
            zendesk_rate_limit=0,  # measure calls, not the budget's pacing
        )
    )
    zendesk = runtime.connectors["zendesk"]

    t = time.perf_counter()
    pull(runtime.store, zendesk)
    segment_service.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    print(f"pulled and segmented in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    initial = tagsync.push(runtime.store, zendesk, runtime.mapping)
    initial_seconds = time.perf_counter() - t
    initial_changed = sum(initial.planned.values())
    print(
        f"initial push: {initial_changed:,} records, {initial.write_calls} write calls "
        f"(bound {sum(math.ceil(n / 100) for n in initial.planned.values())}), "
        f"{initial.job_polls} job polls, {initial_seconds:.1f} s"
    )

    # 1% of customers become unprofitable in the helpdesk's data
    rng = random.Random(9)
    chosen = rng.sample(summary.customer_ids, int(args.customers * args.change))
    session = requests.Session()
    session.auth = (f"{box.email}/token", box.token)
    for i in range(0, len(chosen), 100):
        users = [
            {"id": u, "user_fields": {"revenue_12m": 0, "service_cost_12m": 99_999}}
            for u in chosen[i : i + 100]
        ]
        session.put(f"{url}/api/v2/users/update_many", json={"users": users}, timeout=30).raise_for_status()
    time.sleep(0.5)  # let the sandbox's jobs finish

    t = time.perf_counter()
    pull(runtime.store, zendesk, streams=("users",))
    report = segment_service.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    again = tagsync.push(runtime.store, zendesk, runtime.mapping)
    seconds = time.perf_counter() - t
    changed = sum(again.planned.values())
    bound = sum(math.ceil(n / 100) for n in again.planned.values())
    print(
        f"re-sync after {len(chosen):,} customers changed data: {report.changes:,} label changes, "
        f"{changed:,} records with tag changes, {again.write_calls} write calls (bound {bound}), "
        f"{again.job_polls} job polls, {seconds:.1f} s (pull + recompute + push)"
    )
    noop = tagsync.push(runtime.store, zendesk, runtime.mapping)
    print(f"push with nothing changed: {noop.write_calls} write calls")
    box.stop()
    print(
        json.dumps(
            {
                "customers": args.customers,
                "changed": changed,
                "write_calls": again.write_calls,
                "bound": bound,
                "job_polls": again.job_polls,
                "noop_write_calls": noop.write_calls,
                "seconds": round(seconds, 2),
                "initial_write_calls": initial.write_calls,
                "initial_seconds": round(initial_seconds, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
