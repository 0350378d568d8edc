"""Mapping parsing, validation errors, and the condition language."""

from __future__ import annotations

import math
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integration.core.mapping import (
    Expression,
    FieldSet,
    MappingError,
    SlaTarget,
    TagSpec,
    evaluate,
    explain,
    format_number,
    parse_expression,
)
from integration.core.mapping_file import KEYS, parse_mapping
from integration.core.segments.manual import ManualDimension
from integration.core.segments.methods import METHODS
from integration.core.segments.percentile import PercentileDimension
from integration.core.segments.rules import RulesDimension
from integration.core.segments.score import ScoreDimension
from tests.support import ROOT, conditions, feature_sets, reference, render

DEFAULT_YAML = ROOT / "mappings" / "default.yaml"


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


MINIMAL = yaml_text(
    """
    segments:
      tier:
        method: score
        weights: {revenue_12m: 3, referrals: 1}
        bands: {B: 5, A: 7.5, C: 0}
      risk:
        method: rules
        rules:
          - when: "tickets_30d >= 3"
            then: frustrated
        default: calm
    routing:
      - when: {tier: A}
        set: {priority: high, group: "Senior Support"}
      - when: "risk == 'frustrated' and tickets_30d >= 5"
        set: {sla: gold}
    default: {priority: normal, sla: standard, group: General}
    """
)


# --------------------------------------------------------------------------------------------------
# Parsing good mappings


def test_minimal_mapping_parses_into_records():
    m = parse_mapping(MINIMAL, "mappings/test.yaml")
    assert m.source == "mappings/test.yaml"
    assert m.dimension_names == ("tier", "risk")
    tier = m.dimension("tier")
    assert isinstance(tier, ScoreDimension)
    assert tier.weights == (("revenue_12m", 0.75), ("referrals", 0.25))  # normalised
    assert tier.bands == (("A", 7.5), ("B", 5.0), ("C", 0.0))  # highest cut-off first
    assert tier.missing == "skip"
    assert tier.ranked_attributes == ("revenue_12m", "referrals")
    risk = m.dimension("risk")
    assert isinstance(risk, RulesDimension)
    assert risk.labels == ("frustrated", "calm")
    assert m.default == FieldSet("normal", "standard", "General")
    assert m.tags == TagSpec()
    assert m.features.cost_per_ticket == 25.0
    assert m.routing[0].summary == "tier is A"
    assert m.routing[0].number == 1
    assert m.routing[0].line == 13
    assert isinstance(m.routing[1].when, Expression)
    assert m.slas == {"gold", "standard"}
    assert m.groups == {"Senior Support", "General"}


def test_default_yaml_parses_and_uses_the_sandbox_groups():
    m = parse_mapping(DEFAULT_YAML.read_text(), "mappings/default.yaml")
    assert m.dimension_names == ("vip", "tier", "value", "lifecycle", "risk", "account")
    assert m.dimension("account").level == "organization"
    assert m.sla_targets["gold"] == SlaTarget(first_response_minutes=240, resolution_minutes=1440)
    assert set(m.sla_targets) == m.slas  # every SLA routing can set has targets
    assert m.groups <= {
        "General",
        "Senior Support",
        "Key Accounts",
        "Self-Service",
        "Retention",
        "Onboarding",
    }
    assert m.slas == {"platinum", "gold", "standard"}
    vip = m.dimension("vip")
    assert isinstance(vip, ManualDimension)
    assert vip.tags == ("vip",)
    value = m.dimension("value")
    assert isinstance(value, PercentileDimension)
    assert {band.label: band.text for band in value.bands} == {"negative": "< 0", "key": "top 20%"}
    lifecycle = m.dimension("lifecycle")
    assert isinstance(lifecycle, RulesDimension)
    assert lifecycle.rules[1].when.tree.right.value == 730  # 2y


def test_every_mapping_key_and_method_is_documented():
    docs = (ROOT / "docs" / "mapping.md").read_text()
    words = {key for keys in KEYS.values() for key in keys} | set(METHODS)
    assert sorted(word for word in words if f"`{word}`" not in docs) == []


def test_manual_lists_are_normalised():
    m = parse_mapping(
        yaml_text(
            """
            segments:
              vip:
                method: manual
                ids: [123, "abc"]
                emails: [CEO@Acme.COM]
                domains: ["@Big.Example"]
                tags: [VIP]
            """
        )
    )
    vip = m.dimension("vip")
    assert isinstance(vip, ManualDimension)
    assert vip.ids == ("123", "abc")
    assert vip.emails == ("ceo@acme.com",)
    assert vip.domains == ("big.example",)
    assert vip.tags == ("vip",)
    assert vip.label == "vip"


def test_percentile_bands_keep_written_order():
    m = parse_mapping(
        yaml_text(
            """
            segments:
              value:
                method: percentile
                metric: profit_12m
                bands: {key: "top 20%", negative: "< 0", tail: "bottom 10%", mid: "between 0 and 1_000"}
                default: standard
            """
        )
    )
    value = m.dimension("value")
    assert isinstance(value, PercentileDimension)
    assert [(b.label, b.kind, b.percent) for b in value.bands] == [
        ("key", "top", 20.0),
        ("negative", "compare", None),
        ("tail", "bottom", 10.0),
        ("mid", "compare", None),
    ]
    assert value.labels == ("key", "negative", "tail", "mid", "standard")


def test_routing_when_accepts_labels_lists_and_presence():
    m = parse_mapping(MINIMAL.replace("when: {tier: A}", "when: {tier: [A, B], risk: true}"), "x.yaml")
    assert m.routing[0].summary == "tier is A or B and risk has a label"


# --------------------------------------------------------------------------------------------------
# Mapping errors: every one names file, line and key.


def error_for(text: str, source: str = "mappings/bad.yaml") -> MappingError:
    with pytest.raises(MappingError) as info:
        parse_mapping(yaml_text(text), source)
    return info.value


def assert_where(err: MappingError, line: int | None, key: str | None, source="mappings/bad.yaml"):
    assert err.source == source
    assert err.line == line
    assert err.key == key
    prefix = source if line is None else f"{source}:{line}"
    assert str(err).startswith(f"{prefix}: {key}: " if key else f"{prefix}: ")


def test_yaml_syntax_error_names_file_and_line():
    err = error_for(
        """
        segments:
          tier:
            method: score
           weights: {a: 1}
        """
    )
    assert_where(err, 4, None)
    assert "YAML syntax error" in str(err)


def test_unclosed_flow_mapping_is_a_syntax_error():
    err = error_for(
        """
        segments:
          tier: {method: score
        routing: []
        """
    )
    assert err.line is not None
    assert "YAML syntax error" in str(err)
    assert "from line 2" in str(err)


def test_unknown_top_level_key_suggests_the_right_one():
    err = error_for(
        """
        segments: {}
        routnig: []
        """
    )
    assert_where(err, 2, "routnig")
    assert "unknown key 'routnig' (did you mean 'routing'?)" in str(err)


def test_unknown_method_key_is_an_error():
    err = error_for(
        """
        segments:
          tier:
            method: score
            weights: {revenue_12m: 1}
            bands: {A: 5}
            default: C
        """
    )
    assert_where(err, 6, "segments.tier.default")
    assert "unknown key 'default'" in str(err)


def test_bad_weight_reads_like_the_design():
    err = error_for(
        """
        segments:
          tier:
            method: score
            weights:
              revenue_12m: high
            bands: {A: 5}
        """,
        "mappings/default.yaml",
    )
    assert str(err) == (
        "mappings/default.yaml:5: segments.tier.weights.revenue_12m: weight must be a number, got 'high'"
    )


@pytest.mark.parametrize(
    ("snippet", "line", "key", "words"),
    [
        ("weights: {a: 0}\n    bands: {A: 5}", 4, "segments.tier.weights.a", "greater than 0"),
        ("weights: {a: true}\n    bands: {A: 5}", 4, "segments.tier.weights.a", "number"),
        ("weights: {a: 1}\n    bands: {A: 11}", 5, "segments.tier.bands.A", "between 0 and 10"),
        ("weights: {a: 1}\n    bands: {A: 5, B: 5}", 5, "segments.tier.bands.B", "share"),
        ("weights: {a: 1}\n    bands: {}", 5, "segments.tier.bands", "at least one"),
        ("weights: {a: 1}", 2, "segments.tier", "'bands' is required"),
        ("weights: {a: 1}\n    bands: {A: 5}\n    missing: zero", 6, "segments.tier.missing", "skip"),
        ("weights: {Revenue: 1}\n    bands: {A: 5}", 4, "segments.tier.weights.Revenue", "lowercase"),
        (
            "weights: {a: 1}\n    bands: {A: 5}\n    thresholds: {a: [1, 2, 3]}",
            6,
            "segments.tier.thresholds.a",
            "exactly 9",
        ),
        (
            "weights: {a: 1}\n    bands: {A: 5}\n    thresholds: {a: [1, 2, 3, 4, 5, 6, 7, 9, 8]}",
            6,
            "segments.tier.thresholds.a",
            "ascending",
        ),
        (
            "weights: {a: 1}\n    bands: {A: 5}\n    thresholds: {b: [1, 2, 3, 4, 5, 6, 7, 8, 9]}",
            6,
            "segments.tier.thresholds.b",
            "no weight",
        ),
    ],
)
def test_score_errors(snippet, line, key, words):
    text = "segments:\n  tier:\n    method: score\n    " + snippet + "\n"
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "m.yaml")
    assert_where(info.value, line, key, source="m.yaml")
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("dimension", "line", "key", "words"),
    [
        ("method: magic", 3, "segments.d.method", "method must be one of"),
        ("metod: score", 3, "segments.d.metod", "did you mean 'method'?"),
        ("method: percentile\n    bands: {a: 'top 5%'}", 2, "segments.d", "'metric' is required"),
        (
            "method: percentile\n    metric: p\n    bands: {a: 'upper 5%'}",
            5,
            "segments.d.bands.a",
            "must look like",
        ),
        (
            "method: percentile\n    metric: p\n    bands: {a: 'top 0%'}",
            5,
            "segments.d.bands.a",
            "above 0",
        ),
        (
            "method: percentile\n    metric: p\n    bands: {a: 5}",
            5,
            "segments.d.bands.a",
            "must be text",
        ),
        ("method: rules\n    rules: []", 4, "segments.d.rules", "at least one"),
        (
            "method: rules\n    rules:\n      - when: 'a > 1'\n        than: x",
            6,
            "segments.d.rules[0].than",
            "unknown key 'than'",
        ),
        (
            "method: rules\n    rules:\n      - when: 'a > 1'\n        then: 5",
            6,
            "segments.d.rules[0].then",
            "label must be text",
        ),
        ("method: manual\n    emails: [nobody]", 4, "segments.d.emails[0]", "not an email"),
        ("method: manual\n    ids: {a: 1}", 4, "segments.d.ids", "must be a list"),
    ],
)
def test_dimension_errors(dimension, line, key, words):
    text = "segments:\n  d:\n    " + dimension + "\n"
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "m.yaml")
    assert_where(info.value, line, key, source="m.yaml")
    assert words in str(info.value)


def test_bad_expression_names_file_line_key_token_and_column():
    err = error_for(
        """
        segments:
          risk:
            method: rules
            rules:
              - when: "tickets_30d >> 3"
                then: frustrated
        """,
        "mappings/default.yaml",
    )
    assert str(err) == (
        "mappings/default.yaml:5: segments.risk.rules[0].when: unexpected token '>>' at column 13"
    )


def test_unknown_label_in_routing_is_an_error():
    err = error_for(MINIMAL.replace("when: {tier: A}", "when: {tier: Z}"))
    assert_where(err, 13, "routing[0].when.tier")
    assert "unknown label 'Z' for dimension tier (it can be: A, B, C)" in str(err)


def test_unknown_label_in_a_label_list_is_an_error():
    err = error_for(MINIMAL.replace("when: {tier: A}", "when:\n      tier: [A, D]"))
    assert_where(err, 14, "routing[0].when.tier[1]")


def test_unknown_dimension_in_routing_is_an_error():
    err = error_for(MINIMAL.replace("when: {tier: A}", "when: {teir: A}"))
    assert_where(err, 13, "routing[0].when.teir")
    assert "unknown dimension 'teir'" in str(err)


def test_unknown_label_inside_a_routing_condition_string_is_an_error():
    err = error_for(MINIMAL.replace("risk == 'frustrated'", "risk == 'angry'"))
    assert_where(err, 15, "routing[1].when")
    assert "unknown label 'angry' for dimension risk" in str(err)


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "words"),
    [
        ("set: {priority: high,", "set: {priority: hihg,", 14, "routing[0].set.priority", "one of"),
        ("set: {sla: gold}", "set: {colour: red}", 16, "routing[1].set.colour", "unknown key"),
        ("set: {sla: gold}", "set: {}", 16, "routing[1].set", "at least one"),
        ("    set: {sla: gold}\n", "", 15, "routing[1]", "'set' is required"),
        ("when: {tier: A}", "when: 5", 13, "routing[0].when", "must map dimensions"),
        ("when: {tier: A}", "when: {tier: 1}", 13, "routing[0].when.tier", "expected a label"),
        ("group: General}", "group: General, queue: x}", 17, "default.queue", "unknown key"),
    ],
)
def test_routing_errors(old, new, line, key, words):
    assert old in MINIMAL
    err = error_for(MINIMAL.replace(old, new))
    assert_where(err, line, key)
    assert words in str(err)


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("", None, None, "empty"),
        ("- a\n", 1, None, "top level must be a mapping"),
        ("segments: {}\nsegments: {}\n", 2, "segments", "duplicate key 'segments' (first on line 1)"),
        ("segments:\n  yes: {method: manual}\n", 2, "segments", "put it in quotes"),
        ("segments:\n  sla: {method: manual}\n", 2, "segments.sla", "reserved"),
        ("segments: !!python/object:os.system {}\n", 1, "segments", "unsupported YAML tag"),
        ("routing: []\n", 1, None, "'segments' is required"),
        ("segments: {}\ntags: {prefix: Tier Desk}\n", 2, "tags.prefix", "a-z"),
        ("segments: {}\nfeatures: {cost_per_ticket: -1}\n", 2, "features.cost_per_ticket", "negative"),
    ],
)
def test_document_errors(text, line, key, words):
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "m.yaml")
    assert_where(info.value, line, key, source="m.yaml")
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("segments: {}\ntags: {routed: vip}\n", "only tierdesk writes"),
        ("segments: {}\ntags: {routed: urgent}\n", "only tierdesk writes"),
        ("segments: {}\ntags: {prefix: td, routed: tierdesk_}\n", "only tierdesk writes"),
        ("segments: {}\ntags: {prefix: td, routed: routed_by_td}\n", "only tierdesk writes"),
        (
            "segments:\n  vip: {method: manual, tags: [tierdesk_vip]}\ntags: {routed: tierdesk_vip}\n",
            "segment vip reads",
        ),
        (
            "segments:\n  tier: {method: score, weights: {a: 1}, bands: {routed: 5}}\n"
            "tags: {routed: tierdesk_tier_routed}\n",
            "same as the routed marker",
        ),
    ],
)
def test_the_routed_marker_must_be_a_tag_only_tierdesk_writes(text, words):
    """Tickets carrying the marker are skipped as already routed: 'vip' would switch routing off."""
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "m.yaml")
    assert words in str(info.value)
    assert info.value.key in ("tags.routed", "segments.tier")


@pytest.mark.parametrize(
    "tags",
    ["{prefix: td, routed: td_done}", "{prefix: td, routed: tierdesk_routed}", "{routed: tierdesk_done}"],
)
def test_a_routed_marker_in_tierdesks_namespace_is_fine(tags):
    assert parse_mapping(f"segments: {{}}\ntags: {tags}\n").tags.routed.split("_")[-1] in ("done", "routed")


_DEFAULT = DEFAULT_YAML.read_text()
_WEIGHT = "revenue_12m: 0.4"
_WEIGHT_LINE = next(n for n, row in enumerate(_DEFAULT.splitlines(), start=1) if _WEIGHT in row)


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("segments: " + "[" * 5000 + "]" * 5000, 1, None, "nested too deeply"),
        (
            "segments:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 400)),
            50,
            None,
            "nested too deeply",
        ),
        ("segments: {}\ndescription: " + "{a: " * 3000 + "1" + "}" * 3000, 2, None, "nested too deeply"),
        (
            _DEFAULT.replace(_WEIGHT, "revenue_12m: " + "9" * 5000),
            _WEIGHT_LINE,
            "segments.tier.weights.revenue_12m",
            "too many digits",
        ),
        (
            _DEFAULT.replace(_WEIGHT, "revenue_12m: " + "9" * 400),
            _WEIGHT_LINE,
            "segments.tier.weights.revenue_12m",
            "too large",
        ),
        (
            _DEFAULT.replace(_WEIGHT, "revenue_12m: 0x" + "f" * 4000),
            _WEIGHT_LINE,
            "segments.tier.weights.revenue_12m",
            "too large",
        ),
        (
            _DEFAULT.replace(_WEIGHT, "revenue_12m: 2024-02-30"),
            _WEIGHT_LINE,
            "segments.tier.weights.revenue_12m",
            "not a real one",
        ),
        ("segments: {}\n2024-13-01: x\n", 2, None, "not a real one"),
        (
            'segments:\n  s:\n    method: rules\n    rules:\n      - when: "a > '
            + "9" * 5000
            + '"\n        then: x\n',
            5,
            "segments.s.rules[0].when",
            "more than 300 digits",
        ),
    ],
)
def test_hostile_yaml_is_a_mapping_error_at_its_line(text, line, key, words):
    """Deep nesting, a 5,000-digit number and an impossible date used to escape as RecursionError or
    ValueError: a 500 in the admin, and a saved draft that broke preview and simulate."""
    err = error_for(text)
    assert_where(err, line, key)
    assert words in str(err)


def test_labels_that_spell_the_same_tag_are_an_error():
    err = error_for(
        """
        segments:
          tier:
            method: score
            weights: {a: 1}
            bands: {"A+": 7, "A-": 5}
        """
    )
    assert "gives tag tierdesk_tier_a_, same as tier A+" in str(err)


def test_alias_bombs_are_refused():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 7):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    err = error_for("\n".join(lines) + "\nsegments: {}\n")
    assert "too large" in str(err)


# --------------------------------------------------------------------------------------------------
# The condition language: hand-checked cases


@pytest.mark.parametrize(
    ("text", "features", "expected"),
    [
        ("tickets_30d >= 3", {"tickets_30d": 3}, True),
        ("tickets_30d >= 3", {"tickets_30d": 2}, False),
        ("tickets_30d >= 3", {}, False),
        ("tickets_30d != 3", {"tickets_30d": None}, False),  # missing: every comparison is false
        ("not tickets_30d >= 3", {}, True),
        ("tenure_days < 30d", {"tenure_days": 29.5}, True),
        ("tenure_days >= 2y", {"tenure_days": 730}, True),
        ("tenure_days >= 2y", {"tenure_days": 729.9}, False),
        ("tenure_days < 12w", {"tenure_days": 83}, True),
        ("tenure_days < 1.5y", {"tenure_days": 547}, True),
        ("revenue_12m > 1_000_000", {"revenue_12m": 1_000_001}, True),
        ("profit_12m < -1_000.5", {"profit_12m": -1001}, True),
        ("plan == 'gold'", {"plan": "gold"}, True),
        ('plan == "gold"', {"plan": "Gold"}, False),  # case-sensitive
        ("plan != 'gold'", {"plan": 5}, True),  # different kinds are never equal
        ("plan < 'gold'", {"plan": 5}, False),  # ...and never ordered
        ("plan in ['gold', 'platinum']", {"plan": "platinum"}, True),
        ("plan not in ['gold', 'platinum']", {"plan": "silver"}, True),
        ("plan not in ['gold']", {}, False),
        ("plan in []", {"plan": "gold"}, False),
        ("rate between 0.5 and 0.9", {"rate": 0.9}, True),
        ("rate between 0.5 and 0.9", {"rate": 0.91}, False),
        ("a between b and 10", {"a": 5, "b": 5}, True),
        ("a is missing", {"a": None}, True),
        ("a is missing", {"a": float("nan")}, True),
        ("a is present", {"a": 0}, True),
        ("partner", {"partner": True}, True),
        ("partner", {"partner": 0}, False),
        ("true", {}, True),
        ("flag == true", {"flag": True}, True),
        ("flag == true", {"flag": 1}, False),  # a bool is not a number
        ("a > 1 or b > 1 and c > 1", {"a": 2, "b": 0}, True),  # and binds tighter
        ("(a > 1 or b > 1) and c > 1", {"a": 2, "b": 0}, False),
        ("not a > 1 and b > 1", {"a": 0, "b": 2}, True),
        ("not (a > 1 and b > 1)", {"a": 2, "b": 2}, False),
        ("3 <= a", {"a": 3}, True),
    ],
)
def test_evaluate(text, features, expected):
    expr = parse_expression(text)
    assert evaluate(expr, features) is expected
    assert evaluate(expr.tree, features) is expected
    assert expr(features) is expected


@pytest.mark.parametrize(
    ("text", "features", "expected"),
    [
        ("tickets_30d >= 3", {"tickets_30d": 4}, "tickets_30d 4 >= 3"),
        ("tickets_30d >= 3", {}, "tickets_30d is missing"),
        ("revenue_12m >= 10_000", {"revenue_12m": 48000.0}, "revenue_12m 48,000 >= 10,000"),
        ("tenure_days < 30d", {"tenure_days": 12}, "tenure_days 12 < 30"),
        ("tenure_days >= 2y", {"tenure_days": 800.25}, "tenure_days 800.25 >= 730 (2y)"),
        (
            "csat_avg < 0.5 and tickets_90d >= 2",
            {"csat_avg": 0.25, "tickets_90d": 3},
            "csat_avg 0.25 < 0.5 and tickets_90d 3 >= 2",
        ),
        ("a > 1 or b > 1", {"a": 0, "b": 2}, "b 2 > 1"),  # only the branch that held
        ("a > 1 and b > 1", {"a": 0, "b": 2}, "a 0 > 1"),  # only the part that failed
        ("a > 1 or b > 1", {"a": 0, "b": 0}, "a 0 > 1 or b 0 > 1"),
        ("(a > 1 or b > 1) and c == 'x'", {"a": 2, "c": "x"}, "(a 2 > 1) and c 'x' == 'x'"),
        ("plan in ['gold', 'x']", {"plan": "gold"}, "plan 'gold' in ['gold', 'x']"),
        ("rate between 0.5 and 1", {"rate": 0.75}, "rate 0.75 between 0.5 and 1"),
        ("email is present", {"email": "a@b.c"}, "email 'a@b.c' is present"),
        ("email is missing", {}, "email is missing"),
        ("not partner", {"partner": False}, "not (partner false)"),
    ],
)
def test_explain(text, features, expected):
    assert explain(parse_expression(text), features) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tickets_30d >> 3", "unexpected token '>>' at column 13"),
        ("a = 3", "unexpected token '=' at column 3 (use ==)"),
        ("a >", "unexpected end of expression"),
        ("(a > 1", "unexpected end of expression (expected ')')"),
        ("a > 1)", "unexpected token ')' at column 6"),
        ("a > 1 b", "unexpected token 'b' at column 7"),
        ("a < b < c", "unexpected token '<' at column 7"),
        ("Tier == 'A'", "unexpected token 'Tier' at column 1 (names and keywords are lowercase)"),
        ("a > 1 AND b > 1", "unexpected token 'AND' at column 7 (names and keywords are lowercase)"),
        ("a > 3x", "unexpected token '3x' at column 5 (not a number)"),
        ("a > 1__0", "unexpected token '1__0' at column 5 (not a number)"),
        ("a == 'open", "unterminated string starting at column 6"),
        ("a is b", "unexpected token 'b' at column 6 (expected 'missing' or 'present')"),
        ("3", "expected a comparison after '3' at column 1"),
        ("a in 1", "unexpected token '1' at column 6 (expected '[')"),
        ("a in [b]", "unexpected token 'b' at column 7"),
        ("a ; b", "unexpected token ';' at column 3"),
        ("", "empty expression"),
        ("   ", "empty expression"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(MappingError) as info:
        parse_expression(text, source="m.yaml", line=7, key="segments.x.rules[0].when")
    assert str(info.value) == f"m.yaml:7: segments.x.rules[0].when: {message}"


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(MappingError, match="nested too deeply"):
        parse_expression("(" * 5000 + "a" + ")" * 5000)
    with pytest.raises(MappingError, match="nested too deeply"):
        parse_expression("not " * 5000 + "a")


def test_expression_names_in_order():
    expr = parse_expression("b > 1 and (a is missing or b in [1]) and c between a and 3")
    assert expr.names == ("b", "a", "c")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (48000, "48,000"),
        (48000.0, "48,000"),
        (-1240.4, "-1,240"),
        (31200.5, "31,200"),
        (8.1, "8.1"),
        (7.456, "7.46"),
        (0.25, "0.25"),
        (0.001, "0"),
        (-0.001, "0"),
        (1234567, "1,234,567"),
        (True, "true"),
        (math.inf, "inf"),
    ],
)
def test_format_number(value, text):
    assert format_number(value) == text


# --------------------------------------------------------------------------------------------------
# Property tests


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.text(alphabet="ab_9 ()<>=!'\"[],.-andortisxmgpwyd", max_size=40),
    )
)
def test_parser_raises_only_mapping_error(text):
    try:
        expr = parse_expression(text)
    except MappingError as exc:
        error = exc
    else:
        error = None
    if error is not None:
        assert error.reason
        assert error.source == "<expression>"
        return
    # whatever parses must evaluate and explain without raising, on any features
    features = {"a": 1, "b": "x", "d": None}
    assert isinstance(evaluate(expr, features), bool)
    assert isinstance(explain(expr, features), str)


@settings(max_examples=400, deadline=None)
@given(conditions, feature_sets)
def test_generated_conditions_match_the_reference_evaluator(tree, features):
    text = render(tree)
    expr = parse_expression(text)
    assert expr(features) is reference(tree, features), text
    assert parse_expression(text) == expr  # parsing is deterministic
    explanation = explain(expr, features)
    assert explanation
    if expr(features) and "not" not in text and "missing" not in text:
        assert "is missing" not in explanation  # what held cannot have read a missing value
