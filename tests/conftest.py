"""Shared fixtures: a seeded Zendesk sandbox on loopback and a tierdesk wired to it over real HTTP.

Helpers that tests import (signing, waiting, settings, the `Live` handle) live in tests/support.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from connectors.zendesk import ZendeskConnector
from integration import segment_service
from integration.pull import pull
from integration.runtime import Runtime
from integration.settings import Settings
from integration.web.app import create_app
from sandbox.base import SeedSummary
from sandbox.zendesk import ZendeskSandbox
from sandbox.zendesk.seed import seed
from tests.contract import SPEC_PATH, Contract, Recorder
from tests.support import EMAIL, RECORDERS, SECRET, TOKEN, AdminApp, Live, admin_settings, fast_settings


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
    return fast_settings(
        tmp_path / "tierdesk.db",
        zendesk_url=sandbox.base_url,
        zendesk_email=EMAIL,
        zendesk_token=TOKEN,
        zendesk_webhook_secret=SECRET,
    )


@pytest.fixture
def runtime(settings: Settings, seeded: SeedSummary) -> Iterator[Runtime]:
    rt = Runtime.from_settings(settings)
    yield rt
    rt.store.close()


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
    pull(runtime.store, runtime.connectors["zendesk"])
    segment_service.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    stop = threading.Event()
    yield Live(runtime, url, sandbox, admin, stop)
    stop.set()
    server.shutdown()
    runtime.store.close()


@pytest.fixture
def admin(settings: Settings, seeded: SeedSummary, sandbox: ZendeskSandbox) -> Iterator[AdminApp]:
    """The admin over Flask's test client, on a tierdesk synced and segmented from the seeded sandbox."""
    runtime = Runtime.from_settings(admin_settings(settings))
    pull(runtime.store, runtime.connectors["zendesk"])
    segment_service.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    app = create_app(runtime=runtime)
    yield AdminApp(runtime, app, app.test_client(), seeded, sandbox)
    runtime.store.close()


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
