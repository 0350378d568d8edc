"""The columnar segment engine: RFM, deny lists and overrides, organization-level dimensions, SLA
targets, the vectorised condition language, batch == single customer, the store path and the
data-quality report. Expected answers are worked out by hand in the comments."""

from __future__ import annotations

import json
import logging
import random
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integration import segment_service
from integration.core.mapping import MappingError, parse_expression
from integration.core.mapping_file import parse_mapping
from integration.core.models import Assignment, Customer, Organization, Ticket, TicketStats
from integration.core.routing import decide
from integration.core.segments import (
    CustomerTable,
    Fitted,
    OrganizationTable,
    Population,
    classify,
    combine_organizations,
    condition_mask,
    customer_population,
    features,
    fit,
    ntile_cutoffs,
    organization_population,
    quality_report,
    segment,
)
from integration.store import Store
from tests.support import NAMES, ROOT, conditions, reference, render, values

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DEFAULT_YAML = ROOT / "mappings" / "default.yaml"


def mapping_of(text: str):
    return parse_mapping(textwrap.dedent(text).lstrip("\n"), "test.yaml")


def customer(external_id: str = "1", **kwargs) -> Customer:
    return Customer(source="zendesk", external_id=external_id, **kwargs)


def population_of(rows: list[dict], mapping, who: dict | None = None) -> Population:
    people = [customer(str(i), **(who or {}).get(i, {})) for i in range(len(rows))]
    return Population.from_features(list(zip(people, rows, strict=True)), mapping.inputs())


# --------------------------------------------------------------------------------------------------
# RFM

RFM = """
segments:
  rfm:
    method: rfm
    default: unknown
"""


def test_rfm_quintiles_and_the_usual_groups_on_ten_customers():
    m = mapping_of(RFM)
    # customer i: bought i+1 days ago, 10-i purchases, revenue 100 x (i+1). Ten distinct values put
    # two customers in each quintile: R 5 for 1-2 days, F 5 for 10-9 purchases, M 5 for 900-1000.
    rows = [
        {"last_purchase_days": i + 1, "purchases_12m": 10 - i, "revenue_12m": 100 * (i + 1)}
        for i in range(10)
    ]
    rows.append({"revenue_12m": 50})  # never bought: no recency, no purchases
    seg = segment(population_of(rows, m), m)
    assert seg.fitted.quintiles["rfm"]["r"] == (-8, -6, -4, -2)  # on minus days: fewer days rank higher
    assert seg.fitted.quintiles["rfm"]["f"] == (3, 5, 7, 9)
    assert seg.label_names("rfm") == [
        "champions",  # R5 F5
        "champions",
        "loyal",  # R4 F4
        "loyal",
        "need_attention",  # R3 F3
        "need_attention",
        "hibernating",  # R2 F2
        "hibernating",
        "hibernating",  # R1 F1
        "hibernating",
        "unknown",
    ]
    assert seg.assignment(0, "rfm").reasons == (
        "RFM 5-5-1 (last_purchase_days 1 -> R 5, purchases_12m 10 -> F 5, revenue_12m 100 -> M 1)",
        "r 5 >= 5 and f 5 >= 4",
    )
    assert seg.assignment(10, "rfm") == Assignment(
        "rfm", "unknown", ("last_purchase_days is missing", "purchases_12m is missing")
    )


def test_rfm_default_groups_cover_every_score_pair_exactly_once():
    m = mapping_of(RFM)
    dim = m.dimension("rfm")
    for r in range(1, 6):
        for f in range(1, 6):
            held = [group.then for group in dim.groups if group.when({"r": r, "f": f, "m": 3})]
            assert len(held) >= 1, (r, f)
            # the first that holds wins; the map is also a partition: exactly one holds
            assert len(held) == 1, (r, f, held)


def test_rfm_group_map_is_configurable_and_checked():
    m = mapping_of(
        """
        segments:
          rfm:
            method: rfm
            recency: days_since_order
            frequency: orders
            monetary: spend
            groups:
              best: "r + f"
        """.replace('"r + f"', '"r >= 4 and m >= 4"')
    )
    dim = m.dimension("rfm")
    assert (dim.recency, dim.frequency, dim.monetary) == ("days_since_order", "orders", "spend")
    assert dim.labels == ("best",)
    with pytest.raises(MappingError) as err:
        mapping_of(
            """
            segments:
              rfm:
                method: rfm
                groups:
                  best: "revenue >= 4"
            """
        )
    assert str(err.value) == (
        "test.yaml:5: segments.rfm.groups.best: unknown name 'revenue' in an RFM group (use r, f and m: the "
        "scores 1-5)"
    )


# --------------------------------------------------------------------------------------------------
# Manual: deny lists and overrides

MANUAL = """
segments:
  tier:
    method: rules
    rules:
      - {when: "x >= 5", then: A}
      - {when: "x >= 1", then: B}
    default: C
  vip:
    method: manual
    tags: [vip]
    domains: [acme.com]
    deny: {emails: [intern@acme.com]}
    overrides: {tier: A}
  staff:
    method: manual
    label: staff
    domains: [ourco.example]
    overrides: {tier: null, vip: null}
"""


def test_deny_beats_allow_and_overrides_win_over_computed_labels():
    m = mapping_of(MANUAL)
    rows = [{"x": 2}, {"x": 7}, {"x": 9}, {"x": 0}]
    who = {
        0: {"email": "ann@acme.com"},
        1: {"email": "intern@acme.com", "tags": ("vip",)},
        2: {"email": "bob@ourco.example", "tags": ("vip",)},
        3: {"email": "cy@else.example"},
    }
    seg = segment(population_of(rows, m, who), m)
    ann, intern, bob, cy = (seg.assignments(i) for i in range(4))
    assert ann["vip"] == Assignment("vip", "vip", ("email domain acme.com is on the VIP list",))
    assert ann["tier"] == Assignment(
        "tier", "A", ("set by vip (email domain acme.com is on the VIP list)", "B without it: x 2 >= 1")
    )
    assert intern["vip"] == Assignment(
        "vip",
        None,
        (
            "email intern@acme.com is on the VIP deny list",
            "the deny list wins over: email domain acme.com is on the VIP list; tag vip in Zendesk",
        ),
    )
    assert intern["tier"] == Assignment("tier", "A", ("x 7 >= 5",))  # computed, not forced
    # bob carries the vip tag, so vip (first in the file) sets his tier; staff then removes his vip label
    assert bob["staff"].label == "staff"
    assert bob["tier"].label == "A"
    assert bob["tier"].reasons[0] == "set by vip (tag vip in Zendesk)"
    assert bob["vip"] == Assignment(
        "vip",
        None,
        (
            "set by staff (email domain ourco.example is on the staff list)",
            "vip without it: tag vip in Zendesk",
        ),
    )
    assert cy["tier"] == Assignment("tier", "C", ("no rule matched (x 0)",))
    assert seg.distribution()["tier"] == {"A": 3, "C": 1}


@pytest.mark.parametrize(
    ("snippet", "line", "key", "words"),
    [
        ("overrides: {tierr: A}", 8, "segments.vip.overrides.tierr", "unknown dimension 'tierr'"),
        ("overrides: {tier: Z}", 8, "segments.vip.overrides.tier", "unknown label 'Z' for dimension tier"),
        ("overrides: {vip: null}", 8, "segments.vip.overrides.vip", "cannot override itself"),
        ("deny: {email: [a@b.c]}", 8, "segments.vip.deny.email", "did you mean 'emails'"),
        ("deny: {emails: [nobody]}", 8, "segments.vip.deny.emails[0]", "not an email address"),
    ],
)
def test_manual_configuration_errors(snippet, line, key, words):
    text = f"""
    segments:
      tier:
        method: rules
        rules: [{{when: "x >= 1", then: A}}]
      vip:
        method: manual
        ids: [1]
        {snippet}
    """
    with pytest.raises(MappingError) as err:
        mapping_of(text)
    assert (err.value.line, err.value.key) == (line, key)
    assert words in err.value.reason


# --------------------------------------------------------------------------------------------------
# Organization-level dimensions

ACCOUNT = """
segments:
  account:
    method: percentile
    level: organization
    metric: revenue_12m
    bands: {key: "top 34%"}
    default: standard
"""


def tables() -> tuple[CustomerTable, OrganizationTable]:
    keys = [f"zendesk:user:{i}" for i in range(6)]
    orgs = ["zendesk:org:a", "zendesk:org:a", "zendesk:org:b", "zendesk:org:c", None, "zendesk:org:c"]
    customers = CustomerTable(
        keys=keys,
        sources=["zendesk"] * 6,
        external_ids=[str(i) for i in range(6)],
        emails=[None] * 6,
        tags=[()] * 6,
        organization_keys=orgs,
        created_at=np.full(6, np.nan),
        attributes={"revenue_12m": [100, 200, 1000, 5000, 7, None]},
        stats={"tickets_365d": np.array([1, 0, 0, 0, 0, 2])},
    )
    organizations = OrganizationTable(
        keys=["zendesk:org:a", "zendesk:org:b", "zendesk:org:c"],
        sources=["zendesk"] * 3,
        external_ids=["a", "b", "c"],
        names=["Alpha", "Beta", None],
        domains=[("alpha.example",), (), ()],
        tags=[(), (), ()],
        created_at=np.array([NOW.timestamp() - 86_400 * 10, np.nan, np.nan]),
        attributes={"revenue_12m": [None, None, 50]},  # c reports its own revenue: it wins over the sum
    )
    return customers, organizations


def test_organization_dimension_is_computed_per_organization_and_given_to_users():
    m = mapping_of(ACCOUNT)
    customers, organizations = tables()
    people = customer_population(customers, m, NOW, organizations)
    orgs = organization_population(organizations, people, m, NOW)
    # revenue: a = 100 + 200 = 300, b = 1000, c = its own 50; top 34% of 3 -> k = 2 -> cut-off 300
    assert orgs.numeric("revenue_12m").tolist() == [300, 1000, 50]
    assert orgs.numeric("users").tolist() == [2, 1, 2]
    assert orgs.numeric("tenure_days").tolist()[0] == 10
    assert np.isnan(orgs.numeric("tenure_days")[1])  # no creation date and no user with one
    seg = segment(people, m, organizations=orgs)
    assert seg.fitted.organization is not None
    assert seg.fitted.organization.bands == {"account": {"key": 300}}
    assert seg.organizations is not None
    assert seg.organizations.label_names("account") == ["key", "key", "standard"]
    assert seg.label_names("account") == ["key", "key", "key", "standard", None, "standard"]
    assert seg.assignment(0, "account").reasons == (
        "organization Alpha: revenue_12m 300 is in the top 34% (cut-off 300)",
    )
    assert seg.assignment(3, "account").reasons == ("organization c: revenue_12m 50 is in none of the bands",)
    assert seg.assignment(4, "account") == Assignment("account", None, ("not in an organization",))

    # the webhook path: one customer, with the organization's stored assignment handed in
    stored = seg.organizations.assignments(0)
    single = classify(
        customer("0", organization_id="a"),
        {"revenue_12m": 100},
        Fitted.from_dict(json.loads(json.dumps(seg.fitted.to_dict()))),
        m,
        organizations={"account": [("organization Alpha", stored["account"])]},
    )
    assert single == {"account": seg.assignment(0, "account")}


def test_users_in_several_organizations_take_the_best_or_the_first():
    m = mapping_of(ACCOUNT)
    dim = m.dimension("account")
    standard = (
        "organization X",
        Assignment("account", "standard", ("revenue_12m 5 is in none of the bands",)),
    )
    key = (
        "organization Y",
        Assignment("account", "key", ("revenue_12m 900 is in the top 34% (cut-off 300)",)),
    )
    assert combine_organizations(dim, [standard, key]) == Assignment(
        "account", "key", ("organization Y: revenue_12m 900 is in the top 34% (cut-off 300)",)
    )
    first = mapping_of(
        ACCOUNT.replace("    level: organization", "    level: organization\n    multiple: first")
    )
    assert combine_organizations(first.dimension("account"), [standard, key]).label == "standard"
    assert combine_organizations(dim, []).reasons == ("not in an organization",)


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        ("level: organization", "level: company", "segments.account.level", "customer or organization"),
        (
            "level: organization",
            "level: organization\n    multiple: most",
            "segments.account.multiple",
            "best",
        ),
        ("level: organization", "multiple: first", "segments.account.multiple", "only applies"),
    ],
)
def test_level_errors(old, new, key, words):
    with pytest.raises(MappingError) as err:
        mapping_of(ACCOUNT.replace(old, new))
    assert err.value.key == key
    assert words in err.value.reason


def test_organizations_have_no_emails():
    with pytest.raises(MappingError, match="organizations have no email address"):
        mapping_of(
            """
            segments:
              key_org:
                method: manual
                level: organization
                emails: [a@b.example]
            """
        )


# --------------------------------------------------------------------------------------------------
# SLA targets

SLAS = """
segments:
  tier: {method: rules, rules: [{when: "x >= 1", then: A}]}
routing:
  - when: {tier: A}
    set: {sla: gold}
default: {sla: basic}
slas:
  gold: {first_response: 4h, resolution: 1d 12h}
  platinum: {first_response: 30m}
"""


def test_sla_targets_fill_the_decision_and_the_note():
    m = mapping_of(SLAS)
    assert m.sla_targets["gold"].first_response_minutes == 240
    assert m.sla_targets["gold"].resolution_minutes == 2160
    assert m.sla_targets["platinum"].resolution_minutes is None
    gold = decide({"tier": Assignment("tier", "A", ("x 2 >= 1",))}, m)
    assert (gold.sla, gold.first_response_minutes, gold.resolution_minutes) == ("gold", 240, 2160)
    assert "SLA: gold (first response 4h, resolution 1d 12h)" in gold.note
    basic = decide({}, m)  # routed to an SLA without targets: allowed, no targets
    assert (basic.sla, basic.first_response_minutes, basic.resolution_minutes) == ("basic", None, None)
    assert "SLA: basic" in basic.note
    assert "SLA: basic (" not in basic.note


@pytest.mark.parametrize(
    ("entry", "key", "words"),
    [
        ("gold: {first_response: 4}", "slas.gold.first_response", "must be text like 30m"),
        ("gold: {first_response: 4 hours}", "slas.gold.first_response", "must look like 30m"),
        ("gold: {first_response: 0h}", "slas.gold.first_response", "above 0"),
        ("gold: {first_response: 1.5m}", "slas.gold.first_response", "whole number of minutes"),
        ("gold: {first_response: 2d, resolution: 1d}", "slas.gold.first_response", "longer than resolution"),
        ("gold: {first_respons: 1h}", "slas.gold.first_respons", "did you mean 'first_response'"),
        ("gold: {}", "slas.gold", "at least one"),
    ],
)
def test_sla_errors_name_file_line_and_key(entry, key, words):
    text = SLAS.split("slas:")[0] + "slas:\n  " + entry + "\n"
    with pytest.raises(MappingError) as err:
        mapping_of(text)
    assert err.value.line == 8
    assert err.value.key == key
    assert words in err.value.reason
    assert str(err.value).startswith(f"test.yaml:8: {key}: ")


# --------------------------------------------------------------------------------------------------
# The condition language over columns == the scalar evaluator


numbers_only = st.one_of(st.none(), st.integers(-30, 3_000_000), st.floats(-40, 40))


@settings(max_examples=300, deadline=None)
@given(
    tree=conditions,
    rows=st.lists(
        st.fixed_dictionaries({}, optional={name: st.one_of(values, numbers_only) for name in NAMES}),
        min_size=1,
        max_size=8,
    ),
    numeric=st.booleans(),
)
def test_vectorised_conditions_match_the_reference_evaluator(tree, rows, numeric):
    if numeric:  # whole columns of numbers: the numpy path rather than the row-by-row fallback
        rows = [{k: v for k, v in row.items() if v is None or type(v) in (int, float)} for row in rows]
    expr = parse_expression(render(tree))
    pop = Population.from_features([(None, row) for row in rows], NAMES)
    got = condition_mask(expr.tree, pop).tolist()
    assert got == [reference(tree, row) for row in rows], render(tree)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(st.integers(-5, 5), st.floats(-100, 100)), min_size=1, max_size=80),
    st.sampled_from([4, 5, 10]),
)
def test_ntile_scores_are_monotone_complete_and_order_free(values_, parts):
    ordered = sorted(values_)
    cuts = ntile_cutoffs(ordered, parts)
    assert list(cuts) == sorted(cuts)
    shuffled = list(values_)
    random.Random(3).shuffle(shuffled)
    assert ntile_cutoffs(sorted(shuffled), parts) == cuts
    scores = [1 + int(np.searchsorted(cuts, v, side="right")) for v in ordered]
    assert all(1 <= s <= parts for s in scores)
    assert scores == sorted(scores)  # monotone: more never scores lower
    for v, s in zip(ordered, scores, strict=True):  # the documented rank: 1 + floor(parts x rank)
        rank = (sum(x < v for x in ordered) + sum(x == v for x in ordered) / 2) / len(ordered)
        assert s == min(parts, 1 + int(parts * rank + 1e-12))


# --------------------------------------------------------------------------------------------------
# Batch == one customer, through the store


def seeded_store(tmp_path: Path, size: int = 60, seed: int = 5) -> Store:
    rng = random.Random(seed)
    store = Store(tmp_path / "t.db")
    orgs = [
        Organization("zendesk", f"o{i}", name=f"Org {i}", attributes={"employees": rng.randint(5, 500)})
        for i in range(6)
    ]
    people = []
    tickets = []
    for i in range(size):
        revenue = None if i % 13 == 0 else round(rng.lognormvariate(8, 1.5), 2) * (0 if i % 7 == 0 else 1)
        attributes = {
            "revenue_12m": revenue,
            "referrals": rng.choice([0, 0, 0, 1, 2, 5]),
            "on_time_payment_rate": None if i % 11 == 0 else round(rng.random(), 2),
            "service_cost_12m": rng.choice([0, 10.5, 200]),
            "last_purchase_at": None
            if i % 5 == 0
            else (NOW - timedelta(days=rng.uniform(0, 400))).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "purchases_12m": rng.randint(0, 12),
        }
        people.append(
            Customer(
                "zendesk",
                str(i),
                email=f"u{i}@{'vip-customer' if i == 3 else 'example'}.example",
                organization_id=None if i % 4 == 0 else f"o{i % 6}",
                tags=("vip",) if i == 8 else (),
                created_at=None
                if i == 9
                else NOW - timedelta(days=rng.uniform(1, 2500), seconds=rng.randint(0, 9)),
                attributes=attributes,
            )
        )
        for t in range(rng.choice([0, 0, 1, 2, 6])):
            tickets.append(
                Ticket(
                    "zendesk",
                    f"{i}-{t}",
                    requester_id=str(i),
                    status="solved",
                    satisfaction=rng.choice(["good", "bad", None]),
                    reopens=rng.choice([0, 0, 1]),
                    created_at=NOW - timedelta(days=rng.uniform(0, 200)),
                )
            )
    store.upsert_organizations(orgs)
    store.upsert_customers(people)
    store.upsert_tickets(tickets)
    return store


def shop_mapping():
    text = DEFAULT_YAML.read_text().replace(
        "\n# Routing:", RFM.replace("segments:\n", "") + "\n# Routing:", 1
    )
    return parse_mapping(text, "default+rfm.yaml")


def test_recompute_then_one_customer_gives_identical_labels_and_reasons(tmp_path):
    store = seeded_store(tmp_path)
    m = shop_mapping()
    report = segment_service.recompute(store, m, "digest-1", NOW)
    assert report.customers == 60
    assert report.changes > 0
    assert sum(report.distribution["tier"].values()) == 60
    for i in range(60):
        key = f"zendesk:user:{i}"
        stored = store.segments_for(key)
        classified = segment_service.classify_customer(store, m, "digest-1", store.get_customer(key), NOW)
        assert classified.assignments == stored, key
        assert classified.model_digest == "digest-1"
        assert classified.features == features(
            store.get_customer(key),
            store.get_organization(store.get_customer(key).organization_key or ""),
            store.ticket_stats(NOW, key).get(key) or TicketStats(),
            NOW,
            m.features,
        )
    assert store.segments_for("zendesk:user:3")["vip"].label == "vip"
    assert store.segments_for("zendesk:user:8")["vip"].reasons == ("tag vip in Zendesk",)
    assert store.segments_for("zendesk:user:0")["account"].reasons == ("not in an organization",)
    assert store.segments_for("zendesk:user:1")["account"].reasons[0].startswith("organization Org 1: ")
    assert store.organization_segments("zendesk:org:o1")["account"].label in ("key", None)


def test_one_customer_uses_the_last_model_and_fits_on_the_spot_only_without_one(tmp_path):
    store = seeded_store(tmp_path, size=20)
    m = shop_mapping()
    seen: list[logging.LogRecord] = []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Seen(logging.WARNING)
    logger = logging.getLogger("tierdesk.sync")
    level = logger.level
    logger.setLevel(logging.WARNING)  # whatever an earlier test's logs.setup chose for "tierdesk"
    logger.addHandler(handler)
    try:
        # a fresh install: no model at all, so the current mapping is fitted here, and the log says so
        first = segment_service.classify_customer(store, m, "v1", store.get_customer("zendesk:user:1"), NOW)
        assert first.model_digest == "v1"
        assert store.model_digest(segment_service.MODEL)[0] == "v1"
        assert [r.getMessage() for r in seen] == ["segments.fitted_on_the_spot"]
        seen.clear()
        # a new mapping version: classified with the model fitted for v1, never refitted here
        later = segment_service.classify_customer(store, m, "v2", store.get_customer("zendesk:user:2"), NOW)
        assert later.model_digest == "v1"
        assert store.model_digest(segment_service.MODEL)[0] == "v1"
        assert seen == []
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_recompute_keeps_the_history_of_changes(tmp_path):
    store = seeded_store(tmp_path, size=20)
    m = shop_mapping()
    first = segment_service.recompute(store, m, "d", NOW)
    assert segment_service.recompute(store, m, "d", NOW).changes == 0  # nothing changed, nothing recorded
    c = store.get_customer("zendesk:user:5")
    store.upsert_customers([Customer(**{**c.__dict__, "created_at": NOW - timedelta(days=3)})])
    again = segment_service.recompute(store, m, "d", NOW)
    assert again.changes >= 1
    rows = list(
        store.db.query(
            "SELECT from_label, to_label, reasons FROM segment_changes "
            "WHERE customer_key = 'zendesk:user:5' AND dimension = 'lifecycle' ORDER BY id"
        )
    )
    assert rows[-1]["to_label"] == "onboarding"
    assert json.loads(rows[-1]["reasons"]) == ["tenure_days 3 < 30"]
    assert first.changes > again.changes


def test_quality_report_counts_missing_inputs_and_warns_about_segment_sizes(tmp_path):
    m = mapping_of(
        """
        segments:
          tier:
            method: rules
            rules:
              - {when: "x >= 100", then: huge}
              - {when: "x >= 1", then: some}
              - {when: "x < -1000", then: never}
        """
    )
    rows = [{"x": 500}] + [{"x": 5}] * 90 + [{}] * 9
    seg = segment(population_of(rows, m), m)
    report = quality_report(seg, min_share=0.02, max_share=0.8)
    assert report.customers == 100
    assert report.missing == {"x": 9}
    assert report.warnings == (
        "tier huge: 1 customers (1.0%) is under 2%: over-segmented, too small to act on?",
        "tier some: 90 customers (90.0%) is over 80%: under-segmented, it separates almost nobody",
        "tier never: nobody has this label",
    )


def test_segment_report_command_prints_quality(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from integration.cli.commands import main

    store = seeded_store(tmp_path, size=40)
    store.close()
    monkeypatch.setenv("TIERDESK_DB", str(tmp_path / "t.db"))
    monkeypatch.setenv("TIERDESK_MAPPINGS", str(DEFAULT_YAML))
    monkeypatch.setenv("TIERDESK_ZENDESK_URL", "http://127.0.0.1:9")  # never called by `segment`
    monkeypatch.setenv("TIERDESK_ZENDESK_EMAIL", "agent@example.com")
    monkeypatch.setenv("TIERDESK_ZENDESK_TOKEN", "not-a-real-token")
    monkeypatch.setenv("TIERDESK_ZENDESK_WEBHOOK_SECRET", "not-a-real-secret")
    result = CliRunner().invoke(main, ["segment", "--report", "--max-share", "70"])
    assert result.exit_code == 0, result.output
    assert "40 customers" in result.output
    assert "Data quality: customers without each input the mapping reads" in result.output
    assert "on_time_payment_rate" in result.output
    assert "Warnings:" in result.output


def test_fit_accepts_plain_feature_dicts_too():
    m = mapping_of(ACCOUNT.replace("level: organization", "level: customer"))
    assert fit([{"revenue_12m": v} for v in (1, 2, 3)], m).bands == {"account": {"key": 2}}
