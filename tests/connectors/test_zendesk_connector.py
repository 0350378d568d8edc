"""The Zendesk connector against the sandbox: pulls, reads, the routing write, and failures."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from connectors.base import TagChange
from connectors.http import ApiNotFound, ApiServerError, ApiUnauthorized
from connectors.zendesk import UnknownGroup, ZendeskConnector
from integration import segment_service, tagsync
from integration.core.models import Customer, Decision, TicketEvent
from integration.pull import pull
from integration.runtime import Runtime, text_digest
from integration.settings import Settings
from integration.store import Store
from integration.worker import Worker
from sandbox.base import SeedSummary
from sandbox.zendesk import ZendeskSandbox
from tests.support import EMAIL, TOKEN, Live


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
    first = pull(store, zendesk)
    assert first["users"] == 120
    assert first["organizations"] > 0
    assert first["tickets"] > 0
    assert store.count("customers") == 120
    customer = next(store.iter_customers())
    assert customer.email
    assert "revenue_12m" in customer.attributes

    # nothing changed: the users and tickets cursors return nothing new
    again = pull(store, zendesk, streams=("users", "tickets"))
    assert again == {"users": 0, "tickets": 0}

    created = _api(
        sandbox,
        "POST",
        "/api/v2/users",
        {"user": {"name": "New One", "email": "new.one@example.com"}},
    )
    after = pull(store, zendesk, streams=("users",))
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


def test_an_endpoint_limit_429_is_waited_out_and_routing_succeeds(
    zendesk: ZendeskConnector, sandbox: ZendeskSandbox, seeded: SeedSummary
) -> None:
    # Update Ticket at 2 per 2 s instead of 100 a minute, so the wait takes seconds
    sandbox.set_endpoint_limits({"update_ticket": (2, 2.0)})
    user = _api(sandbox, "GET", "/api/v2/users?page[size]=1")["users"][0]
    ids = [
        _api(
            sandbox,
            "POST",
            "/api/v2/tickets",
            {"ticket": {"subject": f"s{n}", "comment": {"body": "b"}, "requester_id": user["id"]}},
        )["ticket"]["id"]
        for n in range(3)
    ]
    tickets = [zendesk.get_ticket(str(i)) for i in ids]
    sandbox.clear_request_log()
    decision = Decision(priority="high", tags=("tierdesk_routed",), note="why")
    started = time.monotonic()
    results = [zendesk.apply(ticket, decision) for ticket in tickets]
    assert [r.outcome for r in results] == ["applied"] * 3
    assert time.monotonic() - started >= 0.9  # the third write waited for the window
    puts = [(r[1], r[3]) for r in sandbox.request_log if r[0] == "PUT"]
    third = f"/api/v2/tickets/{ids[2]}"
    assert [status for _path, status in puts] == [200, 200, 429, 200]
    assert puts[2:] == [(third, 429), (third, 200)]
    assert zendesk.http.rate_limited == 1
    for i in ids:
        after = _api(sandbox, "GET", f"/api/v2/tickets/{i}")["ticket"]
        assert (after["priority"], "tierdesk_routed" in after["tags"]) == ("high", True)
    comments = _api(sandbox, "GET", f"/api/v2/tickets/{ids[2]}/comments")["comments"]
    assert [c["body"] for c in comments[1:]] == ["why"]  # one note, though the write was sent twice


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


# -- bulk tag pushes: only what Zendesk wrote counts as written --------------------------------------------


def test_the_routed_marker_follows_a_published_mapping(settings: Settings) -> None:
    """The runtime gives its helpdesks the active mapping's marker to read; it never sets it on them."""
    runtime = Runtime.from_settings(settings)
    try:
        zendesk = runtime.helpdesks["zendesk"]
        assert zendesk.marker_tag == runtime.mapping.tags.routed == "tierdesk_routed"
        text = Path(settings.mappings).read_text().replace("routed: tierdesk_routed", "routed: tierdesk_done")
        runtime.store.publish_mapping_version(text, text_digest(text), "test", "another marker", "test")
        assert runtime.refresh_mapping()
        assert zendesk.marker_tag == "tierdesk_done"
        assert "marker_tag" not in vars(zendesk)
    finally:
        runtime.store.close()


def test_push_tags_reports_the_records_zendesk_did_not_write(
    zendesk: ZendeskConnector, sandbox: ZendeskSandbox, seeded: SeedSummary
) -> None:
    """A failed record's job result has an error and no success key: it is failed, never succeeded."""
    real = str(seeded.customer_ids[0])
    gone = "987654321"
    report = zendesk.push_tags(
        "users", [TagChange(real, ("tierdesk_tier_a",), ()), TagChange(gone, ("tierdesk_tier_a",), ())]
    )
    assert (report.succeeded, report.failed) == ([real], [gone])
    assert "RecordNotFound" in report.errors[0]
    assert "tierdesk_tier_a" in _api(sandbox, "GET", f"/api/v2/users/{real}")["user"]["tags"]


def test_a_record_the_push_could_not_write_is_planned_again(live: Live) -> None:
    runtime = live.runtime
    ghost = Customer("zendesk", "987654321", email="ghost@example.com", name="Not In Zendesk")
    runtime.store.upsert_customers([ghost])
    segment_service.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    first = tagsync.push(runtime.store, runtime.connectors["zendesk"], runtime.mapping)
    assert first.failed["users"] == 1
    assert first.pushed["users"] == first.planned["users"] - 1
    again = tagsync.push(runtime.store, runtime.connectors["zendesk"], runtime.mapping)
    assert (again.planned["users"], again.failed["users"]) == (1, 1)  # retried, not taken for written


# -- who is a customer: staff and inactive people are not --------------------------------------------------


def _delete(live: Live, path: str) -> None:
    requests.delete(
        f"{live.sandbox.base_url}/api/v2/{path}", auth=(f"{EMAIL}/token", TOKEN), timeout=5
    ).raise_for_status()


def test_a_ticket_opened_by_staff_is_routed_without_storing_them_as_a_customer(live: Live) -> None:
    admin = live.sandbox.add_user("Ada Admin", "ada.admin@example.com", role="admin")
    live.start_workers()
    ticket = live.zendesk.create_ticket(str(admin["id"]), "Printer on fire", "Opened for a colleague")
    live.wait_for_decisions([ticket.external_id])

    decision = live.runtime.store.get_decision(ticket.key)
    assert decision is not None
    assert (decision.outcome, decision.customer_key, decision.segments) == ("applied", None, {})
    assert (decision.priority, decision.group_name) == ("normal", "General")  # the mapping's default
    assert live.runtime.store.get_customer(f"zendesk:user:{admin['id']}") is None


def test_a_deleted_requester_read_at_webhook_time_is_kept_inactive_and_not_classified(live: Live) -> None:
    person = live.sandbox.add_user("Gone Soon", "gone.soon@example.com")
    ticket = live.sandbox.add_ticket(person["id"], "Old question", "still open")
    _delete(live, f"users/{person['id']}")
    runtime = live.runtime
    runtime.queue.put(TicketEvent("zendesk", "inv-deleted-requester", str(ticket["id"])), {})

    outcome = Worker(runtime).run_once()

    assert outcome is not None
    assert outcome.status == "applied"
    decision = runtime.store.get_decision(f"zendesk:ticket:{ticket['id']}")
    assert decision is not None
    assert (decision.customer_key, decision.segments) == (None, {})
    stored = runtime.store.get_customer(f"zendesk:user:{person['id']}")
    assert stored is not None
    assert stored.active is False
    assert runtime.store.segments_for(stored.key) == {}


def test_deleted_users_and_deleted_tickets_count_for_nothing(live: Live) -> None:
    runtime, store, zendesk = live.runtime, live.runtime.store, live.runtime.connectors["zendesk"]
    calm = [
        k
        for k in store.customers_by_segment()[("lifecycle", "established")]
        if not store.segments_for(k)["risk"].label
    ]
    spammed, busy, leaving = (key.rsplit(":", 1)[1] for key in calm[:3])
    for requester in (spammed, busy):  # three tickets in a month make a customer "frustrated"
        for i in range(3):
            created = live.sandbox.add_ticket(int(requester), f"ticket {i}", "x")
            if requester == spammed:
                _delete(live, f"tickets/{created['id']}")  # spam, deleted by an agent
    _delete(live, f"users/{leaving}")
    before = store.tag_state("users")

    pull(store, zendesk)
    segment_service.recompute(store, runtime.mapping, runtime.mapping_digest)

    assert store.segments_for(f"zendesk:user:{busy}")["risk"].label == "frustrated"  # the rule fires...
    assert store.segments_for(f"zendesk:user:{spammed}")["risk"].label is None  # ...but not on deleted spam
    now = datetime.now(UTC)
    assert store.ticket_stats(now, f"zendesk:user:{spammed}")[f"zendesk:user:{spammed}"].tickets_30d == 0
    assert store.ticket_stats(now, f"zendesk:user:{busy}")[f"zendesk:user:{busy}"].tickets_30d == 3
    recent = store.tickets_created_between(now - timedelta(hours=1), now + timedelta(minutes=1))
    requesters = Counter(t["requester_key"] for t in recent)  # what the service report and simulate see
    assert (requesters[f"zendesk:user:{busy}"], requesters[f"zendesk:user:{spammed}"]) == (3, 0)
    gone = store.get_customer(f"zendesk:user:{leaving}")
    assert gone is not None
    assert gone.active is False
    assert store.segments_for(gone.key) == {}
    assert all(gone.key not in keys for keys in store.customers_by_segment().values())
    assert {row[0] for row in before} - {row[0] for row in store.tag_state("users")} == {gone.key}
    pushed = tagsync.push(store, zendesk, runtime.mapping)
    assert pushed.pushed["users"] > 100
    tags = _api(live.sandbox, "GET", f"/api/v2/users/{leaving}")["user"]["tags"]
    assert not [t for t in tags if t.startswith("tierdesk_")]  # a deleted user gets no write at all
