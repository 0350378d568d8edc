"""Method rfm: recency, frequency and monetary quintile scores (1-5), and named groups over them.

The quintile cut-offs are fitted on the population; a group is a condition over r, f and m.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from integration.core.mapping.condition_parser import parse_expression
from integration.core.mapping.conditions import Expression, Features, explain
from integration.core.mapping.formatting import format_value, is_number
from integration.core.mapping.loading import Doc, Path
from integration.core.mapping.validation import (
    expression_at,
    identifier,
    label_of,
    mapping_of,
    optional_label,
    text_of,
)
from integration.core.segments.base import Dimension, DimensionResult, label_codes
from integration.core.segments.cutoffs import ntile_cutoffs
from integration.core.segments.fitted import Fitted, Fitting
from integration.core.segments.masks import Columns, condition_mask
from integration.core.segments.population import Population
from integration.core.segments.rules import Rule

RFM_SCORES = ("r", "f", "m")

# The usual RFM group map on the recency (r) and frequency (f) quintile scores: every (r, f) pair of
# the 5 x 5 grid falls in exactly one group, tried in this order. A mapping may replace it.
DEFAULT_RFM_GROUPS: tuple[tuple[str, str], ...] = (
    ("champions", "r >= 5 and f >= 4"),
    ("loyal", "r between 3 and 4 and f >= 4"),
    ("potential_loyalists", "r >= 4 and f between 2 and 3"),
    ("new_customers", "r == 5 and f == 1"),
    ("promising", "r == 4 and f == 1"),
    ("need_attention", "r == 3 and f == 3"),
    ("about_to_sleep", "r == 3 and f <= 2"),
    ("cant_lose", "r <= 2 and f == 5"),
    ("at_risk", "r <= 2 and f between 3 and 4"),
    ("hibernating", "r <= 2 and f <= 2"),
)


@dataclass(frozen=True)
class RfmDimension(Dimension):
    """Recency, frequency and monetary quintile scores (1-5) and named groups over them."""

    name: str
    recency: str = "last_purchase_days"  # days since the last purchase: fewer is better
    frequency: str = "purchases_12m"
    monetary: str = "revenue_12m"
    groups: tuple[Rule, ...] = ()  # conditions over r, f, m; the first that holds names the group
    default: str | None = None
    description: str = ""
    level: str = "customer"
    multiple: str = "best"
    method: ClassVar[str] = "rfm"
    keys: ClassVar[dict[str, tuple[str, ...]]] = {
        "rfm": ("recency", "frequency", "monetary", "groups", "default")
    }

    @property
    def inputs(self) -> tuple[tuple[str, str], ...]:
        """(score letter, feature) pairs, in R, F, M order."""
        return (("r", self.recency), ("f", self.frequency), ("m", self.monetary))

    @property
    def labels(self) -> tuple[str, ...]:
        found = [rule.then for rule in self.groups]
        if self.default is not None:
            found.append(self.default)
        return tuple(dict.fromkeys(found))

    @cached_property
    def reads(self) -> tuple[str, ...]:
        return tuple(feature for _, feature in self.inputs)

    @classmethod
    def parse(cls, doc: Doc, name: str, raw: dict[str, Any], path: Path, description: str) -> RfmDimension:
        picked: dict[str, str] = {}
        for key in ("recency", "frequency", "monetary"):
            if raw.get(key) is not None:
                feature = text_of(doc, raw[key], (*path, key), key)
                picked[key] = identifier(doc, feature, (*path, key), key)
        groups: list[Rule] = []
        if raw.get("groups") is None:
            for label, text in DEFAULT_RFM_GROUPS:
                groups.append(Rule(parse_expression(text, source="<default rfm groups>"), label))
        else:
            groups_path = (*path, "groups")
            groups_raw = mapping_of(doc, raw["groups"], groups_path, "groups")
            if not groups_raw:
                raise doc.error(groups_path, "groups must name at least one group")
            for label, text in groups_raw.items():
                group_path = (*groups_path, label)
                label = label_of(doc, label, group_path)
                when = expression_at(doc, text, group_path)
                unknown = [n for n in when.names if n not in RFM_SCORES]
                if unknown:
                    raise doc.error(
                        group_path,
                        f"unknown name {unknown[0]!r} in an RFM group (use r, f and m: the scores 1-5)",
                    )
                groups.append(Rule(when, label))
        default = optional_label(doc, raw, "default", path)
        return cls(name, groups=tuple(groups), default=default, description=description, **picked)

    def fit(self, fitting: Fitting) -> None:
        scores = fitting.quintiles.setdefault(self.name, {})
        for letter, metric in self.inputs:
            values = fitting.ordered(metric, negate=letter == "r")
            fitting.counts[metric] = len(values)
            if len(values):
                scores[letter] = ntile_cutoffs(values, 5)

    def scores(self, population: Population, fitted: Fitted) -> np.ndarray:
        """(n, 3): every row's R, F and M score, 0 where its input is missing or cannot be ranked."""
        size = population.size
        out = np.zeros((size, 3), dtype=np.int8)
        cut_sets = fitted.quintiles.get(self.name, {})
        for column, (letter, metric) in enumerate(self.inputs):
            cuts = cut_sets.get(letter)
            if cuts is None:
                continue
            values = population.numeric(metric)
            signed = -values if letter == "r" else values
            scores = 1 + np.searchsorted(np.asarray(cuts, dtype=np.float64), signed, side="right")
            out[:, column] = np.where(np.isnan(values), 0, scores)
        return out

    def compute(self, population: Population, fitted: Fitted) -> DimensionResult:
        size = population.size
        scores = self.scores(population, fitted)
        complete = (scores > 0).all(axis=1)
        env = Columns(size, {letter: scores[:, i].astype(np.float64) for i, letter in enumerate("rfm")})
        choice = np.full(size, -1, dtype=np.int16)
        open_rows = complete.copy()
        for k, group in enumerate(self.groups):
            hit = condition_mask(group.when.tree, env) & open_rows
            choice[hit] = k
            open_rows &= ~hit
        choice[~complete] = -2
        outcomes = [self.default, self.default] + [group.then for group in self.groups]
        return DimensionResult(self, choice, label_codes(self, choice, outcomes, -2), detail=scores)

    def reasons(
        self, choice: int, detail: Any, feats: Features, fitted: Fitted, population: Population, row: int
    ) -> tuple[str, ...]:
        scores: tuple[int, int, int] = tuple(detail)
        if choice == -2:
            problems = []
            cut_sets = fitted.quintiles.get(self.name, {})
            for letter, metric in self.inputs:
                value = feats.get(metric)
                if value is None:
                    problems.append(f"{metric} is missing")
                elif not is_number(value):
                    problems.append(f"{metric} {format_value(value)} is not a number")
                elif letter not in cut_sets:
                    why = "no customer has a value" if metric in fitted.counts else "no population fitted"
                    problems.append(f"{metric} {format_value(value)} cannot be ranked ({why})")
            return tuple(problems) or ("RFM scores are not known",)
        r, f, m = scores
        parts = ", ".join(
            f"{metric} {format_value(feats.get(metric))} -> {letter.upper()} {score}"
            for (letter, metric), score in zip(self.inputs, scores, strict=True)
        )
        summary = f"RFM {r}-{f}-{m} ({parts})"
        if choice < 0:
            return (summary, "in none of the groups")
        return (summary, _group_reason(self.groups[choice].when, r, f, m))


_GROUP_REASONS: dict[tuple[str, int, int, int], str] = {}


def _group_reason(when: Expression, r: int, f: int, m: int) -> str:
    """Why an RFM group holds: only 125 score triples, so each explanation is made once."""
    key = (when.text, r, f, m)
    found = _GROUP_REASONS.get(key)
    if found is None:
        if len(_GROUP_REASONS) > 50_000:
            _GROUP_REASONS.clear()
        found = _GROUP_REASONS[key] = explain(when, {"r": r, "f": f, "m": m})
    return found
