"""The Zendesk connector against the sandbox: pulls, reads, the routing write, and failures."""

from __future__ import annotations

import pytest
import requests

from connectors.http import ApiNotFound, ApiServerError, ApiUnauthorized
from connectors.sandbox.seed import SeedSummary
from connectors.sandbox.zendesk import ZendeskSandbox
from connectors.zendesk import UnknownGroup, ZendeskConnector
from integration import sync
from integration.models import Decision
from integration.store import Store
from tests.conftest import EMAIL, TOKEN


@pytest.fixture
def zendesk(sandbox: ZendeskSandbox, seeded: SeedSummary) -> ZendeskConnector:
    return ZendeskConnector(sandbox.base_url, EMAIL, TOKEN, backoff_max=0.2)


def _api(sandbox: ZendeskSandbox, method: str, path: str, body: dict | None = None) -> dict:
    response = requests.request(
        method, f"{sandbox.base_url}{path}", json=body, auth=(f"{EMAIL}/token", TOKEN), timeout=5
    )
    response.raise_for_status()
    return response.json()


def test_incremental_pull_resumes_from_the_stored_cursor(
    zendesk: ZendeskConnector, sandbox: ZendeskSandbox, seeded: SeedSummary, tmp_path
) -> None:
    store = Store(tmp_path / "t.db")
    first = sync.pull(store, zendesk)
    assert first["users"] == 120
    assert first["organizations"] > 0
    assert first["tickets"] > 0
    assert store.count("customers") == 120
    customer = next(store.iter_customers())
    assert customer.email
    assert "revenue_12m" in customer.attributes

    # nothing changed: the users and tickets cursors return nothing new
    again = sync.pull(store, zendesk, streams=("users", "tickets"))
    assert again == {"users": 0, "tickets": 0}

    created = _api(
        sandbox,
        "POST",
        "/api/v2/users",
        {"user": {"name": "New One", "email": "new.one@example.com"}},
    )
    after = sync.pull(store, zendesk, streams=("users",))
    assert after == {"users": 1}
    assert store.get_customer(f"zendesk:user:{created['user']['id']}") is not None


def test_apply_sets_fields_in_one_write_and_keeps_agent_tags(
    zendesk: ZendeskConnector, sandbox: ZendeskSandbox, seeded: SeedSummary
) -> None:
    user = _api(sandbox, "GET", "/api/v2/users?page[size]=1")["users"][0]
    created = _api(
        sandbox,
        "POST",
        "/api/v2/tickets",
        {
            "ticket": {
                "subject": "s",
                "comment": {"body": "b"},
                "requester_id": user["id"],
                "tags": ["keep_me"],
            }
        },
    )["ticket"]
    ticket = zendesk.get_ticket(str(created["id"]))
    sandbox.clear_request_log()
    decision = Decision(
        priority="urgent",
        sla="platinum",
        group="Key Accounts",
        tags=("tierdesk_vip_vip", "tierdesk_routed"),
        note="why",
    )
    result = zendesk.apply(ticket, decision)
    assert result.outcome == "applied"
    writes = [r for r in sandbox.request_log if r[0] in ("PUT", "POST")]
    assert [(r[0], r[1]) for r in writes] == [("PUT", f"/api/v2/tickets/{created['id']}")]
    after = _api(sandbox, "GET", f"/api/v2/tickets/{created['id']}")["ticket"]
    assert after["priority"] == "urgent"
    assert after["group_id"] == zendesk.groups()["Key Accounts"]
    assert set(after["tags"]) == {"keep_me", "tierdesk_vip_vip", "tierdesk_routed"}
    comments = _api(sandbox, "GET", f"/api/v2/tickets/{created['id']}/comments")["comments"]
    assert [(c["body"], c["public"]) for c in comments[1:]] == [("why", False)]

    # applying again (a replay) changes nothing: the marker is there
    again = zendesk.apply(zendesk.get_ticket(str(created["id"])), decision)
    assert again.outcome == "skipped"
    assert len(_api(sandbox, "GET", f"/api/v2/tickets/{created['id']}/comments")["comments"]) == 2


def test_rate_limit_is_waited_out_per_retry_after(zendesk: ZendeskConnector, sandbox: ZendeskSandbox) -> None:
    sandbox.inject_faults(429, count=2, retry_after=1)
    sandbox.clear_request_log()
    ticket_count = len(zendesk.groups(refresh=True))
    assert ticket_count == 6
    statuses = [r[3] for r in sandbox.request_log if r[1] == "/api/v2/groups"]
    assert statuses == [429, 429, 200]
    assert zendesk.http.rate_limited == 2


def test_server_errors_are_retried_then_raised(zendesk: ZendeskConnector, sandbox: ZendeskSandbox) -> None:
    sandbox.inject_faults(503, count=1)
    assert zendesk.groups(refresh=True)  # one 503, then success
    sandbox.inject_faults(503, count=100)
    with pytest.raises(ApiServerError, match="503"):
        zendesk.groups(refresh=True)
    sandbox.inject_faults(503, count=0)


def test_bad_credentials_and_missing_records_are_clear_errors(
    sandbox: ZendeskSandbox, zendesk: ZendeskConnector
) -> None:
    wrong = ZendeskConnector(sandbox.base_url, EMAIL, "wrong-token")
    with pytest.raises(ApiUnauthorized, match="401"):
        wrong.get_ticket("1")
    with pytest.raises(ApiNotFound, match="404"):
        zendesk.get_ticket("987654")


def test_unknown_group_names_the_group(zendesk: ZendeskConnector) -> None:
    with pytest.raises(UnknownGroup, match="Platinum Desk"):
        zendesk.group_id("Platinum Desk")
    with pytest.raises(UnknownGroup, match="Nope, Platinum Desk"):
        zendesk.check_groups({"General", "Platinum Desk", "Nope"})
