"""The Freshdesk connector against the Freshdesk sandbox: pulls, the routing write, webhooks, end to end.

Everything goes over real HTTP on loopback: the sandbox stands in for Freshdesk, tierdesk's own web app
receives the automation rule's webhooks.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from werkzeug.serving import make_server

from connectors.base import TagChange, WebhookRejected
from connectors.freshdesk import (
    AUTOMATION_BODY,
    PRIORITY_TO_FRESHDESK,
    FreshdeskConnector,
    UnknownGroup,
    due_dates,
    parse_event,
    to_customer,
    to_ticket,
    verify_secret,
)
from connectors.http import ApiInvalid, ApiNotFound, ApiServerError, ApiUnauthorized, ApiUnavailable
from integration import segment_service
from integration.cli.commands import main
from integration.core.models import Decision
from integration.pull import pull
from integration.runtime import Runtime
from integration.settings import Settings, SettingsError
from integration.store import Store
from integration.web.app import create_app
from sandbox.base import SeedSummary
from sandbox.freshdesk import FreshdeskSandbox
from sandbox.freshdesk.seed import seed
from tests.support import fast_settings, moved, queued_event, wait_for_decisions, wait_idle

KEY = "fd-connector-test-key"
SECRET = "fd-webhook-secret-not-real"
MARKER = "tierdesk_routed"


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture
def fbox() -> Iterator[FreshdeskSandbox]:
    box = FreshdeskSandbox(KEY, webhook_retry_delay=0.05)
    box.start()
    yield box
    box.stop()


@pytest.fixture
def fseeded(fbox: FreshdeskSandbox) -> SeedSummary:
    return seed(fbox, customers=120, seed=7)


def _connector(box: FreshdeskSandbox, **kwargs: Any) -> FreshdeskConnector:
    options = {"max_attempts": 3, "backoff_initial": 0.01, "backoff_max": 0.2, **kwargs}
    return FreshdeskConnector(box.base_url, KEY, SECRET, **options)


@pytest.fixture
def freshdesk(fbox: FreshdeskSandbox, fseeded: SeedSummary) -> FreshdeskConnector:
    return _connector(fbox)


@pytest.fixture
def fsettings(tmp_path: Path, fbox: FreshdeskSandbox) -> Settings:
    return fast_settings(
        tmp_path / "tierdesk.db",
        freshdesk_url=fbox.base_url,
        freshdesk_api_key=KEY,
        freshdesk_webhook_secret=SECRET,
        # the sandbox's plan (Enterprise, 700 a minute); the default budget of 200 would make every test
        # that tags all 120 contacts wait out a minute (the budget itself: test_store, test_faults)
        freshdesk_rate_limit=fbox.rate_limit_per_minute,
    )


@dataclass
class FreshLive:
    """tierdesk serving on loopback, with the sandbox's automation rule pointing at it."""

    runtime: Runtime
    url: str
    box: FreshdeskSandbox
    admin: FreshdeskConnector
    stop: threading.Event

    def start_workers(self, count: int = 2) -> None:
        from integration.cli.processes import start_workers

        start_workers(self.runtime, self.stop, count)

    def wait_for_decisions(self, ticket_ids: list[str], timeout: float = 15.0) -> None:
        wait_for_decisions(self.runtime, "freshdesk", ticket_ids, timeout)

    def requester(self, dimension: str, label: str) -> str:
        return self.runtime.store.customers_by_segment()[(dimension, label)][0].rsplit(":", 1)[1]


@pytest.fixture
def flive(fsettings: Settings, fbox: FreshdeskSandbox, fseeded: SeedSummary) -> Iterator[FreshLive]:
    """Serve tierdesk, configure the automation rule in the sandbox, sync and segment."""
    runtime = Runtime.from_settings(fsettings)
    server = make_server("127.0.0.1", 0, create_app(runtime=runtime), threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    fbox.add_automation_rule(
        f"{url}/webhooks/freshdesk", AUTOMATION_BODY, headers={"X-Tierdesk-Secret": SECRET}
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pull(runtime.store, runtime.connectors["freshdesk"])
    segment_service.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    stop = threading.Event()
    yield FreshLive(runtime, url, fbox, _connector(fbox), stop)
    stop.set()
    server.shutdown()
    runtime.store.close()


def _api(box: FreshdeskSandbox, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(
        method, f"{box.base_url}/api/v2/{path}", json=body, auth=(KEY, "X"), timeout=5
    )
    response.raise_for_status()
    return response.json()


def _new_ticket(
    box: FreshdeskSandbox, requester_id: int | str, tags: list[str] | None = None
) -> dict[str, Any]:
    body = {"requester_id": int(requester_id), "subject": "Checkout broken", "description": "Nothing works"}
    if tags:
        body["tags"] = tags
    return _api(box, "POST", "tickets", body)


def _notes(box: FreshdeskSandbox, ticket_id: int | str) -> list[dict[str, Any]]:
    return [c for c in box.ticket_conversations(int(ticket_id)) if c["private"]]


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


NOTE = "tierdesk routed this ticket\nPriority: urgent · SLA: platinum · Group: Key Accounts\nWhy: a test"
DECISION = Decision(
    priority="urgent",
    sla="platinum",
    group="Key Accounts",
    first_response_minutes=60,
    resolution_minutes=480,
    tags=("tierdesk_vip_vip", "tierdesk_sla_platinum", MARKER),
    note=NOTE,
)


# -- pulls ------------------------------------------------------------------------------------------


def test_pull_is_incremental(
    freshdesk: FreshdeskConnector, fbox: FreshdeskSandbox, fseeded: SeedSummary, tmp_path
) -> None:
    store = Store(tmp_path / "t.db")
    first = pull(store, freshdesk)
    assert first == {"organizations": fseeded.organizations, "users": 120, "tickets": fseeded.tickets}
    contact = fbox.get_contact(fseeded.customer_ids[0])
    customer = store.get_customer(f"freshdesk:user:{contact['id']}")
    assert customer is not None
    assert customer.email == contact["email"]
    assert customer.attributes["revenue_12m"] == contact["custom_fields"]["revenue_12m"]
    assert customer.organization_id == (str(contact["company_id"]) if contact["company_id"] else None)
    for stream in ("organizations", "users", "tickets"):
        assert _at(store.get_cursor("freshdesk", stream) or "")  # an ISO timestamp

    # nothing changed: only the records changed in the cursor's own second come back (it is inclusive)
    for stream in ("organizations", "tickets"):
        cursor = store.get_cursor("freshdesk", stream) or ""
        again = [r for batch in freshdesk.pull(stream, cursor) for r in batch.records]
        assert again
        assert {r.updated_at for r in again} == {_at(cursor)}
    # contacts of that second are versions we hold: not read again (their list rows have no tags)
    reads = freshdesk.contact_reads
    assert [
        r for batch in freshdesk.pull("users", store.get_cursor("freshdesk", "users")) for r in batch.records
    ] == []
    assert freshdesk.contact_reads == reads

    _api(fbox, "PUT", f"contacts/{contact['id']}", {"custom_fields": {"revenue_12m": 99999}, "tags": ["vip"]})
    ticket = _new_ticket(fbox, contact["id"])
    pull(store, freshdesk, streams=("users", "tickets"))
    updated = store.get_customer(f"freshdesk:user:{contact['id']}")
    assert updated is not None
    assert updated.attributes["revenue_12m"] == 99999
    assert updated.tags == ("vip",)
    assert store.count("tickets") == fseeded.tickets + 1
    assert ticket["id"]


def test_ticket_pull_resumes_from_a_cursor_saved_mid_way(
    fbox: FreshdeskSandbox, fseeded: SeedSummary
) -> None:
    connector = _connector(fbox, per_page=10)
    everything = {t.external_id for batch in connector.pull("tickets", None) for t in batch.records}
    assert len(everything) == fseeded.tickets

    pages = connector.pull("tickets", None)
    seen: set[str] = set()
    cursor = None
    for _ in range(3):  # the process stops after three pages
        batch = next(pages)
        seen |= {t.external_id for t in batch.records}
        cursor = batch.cursor
    pages.close()
    assert cursor is not None
    rest = {t.external_id for batch in connector.pull("tickets", cursor) for t in batch.records}
    assert seen | rest == everything
    assert len(rest) < len(everything) - 20  # resumed, not started over


def test_contacts_cursor_moves_only_after_the_last_page(fbox: FreshdeskSandbox, fseeded: SeedSummary) -> None:
    """Freshdesk documents no order for contacts: a half-read list must not move the cursor."""
    batches = list(_connector(fbox, per_page=25).pull("users", None))
    assert len(batches) == 5
    assert [b.cursor for b in batches[:-1]] == [None] * 4
    assert batches[-1].cursor is not None
    assert sum(len(b.records) for b in batches) == 120


def _contact_calls(box: FreshdeskSandbox) -> dict[str, int]:
    """API calls on contacts since the request log was cleared: list pages, single reads, writes."""
    log = box.request_log
    return {
        "list": sum(1 for m, p, _q, _s in log if m == "GET" and p == "/api/v2/contacts"),
        "read": sum(1 for m, p, _q, _s in log if m == "GET" and p.startswith("/api/v2/contacts/")),
        "write": sum(1 for m, p, _q, _s in log if m == "PUT" and p.startswith("/api/v2/contacts/")),
    }


def test_a_vip_tag_on_a_synced_contact_makes_a_vip(
    fsettings: Settings, fbox: FreshdeskSandbox, fseeded
) -> None:
    """Freshdesk's contact list has no tags; the sync reads each changed contact's own record for them."""
    runtime = Runtime.from_settings(fsettings)
    freshdesk = runtime.connectors["freshdesk"]
    assert "tags" not in _api(fbox, "GET", "contacts?per_page=1")[0]  # what a real list row looks like
    fbox.clear_request_log()
    pull(runtime.store, freshdesk, streams=("users",))
    # the first pull reads every contact once: 120 reads on top of 2 list pages
    assert _contact_calls(fbox) == {"list": 2, "read": 120, "write": 0}
    segment_service.recompute(runtime.store, runtime.mapping, runtime.mapping_digest)
    vips = set(runtime.store.customers_by_segment()[("vip", "vip")])
    tagged = {f"freshdesk:user:{fbox.find_contact(e)['id']}" for e in fseeded.vip_tagged_emails}
    assert tagged
    assert tagged <= vips

    # an incremental sync reads only the contacts someone changed since
    changed = fseeded.customer_ids[3]
    _api(fbox, "PUT", f"contacts/{changed}", {"tags": ["vip"]})
    fbox.clear_request_log()
    assert pull(runtime.store, freshdesk, streams=("users",)) == {"users": 1}
    assert _contact_calls(fbox) == {"list": 1, "read": 1, "write": 0}
    customer = runtime.store.get_customer(f"freshdesk:user:{changed}")
    assert customer is not None
    assert customer.tags == ("vip",)
    runtime.store.close()


def test_the_tag_push_leaves_contacts_whose_tags_are_right_alone(
    fsettings: Settings, fbox: FreshdeskSandbox, fseeded: SeedSummary
) -> None:
    """After a push, the next sync lists the written contacts again (their updated_at moved): it reads
    none of them and writes none again; a contact that already carries the change gets no PUT."""
    from integration.scheduler import refresh

    runtime = Runtime.from_settings(fsettings)
    freshdesk = runtime.connectors["freshdesk"]
    first = refresh(runtime)["tags_freshdesk"]
    assert first["write_calls"] == 120
    fbox.clear_request_log()
    second = refresh(runtime)
    assert second["pulled_freshdesk"]["users"] == 120  # every written contact is listed again...
    assert second["tags_freshdesk"]["planned"] == {"users": 0}
    assert _contact_calls(fbox) == {"list": 2, "read": 0, "write": 0}  # ...and costs no read, no write
    _api(fbox, "PUT", f"contacts/{fseeded.customer_ids[1]}", {"job_title": "CTO"})  # someone changes one
    fbox.clear_request_log()
    refresh(runtime)  # the pushed contacts may be listed once more (the last minute is): none is read
    calls = _contact_calls(fbox)
    assert (calls["read"], calls["write"]) == (1, 0)

    # a contact that already carries what a push would write: read once, not rewritten
    contact = fbox.get_contact(fseeded.customer_ids[0])
    own = next(t for t in contact["tags"] if t.startswith("tierdesk_"))
    fbox.clear_request_log()
    report = freshdesk.push_tags("users", [TagChange(str(contact["id"]), (own,), ())])
    assert (report.succeeded, report.write_calls) == ([str(contact["id"])], 0)
    assert _contact_calls(fbox) == {"list": 0, "read": 1, "write": 0}
    runtime.store.close()


def test_deep_ticket_lists_are_read_past_the_page_cap() -> None:
    box = FreshdeskSandbox(KEY, ticket_page_max=2)
    box.start()
    try:
        summary = seed(box, customers=60, seed=5)
        records = [t for batch in _connector(box, per_page=10).pull("tickets", None) for t in batch.records]
        assert len({t.external_id for t in records}) == summary.tickets > 20
    finally:
        box.stop()


def test_records_are_translated_to_our_names() -> None:
    raw = {"id": 7, "status": 4, "priority": 2, "group_id": 9, "company_id": None, "tags": ["a"]}
    ticket = to_ticket({**raw, "requester_id": 3, "updated_at": "2026-01-02T03:04:05Z"})
    assert (ticket.status, ticket.priority, ticket.group_id, ticket.requester_id) == (
        "solved",
        "normal",
        "9",
        "3",
    )
    assert ticket.updated_stamp == "2026-01-02T03:04:05Z"
    assert to_ticket({**raw, "status": 7}).status == "open"  # a custom status is still unresolved
    # trashed or spam: stored as deleted, which counts in no statistic (docs/mapping.md, "Who counts")
    assert to_ticket({**raw, "deleted": True}).status == to_ticket({**raw, "spam": True}).status == "deleted"
    # a deleted or blocked contact is inactive; Freshdesk's `active` (email verified) says nothing of that
    assert [to_customer({"id": 1, **flags}).active for flags in ({"deleted": True}, {"blocked": True})] == [
        False,
        False,
    ]
    assert to_customer({"id": 1, "active": False}).active is True
    assert PRIORITY_TO_FRESHDESK == {"low": 1, "normal": 2, "high": 3, "urgent": 4}


# -- the routing write ------------------------------------------------------------------------------


def test_apply_keeps_agent_tags_and_sets_priority_group_due_dates_and_a_private_note(
    freshdesk: FreshdeskConnector, fbox: FreshdeskSandbox, fseeded: SeedSummary
) -> None:
    created = _new_ticket(fbox, fseeded.customer_ids[0], tags=["agent_tag"])
    stale = freshdesk.get_ticket(str(created["id"]))
    freshdesk.groups()
    # an agent tags the ticket after the worker read it; Freshdesk's PUT would replace their tags
    _api(fbox, "PUT", f"tickets/{created['id']}", {"tags": ["agent_tag", "agent_later"]})

    result = freshdesk.apply(stale, DECISION)

    assert result.outcome == "applied"
    assert result.calls == 3  # read (with conversations), note, PUT
    ticket = fbox.get_ticket(created["id"])
    assert ticket["tags"] == ["agent_tag", "agent_later", "tierdesk_vip_vip", "tierdesk_sla_platinum", MARKER]
    assert ticket["priority"] == 4
    assert ticket["group_id"] == fseeded.groups["Key Accounts"]
    opened = _at(ticket["created_at"])
    assert _at(ticket["fr_due_by"]) == opened + timedelta(minutes=60)
    assert _at(ticket["due_by"]) == opened + timedelta(minutes=480)
    notes = _notes(fbox, created["id"])
    assert len(notes) == 1
    assert notes[0]["body_text"].splitlines() == NOTE.splitlines()
    assert result.response["priority"] == "urgent"


def test_without_sla_targets_no_due_dates_are_sent(
    freshdesk: FreshdeskConnector, fbox: FreshdeskSandbox, fseeded: SeedSummary
) -> None:
    created = _new_ticket(fbox, fseeded.customer_ids[1])
    decision = replace(DECISION, priority="high", first_response_minutes=None, resolution_minutes=None)
    freshdesk.apply(freshdesk.get_ticket(str(created["id"])), decision)
    ticket = fbox.get_ticket(created["id"])
    assert ticket["priority"] == 3
    # Freshdesk's own SLA policy set the dates for the new priority: 4 h / 1 day in the sandbox
    opened = _at(ticket["created_at"])
    assert (_at(ticket["fr_due_by"]) - opened, _at(ticket["due_by"]) - opened) == (
        timedelta(hours=4),
        timedelta(days=1),
    )


def test_a_retry_after_a_failed_put_adds_no_second_note(fbox: FreshdeskSandbox, fseeded: SeedSummary) -> None:
    connector = _connector(fbox, max_attempts=1)
    created = _new_ticket(fbox, fseeded.customer_ids[2], tags=["agent_tag"])
    ticket = connector.get_ticket(str(created["id"]))
    fbox.inject_faults(503, count=1, method="PUT")
    with pytest.raises(ApiServerError):
        connector.apply(ticket, DECISION)
    assert len(_notes(fbox, created["id"])) == 1  # the note went first...
    assert MARKER not in fbox.get_ticket(created["id"])["tags"]  # ...the PUT did not happen

    retried = connector.apply(ticket, DECISION)  # the queue tries the event again
    assert retried.outcome == "applied"
    assert retried.detail == "note was already there"
    assert retried.calls == 2
    assert len(_notes(fbox, created["id"])) == 1
    assert {"agent_tag", MARKER} <= set(fbox.get_ticket(created["id"])["tags"])

    # a third delivery, even with the ticket as read before routing: the marker stops every write
    again = connector.apply(ticket, DECISION)
    assert (again.outcome, again.calls) == ("skipped", 1)
    assert connector.apply(connector.get_ticket(str(created["id"])), DECISION).calls == 0
    assert len(_notes(fbox, created["id"])) == 1


def test_a_note_whose_answer_was_lost_is_not_posted_twice(
    fbox: FreshdeskSandbox, fseeded: SeedSummary
) -> None:
    """The note's POST worked but its answer never came: the HTTP client must not post it again; the queue's
    retry of the event finds it and goes on with the PUT."""
    connector = _connector(fbox, timeout=(2.0, 0.5))
    created = _new_ticket(fbox, fseeded.customer_ids[4])
    ticket = connector.get_ticket(str(created["id"]))
    connector.groups()
    fbox.lose_responses(1, method="POST", path=f"/api/v2/tickets/{created['id']}/notes", hold=1.5)
    with pytest.raises(ApiUnavailable):
        connector.apply(ticket, DECISION)
    assert len(_notes(fbox, created["id"])) == 1  # the note was added, the client could not know
    assert MARKER not in fbox.get_ticket(created["id"])["tags"]

    retried = connector.apply(ticket, DECISION)  # the event comes back from the queue
    assert (retried.outcome, retried.detail) == ("applied", "note was already there")
    assert len(_notes(fbox, created["id"])) == 1
    assert MARKER in fbox.get_ticket(created["id"])["tags"]


def test_due_dates_from_targets() -> None:
    opened = datetime.fromisoformat("2026-03-01T10:00:00+00:00")
    both = due_dates(replace(DECISION, first_response_minutes=90, resolution_minutes=60), opened, opened)
    assert both == {"fr_due_by": "2026-03-01T11:00:00Z", "due_by": "2026-03-01T11:00:00Z"}  # fr clamped
    only_first = due_dates(replace(DECISION, resolution_minutes=None), opened, opened)
    assert only_first == {"fr_due_by": "2026-03-01T11:00:00Z"}
    assert due_dates(Decision(), opened, opened) == {}


def test_unknown_group_is_named(freshdesk: FreshdeskConnector) -> None:
    freshdesk.check_groups({"General", "Key Accounts"})
    with pytest.raises(UnknownGroup, match="No Such Team"):
        freshdesk.check_groups({"General", "No Such Team"})


def test_http_failures_become_clear_errors(
    freshdesk: FreshdeskConnector, fbox: FreshdeskSandbox, fseeded: SeedSummary
) -> None:
    created = _new_ticket(fbox, fseeded.customer_ids[0])
    fbox.inject_faults(429, count=1, retry_after=1)
    started = time.monotonic()
    assert freshdesk.get_ticket(str(created["id"])).external_id == str(created["id"])
    assert time.monotonic() - started >= 0.9  # Retry-After was honoured
    assert freshdesk.http.rate_limited == 1
    assert freshdesk.tap.total == fbox.rate_limit_per_minute
    assert freshdesk.tap.remaining is not None

    with pytest.raises(ApiNotFound):
        freshdesk.get_ticket("999999")
    with pytest.raises(ApiUnauthorized):
        FreshdeskConnector(fbox.base_url, "wrong-key").get_ticket(str(created["id"]))
    with pytest.raises(ApiInvalid, match="requester_id: There is no contact"):
        freshdesk.create_ticket("1", "s", "b")


# -- webhooks ---------------------------------------------------------------------------------------


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"x-tierdesk-secret": SECRET}, None),
        ({"authorization": _basic("tierdesk", SECRET)}, None),
        ({"authorization": _basic(SECRET, "X")}, None),  # the rule's "API key" authentication
        ({"x-tierdesk-secret": "guess"}, "bad_signature"),
        ({"x-tierdesk-secret": SECRET[:-1]}, "bad_signature"),
        ({"x-tierdesk-secret": ""}, "missing_signature"),
        ({"authorization": _basic("tierdesk", "guess")}, "bad_signature"),
        ({"authorization": _basic("someone", SECRET)}, "bad_signature"),
        ({"authorization": _basic(SECRET, "not-x")}, "bad_signature"),
        ({"authorization": "Basic !!!"}, "bad_signature"),
        ({"authorization": "Bearer " + SECRET}, "bad_signature"),
        ({}, "missing_signature"),
    ],
)
def test_shared_secret_or_basic_auth(headers: dict[str, str], reason: str | None) -> None:
    if reason is None:
        verify_secret(SECRET, headers)
        return
    with pytest.raises(WebhookRejected) as raised:
        verify_secret(SECRET, headers)
    assert (raised.value.reason, raised.value.status) == (reason, 401)


def test_event_id_is_the_rule_and_the_ticket() -> None:
    body = json.dumps(
        {"ticket": {"id": "42", "tags": "billing, agent_flag", "requester_email": "a@b.c"}}
    ).encode()
    event = parse_event({}, body)
    assert (event.source, event.ticket_id, event.event_id) == ("freshdesk", "42", "ticket_created:42")
    assert event.tags == ("billing", "agent_flag")
    assert parse_event({"x-tierdesk-rule": "vip-rule"}, body).event_id == "vip-rule:42"

    simple = json.dumps({"freshdesk_webhook": {"ticket_id": 43, "ticket_tags": ""}}).encode()
    assert parse_event({}, simple).ticket_id == "43"
    unrendered = json.dumps({"ticket": {"id": "44", "requester_id": "{{ticket.contact.id}}"}}).encode()
    assert parse_event({}, unrendered).requester_id is None  # an unknown placeholder is not an error


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"[]", "bad_payload"),
        (b'{"id": "1"}', "bad_payload"),
        (b'{"ticket": {"id": ""}}', "bad_payload"),
        (b'{"ticket": {"id": "{{ticket.id}}"}}', "bad_payload"),
    ],
)
def test_bad_bodies_are_400(body: bytes, reason: str) -> None:
    with pytest.raises(WebhookRejected) as raised:
        parse_event({}, body)
    assert (raised.value.reason, raised.value.status) == (reason, 400)


def _post(live: FreshLive, body: dict[str, Any], headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{live.url}/webhooks/freshdesk",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        timeout=5,
    )


def test_webhook_gate_accepts_the_secret_and_refuses_anything_else(flive: FreshLive) -> None:
    body = {"ticket": {"id": "501"}}
    wrong = _post(flive, body, {"X-Tierdesk-Secret": "guess"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "bad_signature"
    missing = _post(flive, body, {})
    assert (missing.status_code, missing.json()["error"]) == (401, "missing_signature")
    bad_auth = _post(flive, body, {"Authorization": _basic("tierdesk", "guess")})
    assert (bad_auth.status_code, bad_auth.json()["error"]) == (401, "bad_signature")
    moved(flive.runtime)
    assert flive.runtime.store.queue_counts() == {}

    accepted = _post(flive, body, {"Authorization": _basic("tierdesk", SECRET)})
    assert accepted.status_code == 202
    event = queued_event(flive.runtime, accepted, "freshdesk")
    assert event.ticket_key == "freshdesk:ticket:501"
    again = _post(flive, body, {"X-Tierdesk-Secret": SECRET})
    assert again.status_code == 202  # recorded again; the queue keeps one
    moved(flive.runtime)
    assert flive.runtime.store.queue_counts() == {"pending": 1}
    echo = _post(flive, {"ticket": {"id": "502", "tags": f"agent, {MARKER}"}}, {"X-Tierdesk-Secret": SECRET})
    assert echo.json()["status"] == "ignored"


# -- end to end -------------------------------------------------------------------------------------


def test_sandbox_ticket_is_routed_end_to_end(flive: FreshLive) -> None:
    flive.start_workers()
    vip = flive.requester("vip", "vip")
    ticket = flive.admin.create_ticket(vip, "Checkout broken", "Nothing works")
    flive.wait_for_decisions([ticket.external_id])

    decision = flive.runtime.store.get_decision(ticket.key)
    assert decision is not None
    assert decision.outcome == "applied"
    routed = flive.box.get_ticket(int(ticket.external_id))
    assert routed["priority"] == 4 == PRIORITY_TO_FRESHDESK[decision.priority or ""]
    assert routed["group_id"] == flive.admin.groups()["Key Accounts"]
    assert {MARKER, "tierdesk_vip_vip", "tierdesk_sla_platinum"} <= set(routed["tags"])
    opened = _at(routed["created_at"])
    assert _at(routed["fr_due_by"]) == opened + timedelta(hours=1)  # platinum in mappings/default.yaml
    assert _at(routed["due_by"]) == opened + timedelta(hours=8)
    notes = _notes(flive.box, ticket.external_id)
    assert len(notes) == 1
    assert "Key Accounts" in notes[0]["body_text"]
    assert flive.box.deliveries[0]["status_code"] == 202


def test_a_repeated_delivery_routes_once_and_keeps_agent_tags(flive: FreshLive) -> None:
    flive.start_workers()
    created = _new_ticket(flive.box, flive.requester("lifecycle", "established"), tags=["agent_flag"])
    ticket_id = str(created["id"])
    flive.wait_for_decisions([ticket_id])

    # the same rule delivers again (say it timed out waiting for our answer): a duplicate
    same = _post(flive, {"ticket": {"id": ticket_id}}, {"X-Tierdesk-Secret": SECRET})
    assert same.status_code == 202  # recorded; the worker drops it as a delivery the queue already has
    # a second rule also fires for the ticket: queued, but the marker makes it a no-op
    other = _post(
        flive, {"ticket": {"id": ticket_id}}, {"X-Tierdesk-Secret": SECRET, "X-Tierdesk-Rule": "other"}
    )
    assert other.status_code == 202
    wait_idle(flive.runtime)  # both deliveries moved into the queue and worked off
    assert flive.runtime.store.queue_counts() == {"done": 2}
    routed = flive.box.get_ticket(created["id"])
    assert {"agent_flag", MARKER} <= set(routed["tags"])
    assert len(_notes(flive.box, ticket_id)) == 1


def _plain_customer(runtime: Runtime) -> str:
    """A Freshdesk contact the default rule routes (established, tier B or C, no value, risk or vip label)
    with no ticket on record, so its own new ticket changes none of its labels."""
    with_tickets = set(runtime.store.ticket_stats(datetime.now(UTC)))
    for key in runtime.store.customers_by_segment()[("lifecycle", "established")]:
        labels = {d: a.label for d, a in runtime.store.segments_for(key).items()}
        plain = labels.get("tier") != "A" and not any(labels.get(d) for d in ("value", "risk", "vip"))
        if plain and key not in with_tickets:
            return key.rsplit(":", 1)[1]
    raise AssertionError("the seed has no plain customer")


def test_an_open_ticket_is_rerouted_when_its_customer_becomes_a_vip(flive: FreshLive) -> None:
    """Re-routing works for Freshdesk as for Zendesk: with TIERDESK_REROUTE=all the priority, group, tags
    and SLA (its due dates) follow the customer's new segment, with a private note saying why, and the
    agent's own tag stays."""
    from integration.scheduler import refresh

    flive.start_workers()
    customer_id = _plain_customer(flive.runtime)
    created = _new_ticket(flive.box, customer_id, tags=["agent_flag"])
    ticket_id = str(created["id"])
    flive.wait_for_decisions([ticket_id])
    key = f"freshdesk:ticket:{ticket_id}"
    before = flive.runtime.store.get_decision(key)
    assert before is not None
    assert (before.outcome, before.priority, before.sla, before.group_name) == (
        "applied",
        "normal",
        "standard",
        "General",
    )

    _api(flive.box, "PUT", f"contacts/{customer_id}", {"tags": ["vip"]})  # an admin marks them VIP
    runtime = Runtime.from_settings(replace(flive.runtime.settings, reroute="all"))
    try:
        assert refresh(runtime)["rerouted_freshdesk"] == 1
        after = runtime.store.get_decision(key)
        assert after is not None
        assert (after.outcome, after.priority, after.sla, after.group_name) == (
            "rerouted",
            "urgent",
            "platinum",
            "Key Accounts",
        )
        routed = flive.box.get_ticket(int(ticket_id))
        assert routed["priority"] == PRIORITY_TO_FRESHDESK["urgent"]
        assert routed["group_id"] == flive.admin.groups()["Key Accounts"]
        assert {"agent_flag", MARKER, "tierdesk_vip_vip", "tierdesk_sla_platinum"} <= set(routed["tags"])
        assert "tierdesk_sla_standard" not in routed["tags"]
        opened = _at(routed["created_at"])
        assert _at(routed["fr_due_by"]) == opened + timedelta(hours=1)  # platinum's targets
        assert _at(routed["due_by"]) == opened + timedelta(hours=8)
        notes = _notes(flive.box, ticket_id)
        assert len(notes) == 2
        assert notes[-1]["body_text"].startswith("tierdesk re-routed this ticket")
        assert refresh(runtime)["rerouted_freshdesk"] == 0  # routed with these labels now
    finally:
        runtime.store.close()


# -- settings and the command line -------------------------------------------------------------------


def test_settings_need_a_secret_for_freshdesk_and_some_helpdesk(fsettings: Settings) -> None:
    runtime = Runtime.from_settings(fsettings)
    assert set(runtime.connectors) == {"freshdesk"}
    runtime.store.close()
    with pytest.raises(SettingsError, match="TIERDESK_FRESHDESK_WEBHOOK_SECRET"):
        replace(fsettings, freshdesk_webhook_secret=None).check()
    replace(fsettings, freshdesk_webhook_secret=None, insecure_dev=True).check()
    with pytest.raises(SettingsError, match="TIERDESK_FRESHDESK_API_KEY") as raised:
        Settings(db=fsettings.db).check()
    assert "TIERDESK_ZENDESK_URL" in str(raised.value)


def test_sync_command_pulls_from_freshdesk(fsettings: Settings, fseeded: SeedSummary) -> None:
    env = {
        "TIERDESK_DB": fsettings.db,
        "TIERDESK_FRESHDESK_URL": fsettings.freshdesk_url or "",
        "TIERDESK_FRESHDESK_API_KEY": KEY,
        "TIERDESK_FRESHDESK_WEBHOOK_SECRET": SECRET,
        "TIERDESK_FRESHDESK_RATE_LIMIT": str(fsettings.freshdesk_rate_limit),
        "TIERDESK_LOG_LEVEL": "ERROR",
    }
    result = CliRunner().invoke(main, ["sync"], env=env)
    assert result.exit_code == 0, result.output
    expected = f"freshdesk: organizations {fseeded.organizations}, users 120, tickets {fseeded.tickets}"
    assert expected in result.output


def test_scheduled_sync_tags_contacts_without_touching_their_own_tags(
    fsettings: Settings, fbox: FreshdeskSandbox, fseeded: SeedSummary
) -> None:
    from integration.scheduler import refresh

    runtime = Runtime.from_settings(fsettings)
    first = refresh(runtime)["tags_freshdesk"]
    assert first["planned"]["users"] == 120
    assert first["write_calls"] == 120  # Freshdesk has no bulk contact update: one write per contact
    vip = runtime.store.customers_by_segment()[("vip", "vip")][0].rsplit(":", 1)[1]
    tags = _api(fbox, "GET", f"/contacts/{vip}")["tags"]
    assert "vip" in tags  # the contact's own tag stays
    assert "tierdesk_vip_vip" in tags
    assert refresh(runtime)["tags_freshdesk"]["write_calls"] == 0
