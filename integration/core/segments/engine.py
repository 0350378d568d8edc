"""The engine: fit a mapping's cut-offs, then label a population in every dimension, in mapping order.

Three steps, so that routing one webhook never needs the population in memory:

* `fit` reads the population once and keeps only cut-off values; the result, `Fitted`, is small
  and JSON-safe; the service stores it next to the segments.
* `segment` labels a whole population (customers and, for B2B dimensions, organizations) against a
  Fitted; `classify` does the same for one customer: it is the batch path on a one-row population,
  so the labels and reasons of both paths are the same by construction.
* `Segmentation.assignment` renders an `Assignment` with its reasons for one row.

Each dimension's method (rules.py, score.py, ...) does its own fitting, labelling and reasons;
the engine only runs them in order, hands organization labels to users and applies overrides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from integration.core.mapping.conditions import Features
from integration.core.mapping.spec import MappingSpec
from integration.core.models import Assignment, Customer
from integration.core.segments.base import Dimension, DimensionResult
from integration.core.segments.fitted import Fitted, Fitting
from integration.core.segments.organizations import combine_organizations, org_title
from integration.core.segments.population import Population
from integration.core.segments.segmentation import Segmentation


def fit(
    population: Population | Iterable[Features],
    mapping: MappingSpec,
    organizations: Population | None = None,
    level: str = "customer",
) -> Fitted:
    """Keep only the cut-offs: one sort per ranked metric (O(n log n)), nothing per customer.

    Missing and non-numeric values are skipped: percentages are of the rows that have a value.
    """
    if not isinstance(population, Population):
        population = Population.from_features(((None, feats) for feats in population), mapping.inputs(level))
    fitting = Fitting(population)
    for dim in mapping.dimensions_at(level):
        dim.fit(fitting)
    fitted_orgs = None
    if organizations is not None and level == "customer" and mapping.dimensions_at("organization"):
        fitted_orgs = fit(organizations, mapping, level="organization")
    return fitting.fitted(organization=fitted_orgs)


def segment(
    population: Population,
    mapping: MappingSpec,
    fitted: Fitted | None = None,
    organizations: Population | None = None,
    given: dict[str, Sequence[tuple[str, Assignment]]] | None = None,
) -> Segmentation:
    """Label every row in every dimension (fitting first when no cut-offs are given).

    Organization-level dimensions are computed over ``organizations`` and handed to their users
    (or taken from ``given``, the single-customer path). Manual ``overrides`` are applied last,
    in mapping order; the first manual dimension to set a dimension wins.
    """
    if fitted is None:
        fitted = fit(population, mapping, organizations)
    org_seg = None
    if organizations is not None and mapping.dimensions_at("organization"):
        org_fitted = fitted.organization or Fitted()
        org_results = {
            dim.name: dim.compute(organizations, org_fitted) for dim in mapping.dimensions_at("organization")
        }
        org_seg = Segmentation(mapping, organizations, org_fitted, org_results)
    results: dict[str, DimensionResult] = {}
    for dim in mapping.segments:
        if dim.level == "organization":
            results[dim.name] = _organization_result(dim, population, org_seg, given)
        else:
            results[dim.name] = dim.compute(population, fitted)
    seg = Segmentation(mapping, population, fitted, results, org_seg, given)
    _apply_overrides(seg)
    return seg


def _organization_result(
    dim: Dimension,
    population: Population,
    org_seg: Segmentation | None,
    given: dict[str, Sequence[tuple[str, Assignment]]] | None,
) -> DimensionResult:
    size = population.size
    label = np.full(size, -1, dtype=np.int16)
    if given is not None and dim.name in given:
        combined = combine_organizations(dim, given[dim.name])
        label[:] = dim.labels.index(combined.label) if combined.label is not None else -1
    elif org_seg is not None and population.organization_index is not None:
        index = population.organization_index
        org_labels = org_seg.labels[dim.name]
        label = np.where(index >= 0, org_labels[np.maximum(index, 0)] if len(org_labels) else -1, -1)
        label = label.astype(np.int16)
        holder = _Candidates(population, org_seg)
        for row in population.other_organizations:
            combined = combine_organizations(dim, holder.candidates(row, dim.name))
            label[row] = dim.labels.index(combined.label) if combined.label is not None else -1
    return DimensionResult(dim, np.zeros(size, dtype=np.int16), label)


class _Candidates:
    def __init__(self, population: Population, org_seg: Segmentation) -> None:
        self.population = population
        self.org_seg = org_seg

    def candidates(self, row: int, dimension: str) -> list[tuple[str, Assignment]]:
        index = self.population.organization_index
        assert index is not None  # noqa: S101
        rows = [int(index[row]), *self.population.other_organizations.get(row, ())]
        return [(org_title(self.org_seg.population, j), self.org_seg.assignment(j, dimension)) for j in rows]


def _apply_overrides(seg: Segmentation) -> None:
    """Labels that a match forces in other dimensions (manual ``overrides``), in mapping order."""
    matches = {
        dim.name: seg.labels[dim.name] >= 0 for dim in seg.mapping.segments if dim.overrides
    }  # each manual dimension's own match, before any override touches it
    for index, dim in enumerate(seg.mapping.segments):
        if not dim.overrides:
            continue
        matched = matches[dim.name]
        for target, label in dim.overrides:
            forced = seg.forced.setdefault(target, np.full(seg.population.size, -1, dtype=np.int16))
            rows = matched & (forced < 0)
            forced[rows] = index
            code = seg.mapping.dimension(target).labels.index(label) if label is not None else -1
            seg.labels[target] = np.where(rows, code, seg.labels[target]).astype(np.int16)


# --------------------------------------------------------------------------------------------------
# One customer, and the older entry points


def classify(
    customer: Customer,
    feats: Features,
    fitted: Fitted,
    mapping: MappingSpec,
    organizations: dict[str, Sequence[tuple[str, Assignment]]] | None = None,
) -> dict[str, Assignment]:
    """One Assignment per dimension, in mapping order, each with its reasons.

    The batch path on a one-row population, so a webhook gets exactly the labels and reasons a
    recompute would give. ``organizations``: for each organization-level dimension, the (title,
    assignment) of each organization the customer belongs to, as the last recompute stored them.
    """
    population = Population.from_features([(customer, feats)], mapping.inputs("customer"))
    given = dict(organizations or {})
    for dim in mapping.dimensions_at("organization"):
        given.setdefault(dim.name, ())
    return segment(population, mapping, fitted, given=given).assignments(0)


def classify_all(
    customers_with_features: Iterable[tuple[Customer, Features]], mapping: MappingSpec
) -> tuple[Fitted, dict[str, dict[str, Assignment]]]:
    """Fit on everyone, then classify everyone; keys are customer.key (small populations, tests)."""
    population = Population.from_features(customers_with_features, mapping.inputs("customer"))
    seg = segment(population, mapping)
    return seg.fitted, dict(seg.rows())
