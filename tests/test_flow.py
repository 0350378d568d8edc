"""The whole slice: Zendesk creates a ticket, fires a signed webhook, tierdesk routes it."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from connectors.zendesk import UnknownGroup, ZendeskConnector
from integration.core.models import Decision
from integration.runtime import Runtime
from integration.worker import Worker
from tests.support import (
    EMAIL,
    TOKEN,
    Live,
    inbox_lines,
    moved,
    post_webhook,
    queued_event,
    wait_for,
    wait_idle,
)


def _requester(live: Live, dimension: str, label: str) -> str:
    keys = live.runtime.store.customers_by_segment()[(dimension, label)]
    return keys[0].rsplit(":", 1)[1]


def _comments(live: Live, ticket_id: str) -> list[dict]:
    response = requests.get(
        f"{live.sandbox.base_url}/api/v2/tickets/{ticket_id}/comments",
        auth=(f"{EMAIL}/token", TOKEN),
        timeout=5,
    )
    response.raise_for_status()
    return response.json()["comments"]


def test_new_ticket_gets_priority_group_tags_and_internal_note(live: Live) -> None:
    live.start_workers()
    vip = _requester(live, "vip", "vip")
    ticket = live.zendesk.create_ticket(vip, "Checkout broken", "Nothing works")
    live.wait_for_decisions([ticket.external_id])

    routed = live.zendesk.get_ticket(ticket.external_id)
    decision = live.runtime.store.get_decision(ticket.key)
    assert decision is not None
    assert decision.outcome == "applied"
    assert routed.priority == "urgent" == decision.priority
    groups = live.zendesk.groups()
    assert routed.group_id == str(groups["Key Accounts"])
    assert "tierdesk_routed" in routed.tags
    assert "tierdesk_vip_vip" in routed.tags
    assert "tierdesk_sla_platinum" in routed.tags
    notes = [c for c in _comments(live, ticket.external_id) if not c["public"]]
    assert len(notes) == 1
    assert "Key Accounts" in notes[0]["body"]
    assert "vip" in notes[0]["body"].lower()
    assert decision.segments["vip"]["label"] == "vip"
    assert decision.segments["vip"]["reasons"]


def test_agents_tags_survive_and_redelivery_adds_no_second_note(live: Live) -> None:
    live.start_workers()
    requester = _requester(live, "lifecycle", "established")
    answer = requests.post(
        f"{live.sandbox.base_url}/api/v2/tickets",
        json={
            "ticket": {
                "subject": "Refund",
                "comment": {"body": "please"},
                "requester_id": int(requester),
                "tags": ["agent_flag", "billing"],
            }
        },
        auth=(f"{EMAIL}/token", TOKEN),
        timeout=5,
    )
    ticket_id = str(answer.json()["ticket"]["id"])
    live.wait_for_decisions([ticket_id])
    delivered = live.sandbox.wait_for_deliveries(1, timeout=5)
    assert delivered

    # Zendesk delivers the same invocation again (e.g. it timed out waiting for our 202).
    event = live.runtime.store.list_events(["done"])[0]
    again = post_webhook(
        live.url,
        {"ticket": {"id": ticket_id}},
        secret=live.runtime.settings.zendesk_webhook_secret or "",
    )
    assert again.status_code == 202  # a new invocation id: queued, but the ticket is routed once
    live.wait_for_decisions([ticket_id])
    wait_idle(live.runtime)  # the second delivery is worked off: moved from the inbox and done

    routed = live.zendesk.get_ticket(ticket_id)
    assert {"agent_flag", "billing", "tierdesk_routed"} <= set(routed.tags)
    notes = [c for c in _comments(live, ticket_id) if not c["public"]]
    assert len(notes) == 1
    assert event.ticket_key == f"zendesk:ticket:{ticket_id}"


def test_agent_change_between_read_and_write_is_merged_not_lost(live: Live) -> None:
    requester = _requester(live, "lifecycle", "established")
    ticket = live.zendesk.create_ticket(requester, "Slow", "slow pages")
    stale = live.zendesk.get_ticket(ticket.external_id)
    # an agent tags the ticket after we read it: our safe update must not drop their tag
    requests.put(
        f"{live.sandbox.base_url}/api/v2/tickets/{ticket.external_id}",
        json={"ticket": {"additional_tags": ["agent_was_here"]}},
        auth=(f"{EMAIL}/token", TOKEN),
        timeout=5,
    ).raise_for_status()
    result = live.zendesk.apply(
        stale, Decision(priority="high", group="General", tags=("tierdesk_routed",), note="why")
    )
    assert result.outcome == "applied"
    assert result.calls == 3  # PUT (409), GET, PUT
    assert {"agent_was_here", "tierdesk_routed"} <= set(live.zendesk.get_ticket(ticket.external_id).tags)


def test_events_queued_before_a_restart_are_routed_after_it(live: Live) -> None:
    requester = _requester(live, "lifecycle", "established")
    tickets = [live.zendesk.create_ticket(requester, f"t{i}", "x") for i in range(3)]
    live.sandbox.wait_for_deliveries(3, timeout=5)
    wait_for(lambda: inbox_lines(live.runtime) >= 3, "three deliveries acknowledged into the inbox", 5)
    assert inbox_lines(live.runtime) == 3  # acknowledged, and no worker has moved them yet
    assert live.runtime.store.queue_counts() == {}

    # the process goes away; a new one opens the same database and inbox and finds the work
    live.runtime.queue.inbox.close()
    live.runtime.store.close()
    restarted = Runtime.from_settings(live.runtime.settings)
    worker = Worker(restarted)
    while worker.run_once():
        pass
    for ticket in tickets:
        decision = restarted.store.get_decision(ticket.key)
        assert decision is not None
        assert decision.outcome == "applied"
    assert restarted.store.queue_counts() == {"done": 3}


def test_missing_ticket_is_dead_lettered_and_can_be_replayed(live: Live) -> None:
    response = post_webhook(
        live.url,
        {"ticket": {"id": "999999"}},
        secret=live.runtime.settings.zendesk_webhook_secret or "",
    )
    worker = Worker(live.runtime)
    outcome = worker.run_once()
    assert outcome is not None
    assert outcome.status == "dead"
    event = queued_event(live.runtime, response)
    assert event.status == "dead"
    assert "999999" in (event.last_error or "")
    assert live.runtime.queue.replay(event.id)
    assert live.runtime.store.get_event(event.id).status == "pending"


def test_helpdesk_outage_is_retried_then_dead_lettered(live: Live) -> None:
    requester = _requester(live, "lifecycle", "established")
    ticket = live.zendesk.create_ticket(requester, "during outage", "x")
    live.sandbox.wait_for_deliveries(1, timeout=5)
    moved(live.runtime)
    assert live.runtime.store.queue_counts() == {"pending": 1}
    live.sandbox.inject_faults(503, count=1000)
    worker = Worker(live.runtime)
    statuses = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        outcome = worker.run_once()
        if outcome:
            statuses.append(outcome.status)
            if outcome.status == "dead":
                break
        else:
            time.sleep(0.05)
    assert statuses[-1] == "dead"
    assert statuses.count("retry") == live.runtime.settings.max_attempts - 1
    event = live.runtime.store.list_events(["dead"])[0]
    assert "503" in (event.last_error or "")

    live.sandbox.inject_faults(503, count=0)
    live.runtime.queue.replay(event.id)
    assert worker.run_once().status == "applied"
    assert "tierdesk_routed" in live.zendesk.get_ticket(ticket.external_id).tags


def test_unknown_group_in_mapping_is_a_clear_error(live: Live, tmp_path) -> None:
    mapping = tmp_path / "m.yaml"
    text = Path(live.runtime.settings.mappings).read_text().replace('"Key Accounts"', '"No Such Team"')
    mapping.write_text(text)
    runtime = Runtime.from_settings(replace(live.runtime.settings, mappings=str(mapping)))
    connector: ZendeskConnector = runtime.connectors["zendesk"]  # type: ignore[assignment]
    with pytest.raises(UnknownGroup, match="No Such Team"):
        connector.check_groups(runtime.mapping.groups)


ECHO_BODY = '{"ticket": {"id": "{{ticket.id}}", "tags": "{{ticket.tags}}"}}'


def test_our_own_update_never_routes_the_ticket_again(live: Live) -> None:
    """Even with a careless trigger that fires on every update, our write does not loop."""
    secret = live.runtime.settings.zendesk_webhook_secret
    hook = requests.get(
        f"{live.sandbox.base_url}/api/v2/webhooks", auth=(f"{EMAIL}/token", TOKEN), timeout=5
    ).json()["webhooks"][0]
    requests.post(
        f"{live.sandbox.base_url}/api/v2/triggers",
        json={
            "trigger": {
                "title": "notify on every change",
                "conditions": {"all": [{"field": "update_type", "operator": "is", "value": "Change"}]},
                "actions": [
                    {
                        "field": "notification_webhook",
                        "value": [hook["id"], ECHO_BODY],
                    }
                ],
            }
        },
        auth=(f"{EMAIL}/token", TOKEN),
        timeout=5,
    ).raise_for_status()
    live.start_workers()
    requester = _requester(live, "lifecycle", "established")
    ticket = live.zendesk.create_ticket(requester, "loop?", "x")
    live.wait_for_decisions([ticket.external_id])
    deliveries = live.sandbox.wait_for_deliveries(2, timeout=5)  # creation + the echo of our update
    assert len(deliveries) >= 2  # each recorded once answered: had the echo been accepted, it is in the inbox
    wait_idle(live.runtime)  # ... and then moved and worked off before the checks below
    assert secret
    assert len([c for c in _comments(live, ticket.external_id) if not c["public"]]) == 1
    assert live.runtime.store.queue_counts() == {"done": 1}
