"""Many customers (or organizations) as columns: one numpy array per feature, plus who they are.

Each feature is one array (float64, NaN for missing; object arrays for text), so that fitting is a
sort per ranked metric and classifying a few vectorised comparisons per dimension. ``RowView``
reads one row back as a features mapping.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from integration.core.mapping.conditions import Features
from integration.core.mapping.formatting import is_number
from integration.core.models import Customer, Organization, Value


def column_of(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """One feature column: float64 with NaN for missing when every value is a number or missing,
    otherwise an object array of the values as sent (text, booleans, mixed)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        col = values.astype(np.float64, copy=True)
        col[~np.isfinite(col)] = np.nan
        return col
    items = values if isinstance(values, list) else list(values)
    numeric = all(
        value is None or type(value) is float or is_number(value)  # NaN and infinity: missing
        for value in items
    )
    if numeric:
        col = np.array([np.nan if v is None else v for v in items], dtype=np.float64)
        col[~np.isfinite(col)] = np.nan
        return col
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def numeric_view(col: np.ndarray) -> np.ndarray:
    """Numbers of a column as float64, NaN for anything that is not a finite number."""
    if col.dtype != object:
        return col
    return np.array([float(v) if is_number(v) else np.nan for v in col], dtype=np.float64)


def missing_mask(col: np.ndarray) -> np.ndarray:
    """Rows without a value: NaN, or in a text column anything but text, a bool or a number."""
    if col.dtype != object:
        return np.isnan(col)
    return np.array([not isinstance(v, str | bool) and not is_number(v) for v in col], dtype=bool)


@dataclass
class CustomerTable:
    """What the store reads for a recompute, column by column (all lists aligned by row)."""

    keys: list[str]
    sources: list[str]
    external_ids: list[str]
    emails: list[str | None]
    tags: list[tuple[str, ...]]
    organization_keys: list[str | None]
    created_at: np.ndarray  # epoch seconds, NaN when unknown
    attributes: dict[str, Sequence[Any]]  # attribute -> values as sent (None when absent)
    stats: dict[str, np.ndarray]  # STAT_FIELDS -> counts (0 without tickets)


@dataclass
class OrganizationTable:
    keys: list[str]
    sources: list[str]
    external_ids: list[str]
    names: list[str | None]
    domains: list[tuple[str, ...]]
    tags: list[tuple[str, ...]]
    created_at: np.ndarray  # epoch seconds, NaN when unknown
    attributes: dict[str, Sequence[Any]]


class Population:
    """Many customers (or organizations) as columns: one array per feature, plus who they are."""

    def __init__(
        self,
        keys: Sequence[str],
        columns: dict[str, np.ndarray],
        *,
        sources: Sequence[str] | None = None,
        external_ids: Sequence[str] | None = None,
        emails: Sequence[str] | None = None,
        tags: Sequence[tuple[str, ...]] | None = None,
        domains: Sequence[tuple[str, ...]] | None = None,
        names: Sequence[str | None] | None = None,
        organization_index: np.ndarray | None = None,
        other_organizations: dict[int, tuple[int, ...]] | None = None,
        level: str = "customer",
    ) -> None:
        self.keys = keys
        self.size = len(keys)
        self.columns = columns
        self.sources = sources if sources is not None else [""] * self.size
        self.external_ids = external_ids if external_ids is not None else [""] * self.size
        self.emails = emails if emails is not None else [""] * self.size  # stripped, lowercase
        self.tags = tags if tags is not None else [()] * self.size
        self.domains = domains if domains is not None else [()] * self.size  # organizations
        self.names = names if names is not None else [None] * self.size
        # customers: row of their (first) organization in the organization population, -1 for none
        self.organization_index = organization_index
        # users a connector puts in several organizations: row -> the other organizations' rows
        self.other_organizations = other_organizations or {}
        self.level = level

    def column(self, name: str) -> np.ndarray:
        col = self.columns.get(name)
        if col is None:
            col = np.full(self.size, np.nan)
        return col

    def numeric(self, name: str) -> np.ndarray:
        return numeric_view(self.column(name))

    def row(self, index: int) -> RowView:
        return RowView(self, index)

    def missing(self, name: str) -> int:
        """How many rows lack a value for this feature."""
        return int(missing_mask(self.column(name)).sum()) if name in self.columns else self.size

    @classmethod
    def from_features(
        cls,
        rows: Iterable[tuple[Customer | Organization | None, Features]],
        names: Iterable[str] | None = None,
        level: str = "customer",
    ) -> Population:
        """A population from per-row feature dicts (the single-customer path and the tests)."""
        items = list(rows)
        wanted = (
            list(dict.fromkeys(names))
            if names is not None
            else list(dict.fromkeys(k for _, feats in items for k in feats))
        )
        columns = {name: column_of([feats.get(name) for _, feats in items]) for name in wanted}
        who = [record for record, _ in items]
        return cls(
            [getattr(r, "key", str(i)) if r is not None else str(i) for i, r in enumerate(who)],
            columns,
            sources=[r.source if r is not None else "" for r in who],
            external_ids=[r.external_id if r is not None else "" for r in who],
            emails=[normalise_email(getattr(r, "email", None)) for r in who],
            tags=[tuple(r.tags) if r is not None else () for r in who],
            domains=[tuple(getattr(r, "domains", ())) for r in who],
            names=[getattr(r, "name", None) for r in who],
            level=level,
        )


def normalise_email(email: str | None) -> str:
    """Emails as lists and matching compare them: stripped and lowercase, "" for none."""
    return (email or "").strip().lower()


class RowView(Mapping[str, Value]):
    """One row of a Population read as a features mapping (missing values read as absent)."""

    __slots__ = ("index", "population")

    def __init__(self, population: Population, index: int) -> None:
        self.population = population
        self.index = index

    def __getitem__(self, name: str) -> Value:
        col = self.population.columns.get(name)
        if col is None:
            raise KeyError(name)
        value = col[self.index]
        if col.dtype != object:
            if math.isnan(value):
                raise KeyError(name)
            return float(value)
        if value is None:
            raise KeyError(name)
        return value

    def get(self, name: str, default: Value = None) -> Value:  # type: ignore[override]
        try:
            return self[name]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        return (name for name in self.population.columns if name in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None
