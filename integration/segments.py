"""Customer features and segment assignments, as pure functions over plain records.

Two steps, so that routing one webhook never needs the whole population in memory:

* `fit` reads the population once and keeps only cut-off values (the value where "top 20%"
  starts, the nine decile cut-offs of each attribute a score ranks by percentile). The result,
  `Fitted`, is small, JSON-safe and stored by the service next to the segments.
* `classify` labels one customer in every dimension of the mapping, using those cut-offs, and
  says why in plain words ("revenue_12m 48,000 is in the top 20% (cut-off 31,200)").

Features (`features()`; docs/mapping.md has the same table for admins):

=================  ========  ==========================================================
name               unit      meaning
=================  ========  ==========================================================
(custom fields)    as sent   customer.attributes as the connector delivers them, e.g.
                             revenue_12m, lifetime_value, referrals, on_time_payment_rate,
                             service_cost_12m
org_<name>         as sent   organization.attributes, prefixed with ``org_``
tenure_days        days      now - customer.created_at (fractional; 0 if in the future)
tickets_30d        tickets   tickets requested in the last 30 days
tickets_90d        tickets   tickets requested in the last 90 days
tickets_total      tickets   all tickets on record
tickets_365d       tickets   last 365 days, only if TicketStats has that field
reopened_90d       tickets   tickets reopened in the last 90 days
csat_avg           0..1      good / (good + bad) satisfaction ratings; missing if no ratings
cost_to_serve      money     yearly tickets x cost_per_ticket + service_cost_12m (if present);
                             yearly tickets = tickets_365d, or tickets_total without it
profit_12m         money     revenue_12m - cost_to_serve; missing when revenue_12m is
=================  ========  ==========================================================

A missing value is None, never a silent 0: conditions on it are false and scores say so.
Derived features overwrite custom fields of the same name.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, ClassVar

from integration.mapping import (
    Features,
    FeatureSpec,
    ManualDimension,
    Mapping,
    PercentileDimension,
    RulesDimension,
    ScoreDimension,
    explain,
    format_number,
    format_value,
    is_number,
)
from integration.models import Assignment, Customer, Organization, TicketStats, Value

SECONDS_PER_DAY = 86_400
_SOURCE_NAMES = {"zendesk": "Zendesk", "freshdesk": "Freshdesk", "hubspot": "HubSpot"}


# --------------------------------------------------------------------------------------------------
# Features


def features(
    customer: Customer,
    organization: Organization | None,
    stats: TicketStats,
    now: datetime,
    spec: FeatureSpec,
) -> dict[str, Value]:
    """Everything conditions and scores can read about one customer (see the module table)."""
    feats: dict[str, Value] = dict(customer.attributes)
    if organization is not None:
        for name, value in organization.attributes.items():
            feats[f"org_{name}"] = value
    feats["tenure_days"] = _days_between(customer.created_at, now)
    feats["tickets_30d"] = stats.tickets_30d
    feats["tickets_90d"] = stats.tickets_90d
    feats["tickets_total"] = stats.tickets_total
    tickets_365d = getattr(stats, "tickets_365d", None)
    if tickets_365d is not None:
        feats["tickets_365d"] = tickets_365d
    feats["reopened_90d"] = stats.reopened_90d
    ratings = stats.csat_good + stats.csat_bad
    feats["csat_avg"] = stats.csat_good / ratings if ratings else None

    yearly_tickets = tickets_365d if tickets_365d is not None else stats.tickets_total
    cost: float = yearly_tickets * spec.cost_per_ticket
    service_cost = feats.get("service_cost_12m")
    if is_number(service_cost):
        cost += service_cost
    feats["cost_to_serve"] = cost
    revenue = feats.get("revenue_12m")
    feats["profit_12m"] = revenue - cost if is_number(revenue) else None
    return feats


def _days_between(start: datetime | None, now: datetime) -> float | None:
    if start is None:
        return None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (now - start).total_seconds() / SECONDS_PER_DAY)


# --------------------------------------------------------------------------------------------------
# Cut-offs: the definitions every percentile statement relies on.


def _count_for(percent: float, size: int) -> int:
    """How many customers "N%" of ``size`` means: ceil(N% x size), at least 1, exact arithmetic."""
    count = math.ceil(Fraction(str(percent)) * size / 100)
    return max(1, min(size, count))


def top_cutoff(ordered: Sequence[float], percent: float) -> float | None:
    """The value where the top N% starts: the k-th highest, k = ceil(N% of n).

    Everyone at or above it is in, so ties at the cut-off make the group a little larger than N%.
    """
    if not ordered:
        return None
    return ordered[len(ordered) - _count_for(percent, len(ordered))]


def bottom_cutoff(ordered: Sequence[float], percent: float) -> float | None:
    """The value where the bottom N% ends: the k-th lowest; everyone at or below it is in."""
    if not ordered:
        return None
    return ordered[_count_for(percent, len(ordered)) - 1]


def decile_cutoffs(ordered: Sequence[float]) -> tuple[float, ...]:
    """Nine cut-offs t1..t9 so that ``decile_score`` gives 1 + floor(10 x percentile rank).

    The percentile rank of a value is (customers below it + half of those equal to it) / n, so
    ties share a fair middle score: when 70% have 0 referrals, 0 scores 4, not 1 and not 7.
    t_s is the smallest population value whose rank reaches s/10 (infinity when none does).
    """
    size = len(ordered)
    cuts = []
    for step in range(1, 10):
        target = 2 * size * step  # rank >= step/10  <=>  10 x (2 x below + equal) >= 2 x n x step
        lo, hi = 0, size
        while lo < hi:
            mid = (lo + hi) // 2
            value = ordered[mid]
            if 10 * (bisect_left(ordered, value) + bisect_right(ordered, value)) >= target:
                hi = mid
            else:
                lo = mid + 1
        cuts.append(float(ordered[lo]) if lo < size else math.inf)
    return tuple(cuts)


def decile_score(value: float, cuts: Sequence[float]) -> int:
    """1 + the number of cut-offs the value reaches: below t1 -> 1, at or above t9 -> 10."""
    return 1 + bisect_right(cuts, value)


# --------------------------------------------------------------------------------------------------
# Fitting


@dataclass(frozen=True)
class Fitted:
    """Population cut-offs for one mapping; small and JSON-safe so the service can store it."""

    population: int = 0  # customers seen by fit()
    counts: dict[str, int] = field(default_factory=dict)  # metric -> customers with a value
    bands: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # dimension -> relative band label -> cut-off value (None: nobody had a value to rank)
    deciles: dict[str, tuple[float, ...]] = field(default_factory=dict)
    # attribute -> nine cut-offs (math.inf: a score nobody reaches); absent: no values to rank

    FORMAT: ClassVar[int] = 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (infinity becomes null)."""
        return {
            "format": self.FORMAT,
            "population": self.population,
            "counts": dict(self.counts),
            "bands": {dim: dict(cuts) for dim, cuts in self.bands.items()},
            "deciles": {
                attr: [None if math.isinf(cut) else cut for cut in cuts]
                for attr, cuts in self.deciles.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fitted:
        """The inverse of to_dict; raises ValueError on anything it did not write."""
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise ValueError(f"not a fitted-segments record of format {cls.FORMAT}")
        try:
            return cls(
                population=int(data["population"]),
                counts={str(k): int(v) for k, v in data["counts"].items()},
                bands={
                    str(dim): {str(label): None if cut is None else float(cut) for label, cut in cuts.items()}
                    for dim, cuts in data["bands"].items()
                },
                deciles={
                    str(attr): tuple(math.inf if cut is None else float(cut) for cut in cuts)
                    for attr, cuts in data["deciles"].items()
                },
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"bad fitted-segments record: {exc}") from exc


def _ranked_metrics(mapping: Mapping) -> dict[str, None]:
    """Metrics that need the population: relative bands and percentile-scored attributes."""
    wanted: dict[str, None] = {}
    for dim in mapping.segments:
        if isinstance(dim, PercentileDimension):
            if any(band.kind != "compare" for band in dim.bands):
                wanted[dim.metric] = None
        elif isinstance(dim, ScoreDimension):
            for attr in dim.ranked_attributes:
                wanted[attr] = None
    return wanted


def fit(population: Iterable[Features], mapping: Mapping) -> Fitted:
    """One pass over the population's features; keeps only the cut-offs (O(n log n), no n^2).

    Missing and non-numeric values are skipped: percentages are of the customers that have a value.
    """
    wanted = _ranked_metrics(mapping)
    columns = {metric: array("d") for metric in wanted}
    appenders = [(metric, columns[metric].append) for metric in wanted]
    size = 0
    for feats in population:
        size += 1
        for metric, append in appenders:
            value = feats.get(metric)
            if is_number(value):
                append(value)

    score_attrs = {
        attr for dim in mapping.segments if isinstance(dim, ScoreDimension) for attr in dim.ranked_attributes
    }
    counts: dict[str, int] = {}
    deciles: dict[str, tuple[float, ...]] = {}
    bands: dict[str, dict[str, float | None]] = {}
    for metric in wanted:
        ordered = sorted(columns.pop(metric))
        counts[metric] = len(ordered)
        if metric in score_attrs and ordered:
            deciles[metric] = decile_cutoffs(ordered)
        for dim in mapping.segments:
            if not isinstance(dim, PercentileDimension) or dim.metric != metric:
                continue
            cuts = bands.setdefault(dim.name, {})
            for band in dim.bands:
                if band.kind == "top":
                    cuts[band.label] = top_cutoff(ordered, band.percent or 0)
                elif band.kind == "bottom":
                    cuts[band.label] = bottom_cutoff(ordered, band.percent or 0)
    return Fitted(population=size, counts=counts, bands=bands, deciles=deciles)


# --------------------------------------------------------------------------------------------------
# Classifying one customer


def classify(customer: Customer, feats: Features, fitted: Fitted, mapping: Mapping) -> dict[str, Assignment]:
    """One Assignment per dimension, in mapping order, each with its reasons."""
    out: dict[str, Assignment] = {}
    for dim in mapping.segments:
        if isinstance(dim, RulesDimension):
            out[dim.name] = _classify_rules(dim, feats)
        elif isinstance(dim, ScoreDimension):
            out[dim.name] = _classify_score(dim, feats, fitted)
        elif isinstance(dim, PercentileDimension):
            out[dim.name] = _classify_percentile(dim, feats, fitted)
        else:
            out[dim.name] = _classify_manual(dim, customer)
    return out


def classify_all(
    customers_with_features: Iterable[tuple[Customer, Features]], mapping: Mapping
) -> tuple[Fitted, dict[str, dict[str, Assignment]]]:
    """Fit on everyone, then classify everyone; keys are customer.key."""
    items = list(customers_with_features)
    fitted = fit((feats for _, feats in items), mapping)
    return fitted, {customer.key: classify(customer, feats, fitted, mapping) for customer, feats in items}


def _classify_rules(dim: RulesDimension, feats: Features) -> Assignment:
    for rule in dim.rules:
        if rule.when.test(feats):
            return Assignment(dim.name, rule.then, (explain(rule.when, feats),))
    names = dict.fromkeys(name for rule in dim.rules for name in rule.when.names)
    present = [f"{n} {format_value(feats.get(n))}" for n in names if feats.get(n) is not None]
    missing = [f"{n} is missing" for n in names if feats.get(n) is None]
    first = f"no rule matched ({', '.join(present)})" if present else "no rule matched"
    return Assignment(dim.name, dim.default, (first, *missing))


def _classify_score(dim: ScoreDimension, feats: Features, fitted: Fitted) -> Assignment:
    scored: list[tuple[str, int, float]] = []  # attribute, 1-10, weight as written (normalised)
    notes: list[str] = []
    left_out: list[str] = []
    for attr, weight in dim.weights:
        value = feats.get(attr)
        cuts = dim.thresholds_for(attr) or fitted.deciles.get(attr)
        if value is None:
            problem = f"{attr} is missing"
        elif not is_number(value):
            problem = f"{attr} {format_value(value)} is not a number"
        elif cuts is None:
            why = "no customer has a value" if attr in fitted.counts else "no population fitted"
            problem = f"{attr} {format_value(value)} cannot be ranked ({why})"
        else:
            scored.append((attr, decile_score(value, cuts), weight))
            continue
        if dim.missing == "low":
            scored.append((attr, 1, weight))
            notes.append(f"{problem}, scored 1/10")
        else:
            left_out.append(attr)
            notes.append(problem)
    if not scored:
        return Assignment(dim.name, None, ("no scored attribute has a value", *notes))
    if left_out:
        notes.append(f"left out {', '.join(left_out)}; the other weights were renormalised")
    total = sum(weight for _, _, weight in scored)
    parts = [(attr, points, weight / total) for attr, points, weight in scored]
    score = round(sum(points * weight for _, points, weight in parts), 6)
    detail = ", ".join(f"{attr} {points}/10 x {weight:.2f}" for attr, points, weight in parts)
    for label, cut in dim.bands:
        if score >= cut:
            reason = f"score {format_number(score)} >= {format_number(cut)} ({detail})"
            return Assignment(dim.name, label, (reason, *notes))
    lowest_label, lowest = dim.bands[-1]
    reason = (
        f"score {format_number(score)} is below every band "
        f"(lowest: {lowest_label} {format_number(lowest)}) ({detail})"
    )
    return Assignment(dim.name, None, (reason, *notes))


def _classify_percentile(dim: PercentileDimension, feats: Features, fitted: Fitted) -> Assignment:
    metric = dim.metric
    value = feats.get(metric)
    if not is_number(value):
        problem = "is missing" if value is None else f"{format_value(value)} is not a number"
        return Assignment(dim.name, dim.default, (f"{metric} {problem}",))
    shown = f"{metric} {format_value(value)}"
    cutoffs = fitted.bands.get(dim.name, {})
    notes = []
    for band in dim.bands:
        if band.test is not None:
            if band.test.test(feats):
                return Assignment(dim.name, band.label, (explain(band.test, feats),))
            continue
        cut = cutoffs.get(band.label)
        if cut is None:
            why = "no customer has a value" if band.label in cutoffs else "no population fitted"
            notes.append(f"the {band.text} of {metric} is not known ({why})")
            continue
        inside = value >= cut if band.kind == "top" else value <= cut
        if inside:
            percent = format_number(band.percent or 0)
            reason = f"{shown} is in the {band.kind} {percent}% (cut-off {format_number(cut)})"
            return Assignment(dim.name, band.label, (reason,))
    return Assignment(dim.name, dim.default, (f"{shown} is in none of the bands", *notes))


def _classify_manual(dim: ManualDimension, customer: Customer) -> Assignment:
    where = "VIP list" if dim.label.lower() == "vip" else f"{dim.name} list"
    reasons = []
    if customer.external_id in dim.id_set:
        reasons.append(f"id {customer.external_id} is on the {where}")
    email = (customer.email or "").strip().lower()
    if email:
        if email in dim.email_set:
            reasons.append(f"email {email} is on the {where}")
        domain = email.rpartition("@")[2]
        listed = _listed_domain(domain, dim.domain_set)
        if listed == domain:
            reasons.append(f"email domain {domain} is on the {where}")
        elif listed:
            reasons.append(f"email domain {domain} is under {listed}, on the {where}")
    if dim.tag_set:
        system = _SOURCE_NAMES.get(customer.source, customer.source or "the source system")
        for tag in customer.tags:
            if tag.lower() in dim.tag_set:
                reasons.append(f"tag {tag} in {system}")
    return Assignment(dim.name, dim.label if reasons else None, tuple(reasons))


def _listed_domain(domain: str, listed: frozenset[str]) -> str | None:
    """The listed domain that ``domain`` is, or is a subdomain of (eu.acme.com under acme.com)."""
    if not domain or not listed:
        return None
    labels = domain.split(".")
    for start in range(len(labels)):
        candidate = ".".join(labels[start:])
        if candidate in listed:
            return candidate
    return None
