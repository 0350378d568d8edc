"""Shared fixtures: a seeded Zendesk sandbox on loopback and a tierdesk wired to it over real HTTP."""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from connectors.zendesk import ZendeskConnector, sign
from integration import sync
from integration.runtime import Runtime
from integration.settings import Settings
from integration.store import Event
from integration.web.app import create_app
from sandbox.base import SeedSummary
from sandbox.zendesk import ZendeskSandbox
from sandbox.zendesk.seed import seed
from tests.contract import SPEC_PATH, Contract, Recorder

SECRET = "test-webhook-secret-not-real"
EMAIL = "agent@example.com"
TOKEN = "sandbox-token-not-real"

# The request recorder of each `sandbox` fixture, for the Zendesk contract check below.
RECORDERS: weakref.WeakKeyDictionary[ZendeskSandbox, Recorder] = weakref.WeakKeyDictionary()


@pytest.fixture
def sandbox() -> Iterator[ZendeskSandbox]:
    box = ZendeskSandbox(email=EMAIL, token=TOKEN, webhook_retry_delay=0.05)
    RECORDERS[box] = Recorder().attach(box)  # every request is checked against Zendesk's spec
    box.start()
    yield box
    box.stop()


@pytest.fixture
def seeded(sandbox: ZendeskSandbox) -> SeedSummary:
    return seed(sandbox, customers=120, seed=7)


@pytest.fixture
def settings(tmp_path: Path, sandbox: ZendeskSandbox) -> Settings:
    return Settings(
        db=str(tmp_path / "tierdesk.db"),
        zendesk_url=sandbox.base_url,
        zendesk_email=EMAIL,
        zendesk_token=TOKEN,
        zendesk_webhook_secret=SECRET,
        http_attempts=3,
        http_backoff=0.01,
        max_attempts=4,
        retry_base=0.05,
        retry_max=0.2,
        lease_seconds=5,
    )


@pytest.fixture
def runtime(settings: Settings, seeded: SeedSummary) -> Iterator[Runtime]:
    rt = Runtime.from_settings(settings)
    yield rt
    rt.store.close()


@dataclass
class Live:
    """tierdesk serving on loopback, with the sandbox's trigger pointing at it."""

    runtime: Runtime
    url: str
    sandbox: ZendeskSandbox
    zendesk: ZendeskConnector
    stop: threading.Event

    def start_workers(self, count: int = 2) -> None:
        from integration.cli.commands import start_workers

        self.stop.clear()
        start_workers(self.runtime, self.stop, count)

    def wait_for_decisions(self, ticket_ids: list[str], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        keys = [f"zendesk:ticket:{t}" for t in ticket_ids]
        while time.monotonic() < deadline:
            if all(self.runtime.store.get_decision(k) for k in keys):
                return
            time.sleep(0.05)
        missing = [k for k in keys if not self.runtime.store.get_decision(k)]
        raise AssertionError(
            f"not routed in {timeout}s: {missing}; queue {self.runtime.store.queue_counts()}"
        )


@pytest.fixture
def live(settings: Settings, sandbox: ZendeskSandbox, seeded: SeedSummary) -> Iterator[Live]:
    """Serve tierdesk, install the webhook + trigger in the sandbox, sync and segment."""
    admin = ZendeskConnector(sandbox.base_url, EMAIL, TOKEN)
    server = make_server("127.0.0.1", 0, None, threaded=True)  # app set below, once the secret is known
    url = f"http://127.0.0.1:{server.server_port}"
    _, secret = admin.install_webhook(f"{url}/webhooks/zendesk")
    runtime = Runtime.from_settings(replace(settings, zendesk_webhook_secret=secret))
    server.app = create_app(runtime=runtime)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sync.pull(runtime.store, runtime.connectors["zendesk"])
    sync.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    stop = threading.Event()
    yield Live(runtime, url, sandbox, admin, stop)
    stop.set()
    server.shutdown()
    runtime.store.close()


def moved(runtime: Runtime) -> None:
    """Move every accepted delivery from the inbox into the queue now, as a worker does once they settle."""
    while runtime.queue.inbox.drain(runtime.store, settle=0).more:
        pass


def inbox_lines(runtime: Runtime) -> int:
    """Deliveries acknowledged and still waiting in the inbox to be moved into the queue."""
    offsets = runtime.store.inbox_offsets()
    lines = 0
    for path in runtime.queue.inbox.directory.glob("*.jsonl"):
        lines += path.read_bytes()[offsets.get(path.name, 0) :].count(b"\n")
    return lines


def queued_event(runtime: Runtime, response: requests.Response, source: str = "zendesk") -> Event:
    """The queue's event for an acknowledged delivery (the 202 names the delivery)."""
    moved(runtime)
    event = runtime.store.find_event(source, response.json()["delivery"])
    assert event is not None, f"delivery {response.json()['delivery']} not in the queue"
    return event


def signed_headers(body: bytes, secret: str = SECRET, timestamp: str | None = None) -> dict:
    """Headers exactly as Zendesk signs a delivery; override parts to forge one."""
    timestamp = timestamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Content-Type": "application/json",
        "x-zendesk-webhook-signature": sign(secret, body, timestamp),
        "x-zendesk-webhook-signature-timestamp": timestamp,
        "x-zendesk-webhook-invocation-id": f"inv-{time.monotonic_ns()}",
    }


def post_webhook(url: str, payload: dict | bytes, **kwargs: object) -> requests.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = signed_headers(body, **kwargs)  # type: ignore[arg-type]
    return requests.post(f"{url}/webhooks/zendesk", data=body, headers=headers, timeout=10)


# -- Zendesk contract: every request a `sandbox` receives must match Zendesk's OpenAPI description ----------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "zendesk_contract_exempt(reason): this test sends requests outside Zendesk's spec on purpose",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> object:
    """After a passing test that used `sandbox`, fail it if any request it caused breaks the contract."""
    result = yield
    box = getattr(item, "funcargs", {}).get("sandbox")
    recorder = RECORDERS.get(box) if isinstance(box, ZendeskSandbox) else None
    if recorder is None or item.get_closest_marker("zendesk_contract_exempt"):
        return result
    contract = Contract.load()
    if contract is None:
        return result  # reported once in the terminal summary and by test_contract_zendesk.py
    problems = contract.check(recorder.take())
    if problems:
        pytest.fail(
            f"{len(problems)} Zendesk request(s) do not match the OpenAPI spec ({SPEC_PATH.name}):\n"
            + "\n".join(problems[:10]),
            pytrace=False,
        )
    return result


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if Contract._instance is not None:
        contract = Contract._instance
        terminalreporter.write_line(
            f"Zendesk contract: {contract.validated} requests validated against {contract.path.name}"
            f" ({contract.defects_ignored} errors from known spec defects ignored)"
        )
    elif not SPEC_PATH.exists():
        terminalreporter.write_line(f"Zendesk contract: NOT CHECKED, spec not found at {SPEC_PATH}")
