"""Every dimension over a population: labels as small arrays, reasons rendered on demand.

Reasons are not built during the batch: a `Segmentation` keeps, per dimension, which rule / band /
group decided (small integer arrays) and renders the plain words for one row only when asked (the
ticket note, the "why" page, the rows the store writes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from integration.core.mapping.conditions import Features
from integration.core.mapping.spec import MappingSpec
from integration.core.models import Assignment, Value
from integration.core.segments.base import Dimension, DimensionResult
from integration.core.segments.fitted import Fitted
from integration.core.segments.organizations import combine_organizations, org_title
from integration.core.segments.population import Population

_BLOCK = 4096  # rows per block when reasons are rendered row after row


class Segmentation:
    """Every dimension over a population: labels as small arrays, reasons rendered on demand."""

    def __init__(
        self,
        mapping: MappingSpec,
        population: Population,
        fitted: Fitted,
        results: dict[str, DimensionResult],
        organizations: Segmentation | None = None,
        given: dict[str, Sequence[tuple[str, Assignment]]] | None = None,
    ) -> None:
        self.mapping = mapping
        self.population = population
        self.fitted = fitted
        self.results = results
        self.organizations = organizations
        # single-customer path: organization-level assignments handed in (name, assignment) per dimension
        self.given = given or {}
        self.labels: dict[str, np.ndarray] = {name: result.label for name, result in results.items()}
        self.forced: dict[str, np.ndarray] = {}  # dimension -> index of the manual dimension that set it
        self._list_cache: dict[str, tuple[int, list[Any]]] = {}
        self._cell_keys = {
            name: tuple(f"\0{part}:{name}" for part in ("choice", "label", "detail")) for name in results
        }
        self._dims = {dim.name: dim for dim in mapping.segments}
        self._read: list[tuple[str, list[Any]]] | None = None
        self._assignment_cache: dict[tuple[int, str], Assignment] = {}

    # -- labels ----------------------------------------------------------------------------------

    def label_names(self, dimension: str) -> list[str | None]:
        """The label of every row, as text (None: no label)."""
        dim = self.mapping.dimension(dimension)
        table = [*dim.labels, None]
        return [table[code] for code in self.labels[dimension].tolist()]

    def distribution(self) -> dict[str, dict[str | None, int]]:
        """Rows per label, per dimension (None: no label), most common first."""
        out: dict[str, dict[str | None, int]] = {}
        for dim in self.mapping.segments:
            if dim.name not in self.labels:
                continue
            codes = self.labels[dim.name].astype(np.int64) + 1
            counts = np.bincount(codes, minlength=len(dim.labels) + 1)
            table = [None, *dim.labels]
            pairs = [(table[i], int(n)) for i, n in enumerate(counts) if n]
            out[dim.name] = dict(sorted(pairs, key=lambda pair: -pair[1]))
        return out

    # -- reasons -----------------------------------------------------------------------------------

    def assignments(self, row: int) -> dict[str, Assignment]:
        """One Assignment per dimension, in mapping order, with reasons in plain words."""
        feats = self._features(row)
        return {
            dim.name: self.assignment(row, dim.name, feats)
            for dim in self.mapping.segments
            if dim.name in self.labels
        }

    def assignment(self, row: int, dimension: str, feats: Features | None = None) -> Assignment:
        forced = self.forced.get(dimension)
        if forced is not None and forced[row] >= 0:
            return self._overridden(row, dimension, int(forced[row]))
        return self._computed(row, dimension, feats)

    def _cell(self, name: str, array: np.ndarray, row: int) -> Any:
        """One value, read from a block of the column turned into a Python list: rendering row
        after row then costs a list index, and memory stays one block per column, not a copy."""
        block = row // _BLOCK
        cached = self._list_cache.get(name)
        if cached is None or cached[0] != block:
            start = block * _BLOCK
            cached = self._list_cache[name] = (block, array[start : start + _BLOCK].tolist())
        return cached[1][row - block * _BLOCK]

    def _features(self, row: int) -> dict[str, Value]:
        """The features the reasons read, as a plain dict (missing values left out)."""
        if self._read is None:
            names = self.mapping.inputs(self.population.level)
            self._read = [(name, self.population.column(name)) for name in names]
        feats: dict[str, Value] = {}
        cell = self._cell
        for name, column in self._read:
            value = cell(name, column, row)
            if value is None or value != value:  # None or NaN: missing
                continue
            feats[name] = value
        return feats

    def _computed(self, row: int, dimension: str, feats: Features | None = None) -> Assignment:
        dim = self._dims[dimension]
        if dim.level == "organization" and self.population.level == "customer":
            return self._from_organization(row, dimension)
        result = self.results[dimension]
        keys = self._cell_keys[dimension]
        choice = self._cell(keys[0], result.choice, row)
        label_code = self._cell(keys[1], result.label, row)
        label = dim.labels[label_code] if label_code >= 0 else None
        if feats is None:
            feats = self._features(row)
        detail = None if result.detail is None else self._cell(keys[2], result.detail, row)
        reasons = dim.reasons(choice, detail, feats, self._fitted(dim), self.population, row)
        return Assignment(dim.name, label, reasons)

    def _fitted(self, dim: Dimension) -> Fitted:
        if dim.level == "organization" and self.population.level == "customer":
            return self.fitted.organization or Fitted()
        return self.fitted

    def _from_organization(self, row: int, dimension: str) -> Assignment:
        index = self.population.organization_index
        if dimension in self.given or index is None or row in self.population.other_organizations:
            return combine_organizations(self._dims[dimension], self._organization_candidates(row, dimension))
        key = (int(index[row]), dimension)  # users of one organization share its reasons
        found = self._assignment_cache.get(key)
        if found is None:
            candidates = self._organization_candidates(row, dimension)
            found = self._assignment_cache[key] = combine_organizations(self._dims[dimension], candidates)
        return found

    def _organization_candidates(self, row: int, dimension: str) -> list[tuple[str, Assignment]]:
        if dimension in self.given:
            return list(self.given[dimension])
        orgs = self.organizations
        index = self.population.organization_index
        if orgs is None or index is None or index[row] < 0:
            return []
        rows = [int(index[row]), *self.population.other_organizations.get(row, ())]
        return [(org_title(orgs.population, j), orgs.cached_assignment(j, dimension)) for j in rows]

    def cached_assignment(self, row: int, dimension: str) -> Assignment:
        """assignment(), remembered: an organization's reasons are shown to each of its users."""
        key = (row, dimension)
        found = self._assignment_cache.get(key)
        if found is None:
            found = self._assignment_cache[key] = self.assignment(row, dimension)
        return found

    def _overridden(self, row: int, dimension: str, manual_index: int) -> Assignment:
        manual = self.mapping.segments[manual_index]
        forced_label = dict(manual.overrides)[dimension]
        why = self._computed(row, manual.name)  # its own lists matched, even if a later one overrode it
        computed = self._computed(row, dimension)
        by = f"set by {manual.name} ({'; '.join(why.reasons)})" if why.reasons else f"set by {manual.name}"
        before = computed.label or "no label"
        after = "; ".join(computed.reasons)
        return Assignment(dimension, forced_label, (by, f"{before} without it: {after}" if after else before))

    def rows(self) -> Iterator[tuple[str, dict[str, Assignment]]]:
        """(key, assignments) for every row, rendering reasons as it goes (for the store)."""
        for row, key in enumerate(self.population.keys):
            yield key, self.assignments(row)
