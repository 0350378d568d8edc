"""The Zendesk contract check itself: it finds the spec, it catches a bad request, it passes the connector.

Every test that uses the `sandbox` fixture is checked by the hook in conftest.py; these tests make sure
that check is real (a wrong request fails) and say loudly when the spec file is missing.
"""

from __future__ import annotations

import json

import pytest
import requests

from connectors.zendesk import ZendeskConnector
from integration.core.models import Decision
from sandbox.base import SeedSummary
from sandbox.zendesk import ZendeskSandbox
from tests.contract import SPEC_PATH, Contract, Recorded
from tests.support import EMAIL, RECORDERS, TOKEN


@pytest.fixture
def contract() -> Contract:
    loaded = Contract.load()
    if loaded is None:
        pytest.skip(f"Zendesk OpenAPI subset not found at {SPEC_PATH}: requests are NOT contract-checked")
    return loaded


def _request(method: str, path: str, query: str = "", body: dict | None = None) -> Recorded:
    data = json.dumps(body).encode() if body is not None else b""
    return Recorded(method, path, query, data, "application/json" if body else None, "Basic")


def test_the_spec_is_where_ci_expects_it() -> None:
    if not SPEC_PATH.exists():
        pytest.skip(f"Zendesk OpenAPI subset not found at {SPEC_PATH} (clone shared/ beside the repository)")
    assert Contract.load() is not None


@pytest.mark.parametrize(
    ("request_", "complaint"),
    [
        (_request("PUT", "/api/v2/tickets/7", body={"ticket": {"priority": "super"}}), "priority"),
        (_request("PUT", "/api/v2/tickets/7", body={"ticket": {"tags": "a b"}}), "tags"),
        (_request("GET", "/api/v2/incremental/users/cursor", "per_page=10"), "start_time"),
        (_request("GET", "/api/v2/incremental/organizations", "start_time=soon"), "start_time"),
        (_request("GET", "/api/v2/no_such_thing"), "PathNotFound"),
        (_request("DELETE", "/api/v2/groups"), "OperationNotFound"),
    ],
)
def test_requests_outside_the_spec_are_caught(contract: Contract, request_: Recorded, complaint: str) -> None:
    errors = contract.errors(request_)
    assert errors, f"{request_.describe()} should break the contract"
    assert any(complaint in e for e in errors), errors


def test_known_spec_defects_are_ignored_and_valid_requests_pass(contract: Contract) -> None:
    assert contract.errors(_request("GET", "/api/v2/groups", "page%5Bsize%5D=100")) == []
    assert contract.errors(_request("GET", "/api/v2/incremental/users/cursor", "cursor=abc")) == []
    assert contract.errors(_request("GET", "/api/v2/tickets/12.json")) == []
    # a request without credentials is not what the spec describes
    anonymous = Recorded("GET", "/api/v2/tickets/12", "", b"", None, None)
    assert contract.errors(anonymous)


def test_every_connector_call_matches_the_spec(
    contract: Contract, sandbox: ZendeskSandbox, seeded: SeedSummary
) -> None:
    """The connector's whole vocabulary in one test, so a regression names the call that drifted."""
    recorder = RECORDERS[sandbox]
    recorder.take()
    zendesk = ZendeskConnector(sandbox.base_url, EMAIL, TOKEN)
    for stream in ("organizations", "users", "tickets"):
        for _batch in zendesk.pull(stream, None):
            pass
    zendesk.check_groups({"General"})
    ticket = zendesk.create_ticket(str(seeded.customer_ids[0]), "contract", "body")
    zendesk.get_customer(ticket.requester_id or "")
    zendesk.apply(ticket, Decision(priority="high", group="Senior Support", tags=("x",), note="why"))
    if ticket.organization_id:
        zendesk.get_organization(ticket.organization_id)
    zendesk.install_webhook("http://127.0.0.1:9/webhooks/zendesk")  # webhooks API: recorded as excluded
    seen = recorder.take()
    paths = {(r.method, r.path.split("/")[3]) for r in seen}
    assert {("GET", "incremental"), ("GET", "groups"), ("POST", "tickets"), ("PUT", "tickets")} <= paths
    assert not any(r.path.startswith("/api/v2/webhooks") for r in seen)
    assert contract.check(seen) == []


def test_requests_from_test_code_are_checked_too(
    contract: Contract, sandbox: ZendeskSandbox, seeded: SeedSummary
) -> None:
    recorder = RECORDERS[sandbox]
    recorder.take()
    requests.put(
        f"{sandbox.base_url}/api/v2/tickets/1.json",
        json={"ticket": {"priority": "whenever"}},
        auth=(f"{EMAIL}/token", TOKEN),
        timeout=5,
    )
    problems = contract.check(recorder.take())  # taken here, so the hook sees nothing left to fail on
    assert len(problems) == 1
    assert problems[0].startswith("PUT /api/v2/tickets/1.json")
    assert "priority" in problems[0]
