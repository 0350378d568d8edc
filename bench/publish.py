"""Publish benchmark: how long an admin waits for POST /api/mapping/versions on a real population.

    .venv/bin/python bench/publish.py [--customers 20000] [--rounds 3]
    .venv/bin/python bench/publish.py --code /path/to/an/older/checkout   # the same, on other code

The Zendesk sandbox is seeded with --customers customers; tierdesk pulls and segments them, then serves
its admin API over real HTTP on loopback. Each round publishes a mapping that moves the tier A cut-off
(alternating 7 -> 6 -> 7, so every publish is a new version) and times the request from send to answer,
group check against the helpdesk included. Then it asks whether the stored segments were already
recomputed for the new version when the answer came (the old publish did it inside the request), and
times the refit job that recomputes them when publishing no longer does. The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--code", default=str(Path(__file__).resolve().parent.parent))
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.code).resolve()))

    import requests
    from werkzeug.serving import WSGIRequestHandler, make_server

    from integration import scheduler
    from integration.runtime import Runtime
    from integration.settings import Settings
    from integration.web.app import create_app
    from sandbox.zendesk import ZendeskSandbox
    from sandbox.zendesk.seed import seed

    try:
        from integration import segment_service
        from integration.pull import pull
    except ImportError:  # --code: a checkout from before sync.py was split into pull and segment_service
        from integration import sync as segment_service

        pull = segment_service.pull

    box = ZendeskSandbox(email="bench@example.com", token="bench-token")  # noqa: S106
    t = time.perf_counter()
    seed(box, customers=args.customers, seed=5)
    url = box.start()
    print(f"seeded {args.customers:,} customers in {time.perf_counter() - t:.1f} s")
    workdir = Path(tempfile.mkdtemp(prefix="tierdesk-bench-publish-"))
    token = "bench-admin-token"  # noqa: S105
    runtime = Runtime.from_settings(
        Settings(
            db=str(workdir / "publish.db"),
            zendesk_url=url,
            zendesk_email=box.email,
            zendesk_token=box.token,
            insecure_dev=True,
            zendesk_rate_limit=0,
            admin_token=token,
            log_level="WARNING",
        )
    )
    t = time.perf_counter()
    pull(runtime.store, runtime.connectors["zendesk"])
    recompute_t = time.perf_counter()
    segment_service.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    recompute_seconds = time.perf_counter() - recompute_t
    customers = runtime.store.count("customers")
    print(f"pulled and segmented {customers:,} customers in {time.perf_counter() - t:.1f} s")

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: object, **kwargs: object) -> None:
            pass

    server = make_server("127.0.0.1", 0, create_app(runtime=runtime), threaded=True, request_handler=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{server.server_port}/api"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    original = session.get(f"{api}/mapping", timeout=30).json()["text"]
    drafts = [original.replace("A: 7", "A: 6", 1), original]
    has_refit_job = hasattr(scheduler, "refit_if_pending")

    publish_seconds: list[float] = []
    refit_seconds: list[float] = []
    recomputed_in_request: list[bool] = []
    for n in range(args.rounds):
        text = drafts[n % 2]
        t = time.perf_counter()
        response = session.post(
            f"{api}/mapping/versions", json={"text": text, "note": f"bench {n}"}, timeout=600
        )
        publish_seconds.append(time.perf_counter() - t)
        response.raise_for_status()
        digest = response.json()["digest"]
        fitted = runtime.store.load_model(segment_service.MODEL) or {}
        recomputed_in_request.append(fitted.get("digest") == digest)
        if has_refit_job:
            t = time.perf_counter()
            ran = scheduler.refit_if_pending(runtime)
            refit_seconds.append(time.perf_counter() - t)
            assert ran is not None, "the refit job found nothing to do"
        print(
            f"round {n + 1}: publish answered in {publish_seconds[-1]:.3f} s"
            + (
                f", refit job {refit_seconds[-1]:.2f} s"
                if refit_seconds
                else ", no refit job (recomputed inline)"
            )
        )
    server.shutdown()
    box.stop()
    runtime.store.close()
    print(
        json.dumps(
            {
                "code": str(Path(args.code).resolve()),
                "customers": customers,
                "rounds": args.rounds,
                "publish_median_s": round(statistics.median(publish_seconds), 3),
                "publish_max_s": round(max(publish_seconds), 3),
                "recomputed_in_request": all(recomputed_in_request),
                "refit_job_median_s": round(statistics.median(refit_seconds), 2) if refit_seconds else None,
                "recompute_s": round(recompute_seconds, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
