"""Webhook pipeline benchmark: ingest rate and ack latency against a bare endpoint, and time to routed.

    .venv/bin/python bench/webhooks.py [--seconds 5] [--rounds 3] [--routed-seconds 60] [--rate 20]

1. Ingest: gunicorn (2 gthread workers x 4 threads) serves tierdesk on loopback; a load generator
   (2 processes x 8 keep-alive connections) sends signed Zendesk webhooks, each a new invocation, for
   --seconds. The same generator and gunicorn settings then hit a bare Flask endpoint that answers 204.
   Both servers stay up and the two take turns for --rounds rounds; the ratio is the median of the
   rounds' ratios (the machine is shared; absolute numbers drift, alternating cancels most of it).
   Then the backlog the web processes wrote to their inboxes is moved into the queue the way a worker
   does, and timed (moved/s).
2. Routed: the Zendesk sandbox opens --rate tickets a second for --routed-seconds; its trigger fires
   a signed webhook to tierdesk (gunicorn) and a separate `tierdesk worker` process routes them. Time to
   routed = from the sandbox sending the webhook to tierdesk holding Zendesk's answer to its update.
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.zendesk import ZendeskConnector  # noqa: E402
from integration.inbox import Inbox  # noqa: E402
from integration.store import Store  # noqa: E402
from sandbox.zendesk import ZendeskSandbox  # noqa: E402
from sandbox.zendesk.seed import seed  # noqa: E402

BIN = Path(sys.executable).parent
SECRET = "bench-secret-not-real"  # noqa: S105 - a fake secret for loopback only
GUNICORN = [
    *("--config", str(ROOT / "gunicorn.conf.py")),
    *("--workers", "2", "--worker-class", "gthread", "--threads", "4", "--log-level", "warning"),
]
PROCESSES, CONNECTIONS = 2, 8


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def _gunicorn(app: str, port: int, env: dict[str, str], extra: list[str] | None = None) -> subprocess.Popen:
    args = [str(BIN / "gunicorn"), *GUNICORN, *(extra or []), "--bind", f"127.0.0.1:{port}", app]
    return subprocess.Popen(args, env=env, start_new_session=True)  # noqa: S603


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _signed(body: bytes) -> dict[str, str]:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(SECRET.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "x-zendesk-webhook-signature": base64.b64encode(digest).decode(),
        "x-zendesk-webhook-signature-timestamp": stamp,
    }


def _load(args: tuple[int, int, float, int]) -> tuple[int, int, list[float]]:
    """One generator process: CONNECTIONS keep-alive connections in threads, until the deadline."""
    import threading

    port, index, until, start_id = args
    latencies: list[float] = []
    counts = {"ok": 0, "bad": 0}
    lock = threading.Lock()

    def run(conn_index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = 0
        own: list[float] = []
        ok = bad = 0
        while time.time() < until:
            n += 1
            ticket = start_id + (index * CONNECTIONS + conn_index) * 10_000_000 + n
            body = json.dumps({"ticket": {"id": str(ticket), "requester_id": "1"}}).encode()
            headers = {**_signed(body), "x-zendesk-webhook-invocation-id": f"bench-{start_id}-{ticket}"}
            started = time.perf_counter()
            try:
                conn.request("POST", "/webhooks/zendesk", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            own.append((time.perf_counter() - started) * 1000)
            if response.status in (202, 204):
                ok += 1
            else:
                bad += 1
        with lock:
            latencies.extend(own)
            counts["ok"] += ok
            counts["bad"] += bad

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts["ok"], counts["bad"], latencies


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def measure(port: int, seconds: float, start_id: int) -> dict[str, float]:
    until = time.time() + seconds
    with mp.get_context("fork").Pool(PROCESSES) as pool:
        results = pool.map(_load, [(port, i, until, start_id) for i in range(PROCESSES)])
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    latencies = [x for r in results for x in r[2]]
    return {
        "per_s": ok / seconds,
        "accepted": ok,
        "errors": bad,
        "p50_ms": _percentile(latencies, 50),
        "p99_ms": _percentile(latencies, 99),
    }


def ingest(seconds: float, rounds: int, workdir: Path, sandbox_url: str) -> tuple[dict, dict, float]:
    env = {
        **os.environ,
        "TIERDESK_DB": str(workdir / "ingest.db"),
        "TIERDESK_ZENDESK_URL": sandbox_url,
        "TIERDESK_ZENDESK_EMAIL": "bench@example.com",
        "TIERDESK_ZENDESK_TOKEN": "bench-token",
        "TIERDESK_ZENDESK_WEBHOOK_SECRET": SECRET,
        "TIERDESK_LOG_LEVEL": "WARNING",
    }
    ours_port, bare_port = _port(), _port()
    ours_proc = _gunicorn("integration.web.app:create_app()", ours_port, env)
    bare_proc = _gunicorn("bare_app:app", bare_port, env, ["--pythonpath", str(ROOT / "bench")])
    ours: list[dict] = []
    bare: list[dict] = []
    try:
        for port in (ours_port, bare_port):
            _wait_http(f"http://127.0.0.1:{port}/healthz")
        warm = measure(ours_port, 1.0, 1)["accepted"]
        measure(bare_port, 1.0, 1)
        for n in range(rounds):
            ours.append(measure(ours_port, seconds, 100 + n))
            bare.append(measure(bare_port, seconds, 100 + n))
    finally:
        _stop(ours_proc)
        _stop(bare_proc)
    store = Store(workdir / "ingest.db")
    inbox = Inbox(f"{store.path}.inbox")
    started = time.perf_counter()
    moved = 0
    while True:  # what a worker does with the backlog, in batches of up to MOVE_BATCH lines
        drained = inbox.drain(store, settle=0)
        moved += len(drained.moved)
        if not drained.more:
            break
    move_seconds = time.perf_counter() - started
    accepted = warm + sum(r["accepted"] for r in ours)
    summary = {
        "per_s": statistics.median(r["per_s"] for r in ours),
        "errors": sum(r["errors"] for r in ours),
        "p50_ms": statistics.median(r["p50_ms"] for r in ours),
        "p99_ms": statistics.median(r["p99_ms"] for r in ours),
        "accepted": accepted,
        "moved": moved,
        "moved_per_s": moved / move_seconds if move_seconds else float("nan"),
        "rounds": [round(r["per_s"]) for r in ours],
    }
    baseline = {
        "per_s": statistics.median(r["per_s"] for r in bare),
        "errors": sum(r["errors"] for r in bare),
        "p50_ms": statistics.median(r["p50_ms"] for r in bare),
        "p99_ms": statistics.median(r["p99_ms"] for r in bare),
        "rounds": [round(r["per_s"]) for r in bare],
    }
    ratio = statistics.median(o["per_s"] / b["per_s"] for o, b in zip(ours, bare, strict=True))
    return summary, baseline, ratio


def routed(seconds: float, rate: float, workdir: Path) -> dict[str, float]:
    box = ZendeskSandbox(email="bench@example.com", token="bench-token")  # noqa: S106
    summary = seed(box, customers=1000, seed=11)
    url = box.start()
    port = _port()
    admin = ZendeskConnector(url, box.email, box.token)
    _, secret = admin.install_webhook(f"http://127.0.0.1:{port}/webhooks/zendesk")
    env = {
        **os.environ,
        "TIERDESK_DB": str(workdir / "routed.db"),
        "TIERDESK_ZENDESK_URL": url,
        "TIERDESK_ZENDESK_EMAIL": box.email,
        "TIERDESK_ZENDESK_TOKEN": box.token,
        "TIERDESK_ZENDESK_WEBHOOK_SECRET": secret,
        "TIERDESK_ZENDESK_RATE_LIMIT": "0",  # 20 tickets/s is 2,400 requests/min: above any plan's budget
        "TIERDESK_LOG_LEVEL": "WARNING",
    }
    subprocess.run([str(BIN / "tierdesk"), "sync"], env=env, check=True, capture_output=True)  # noqa: S603
    web = _gunicorn("integration.web.app:create_app()", port, env)
    worker = subprocess.Popen([str(BIN / "tierdesk"), "worker"], env=env, start_new_session=True)  # noqa: S603
    created: list[str] = []
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz")
        customers = summary.customer_ids
        pace = time.monotonic()
        deadline = pace + seconds
        i = 0
        while time.monotonic() < deadline:
            ticket = admin.create_ticket(str(customers[i % len(customers)]), f"bench {i}", "x")
            created.append(ticket.external_id)
            i += 1
            pace += 1 / rate
            time.sleep(max(0.0, pace - time.monotonic()))
        store = Store(workdir / "routed.db")
        wait_until = time.monotonic() + 30
        while time.monotonic() < wait_until:
            if store.count("decisions") >= len(created):
                break
            time.sleep(0.2)
    finally:
        _stop(web)
        _stop(worker)
    sent = {}
    for d in box.deliveries:
        sent.setdefault(str(d["ticket_id"]), d["sent_at"])
    box.stop()
    times = []
    for ticket_id in created:
        decision = store.get_decision(f"zendesk:ticket:{ticket_id}")
        if decision and str(ticket_id) in sent:
            times.append((decision.decided_at - sent[str(ticket_id)]) * 1000)
    return {
        "tickets": len(created),
        "routed": len(times),
        "p50_ms": _percentile(times, 50),
        "p95_ms": _percentile(times, 95),
        "max_ms": max(times) if times else float("nan"),
        "mean_ms": statistics.fmean(times) if times else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--routed-seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tierdesk-bench-"))
    dummy = ZendeskSandbox()
    dummy_url = dummy.start()
    try:
        ours, bare, ratio = ingest(args.seconds, args.rounds, workdir, dummy_url)
    finally:
        dummy.stop()
    print(
        f"ingest  tierdesk: {ours['per_s']:.0f} accepted/s, ack p50 {ours['p50_ms']:.1f} ms, "
        f"p99 {ours['p99_ms']:.1f} ms, errors {ours['errors']}  (median of rounds {ours['rounds']})"
    )
    print(
        f"ingest  bare 204: {bare['per_s']:.0f} answered/s, p50 {bare['p50_ms']:.1f} ms, "
        f"p99 {bare['p99_ms']:.1f} ms  (same gunicorn settings, same generator; rounds {bare['rounds']})"
    )
    print(f"ingest  ratio: {ratio:.2f} (median of the rounds' ratios)")
    print(
        f"move    {ours['moved']} of {ours['accepted']} acknowledged deliveries moved into the queue "
        f"at {ours['moved_per_s']:.0f}/s"
    )
    flow = routed(args.routed_seconds, args.rate, workdir)
    print(
        f"routed  {flow['routed']}/{flow['tickets']} tickets at {args.rate:g}/s "
        f"for {args.routed_seconds:g} s: p50 {flow['p50_ms']:.0f} ms, p95 {flow['p95_ms']:.0f} ms, "
        f"max {flow['max_ms']:.0f} ms"
    )
    print(
        json.dumps(
            {
                "ingest_per_s": round(ours["per_s"], 1),
                "bare_per_s": round(bare["per_s"], 1),
                "ingest_ratio": round(ratio, 3),
                "ack_p50_ms": round(ours["p50_ms"], 2),
                "ack_p99_ms": round(ours["p99_ms"], 2),
                "moved_per_s": round(ours["moved_per_s"], 1),
                "routed_p50_ms": round(flow["p50_ms"], 1),
                "routed_p95_ms": round(flow["p95_ms"], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
