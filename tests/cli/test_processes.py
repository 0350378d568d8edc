"""The deployable processes: the Procfile's gunicorn web + `tierdesk worker`, and `tierdesk serve`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from connectors.zendesk import ZendeskConnector
from integration.store import Store
from sandbox.base import SeedSummary
from sandbox.zendesk import ZendeskSandbox
from tests.support import EMAIL, ROOT, TOKEN, free_port, wait_for, wait_http

BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)  # noqa: S603
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _env(tmp_path: Path, sandbox: ZendeskSandbox, secret: str) -> dict[str, str]:
    return {
        **os.environ,
        "TIERDESK_DB": str(tmp_path / "tierdesk.db"),
        "TIERDESK_ZENDESK_URL": sandbox.base_url,
        "TIERDESK_ZENDESK_EMAIL": EMAIL,
        "TIERDESK_ZENDESK_TOKEN": TOKEN,
        "TIERDESK_ZENDESK_WEBHOOK_SECRET": secret,
        "TIERDESK_SYNC_INTERVAL": "3600",
    }


def _wait_routed(db: Path, ticket_ids: list[str], timeout: float = 20.0) -> Store:
    store = Store(db)
    wait_for(
        lambda: all(store.get_decision(f"zendesk:ticket:{t}") for t in ticket_ids),
        f"decisions for tickets {ticket_ids}",
        timeout,
        interval=0.1,
        state=lambda: f"queue {store.queue_counts()}",
    )
    return store


def _requester(sandbox: ZendeskSandbox) -> int:
    users = requests.get(
        f"{sandbox.base_url}/api/v2/users", auth=(f"{EMAIL}/token", TOKEN), timeout=5
    ).json()["users"]
    return int(users[0]["id"])


@pytest.mark.skipif(not shutil.which("gunicorn", path=str(BIN)), reason="gunicorn not installed")
def test_procfile_web_and_worker_route_a_ticket(
    tmp_path: Path, sandbox: ZendeskSandbox, seeded: SeedSummary
) -> None:
    port = free_port()
    admin = ZendeskConnector(sandbox.base_url, EMAIL, TOKEN)
    _, secret = admin.install_webhook(f"http://127.0.0.1:{port}/webhooks/zendesk")
    env = {**_env(tmp_path, sandbox, secret), "PORT": str(port), "PATH": f"{BIN}:{os.environ['PATH']}"}
    roles = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line)
    assert set(roles) == {"web", "worker", "scheduler"}
    with (  # the Procfile's own lines, run as a process manager would: a shell, $PORT, the repo as cwd
        _process(["bash", "-c", f"exec {roles['web']}"], env, tmp_path / "web.log"),
        _process(["bash", "-c", f"exec {roles['worker']}"], env, tmp_path / "worker.log"),
    ):
        wait_http(f"http://127.0.0.1:{port}/healthz")
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
        assert ready["store_writable"] is True
        tickets = [admin.create_ticket(str(_requester(sandbox)), f"proc {i}", "x") for i in range(3)]
        store = _wait_routed(tmp_path / "tierdesk.db", [t.external_id for t in tickets])
    for ticket in tickets:
        assert store.get_decision(ticket.key).outcome == "applied"
        assert "tierdesk_routed" in admin.get_ticket(ticket.external_id).tags


def test_serve_runs_web_worker_and_scheduler_in_one_process(
    tmp_path: Path, sandbox: ZendeskSandbox, seeded: SeedSummary
) -> None:
    port = free_port()
    admin = ZendeskConnector(sandbox.base_url, EMAIL, TOKEN)
    _, secret = admin.install_webhook(f"http://127.0.0.1:{port}/webhooks/zendesk")
    env = _env(tmp_path, sandbox, secret)
    serve = [str(BIN / "tierdesk"), "serve", "--port", str(port)]
    with _process(serve, env, tmp_path / "serve.log"):
        wait_http(f"http://127.0.0.1:{port}/healthz")
        ticket = admin.create_ticket(str(_requester(sandbox)), "serve", "x")
        store = _wait_routed(tmp_path / "tierdesk.db", [ticket.external_id])
        # the scheduler's first sync runs at start: the seeded customers get segmented
        wait_for(lambda: store.count("customers") >= 120, "the first sync's 120 customers", 20, interval=0.1)
    assert store.count("customers") >= 120
    assert store.get_decision(ticket.key).outcome == "applied"
