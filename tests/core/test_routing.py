"""Routing decisions: first rule wins per field, defaults, tags, reasons and the agent's note."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from integration.core.mapping_file import parse_mapping
from integration.core.models import Assignment, Customer, Decision, TicketStats
from integration.core.routing import decide, segment_tags, sla_tag, tag_for
from integration.core.segments import classify_all, features
from tests.support import ROOT

DEFAULT_YAML = ROOT / "mappings" / "default.yaml"

MAPPING = parse_mapping(
    textwrap.dedent(
        """
        segments:
          vip:
            method: manual
            tags: [vip]
          tier:
            method: rules
            rules:
              - {when: "x >= 8", then: A}
              - {when: "x >= 5", then: B}
            default: C
          risk:
            method: rules
            rules:
              - {when: "tickets_30d >= 3", then: frustrated}
        routing:
          - when: {vip: true}
            set: {priority: urgent}
          - when: {tier: A}
            set: {priority: high, sla: gold, group: "Senior Support"}
          - when: {risk: frustrated}
            set: {priority: high, group: Retention}
          - when: "tier == 'B' and tickets_30d >= 1"
            set: {sla: silver}
          - when: {risk: false, tier: [B, C]}
            set: {group: "Self Service"}
        default: {priority: normal, sla: standard, group: General}
        """
    ),
    "routing-test.yaml",
)


def labels(vip=None, tier=None, risk=None, reasons=("because",)) -> dict[str, Assignment]:
    given = {"vip": vip, "tier": tier, "risk": risk}
    return {
        dim: Assignment(dim, label, reasons if label else ())
        for dim, label in given.items()
        if label is not None
    }


def test_each_field_goes_to_the_first_rule_that_sets_it():
    decision = decide(labels(vip="vip", tier="A"), MAPPING)
    assert (decision.priority, decision.sla, decision.group) == ("urgent", "gold", "Senior Support")
    assert decision.reasons == (
        "priority urgent: routing rule 1 (vip has a label)",
        "sla gold: routing rule 2 (tier is A)",
        "group Senior Support: routing rule 2 (tier is A)",
    )


@pytest.mark.parametrize(
    ("given", "feats", "expected"),
    [
        (labels(tier="C"), None, ("normal", "standard", "Self Service")),
        (labels(tier="B", risk="frustrated"), {"tickets_30d": 4}, ("high", "silver", "Retention")),
        (labels(tier="B"), None, ("normal", "standard", "Self Service")),  # tickets_30d missing
        (labels(tier="B"), {"tickets_30d": 1}, ("normal", "silver", "Self Service")),
        (labels(tier="A", risk="frustrated"), None, ("high", "gold", "Senior Support")),
        ({}, None, ("normal", "standard", "General")),
        (labels(risk="frustrated"), None, ("high", "standard", "Retention")),
    ],
)
def test_decisions(given, feats, expected):
    decision = decide(given, MAPPING, feats)
    assert (decision.priority, decision.sla, decision.group) == expected


def test_condition_strings_see_labels_not_features_of_the_same_name():
    decision = decide(labels(tier="B"), MAPPING, {"tier": "A", "tickets_30d": 2})
    assert decision.sla == "silver"


def test_defaults_say_so():
    decision = decide({}, MAPPING)
    assert decision.reasons == (
        "priority normal: default",
        "sla standard: default",
        "group General: default",
    )
    assert decision.note == (
        "tierdesk routed this ticket\n"
        "Priority: normal · SLA: standard · Group: General\n"
        "Why: default (no routing rule matched)\n"
        "Segments: none"
    )
    assert decision.tags == ("tierdesk_sla_standard", "tierdesk_routed")


def test_a_field_nobody_sets_is_left_alone():
    m = parse_mapping(
        "segments:\n  vip: {method: manual, tags: [vip]}\n"
        "routing:\n  - {when: {vip: true}, set: {priority: urgent}}\n",
        "m.yaml",
    )
    decision = decide({}, m)
    assert decision == Decision(
        priority=None,
        sla=None,
        group=None,
        tags=("tierdesk_routed",),
        note="tierdesk routed this ticket\nNo field changed\nSegments: none",
        reasons=(
            "priority: left as it is (no rule or default sets it)",
            "sla: left as it is (no rule or default sets it)",
            "group: left as it is (no rule or default sets it)",
        ),
    )


def test_tags_are_segment_tags_then_sla_then_the_routed_marker():
    decision = decide(labels(vip="vip", tier="A", risk="frustrated"), MAPPING)
    assert decision.tags == (
        "tierdesk_vip_vip",
        "tierdesk_tier_a",
        "tierdesk_risk_frustrated",
        "tierdesk_sla_gold",
        "tierdesk_routed",
    )


def test_tag_spelling():
    assert tag_for("tier", "A", MAPPING) == "tierdesk_tier_a"
    assert tag_for("value", "Key Account+", MAPPING) == "tierdesk_value_key_account_"
    assert sla_tag("Gold 24h", MAPPING) == "tierdesk_sla_gold_24h"
    custom = parse_mapping("segments: {}\ntags: {prefix: td, routed: td_done}\n")
    assert tag_for("tier", "B", custom) == "td_tier_b"
    assert sla_tag("gold", custom) == "td_sla_gold"
    assert decide({}, custom).tags == ("td_done",)
    given = labels(vip="vip", risk="frustrated")
    assert segment_tags(given, MAPPING) == ("tierdesk_vip_vip", "tierdesk_risk_frustrated")


def test_note_names_each_rule_and_the_labelled_segments():
    given = {
        "vip": Assignment("vip", "vip", ("tag vip in Zendesk",)),
        "tier": Assignment("tier", "A", ("x 9 >= 8",)),
        "risk": Assignment("risk", None, ("no rule matched (tickets_30d 0)",)),
    }
    decision = decide(given, MAPPING, {"x": 9, "tickets_30d": 0})
    assert decision.note == (
        "tierdesk routed this ticket\n"
        "Priority: urgent · SLA: gold · Group: Senior Support\n"
        "Why:\n"
        "- priority: routing rule 1 (vip has a label)\n"
        "- SLA, group: routing rule 2 (tier is A)\n"
        "Segments:\n"
        "- vip: tag vip in Zendesk\n"
        "- tier A: x 9 >= 8"
    )


def test_note_with_one_rule_is_one_line_of_why():
    given = {"tier": Assignment("tier", "A", ("x 9 >= 8", "second reason"))}
    note = decide(given, MAPPING).note
    assert note.splitlines()[1:] == [
        "Priority: high · SLA: gold · Group: Senior Support",
        "Why: routing rule 2 (tier is A)",
        "Segments:",
        "- tier A: x 9 >= 8; second reason",
    ]


def test_default_mapping_routes_typical_customers():
    m = parse_mapping(DEFAULT_YAML.read_text(), "mappings/default.yaml")
    now = datetime(2025, 6, 1, tzinfo=UTC)
    people = []
    for i in range(30):
        people.append(
            (
                Customer(
                    "zendesk",
                    str(i),
                    email=f"u{i}@example.com",
                    created_at=now - timedelta(days=60 + 25 * (i * 7 % 30)),
                    attributes={
                        "revenue_12m": 2_000 + 700 * i,
                        "referrals": i % 3,
                        "on_time_payment_rate": 0.6 + (i * 11 % 30) / 100,
                    },
                ),
                TicketStats(tickets_total=1),
            )
        )
    specials = [
        (Customer("zendesk", "vip", tags=("vip",), created_at=now - timedelta(days=90)), None),
        (
            Customer(
                "zendesk",
                "best",
                created_at=now - timedelta(days=2000),
                attributes={"revenue_12m": 200_000, "referrals": 5, "on_time_payment_rate": 1.0},
            ),
            None,
        ),
        (
            Customer(
                "zendesk",
                "angry",
                created_at=now - timedelta(days=10),
                attributes={"revenue_12m": 3_000},
            ),
            TicketStats(tickets_30d=4, tickets_90d=4, tickets_total=4),
        ),
        (
            Customer(
                "zendesk", "costly", created_at=now - timedelta(days=400), attributes={"revenue_12m": 50}
            ),
            TicketStats(tickets_total=10),
        ),
    ]
    rows = [(c, features(c, None, stats or TicketStats(), now, m.features)) for c, stats in people + specials]
    _, result = classify_all(rows, m)
    feats = {c.external_id: f for c, f in rows}

    def route(external_id):
        decision = decide(result[f"zendesk:user:{external_id}"], m, feats[external_id])
        return decision.priority, decision.sla, decision.group

    assert route("vip") == ("urgent", "platinum", "Key Accounts")
    assert route("best") == ("high", "gold", "Key Accounts")
    assert route("angry") == ("high", "standard", "Retention")
    assert route("costly") == ("low", "standard", "Self-Service")
    assert route("0") == ("normal", "standard", "General")

    note = decide(result["zendesk:user:best"], m, feats["best"]).note
    assert note.startswith(
        "tierdesk routed this ticket\n"
        "Priority: high · SLA: gold (first response 4h, resolution 1d) · Group: Key Accounts\n"
        "Why: routing rule 2 (value is key)\n"
        "Segments:\n"
        "- tier A: score 10 >= 7 (revenue_12m 10/10 x 0.40, tenure_days 10/10 x 0.20, "
        "referrals 10/10 x 0.20, on_time_payment_rate 10/10 x 0.20)\n"
        "- value key: profit_12m 200,000 is in the top 20% (cut-off "
    )
    assert note.endswith("- lifecycle loyal: tenure_days 2,000 >= 730 (2y)")
    costly = decide(result["zendesk:user:costly"], m, feats["costly"])
    assert "- value negative: profit_12m -200 < 0" in costly.note
    assert costly.tags == (
        "tierdesk_tier_c",
        "tierdesk_value_negative",
        "tierdesk_lifecycle_established",
        "tierdesk_sla_standard",
        "tierdesk_routed",
    )
