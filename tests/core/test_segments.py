"""Features, population cut-offs and segment assignments, checked against hand-computed tables."""

from __future__ import annotations

import json
import random
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integration.core.mapping import FeatureSpec
from integration.core.mapping_file import parse_mapping
from integration.core.models import Assignment, Customer, Organization, TicketStats
from integration.core.segments import (
    Fitted,
    bottom_cutoff,
    classify,
    classify_all,
    decile_cutoffs,
    decile_score,
    features,
    fit,
    top_cutoff,
)
from tests.support import ROOT

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DEFAULT_YAML = ROOT / "mappings" / "default.yaml"


def mapping_of(text: str):
    return parse_mapping(textwrap.dedent(text).lstrip("\n"), "test.yaml")


def customer(external_id: str = "1", **kwargs) -> Customer:
    return Customer(source="zendesk", external_id=external_id, **kwargs)


# --------------------------------------------------------------------------------------------------
# Features


def test_features_derive_tenure_tickets_csat_cost_and_profit():
    c = customer(
        created_at=datetime(2025, 5, 1, 0, 0, tzinfo=UTC),
        attributes={"revenue_12m": 48_000, "service_cost_12m": 200.0, "referrals": 2},
    )
    org = Organization(source="zendesk", external_id="9", attributes={"plan": "gold", "seats": 40})
    stats = TicketStats(
        tickets_30d=2, tickets_90d=5, tickets_total=12, reopened_90d=1, csat_good=3, csat_bad=1
    )
    feats = features(c, org, stats, NOW, FeatureSpec(cost_per_ticket=25))
    assert feats == {
        "revenue_12m": 48_000,
        "service_cost_12m": 200.0,
        "referrals": 2,
        "org_plan": "gold",
        "org_seats": 40,
        "tenure_days": 31.5,
        "tickets_30d": 2,
        "tickets_90d": 5,
        "tickets_total": 12,
        "reopened_90d": 1,
        "csat_avg": 0.75,
        "cost_to_serve": 12 * 25 + 200.0,
        "profit_12m": 48_000 - 500.0,
    }


def test_missing_values_stay_missing_never_zero():
    c = customer(attributes={"referrals": None})
    feats = features(c, None, TicketStats(), NOW, FeatureSpec())
    assert feats["tenure_days"] is None
    assert feats["csat_avg"] is None
    assert feats["profit_12m"] is None
    assert feats["referrals"] is None
    assert feats["cost_to_serve"] == 0
    assert not any(key.startswith("org_") for key in feats)


def test_naive_dates_are_utc_and_future_dates_give_zero_tenure():
    naive = customer(created_at=datetime(2025, 5, 31, 12, 0))
    assert features(naive, None, TicketStats(), NOW, FeatureSpec())["tenure_days"] == 1.0
    future = customer(created_at=NOW + timedelta(days=3))
    assert features(future, None, TicketStats(), NOW, FeatureSpec())["tenure_days"] == 0.0


def test_derived_features_win_over_custom_fields_of_the_same_name():
    c = customer(attributes={"tickets_30d": 99, "revenue_12m": "lots"})
    feats = features(c, None, TicketStats(tickets_30d=1), NOW, FeatureSpec())
    assert feats["tickets_30d"] == 1
    assert feats["profit_12m"] is None  # revenue that is not a number is not used


# --------------------------------------------------------------------------------------------------
# Cut-offs, by hand


def test_top_and_bottom_cutoffs_on_ten_revenues():
    revenues = sorted([30, 10, 100, 60, 20, 90, 40, 80, 50, 70])
    # 10 values, top 20%: k = 2, the 2nd highest is 90, so 90 and 100 are in.
    assert top_cutoff(revenues, 20) == 90
    assert top_cutoff(revenues, 10) == 100
    assert top_cutoff(revenues, 100) == 10
    # bottom 10%: k = 1, the lowest.
    assert bottom_cutoff(revenues, 10) == 10
    assert bottom_cutoff(revenues, 35) == 40  # k = ceil(3.5) = 4
    assert top_cutoff([], 20) is None


def test_cutoffs_round_the_count_up_and_keep_ties_together():
    seven = sorted([5, 1, 7, 3, 9, 2, 8])
    assert top_cutoff(seven, 20) == 8  # ceil(1.4) = 2 -> 2nd highest
    assert bottom_cutoff(seven, 30) == 3  # ceil(2.1) = 3 -> 3rd lowest
    tied = sorted([1, 2, 3, 3, 3, 3, 4, 5, 6, 7])
    cut = top_cutoff(tied, 50)
    assert cut == 3
    assert sum(v >= cut for v in tied) == 8  # everyone at the cut-off is in
    assert top_cutoff(sorted(v / 1000 for v in range(1000)), 0.1) == 0.999  # exact arithmetic


def test_deciles_of_distinct_values_give_each_value_its_rank():
    values = [float(v) for v in range(1, 11)]
    cuts = decile_cutoffs(values)
    assert cuts == (2, 3, 4, 5, 6, 7, 8, 9, 10)
    assert [decile_score(v, cuts) for v in values] == list(range(1, 11))


def test_deciles_give_ties_a_middle_score():
    referrals = sorted([0.0] * 7 + [1.0, 2.0, 5.0])
    cuts = decile_cutoffs(referrals)
    assert cuts == (0, 0, 0, 1, 1, 1, 1, 2, 5)
    assert {v: decile_score(v, cuts) for v in referrals} == {0: 4, 1: 8, 2: 9, 5: 10}
    assert decile_score(-1, cuts) == 1
    single = decile_cutoffs([42.0])
    assert decile_score(42, single) == 6  # rank 0.5
    assert single[5:] == (float("inf"),) * 4


@given(st.integers(1, 30))
def test_deciles_split_distinct_values_evenly(tenths):
    values = [float(v) for v in range(10 * tenths)]
    cuts = decile_cutoffs(values)
    scores = [decile_score(v, cuts) for v in values]
    assert all(scores.count(score) == tenths for score in range(1, 11))


# --------------------------------------------------------------------------------------------------
# Method: rules

LIFECYCLE = """
segments:
  lifecycle:
    method: rules
    rules:
      - when: "tenure_days < 30d"
        then: onboarding
      - when: "tenure_days >= 2y"
        then: loyal
    default: established
  risk:
    method: rules
    rules:
      - when: "tickets_30d >= 3 or reopened_90d >= 2"
        then: frustrated
      - when: "csat_avg < 0.5 and tickets_90d >= 2"
        then: at_risk
"""


@pytest.mark.parametrize(
    ("feats", "lifecycle", "risk"),
    [
        (
            {"tenure_days": 12, "tickets_30d": 4},
            ("onboarding", ("tenure_days 12 < 30",)),
            ("frustrated", ("tickets_30d 4 >= 3",)),
        ),
        (
            {"tenure_days": 800.5, "reopened_90d": 2, "tickets_30d": 0},
            ("loyal", ("tenure_days 800.5 >= 730 (2y)",)),
            ("frustrated", ("reopened_90d 2 >= 2",)),
        ),
        (
            {"tenure_days": 400, "csat_avg": 0.25, "tickets_90d": 2, "tickets_30d": 1},
            ("established", ("no rule matched (tenure_days 400)",)),
            ("at_risk", ("csat_avg 0.25 < 0.5 and tickets_90d 2 >= 2",)),
        ),
        (
            {"tickets_30d": 1, "tickets_90d": 1, "reopened_90d": 0},
            ("established", ("no rule matched", "tenure_days is missing")),
            (
                None,
                (
                    "no rule matched (tickets_30d 1, reopened_90d 0, tickets_90d 1)",
                    "csat_avg is missing",
                ),
            ),
        ),
    ],
)
def test_rules(feats, lifecycle, risk):
    m = mapping_of(LIFECYCLE)
    got = classify(customer(), feats, Fitted(), m)
    assert list(got) == ["lifecycle", "risk"]
    assert got["lifecycle"] == Assignment("lifecycle", *lifecycle)
    assert got["risk"] == Assignment("risk", *risk)


# --------------------------------------------------------------------------------------------------
# Method: score

SCORE_FIXED = """
segments:
  tier:
    method: score
    weights: {revenue_12m: 2, referrals: 1, on_time_payment_rate: 1}
    thresholds:
      revenue_12m: [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000]
      referrals: [1, 2, 3, 4, 5, 6, 7, 8, 9]
      on_time_payment_rate: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    bands: {A: 7.5, B: 5}
    missing: MISSING
"""


@pytest.mark.parametrize(
    ("missing", "feats", "label", "reasons"),
    [
        (
            "skip",
            {"revenue_12m": 9500, "referrals": 3, "on_time_payment_rate": 0.55},
            "A",
            (
                "score 7.5 >= 7.5 (revenue_12m 10/10 x 0.50, referrals 4/10 x 0.25, "
                "on_time_payment_rate 6/10 x 0.25)",
            ),
        ),
        (
            "skip",
            {"revenue_12m": 9500, "on_time_payment_rate": 0.55},
            "A",
            (
                "score 8.67 >= 7.5 (revenue_12m 10/10 x 0.67, on_time_payment_rate 6/10 x 0.33)",
                "referrals is missing",
                "left out referrals; the other weights were renormalised",
            ),
        ),
        (
            "low",
            {"revenue_12m": 9500, "referrals": None, "on_time_payment_rate": 0.55},
            "B",
            (
                "score 6.75 >= 5 (revenue_12m 10/10 x 0.50, referrals 1/10 x 0.25, "
                "on_time_payment_rate 6/10 x 0.25)",
                "referrals is missing, scored 1/10",
            ),
        ),
        (
            "skip",
            {"revenue_12m": 999, "referrals": 0, "on_time_payment_rate": 0.95},
            None,
            (
                "score 3.25 is below every band (lowest: B 5) (revenue_12m 1/10 x 0.50, "
                "referrals 1/10 x 0.25, on_time_payment_rate 10/10 x 0.25)",
            ),
        ),
        (
            "skip",
            {"referrals": "many"},
            None,
            (
                "no scored attribute has a value",
                "revenue_12m is missing",
                "referrals 'many' is not a number",
                "on_time_payment_rate is missing",
            ),
        ),
    ],
)
def test_score_with_fixed_thresholds(missing, feats, label, reasons):
    m = mapping_of(SCORE_FIXED.replace("MISSING", missing))
    got = classify(customer(), feats, Fitted(), m)["tier"]
    assert got == Assignment("tier", label, reasons)


def test_score_by_percentile_uses_the_fitted_deciles():
    m = mapping_of(
        """
        segments:
          tier:
            method: score
            weights: {revenue_12m: 0.8, referrals: 0.2}
            bands: {A: 8, B: 5, C: 0}
        """
    )
    population = [{"revenue_12m": 1000 * v, "referrals": 0} for v in range(1, 11)]
    fitted = fit(population, m)
    assert fitted.population == 10
    assert fitted.deciles["revenue_12m"] == tuple(1000.0 * v for v in range(2, 11))
    got = classify(customer(), {"revenue_12m": 9000, "referrals": 0}, fitted, m)["tier"]
    # revenue 9/10, referrals all tied at 0 -> rank 0.5 -> 6/10; 9 x 0.8 + 6 x 0.2 = 8.4
    assert got == Assignment(
        "tier", "A", ("score 8.4 >= 8 (revenue_12m 9/10 x 0.80, referrals 6/10 x 0.20)",)
    )
    unfitted = classify(customer(), {"revenue_12m": 9000, "referrals": 0}, Fitted(), m)["tier"]
    assert unfitted.label is None
    assert "revenue_12m 9,000 cannot be ranked (no population fitted)" in unfitted.reasons


# --------------------------------------------------------------------------------------------------
# Method: percentile

VALUE = """
segments:
  value:
    method: percentile
    metric: revenue_12m
    bands: {key: "top 20%", negative: "< 0", tail: "bottom 10%"}
    default: standard
"""


def test_percentile_bands_on_ten_customers():
    m = mapping_of(VALUE)
    population = [{"revenue_12m": 10_000 * v} for v in range(1, 11)] + [{"revenue_12m": None}]
    fitted = fit(population, m)
    assert fitted.population == 11
    assert fitted.counts == {"revenue_12m": 10}
    assert fitted.bands == {"value": {"key": 90_000, "tail": 10_000}}

    def label(revenue):
        return classify(customer(), {"revenue_12m": revenue}, fitted, m)["value"]

    assert label(100_000) == Assignment(
        "value", "key", ("revenue_12m 100,000 is in the top 20% (cut-off 90,000)",)
    )
    assert label(90_000).label == "key"
    assert label(89_999.5).label == "standard"
    assert label(50_000) == Assignment("value", "standard", ("revenue_12m 50,000 is in none of the bands",))
    assert label(-1240) == Assignment("value", "negative", ("revenue_12m -1,240 < 0",))
    assert label(10_000) == Assignment(
        "value", "tail", ("revenue_12m 10,000 is in the bottom 10% (cut-off 10,000)",)
    )
    assert label(None) == Assignment("value", "standard", ("revenue_12m is missing",))


def test_percentile_without_a_fitted_population_says_so():
    m = mapping_of(VALUE)
    got = classify(customer(), {"revenue_12m": 5}, Fitted(), m)["value"]
    assert got == Assignment(
        "value",
        "standard",
        (
            "revenue_12m 5 is in none of the bands",
            "the top 20% of revenue_12m is not known (no population fitted)",
            "the bottom 10% of revenue_12m is not known (no population fitted)",
        ),
    )
    empty = fit([{"revenue_12m": None}], m)
    assert empty.bands == {"value": {"key": None, "tail": None}}
    assert classify(customer(), {"revenue_12m": 5}, empty, m)["value"].reasons == (
        "revenue_12m 5 is in none of the bands",
        "the top 20% of revenue_12m is not known (no customer has a value)",
        "the bottom 10% of revenue_12m is not known (no customer has a value)",
    )


BANDS = """
segments:
  value:
    method: percentile
    metric: m
    bands: {top: "top TOP%", upper: "top UPPER%", bottom: "bottom LOW%"}
    default: mid
"""
RANK = {"bottom": 0, "mid": 1, "upper": 2, "top": 3}


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(-50, 50), st.floats(-50, 50)), min_size=1, max_size=60),
    top=st.integers(1, 40),
    extra=st.integers(0, 40),
    low=st.integers(1, 60),
    seed=st.integers(0, 1000),
)
def test_percentile_bands_are_monotone_complete_and_deterministic(values, top, extra, low, seed):
    text = BANDS.replace("TOP", str(top)).replace("UPPER", str(top + extra))
    m = mapping_of(text.replace("LOW", str(low)))
    fitted = fit(({"m": v} for v in values), m)
    shuffled = list(values)
    random.Random(seed).shuffle(shuffled)
    assert fit(({"m": v} for v in shuffled), m) == fitted  # order does not matter

    labels = {}
    for v in values:
        got = classify(customer(), {"m": v}, fitted, m)["value"]
        assert got.label in RANK  # exactly one label, or the default
        assert got.reasons
        if v is None:
            assert got.label == "mid"
        labels[v] = got.label
    present = sorted(v for v in values if v is not None)
    for lower, higher in zip(present, present[1:], strict=False):
        assert RANK[labels[lower]] <= RANK[labels[higher]], (lower, higher)
    if present:  # at least N% are in the top N%, and nobody below the cut-off is
        cut = fitted.bands["value"]["top"]
        at_least = -(-top * len(present) // 100)
        assert sum(v >= cut for v in present) >= at_least
        assert sum(v > cut for v in present) < at_least


# --------------------------------------------------------------------------------------------------
# Method: manual

VIP = """
segments:
  vip:
    method: manual
    ids: [42]
    emails: [CEO@acme.com]
    domains: [big.example]
    tags: [vip]
  partner:
    method: manual
    label: partner
    domains: [partner.example]
"""


@pytest.mark.parametrize(
    ("who", "reasons"),
    [
        (customer("42"), ("id 42 is on the VIP list",)),
        (customer("7", email="Ceo@ACME.com"), ("email ceo@acme.com is on the VIP list",)),
        (customer("7", email="ann@big.example"), ("email domain big.example is on the VIP list",)),
        (
            customer("7", email="ann@eu.big.example"),
            ("email domain eu.big.example is under big.example, on the VIP list",),
        ),
        (customer("7", tags=("newsletter", "VIP")), ("tag VIP in Zendesk",)),
        (
            customer("42", email="ceo@acme.com", tags=("vip",)),
            ("id 42 is on the VIP list", "email ceo@acme.com is on the VIP list", "tag vip in Zendesk"),
        ),
        (customer("7", email="ann@notbig.example"), ()),
        (customer("7", email="ann@acme.com", tags=("vipx",)), ()),
        (customer("7"), ()),
    ],
)
def test_manual_vip(who, reasons):
    got = classify(who, {}, Fitted(), mapping_of(VIP))
    assert got["vip"] == Assignment("vip", "vip" if reasons else None, reasons)


def test_manual_with_another_label_names_its_own_list():
    got = classify(customer(email="bo@partner.example"), {}, Fitted(), mapping_of(VIP))
    assert got["partner"] == Assignment(
        "partner", "partner", ("email domain partner.example is on the partner list",)
    )


def test_tag_reason_names_the_source_system():
    who = Customer(source="freshdesk", external_id="1", tags=("vip",))
    assert classify(who, {}, Fitted(), mapping_of(VIP))["vip"].reasons == ("tag vip in Freshdesk",)


# --------------------------------------------------------------------------------------------------
# Fitted storage and classify_all


def test_fitted_round_trips_through_json():
    m = parse_mapping(DEFAULT_YAML.read_text(), "mappings/default.yaml")
    population = [
        {"revenue_12m": 1000.0 * i, "tenure_days": i, "referrals": i % 3, "profit_12m": i - 3}
        for i in range(12)
    ]
    fitted = fit(population, m)
    assert set(fitted.deciles) == {"revenue_12m", "tenure_days", "referrals"}
    restored = Fitted.from_dict(json.loads(json.dumps(fitted.to_dict(), allow_nan=False)))
    assert restored == fitted
    single = fit([{"referrals": 1}], m)
    assert Fitted.from_dict(json.loads(json.dumps(single.to_dict(), allow_nan=False))) == single


@pytest.mark.parametrize("bad", [{}, {"format": 99}, {"format": 1, "population": 1}, []])
def test_fitted_from_dict_refuses_garbage(bad):
    with pytest.raises(ValueError, match="fitted"):
        Fitted.from_dict(bad)


def test_classify_all_fits_then_classifies_everyone():
    m = mapping_of(VALUE)
    rows = [(customer(str(i)), {"revenue_12m": 10_000 * i}) for i in range(1, 11)]
    fitted, result = classify_all(iter(rows), m)
    assert fitted.population == 10
    assert list(result) == [f"zendesk:user:{i}" for i in range(1, 11)]
    assert [result[f"zendesk:user:{i}"]["value"].label for i in (1, 5, 9, 10)] == [
        "tail",
        "standard",
        "key",
        "key",
    ]


# --------------------------------------------------------------------------------------------------
# The shipped mapping on typical customers


def test_default_mapping_classifies_typical_customers():
    m = parse_mapping(DEFAULT_YAML.read_text(), "mappings/default.yaml")
    rows = []
    for i in range(40):  # an ordinary population to rank against
        c = customer(
            str(i),
            email=f"user{i}@example.com",
            created_at=NOW - timedelta(days=100 + 20 * (i * 7 % 40)),
            attributes={
                "revenue_12m": 1_000 + 500 * i,
                "referrals": i % 4,
                "on_time_payment_rate": 0.5 + (i * 13 % 40) / 100,
            },
        )
        rows.append((c, features(c, None, TicketStats(tickets_total=2), NOW, m.features)))
    best = customer(
        "best",
        email="best@example.com",
        created_at=NOW - timedelta(days=1500),
        attributes={"revenue_12m": 90_000, "referrals": 9, "on_time_payment_rate": 1.0},
    )
    newbie = customer(
        "new",
        email="new@example.com",
        created_at=NOW - timedelta(days=10),
        attributes={"revenue_12m": 2_000},
    )
    costly = customer(
        "costly",
        email="costly@example.com",
        created_at=NOW - timedelta(days=300),
        attributes={"revenue_12m": 100, "service_cost_12m": 50},
    )
    vip = customer("vip", email="boss@vip-customer.example", created_at=NOW - timedelta(days=400))
    specials = {
        "best": (best, TicketStats(tickets_total=1)),
        "new": (newbie, TicketStats(tickets_30d=3, tickets_90d=3, tickets_total=3)),
        "costly": (costly, TicketStats(tickets_90d=2, tickets_total=20, csat_good=1, csat_bad=3)),
        "vip": (vip, TicketStats()),
    }
    for c, stats in specials.values():
        rows.append((c, features(c, None, stats, NOW, m.features)))
    fitted, result = classify_all(rows, m)

    def labels(external_id):
        return {dim: a.label for dim, a in result[f"zendesk:user:{external_id}"].items()}

    assert labels("best") == {
        "vip": None,
        "tier": "A",
        "value": "key",
        "lifecycle": "loyal",
        "risk": None,
        "account": None,  # an organization-level dimension: not in an organization
    }
    assert result["zendesk:user:best"]["account"].reasons == ("not in an organization",)
    assert labels("new")["lifecycle"] == "onboarding"
    assert labels("new")["risk"] == "frustrated"
    assert labels("costly")["value"] == "negative"  # 100 - (20 x 25 + 50) < 0
    assert labels("costly")["risk"] == "at_risk"
    assert labels("vip")["vip"] == "vip"
    assert result["zendesk:user:costly"]["value"].reasons == ("profit_12m -450 < 0",)
    tiers = [labels(str(i))["tier"] for i in range(40)]
    assert 0 < tiers.count("A") <= 10  # a minority is tier A
