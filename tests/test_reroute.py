"""Re-routing against the Zendesk sandbox: a ticket's own arrival never re-routes it, open tickets cost
nothing until solved, and a re-route's decision agrees with itself and with the ticket."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from integration import reroute, segment_service
from integration.core.models import Assignment, Customer, Decision, DecisionRecord, Ticket
from integration.runtime import Runtime
from integration.scheduler import refresh
from integration.store import Store
from integration.web.admin import reports
from integration.worker import Worker
from tests.support import EMAIL, TOKEN, Live


def _put_user(live: Live, user_id: str, fields: dict) -> None:
    requests.put(
        f"{live.sandbox.base_url}/api/v2/users/{user_id}",
        json={"user": {"user_fields": fields}},
        auth=(f"{EMAIL}/token", TOKEN),
        timeout=5,
    ).raise_for_status()


def _notes(live: Live, ticket_id: str) -> list[str]:
    comments = requests.get(
        f"{live.sandbox.base_url}/api/v2/tickets/{ticket_id}/comments",
        auth=(f"{EMAIL}/token", TOKEN),
        timeout=5,
    ).json()["comments"]
    return [c["body"] for c in comments if not c["public"]]


def _plain_customers(runtime: Runtime, count: int) -> list[str]:
    """Zendesk ids of customers the default rule routes (established, tier B or C, no value, risk or vip
    label) who have no ticket on record."""
    store = runtime.store
    with_tickets = set(store.ticket_stats(datetime.now(UTC)))
    found = []
    for key in store.customers_by_segment()[("lifecycle", "established")]:
        labels = {d: a.label for d, a in store.segments_for(key).items()}
        plain = labels.get("tier") != "A" and not any(labels.get(d) for d in ("value", "risk", "vip"))
        if plain and key.startswith("zendesk:") and key not in with_tickets:
            found.append(key.rsplit(":", 1)[1])
    assert len(found) >= count, "the seed has too few plain customers"
    return found[:count]


def _route(live: Live, runtime: Runtime, customer_id: str, subject: str = "Help") -> Ticket:
    """Open a ticket in Zendesk; its trigger's webhook reaches tierdesk; one worker routes it."""
    ticket = live.zendesk.create_ticket(customer_id, subject, "Please help")
    worker = Worker(runtime, name="reroute-test")
    deadline = time.monotonic() + 15
    while runtime.store.get_decision(ticket.key) is None:
        assert time.monotonic() < deadline, f"ticket {ticket.external_id} was not routed"
        if worker.run_once() is None:
            time.sleep(0.05)
    return ticket


def _label(runtime: Runtime, customer_id: str, dimension: str) -> str | None:
    return runtime.store.segments_for(f"zendesk:user:{customer_id}")[dimension].label


# -- how open tickets count ------------------------------------------------------------------------------


def test_open_tickets_add_no_cost_to_serve_until_solved(tmp_path: Path, live: Live) -> None:
    store = Store(tmp_path / "costs.db")
    now = datetime.now(UTC)
    store.upsert_customers(
        [
            Customer(
                "zendesk", "1", email="a@example.com", attributes={"revenue_12m": 100, "service_cost_12m": 10}
            )
        ]
    )
    store.upsert_tickets(
        Ticket("zendesk", str(n), requester_id="1", status=status, created_at=now - timedelta(days=days))
        for n, (status, days) in enumerate(
            [("open", 1), ("new", 0), ("pending", 2), ("solved", 3), ("closed", 200), ("solved", 400)]
        )
    )
    stats = store.ticket_stats(now)["zendesk:user:1"]
    assert (stats.tickets_365d, stats.tickets_solved_365d, stats.tickets_total) == (5, 2, 6)
    mapping = live.runtime.mapping  # cost_per_ticket 25, cost_attributes [service_cost_12m]
    customer = store.get_customer("zendesk:user:1")
    assert customer is not None
    one = segment_service.customer_features(customer, None, stats, mapping, now)
    assert one["cost_to_serve"] == 2 * 25 + 10  # the solved and the closed ticket of the last year
    assert one["profit_12m"] == 100 - 60
    # the recompute's columnar path agrees
    population, _ = segment_service.load_population(store, mapping, now)
    assert population.numeric("cost_to_serve")[0] == 60
    assert population.numeric("tickets_solved_365d")[0] == 2


def test_a_customer_near_the_profit_boundary_is_not_lowered_by_their_own_ticket(live: Live) -> None:
    runtime = live.runtime
    (customer_id,) = _plain_customers(runtime, 1)
    _put_user(live, customer_id, {"revenue_12m": 1_000, "service_cost_12m": 990})  # profit 10
    refresh(runtime)
    assert _label(runtime, customer_id, "value") is None
    ticket = _route(live, runtime, customer_id)
    routed = runtime.store.get_decision(ticket.key)
    assert routed is not None
    assert (routed.outcome, routed.priority) == ("applied", "normal")

    counts = refresh(runtime)  # pulls the new ticket: it is open, so it costs nothing yet
    assert counts["rerouted_zendesk"] == 0
    assert _label(runtime, customer_id, "value") is None
    assert live.zendesk.get_ticket(ticket.external_id).priority == "normal"
    assert runtime.store.get_decision(ticket.key).outcome == "applied"

    # solved, it costs: the customer is now loss-making, and the solved ticket is left alone
    live.zendesk.http.put(f"/api/v2/tickets/{ticket.external_id}", {"ticket": {"status": "solved"}})
    assert refresh(runtime)["rerouted_zendesk"] == 0
    assert _label(runtime, customer_id, "value") == "negative"  # 1,000 - (25 + 990) < 0
    assert runtime.store.get_decision(ticket.key).outcome == "applied"


def test_the_ticket_that_makes_a_customer_frustrated_is_routed_so_and_their_others_follow(live: Live) -> None:
    runtime = live.runtime
    (customer_id,) = _plain_customers(runtime, 1)
    refresh(runtime)  # the scheduler's first run, as at start
    first, second = (_route(live, runtime, customer_id, f"Problem {n}") for n in (1, 2))
    assert [runtime.store.get_decision(t.key).priority for t in (first, second)] == ["normal", "normal"]
    third = _route(live, runtime, customer_id, "Problem 3")  # tickets_30d counts it: 3 >= 3
    decision = runtime.store.get_decision(third.key)
    assert decision.segments["risk"]["label"] == "frustrated"
    assert (decision.outcome, decision.priority, decision.group_name) == ("applied", "high", "Retention")

    counts = refresh(runtime)  # the label moved at webhook time: the customer's older tickets follow
    assert counts["rerouted_zendesk"] == 2
    for ticket in (first, second):
        assert runtime.store.get_decision(ticket.key).outcome == "rerouted"
        assert live.zendesk.get_ticket(ticket.external_id).priority == "high"
    assert runtime.store.get_decision(third.key).outcome == "applied"  # routed with these labels already
    assert len(_notes(live, third.external_id)) == 1
    assert refresh(runtime)["rerouted_zendesk"] == 0


# -- what a re-route records -----------------------------------------------------------------------------


def _assert_agrees(live: Live, decision: DecisionRecord, ticket_id: str) -> None:
    """The recorded decision matches the ticket and its own reasons, field by field."""
    ticket = live.zendesk.get_ticket(ticket_id)
    assert decision.priority == ticket.priority
    assert ticket.group_id == str(live.zendesk.group_id(decision.group_name or ""))
    assert {t for t in ticket.tags if t.startswith("tierdesk_")} == set(decision.tags)
    priority, sla, group = decision.reasons[:3]
    assert priority.startswith(f"priority {decision.priority}: ")
    assert sla.startswith(f"sla {decision.sla}: ")
    assert group.startswith(f"group {decision.group_name}: ")
    assert decision.note == _notes(live, ticket_id)[-1]
    assert decision.latency_ms is None  # no webhook started it
    assert reports.decision_dict(decision)["latency_ms"] is None


def test_a_priority_reroute_records_what_the_ticket_carries_and_why(live: Live) -> None:
    runtime = live.runtime  # TIERDESK_REROUTE=priority, the default
    (customer_id,) = _plain_customers(runtime, 1)
    ticket = _route(live, runtime, customer_id)
    before = runtime.store.get_decision(ticket.key)
    assert before.latency_ms is not None
    _put_user(live, customer_id, {"revenue_12m": 0, "service_cost_12m": 90_000})
    assert refresh(runtime)["rerouted_zendesk"] == 1
    after = runtime.store.get_decision(ticket.key)
    assert after.outcome == "rerouted"
    assert after.segments["value"]["label"] == "negative"
    _assert_agrees(live, after, ticket.external_id)
    assert after.priority == "low"
    assert after.reasons[0] == "priority low: routing rule 6 (value is negative)"
    assert after.group_name == before.group_name == "General"  # the priority mode keeps the group...
    assert "the rules now say Self-Service" in after.reasons[2]  # ...and says what the rules would pick
    assert "tierdesk_value_negative" in after.reasons[3]  # the tags stay too, and the reason says so
    assert after.tags == before.tags
    assert after.received_at == before.received_at
    assert "- value: none -> negative" in after.note


def test_an_all_reroute_records_the_new_group_sla_and_tags(live: Live) -> None:
    runtime = Runtime.from_settings(replace(live.runtime.settings, reroute="all"))
    (customer_id,) = _plain_customers(runtime, 1)
    ticket = _route(live, runtime, customer_id)
    _put_user(live, customer_id, {"revenue_12m": 0, "service_cost_12m": 90_000})
    assert refresh(runtime)["rerouted_zendesk"] == 1
    after = runtime.store.get_decision(ticket.key)
    _assert_agrees(live, after, ticket.external_id)
    assert (after.priority, after.group_name) == ("low", "Self-Service")
    assert "tierdesk_value_negative" in after.tags
    assert len(after.reasons) == 3


def test_a_priority_an_agent_raised_is_kept_and_the_decision_says_so() -> None:
    previous = DecisionRecord(
        "zendesk:ticket:1", 1, "zendesk:user:1", "applied", "normal", "standard", "General",
        ("tierdesk_sla_standard", "tierdesk_routed"), "", (), {"value": {"label": None}}, None, 1.0, 2.0,
    )  # fmt: skip
    new = Decision(
        priority="low",
        sla="standard",
        group="Self-Service",
        tags=("tierdesk_value_negative", "tierdesk_sla_standard", "tierdesk_routed"),
        reasons=(
            "priority low: routing rule 6 (value is negative)",
            "sla standard: default",
            "group Self-Service: routing rule 6 (value is negative)",
        ),
    )
    kept = reroute.Plan(None, None, (), (), kept_agent_priority=True)
    changes = reroute.moved_labels(previous.segments, {"value": Assignment("value", "negative")})
    assert changes == [("value", None, "negative")]
    recorded = reroute.outcome("priority", previous, new, "high", kept, changes)
    assert recorded.priority == "high"
    assert recorded.reasons[0] == (
        "priority high: kept, an agent set it above normal by hand (the rules now say low)"
    )
    assert "Priority kept at high: an agent set it higher by hand" in recorded.note


# -- the demo and the admin count re-routes alike -------------------------------------------------------


@pytest.mark.slow
def test_the_demo_prints_the_reroute_count_the_admin_shows() -> None:
    from integration.cli.demo import run

    lines: list[str] = []
    admin: dict[str, object] = {}

    def echo(line: str) -> None:
        lines.append(line)
        token = re.search(r"Bearer ([^\s\";)]+)", line)
        if token:  # the admin is still up: ask its API, as a person would after the demo
            base = next(m.group(1) for x in lines if (m := re.match(r"Admin: (http://[\d.:]+)/admin/", x)))
            answer = requests.get(
                f"{base}/api/decisions?limit=500",
                headers={"Authorization": f"Bearer {token.group(1)}"},
                timeout=10,
            ).json()
            admin["listed"] = sum(d["outcome"] == "rerouted" for d in answer["decisions"])
            admin["counted"] = answer.get("outcomes", {}).get("rerouted", 0)

    assert run(echo=echo, serve=False) == 0  # the full demo: 1,000 customers, 50 tickets
    printed = next(m for x in lines if (m := re.search(r"\((\d+) ticket\(s\) re-routed", x)))
    assert int(printed.group(1)) == admin["listed"] == admin["counted"] == 1
