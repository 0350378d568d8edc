"""Customer features and segment assignments: pure, columnar, explainable.

Why columnar: a recompute labels every customer in every dimension, and percentile bands and
percentile scores need the whole population. Per-customer Python (dicts in, reason strings out)
costs ~30 us a customer, 30 s for a million. Here each feature is one numpy array (float64, NaN for
missing; object arrays for text), so fitting is a sort per ranked metric and classifying is a few
vectorised comparisons per dimension. Reasons are not built during the batch: a `Segmentation`
keeps, per dimension, which rule / band / group decided (small integer arrays) and renders the plain
words for one customer only when asked (the ticket note, the "why" page, the rows the store writes).

Three steps, so that routing one webhook never needs the population in memory:

* `fit` reads the population once and keeps only cut-off values (where "top 20%" starts, the nine
  decile cut-offs of each attribute a score ranks by percentile, the RFM quintile cut-offs). The
  result, `Fitted`, is small and JSON-safe; the service stores it next to the segments.
* `segment` labels a whole population (customers and, for B2B dimensions, organizations) against a
  Fitted; `classify` does the same for one customer: it is the batch path on a one-row population,
  so the labels and reasons of both paths are the same by construction.
* `Segmentation.assignment` renders an `Assignment` with its reasons for one row.

Features (`features()` for one customer, `customer_population()` for many; docs/mapping.md has
the same table for admins):

===================  ========  ==========================================================
name                 unit      meaning
===================  ========  ==========================================================
(custom fields)      as sent   customer.attributes as the connector delivers them, e.g.
                               revenue_12m (money, 12 months), lifetime_value (money, all
                               time), referrals (count), purchases_12m (count),
                               on_time_payment_rate (0..1), service_cost_12m (money)
org_<name>           as sent   organization.attributes, prefixed with ``org_``
tenure_days          days      now - customer.created_at (fractional; 0 if in the future)
last_purchase_days   days      now - attribute last_purchase_at (a timestamp); without it the
                               attribute last_purchase_days as sent
tickets_30d          tickets   tickets requested in the last 30 days
tickets_90d          tickets   tickets requested in the last 90 days
tickets_total        tickets   all tickets on record
tickets_365d         tickets   last 365 days, only if TicketStats has that field
tickets_solved_365d  tickets   of those, the ones solved or closed (open tickets cost nothing yet)
reopened_90d         tickets   tickets reopened in the last 90 days
csat_avg             0..1      good / (good + bad) satisfaction ratings; missing if no ratings
cost_to_serve        money     yearly solved tickets x cost_per_ticket + every cost attribute that
                               is a number (default: service_cost_12m); yearly solved tickets =
                               tickets_solved_365d, or (stats without it) tickets_365d, else
                               tickets_total
profit_12m           money     revenue_12m - cost_to_serve; missing when revenue_12m is
===================  ========  ==========================================================

A missing value is None (NaN in a column), never a silent 0: conditions on it are false and
scores say so. Derived features overwrite custom fields of the same name.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

from integration.core.mapping import (
    And,
    Between,
    Compare,
    DimensionSpec,
    Expression,
    Features,
    FeatureSpec,
    InList,
    IsMissing,
    Literal,
    ManualDimension,
    MappingSpec,
    MatchList,
    Name,
    Node,
    Not,
    Operand,
    Or,
    PercentileDimension,
    RfmDimension,
    RulesDimension,
    ScoreDimension,
    Truth,
    compile_condition,
    dimension_inputs,
    explain,
    format_number,
    format_value,
    is_number,
)
from integration.core.models import Assignment, Customer, Organization, TicketStats, Value

SECONDS_PER_DAY = 86_400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SOURCE_NAMES = {"zendesk": "Zendesk", "freshdesk": "Freshdesk", "hubspot": "HubSpot", "csv": "the CSV file"}
STAT_FIELDS = (
    "tickets_30d",
    "tickets_90d",
    "tickets_total",
    "tickets_365d",
    "tickets_solved_365d",
    "reopened_90d",
    "csat_good",
    "csat_bad",
)

# Organization features summed over the organization's users (an attribute of the organization
# with the same name wins), the minimum and the mean; see organization_population().
ORG_SUMS = (
    "revenue_12m",
    "lifetime_value",
    "referrals",
    "purchases_12m",
    "tickets_30d",
    "tickets_90d",
    "tickets_365d",
    "tickets_total",
    "reopened_90d",
    "cost_to_serve",
)
ORG_MINIMA = ("last_purchase_days",)
ORG_MEANS = ("csat_avg",)


# --------------------------------------------------------------------------------------------------
# Features of one customer


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
    now_us = epoch_us(now)
    feats["tenure_days"] = _days_since(epoch_us(customer.created_at), now_us)
    purchase = epoch_us(customer.attributes.get("last_purchase_at"))
    if purchase is not None:
        feats["last_purchase_days"] = _days_since(purchase, now_us)
    feats["tickets_30d"] = stats.tickets_30d
    feats["tickets_90d"] = stats.tickets_90d
    feats["tickets_total"] = stats.tickets_total
    tickets_365d = getattr(stats, "tickets_365d", None)
    if tickets_365d is not None:
        feats["tickets_365d"] = tickets_365d
    solved = getattr(stats, "tickets_solved_365d", None)
    if solved is not None:
        feats["tickets_solved_365d"] = solved
    feats["reopened_90d"] = stats.reopened_90d
    ratings = stats.csat_good + stats.csat_bad
    feats["csat_avg"] = stats.csat_good / ratings if ratings else None

    # A ticket costs once it is solved: an open one (the one being routed, above all) adds nothing yet,
    # so opening a ticket never makes its requester less profitable (docs/mapping.md).
    if solved is not None:
        yearly_tickets = solved
    else:
        yearly_tickets = tickets_365d if tickets_365d is not None else stats.tickets_total
    cost: float = float(yearly_tickets) * spec.cost_per_ticket
    for name in spec.cost_attributes:
        extra = feats.get(name)
        if is_number(extra):
            cost += extra
    feats["cost_to_serve"] = cost
    revenue = feats.get("revenue_12m")
    feats["profit_12m"] = revenue - cost if is_number(revenue) else None
    return feats


def epoch_us(value: object) -> int | None:
    """Microseconds since 1970 for a datetime, ISO 8601 text or epoch seconds; None if unreadable.

    Whole microseconds so that the batch and the single-customer path compute identical days.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(round(value * 1_000_000)) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (value - _EPOCH) // timedelta(microseconds=1)
    return None


def _days_since(start_us: int | None, now_us: int | None) -> float | None:
    if start_us is None or now_us is None:
        return None
    return max(0.0, (now_us - start_us) / 1_000_000 / SECONDS_PER_DAY)


# --------------------------------------------------------------------------------------------------
# Columns


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


def _missing_mask(col: np.ndarray) -> np.ndarray:
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
        return int(_missing_mask(self.column(name)).sum()) if name in self.columns else self.size

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


def customer_population(
    table: CustomerTable,
    mapping: MappingSpec,
    now: datetime,
    organizations: OrganizationTable | None = None,
) -> Population:
    """Derive every feature the mapping reads, vectorised, from what the store read (module table)."""
    spec = mapping.features
    size = len(table.keys)
    org_index = np.full(size, -1, dtype=np.int64)
    if organizations is not None and organizations.keys:
        position = {key: i for i, key in enumerate(organizations.keys)}
        org_index = np.fromiter(
            (position.get(k, -1) if k else -1 for k in table.organization_keys), dtype=np.int64, count=size
        )
    names = set(mapping.inputs("customer")) | set(ORG_SUMS) | set(ORG_MINIMA) | set(ORG_MEANS)
    columns: dict[str, np.ndarray] = {}
    for name, values in table.attributes.items():
        if name in names or name in spec.cost_attributes or name == "revenue_12m":
            columns[name] = column_of(values)
    if organizations is not None:
        for name in names:
            if name.startswith("org_") and name[4:] in organizations.attributes:
                org_col = column_of(organizations.attributes[name[4:]])
                gathered = org_col[np.maximum(org_index, 0)] if len(org_col) else np.full(size, np.nan)
                if gathered.dtype == object:
                    gathered = gathered.copy()
                    gathered[org_index < 0] = None
                    own = columns.get(name)
                    if own is not None:
                        gathered[org_index < 0] = own[org_index < 0]
                else:
                    gathered = np.where(org_index >= 0, gathered, columns.get(name, np.nan))
                columns[name] = gathered

    now_us = float(epoch_us(now) or 0)
    columns["tenure_days"] = _days_column(np.asarray(table.created_at, dtype=np.float64) * 1_000_000, now_us)
    if "last_purchase_at" in table.attributes:
        start_us = np.array(
            [np.nan if (us := epoch_us(v)) is None else us for v in table.attributes["last_purchase_at"]],
            dtype=np.float64,
        )
        derived = _days_column(start_us, now_us)
        if "last_purchase_days" in columns:
            derived = np.where(np.isnan(start_us), numeric_view(columns["last_purchase_days"]), derived)
        columns["last_purchase_days"] = derived
    stats = {
        name: np.asarray(table.stats.get(name, np.zeros(size)), dtype=np.float64) for name in STAT_FIELDS
    }
    if "tickets_solved_365d" not in table.stats:  # a table without the count: every yearly ticket
        stats["tickets_solved_365d"] = stats["tickets_365d"]
    for name in ("tickets_30d", "tickets_90d", "tickets_total", "tickets_365d", "tickets_solved_365d"):
        columns[name] = stats[name]
    columns["reopened_90d"] = stats["reopened_90d"]
    ratings = stats["csat_good"] + stats["csat_bad"]
    with np.errstate(invalid="ignore", divide="ignore"):
        columns["csat_avg"] = np.where(ratings > 0, stats["csat_good"] / ratings, np.nan)
    cost = stats["tickets_solved_365d"] * spec.cost_per_ticket  # solved tickets only, as features()
    for name in spec.cost_attributes:
        if name in columns:
            extra = numeric_view(columns[name])
            cost = np.where(np.isnan(extra), cost, cost + extra)
    columns["cost_to_serve"] = cost
    revenue = numeric_view(columns.get("revenue_12m", np.full(size, np.nan)))
    columns["profit_12m"] = revenue - cost  # NaN stays NaN: missing revenue, missing profit

    return Population(
        table.keys,
        columns,
        sources=table.sources,
        external_ids=table.external_ids,
        emails=[normalise_email(e) for e in table.emails],
        tags=table.tags,
        organization_index=org_index,
        level="customer",
    )


DERIVED = frozenset(
    {
        "tenure_days",
        "tickets_30d",
        "tickets_90d",
        "tickets_total",
        "tickets_365d",
        "tickets_solved_365d",
        "reopened_90d",
        "csat_avg",
        "cost_to_serve",
        "profit_12m",
        "users",
    }
)


def stored_attributes(mapping: MappingSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The custom attributes a recompute must read: (of customers, of organizations).

    Only what the mapping's dimensions read, plus the inputs of derived features, so a store with
    many attributes is never read whole.
    """
    spec = mapping.features
    inputs = mapping.inputs("customer")
    raw = [n for n in inputs if n not in DERIVED and not n.startswith("org_")]
    raw += ["revenue_12m", *spec.cost_attributes, "last_purchase_at", "last_purchase_days"]
    org_raw = [n[4:] for n in inputs if n.startswith("org_")]
    if mapping.dimensions_at("organization"):
        summed = [n for n in (*ORG_SUMS, *ORG_MINIMA) if n not in DERIVED]
        raw += summed
        org_inputs = mapping.inputs("organization")
        org_raw += [n for n in org_inputs if n != "users"]
        org_raw += ["revenue_12m", *spec.cost_attributes, *summed]
    return tuple(dict.fromkeys(raw)), tuple(dict.fromkeys(org_raw))


def _days_column(start_us: np.ndarray, now_us: float) -> np.ndarray:
    """Days from whole epoch microseconds to now, computed exactly like _days_since."""
    with np.errstate(invalid="ignore"):
        days = (now_us - start_us) / 1_000_000 / SECONDS_PER_DAY
        return np.where(np.isnan(days), np.nan, np.maximum(days, 0.0))


def organization_population(
    table: OrganizationTable, customers: Population, mapping: MappingSpec, now: datetime
) -> Population:
    """Organization features: their own attributes, plus sums, minima and means over their users.

    An organization's own attribute wins over the aggregate of the same name; an aggregate over
    users none of whom has a value is missing, never 0. ``users`` counts the users; tenure_days
    comes from the organization's creation date, or its longest-standing user.
    """
    size = len(table.keys)
    members = customers.organization_index if customers.organization_index is not None else np.array([], int)
    inside = members >= 0
    where = members[inside]
    columns: dict[str, np.ndarray] = {}
    for name, values in table.attributes.items():
        columns[name] = column_of(values)
    columns["users"] = np.bincount(where, minlength=size).astype(np.float64)[:size]

    def aggregate(name: str, how: str) -> np.ndarray:
        values = customers.numeric(name)[inside]
        present = ~np.isnan(values)
        count = np.bincount(where[present], minlength=size)[:size]
        if how == "sum":
            out = np.bincount(where[present], weights=values[present], minlength=size)[:size]
        elif how == "mean":
            total = np.bincount(where[present], weights=values[present], minlength=size)[:size]
            with np.errstate(invalid="ignore", divide="ignore"):
                out = total / count
        elif how == "min":
            out = np.full(size, np.inf)
            np.minimum.at(out, where[present], values[present])
        else:
            out = np.full(size, -np.inf)
            np.maximum.at(out, where[present], values[present])
        return np.where(count > 0, out, np.nan)

    for name, how in (
        [(n, "sum") for n in ORG_SUMS] + [(n, "min") for n in ORG_MINIMA] + [(n, "mean") for n in ORG_MEANS]
    ):
        derived = aggregate(name, how)
        own = columns.get(name)
        if own is not None:
            own_numbers = numeric_view(own)
            derived = np.where(np.isnan(own_numbers), derived, own_numbers)
        columns[name] = derived
    for name in mapping.features.cost_attributes:
        own = columns.get(name)
        if own is not None:
            extra = numeric_view(own)
            columns["cost_to_serve"] = np.where(
                np.isnan(extra), columns["cost_to_serve"], np.nan_to_num(columns["cost_to_serve"]) + extra
            )
    columns["profit_12m"] = columns["revenue_12m"] - np.nan_to_num(columns["cost_to_serve"])
    now_us = float(epoch_us(now) or 0)
    tenure = _days_column(np.asarray(table.created_at, dtype=np.float64) * 1_000_000, now_us)
    columns["tenure_days"] = np.where(np.isnan(tenure), aggregate("tenure_days", "max"), tenure)
    return Population(
        table.keys,
        columns,
        sources=table.sources,
        external_ids=table.external_ids,
        tags=table.tags,
        domains=[tuple(d.lower().removeprefix("@") for d in ds) for ds in table.domains],
        names=table.names,
        level="organization",
    )


# --------------------------------------------------------------------------------------------------
# Cut-offs: the definitions every percentile statement relies on.


def _count_for(percent: float, size: int) -> int:
    """How many customers "N%" of ``size`` means: ceil(N% x size), at least 1, exact arithmetic."""
    count = math.ceil(Fraction(str(percent)) * size / 100)
    return max(1, min(size, count))


def top_cutoff(ordered: Sequence[float] | np.ndarray, percent: float) -> float | None:
    """The value where the top N% starts: the k-th highest, k = ceil(N% of n).

    Everyone at or above it is in, so ties at the cut-off make the group a little larger than N%.
    """
    if len(ordered) == 0:
        return None
    return float(ordered[len(ordered) - _count_for(percent, len(ordered))])


def bottom_cutoff(ordered: Sequence[float] | np.ndarray, percent: float) -> float | None:
    """The value where the bottom N% ends: the k-th lowest; everyone at or below it is in."""
    if len(ordered) == 0:
        return None
    return float(ordered[_count_for(percent, len(ordered)) - 1])


def ntile_cutoffs(ordered: Sequence[float] | np.ndarray, parts: int) -> tuple[float, ...]:
    """``parts - 1`` cut-offs so that ``ntile_score`` gives 1 + floor(parts x percentile rank).

    The percentile rank of a value is (customers below it + half of those equal to it) / n, so
    ties share a fair middle score: when 70% have 0 referrals, 0 scores 4 of 10, not 1 and not 7.
    t_s is the smallest population value whose rank reaches s/parts (infinity when none does).
    """
    values = np.asarray(ordered, dtype=np.float64)
    size = len(values)
    if size == 0:
        return (math.inf,) * (parts - 1)
    first = np.empty(size, dtype=bool)
    first[0] = True
    np.not_equal(values[1:], values[:-1], out=first[1:])
    distinct = values[first]
    below = np.flatnonzero(first)  # customers below each distinct value
    upto = np.append(below[1:], size)  # customers at or below it
    doubled_rank = parts * (below + upto)  # parts x 2n x rank, in exact integers
    cuts = []
    for step in range(1, parts):
        at = int(np.searchsorted(doubled_rank, 2 * size * step, side="left"))
        cuts.append(float(distinct[at]) if at < len(distinct) else math.inf)
    return tuple(cuts)


def decile_cutoffs(ordered: Sequence[float] | np.ndarray) -> tuple[float, ...]:
    """Nine cut-offs t1..t9 for 1-10 scores by percentile (see ntile_cutoffs)."""
    return ntile_cutoffs(ordered, 10)


def decile_score(value: float, cuts: Sequence[float]) -> int:
    """1 + the number of cut-offs the value reaches: below t1 -> 1, at or above t9 -> 10."""
    return 1 + bisect_right(cuts, value)


# --------------------------------------------------------------------------------------------------
# Fitting


@dataclass(frozen=True)
class Fitted:
    """Population cut-offs for one mapping; small and JSON-safe so the service can store it."""

    population: int = 0  # rows seen by fit()
    counts: dict[str, int] = field(default_factory=dict)  # metric -> rows with a value
    bands: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # dimension -> relative band label -> cut-off value (None: nobody had a value to rank)
    deciles: dict[str, tuple[float, ...]] = field(default_factory=dict)
    # attribute -> nine cut-offs (math.inf: a score nobody reaches); absent: no values to rank
    quintiles: dict[str, dict[str, tuple[float, ...]]] = field(default_factory=dict)
    # rfm dimension -> r / f / m -> four cut-offs (recency on minus days, so fewer days rank higher)
    organization: Fitted | None = None  # the same, over organizations, for level: organization

    FORMAT: ClassVar[int] = 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (infinity becomes null)."""

        def cuts(values: tuple[float, ...]) -> list[float | None]:
            return [None if math.isinf(cut) else cut for cut in values]

        out: dict[str, Any] = {
            "format": self.FORMAT,
            "population": self.population,
            "counts": dict(self.counts),
            "bands": {dim: dict(cut) for dim, cut in self.bands.items()},
            "deciles": {attr: cuts(values) for attr, values in self.deciles.items()},
            "quintiles": {
                dim: {letter: cuts(values) for letter, values in scores.items()}
                for dim, scores in self.quintiles.items()
            },
        }
        if self.organization is not None:
            out["organization"] = self.organization.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fitted:
        """The inverse of to_dict; raises ValueError on anything it did not write."""
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise ValueError(f"not a fitted-segments record of format {cls.FORMAT}")

        def cuts(values: list[float | None]) -> tuple[float, ...]:
            return tuple(math.inf if cut is None else float(cut) for cut in values)

        try:
            return cls(
                population=int(data["population"]),
                counts={str(k): int(v) for k, v in data["counts"].items()},
                bands={
                    str(dim): {
                        str(label): None if cut is None else float(cut) for label, cut in values.items()
                    }
                    for dim, values in data["bands"].items()
                },
                deciles={str(attr): cuts(values) for attr, values in data["deciles"].items()},
                quintiles={
                    str(dim): {str(letter): cuts(values) for letter, values in scores.items()}
                    for dim, scores in data.get("quintiles", {}).items()
                },
                organization=cls.from_dict(data["organization"]) if data.get("organization") else None,
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"bad fitted-segments record: {exc}") from exc


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
    dims = mapping.dimensions_at(level)
    sorted_cache: dict[str, np.ndarray] = {}

    def ordered(metric: str, negate: bool = False) -> np.ndarray:
        key = f"-{metric}" if negate else metric
        if key not in sorted_cache:
            values = population.numeric(metric)
            values = values[~np.isnan(values)]
            sorted_cache[key] = np.sort(-values if negate else values, kind="stable")
        return sorted_cache[key]

    counts: dict[str, int] = {}
    deciles: dict[str, tuple[float, ...]] = {}
    bands: dict[str, dict[str, float | None]] = {}
    quintiles: dict[str, dict[str, tuple[float, ...]]] = {}
    for dim in dims:
        if isinstance(dim, PercentileDimension) and any(band.kind != "compare" for band in dim.bands):
            values = ordered(dim.metric)
            counts[dim.metric] = len(values)
            cuts = bands.setdefault(dim.name, {})
            for band in dim.bands:
                if band.kind == "top":
                    cuts[band.label] = top_cutoff(values, band.percent or 0)
                elif band.kind == "bottom":
                    cuts[band.label] = bottom_cutoff(values, band.percent or 0)
        elif isinstance(dim, ScoreDimension):
            for attr in dim.ranked_attributes:
                values = ordered(attr)
                counts[attr] = len(values)
                if len(values):
                    deciles[attr] = decile_cutoffs(values)
        elif isinstance(dim, RfmDimension):
            scores = quintiles.setdefault(dim.name, {})
            for letter, metric in dim.inputs:
                values = ordered(metric, negate=letter == "r")
                counts[metric] = len(values)
                if len(values):
                    scores[letter] = ntile_cutoffs(values, 5)
    fitted_orgs = None
    if organizations is not None and level == "customer" and mapping.dimensions_at("organization"):
        fitted_orgs = fit(organizations, mapping, level="organization")
    return Fitted(
        population=population.size,
        counts=counts,
        bands=bands,
        deciles=deciles,
        quintiles=quintiles,
        organization=fitted_orgs,
    )


# --------------------------------------------------------------------------------------------------
# Conditions over columns


class _Columns:
    """A few named float columns, for evaluating RFM groups over the r, f, m scores."""

    def __init__(self, size: int, columns: dict[str, np.ndarray]) -> None:
        self.size = size
        self.columns = columns

    def column(self, name: str) -> np.ndarray:
        return self.columns.get(name, np.full(self.size, np.nan))


def condition_mask(node: Node, population: Population | _Columns) -> np.ndarray:
    """Where a condition holds, for every row at once; the same answers as mapping.evaluate.

    Numeric columns are compared with numpy (NaN compares false, which is exactly "a comparison
    that reads a missing value is false"); a condition touching a text column falls back to the
    scalar closure row by row, so both paths share one definition of the semantics.
    """
    size = population.size
    if isinstance(node, Not):
        return ~condition_mask(node.operand, population)
    if isinstance(node, And | Or):
        out = condition_mask(node.parts[0], population)
        for part in node.parts[1:]:
            out = (
                (out & condition_mask(part, population))
                if isinstance(node, And)
                else (out | condition_mask(part, population))
            )
        return out
    operands = _node_operands(node)
    if any(isinstance(op, Name) and population.column(op.name).dtype == object for op in operands):
        return _scalar_mask(node, population)
    if isinstance(node, Compare):
        return _compare_mask(node.op, node.left, node.right, population)
    if isinstance(node, Between):
        low = _compare_mask(">=", node.operand, node.low, population)
        return low & _compare_mask("<=", node.operand, node.high, population)
    if isinstance(node, InList):
        if isinstance(node.operand, Literal):
            return np.full(size, compile_condition(node)({}))
        values = population.column(node.operand.name)
        numbers = [item.value for item in node.items if is_number(item.value)]
        hit = np.isin(values, np.array(numbers, dtype=np.float64)) if numbers else np.zeros(size, bool)
        return (~np.isnan(values) & ~hit) if node.negated else hit
    if isinstance(node, IsMissing):
        if isinstance(node.operand, Literal):
            return np.full(size, compile_condition(node)({}))
        missing = np.isnan(population.column(node.operand.name))
        return ~missing if node.negated else missing
    if isinstance(node, Truth):
        if isinstance(node.operand, Literal):
            return np.full(size, compile_condition(node)({}))
        values = population.column(node.operand.name)
        return ~np.isnan(values) & (values != 0)
    raise TypeError(f"not an expression node: {node!r}")  # pragma: no cover


def _node_operands(node: Node) -> tuple[Operand, ...]:
    if isinstance(node, Compare):
        return (node.left, node.right)
    if isinstance(node, Between):
        return (node.operand, node.low, node.high)
    if isinstance(node, InList | IsMissing | Truth):
        return (node.operand,)
    return ()


_NUMPY_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
}


def _compare_mask(op: str, left: Operand, right: Operand, population: Population | _Columns) -> np.ndarray:
    size = population.size
    if isinstance(left, Literal) and isinstance(right, Literal):
        return np.full(size, compile_condition(Compare(op, left, right))({}))
    sides = []
    for operand in (left, right):
        if isinstance(operand, Literal):
            if not is_number(operand.value):  # text or true/false against a number column
                other = right if operand is left else left
                assert isinstance(other, Name)  # noqa: S101 - both literals handled above
                present = ~np.isnan(population.column(other.name))
                return present if op == "!=" else np.zeros(size, dtype=bool)
            sides.append(float(operand.value))
        else:
            sides.append(population.column(operand.name))
    a, b = sides
    if op == "!=":
        with np.errstate(invalid="ignore"):
            return ~np.isnan(a) & ~np.isnan(b) & (np.not_equal(a, b))
    with np.errstate(invalid="ignore"):
        return np.asarray(_NUMPY_OPS[op](a, b), dtype=bool)


def _scalar_mask(node: Node, population: Population | _Columns) -> np.ndarray:
    test = compile_condition(node)
    names = [op.name for op in _node_operands(node) if isinstance(op, Name)]
    columns = [population.column(name) for name in names]

    def value(col: np.ndarray, i: int) -> Value:
        item = col[i]
        if col.dtype != object:
            return None if math.isnan(item) else float(item)
        return item

    return np.fromiter(
        (
            test({name: value(col, i) for name, col in zip(names, columns, strict=True)})
            for i in range(population.size)
        ),
        dtype=bool,
        count=population.size,
    )


# --------------------------------------------------------------------------------------------------
# Labelling a population


_BLOCK = 4096  # rows per block when reasons are rendered row after row


@dataclass
class DimensionResult:
    """One dimension over one population: what decided (``choice``) and the label (``label``).

    ``choice`` by method -- rules: the rule index, len(rules) for the default; score: the band
    index, -1 below every band, -2 nothing scored; percentile: the band index, -1 none fits, -2
    missing, -3 not a number; rfm: the group index, -1 no group, -2 an input missing; manual: 1
    on a list, 0 not, 2 denied. ``label`` indexes dim.labels, -1 for no label.
    """

    dim: DimensionSpec
    choice: np.ndarray
    label: np.ndarray
    score: np.ndarray | None = None  # score: the weighted score
    rfm: np.ndarray | None = None  # rfm: (n, 3) scores 1-5, 0 where missing


def _label_codes(
    dim: DimensionSpec, choice: np.ndarray, outcomes: Sequence[str | None], offset: int
) -> np.ndarray:
    """Map choice values (offset .. offset + len(outcomes) - 1) to label indexes."""
    table = np.array([dim.labels.index(o) if o is not None else -1 for o in outcomes], dtype=np.int16)
    return table[choice.astype(np.int64) - offset]


def _rules(dim: RulesDimension, population: Population) -> DimensionResult:
    count = len(dim.rules)
    choice = np.full(population.size, count, dtype=np.int16)
    open_rows = np.ones(population.size, dtype=bool)
    for k, rule in enumerate(dim.rules):
        hit = condition_mask(rule.when.tree, population) & open_rows
        choice[hit] = k
        open_rows &= ~hit
    outcomes = [rule.then for rule in dim.rules] + [dim.default]
    return DimensionResult(dim, choice, _label_codes(dim, choice, outcomes, 0))


def _score_cuts(dim: ScoreDimension, attr: str, fitted: Fitted) -> tuple[float, ...] | None:
    return dim.thresholds_for(attr) or fitted.deciles.get(attr)


def _score(dim: ScoreDimension, population: Population, fitted: Fitted) -> DimensionResult:
    size = population.size
    scored: list[tuple[np.ndarray, np.ndarray, float]] = []  # ok, points, weight
    total = np.zeros(size)
    for attr, weight in dim.weights:
        values = population.numeric(attr)
        cuts = _score_cuts(dim, attr, fitted)
        if cuts is None:
            ok = np.zeros(size, dtype=bool)
            points = np.ones(size)
        else:
            ok = ~np.isnan(values)
            points = 1.0 + np.searchsorted(np.asarray(cuts, dtype=np.float64), values, side="right")
        if dim.missing == "low":
            points = np.where(ok, points, 1.0)
            ok = np.ones(size, dtype=bool)
        scored.append((ok, points, weight))
        total += np.where(ok, weight, 0.0)
    score = np.zeros(size)
    with np.errstate(invalid="ignore", divide="ignore"):
        for ok, points, weight in scored:
            score += np.where(ok, points * (weight / total), 0.0)
    nothing = total == 0
    score = np.round(score, 6)
    score[nothing] = np.nan
    choice = np.full(size, -1, dtype=np.int16)
    open_rows = ~nothing
    for k, (_, cut) in enumerate(dim.bands):
        hit = open_rows & (score >= cut)
        choice[hit] = k
        open_rows &= ~hit
    choice[nothing] = -2
    outcomes = [None, None] + [label for label, _ in dim.bands]
    return DimensionResult(dim, choice, _label_codes(dim, choice, outcomes, -2), score=score)


def _percentile(dim: PercentileDimension, population: Population, fitted: Fitted) -> DimensionResult:
    size = population.size
    raw = population.column(dim.metric)
    values = numeric_view(raw)
    present = ~np.isnan(values)
    choice = np.full(size, -1, dtype=np.int16)
    choice[~present] = -2
    if raw.dtype == object:
        choice[~present & ~_missing_mask(raw)] = -3
    cutoffs = fitted.bands.get(dim.name, {})
    open_rows = present.copy()
    for k, band in enumerate(dim.bands):
        if band.test is not None:
            hit = condition_mask(band.test.tree, _Columns(size, {dim.metric: values}))
        else:
            cut = cutoffs.get(band.label)
            if cut is None:
                continue
            with np.errstate(invalid="ignore"):
                hit = values >= cut if band.kind == "top" else values <= cut
        hit &= open_rows
        choice[hit] = k
        open_rows &= ~hit
    outcomes = [dim.default, dim.default, dim.default] + [band.label for band in dim.bands]
    return DimensionResult(dim, choice, _label_codes(dim, choice, outcomes, -3))


def _rfm_scores(dim: RfmDimension, population: Population, fitted: Fitted) -> np.ndarray:
    size = population.size
    out = np.zeros((size, 3), dtype=np.int8)
    cut_sets = fitted.quintiles.get(dim.name, {})
    for column, (letter, metric) in enumerate(dim.inputs):
        cuts = cut_sets.get(letter)
        if cuts is None:
            continue
        values = population.numeric(metric)
        signed = -values if letter == "r" else values
        scores = 1 + np.searchsorted(np.asarray(cuts, dtype=np.float64), signed, side="right")
        out[:, column] = np.where(np.isnan(values), 0, scores)
    return out


def _rfm(dim: RfmDimension, population: Population, fitted: Fitted) -> DimensionResult:
    size = population.size
    scores = _rfm_scores(dim, population, fitted)
    complete = (scores > 0).all(axis=1)
    env = _Columns(size, {letter: scores[:, i].astype(np.float64) for i, letter in enumerate("rfm")})
    choice = np.full(size, -1, dtype=np.int16)
    open_rows = complete.copy()
    for k, group in enumerate(dim.groups):
        hit = condition_mask(group.when.tree, env) & open_rows
        choice[hit] = k
        open_rows &= ~hit
    choice[~complete] = -2
    outcomes = [dim.default, dim.default] + [group.then for group in dim.groups]
    return DimensionResult(dim, choice, _label_codes(dim, choice, outcomes, -2), rfm=scores)


def _manual(dim: ManualDimension, population: Population) -> DimensionResult:
    allowed = _list_matches(dim.allow, population)
    denied = _list_matches(dim.deny, population) if dim.deny else np.zeros(population.size, dtype=bool)
    choice = np.where(denied, 2, np.where(allowed, 1, 0)).astype(np.int16)
    label = np.where(choice == 1, 0, -1).astype(np.int16)
    return DimensionResult(dim, choice, label)


def _list_matches(lists: MatchList, population: Population) -> np.ndarray:
    """Rows on any of the lists: a set look-up per row and list, skipping empty lists."""
    size = population.size
    hit = np.zeros(size, dtype=bool)
    if lists.id_set:
        id_set = lists.id_set
        hit |= np.fromiter((x in id_set for x in population.external_ids), dtype=bool, count=size)
    if lists.email_set:
        email_set = lists.email_set
        hit |= np.fromiter((e in email_set for e in population.emails), dtype=bool, count=size)
    if lists.domain_set:
        cache: dict[str, bool] = {}
        domain_set = lists.domain_set

        def listed(domain: str) -> bool:
            found = cache.get(domain)
            if found is None:
                found = cache[domain] = _listed_domain(domain, domain_set) is not None
            return found

        if population.level == "organization":
            hit |= np.fromiter((any(map(listed, ds)) for ds in population.domains), dtype=bool, count=size)
        else:
            hit |= np.fromiter(
                (listed(e.rpartition("@")[2]) if e else False for e in population.emails),
                dtype=bool,
                count=size,
            )
    if lists.tag_set:
        tag_set = lists.tag_set
        for i, tags in enumerate(population.tags):
            if tags and any(tag.lower() in tag_set for tag in tags):
                hit[i] = True
    return hit


def _compute(dim: DimensionSpec, population: Population, fitted: Fitted) -> DimensionResult:
    if isinstance(dim, RulesDimension):
        return _rules(dim, population)
    if isinstance(dim, ScoreDimension):
        return _score(dim, population, fitted)
    if isinstance(dim, PercentileDimension):
        return _percentile(dim, population, fitted)
    if isinstance(dim, RfmDimension):
        return _rfm(dim, population, fitted)
    return _manual(dim, population)


@dataclass(frozen=True)
class OrganizationLabel:
    """A user's organization-level label: which organization gave it (row; -1 none)."""

    row: int
    assignment: Assignment


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
            name: tuple(f"\0{part}:{name}" for part in ("choice", "label", "score", "rfm"))
            for name in results
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
        if isinstance(dim, RulesDimension):
            reasons = _rules_reasons(dim, choice, feats)
        elif isinstance(dim, ScoreDimension):
            assert result.score is not None  # noqa: S101
            score = self._cell(keys[2], result.score, row)
            reasons = _score_reasons(dim, choice, score, feats, self._fitted(dim))
        elif isinstance(dim, PercentileDimension):
            reasons = _percentile_reasons(dim, choice, feats, self._fitted(dim))
        elif isinstance(dim, RfmDimension):
            assert result.rfm is not None  # noqa: S101
            scores = tuple(self._cell(keys[3], result.rfm, row))
            reasons = _rfm_reasons(dim, choice, scores, feats, self._fitted(dim))
        elif choice == 0:
            reasons = ()
        else:
            reasons = _manual_reasons(dim, self.population, row)
        return Assignment(dim.name, label, reasons)

    def _fitted(self, dim: DimensionSpec) -> Fitted:
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
        return [(_org_title(orgs.population, j), orgs.cached_assignment(j, dimension)) for j in rows]

    def cached_assignment(self, row: int, dimension: str) -> Assignment:
        """assignment(), remembered: an organization's reasons are shown to each of its users."""
        key = (row, dimension)
        found = self._assignment_cache.get(key)
        if found is None:
            found = self._assignment_cache[key] = self.assignment(row, dimension)
        return found

    def _overridden(self, row: int, dimension: str, manual_index: int) -> Assignment:
        manual = self.mapping.segments[manual_index]
        assert isinstance(manual, ManualDimension)  # noqa: S101
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


def _org_title(population: Population, row: int) -> str:
    return organization_title(population.names[row], population.external_ids[row])


def organization_title(name: str | None, external_id: str) -> str:
    """How reasons name an organization: its name, else its id."""
    return f"organization {name}" if name else f"organization {external_id}"


def combine_organizations(dim: DimensionSpec, candidates: Sequence[tuple[str, Assignment]]) -> Assignment:
    """A user's label in an organization-level dimension, from the organizations they belong to.

    ``multiple: best`` takes the organization whose label comes first in the dimension's label
    order (score bands highest first, rules, bands and groups as written), ``first`` the first
    organization the connector lists; with one organization both are that one. Reasons say
    which organization it was.
    """
    if not candidates:
        return Assignment(dim.name, None, ("not in an organization",))
    chosen = candidates[0]
    if dim.multiple == "best":
        order = {label: i for i, label in enumerate(dim.labels)}
        labelled = [c for c in candidates if c[1].label is not None]
        if labelled:
            chosen = min(labelled, key=lambda c: order.get(c[1].label or "", len(order)))
    title, assignment = chosen
    reasons = tuple(f"{title}: {reason}" for reason in assignment.reasons) or (title,)
    return Assignment(dim.name, assignment.label, reasons)


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
            dim.name: _compute(dim, organizations, org_fitted)
            for dim in mapping.dimensions_at("organization")
        }
        org_seg = Segmentation(mapping, organizations, org_fitted, org_results)
    results: dict[str, DimensionResult] = {}
    for dim in mapping.segments:
        if dim.level == "organization":
            results[dim.name] = _organization_result(dim, population, org_seg, given)
        else:
            results[dim.name] = _compute(dim, population, fitted)
    seg = Segmentation(mapping, population, fitted, results, org_seg, given)
    _apply_overrides(seg)
    return seg


def _organization_result(
    dim: DimensionSpec,
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
        return [(_org_title(self.org_seg.population, j), self.org_seg.assignment(j, dimension)) for j in rows]


def _apply_overrides(seg: Segmentation) -> None:
    matches = {
        dim.name: seg.labels[dim.name] >= 0
        for dim in seg.mapping.segments
        if isinstance(dim, ManualDimension)
    }  # each manual dimension's own match, before any override touches it
    for index, dim in enumerate(seg.mapping.segments):
        if not isinstance(dim, ManualDimension) or not dim.overrides:
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


# --------------------------------------------------------------------------------------------------
# Reasons, in plain words with the numbers


def _rules_reasons(dim: RulesDimension, choice: int, feats: Features) -> tuple[str, ...]:
    if choice < len(dim.rules):
        return (explain(dim.rules[choice].when, feats),)
    names = dimension_inputs(dim)
    present = [f"{n} {format_value(feats.get(n))}" for n in names if feats.get(n) is not None]
    missing = [f"{n} is missing" for n in names if feats.get(n) is None]
    first = f"no rule matched ({', '.join(present)})" if present else "no rule matched"
    return (first, *missing)


def _score_reasons(
    dim: ScoreDimension, choice: int, score: float, feats: Features, fitted: Fitted
) -> tuple[str, ...]:
    scored: list[tuple[str, int, float]] = []
    notes: list[str] = []
    left_out: list[str] = []
    for attr, weight in dim.weights:
        value = feats.get(attr)
        cuts = _score_cuts(dim, attr, fitted)
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
    if choice == -2 or not scored:
        return ("no scored attribute has a value", *notes)
    if left_out:
        notes.append(f"left out {', '.join(left_out)}; the other weights were renormalised")
    total = sum(weight for _, _, weight in scored)
    detail = ", ".join(f"{attr} {points}/10 x {weight / total:.2f}" for attr, points, weight in scored)
    if choice >= 0:
        _, cut = dim.bands[choice]
        return (f"score {format_number(score)} >= {format_number(cut)} ({detail})", *notes)
    lowest_label, lowest = dim.bands[-1]
    reason = (
        f"score {format_number(score)} is below every band "
        f"(lowest: {lowest_label} {format_number(lowest)}) ({detail})"
    )
    return (reason, *notes)


def _percentile_reasons(
    dim: PercentileDimension, choice: int, feats: Features, fitted: Fitted
) -> tuple[str, ...]:
    metric = dim.metric
    value = feats.get(metric)
    if choice in (-2, -3) or not is_number(value):
        problem = "is missing" if value is None else f"{format_value(value)} is not a number"
        return (f"{metric} {problem}",)
    shown = f"{metric} {format_value(value)}"
    cutoffs = fitted.bands.get(dim.name, {})
    if choice >= 0:
        band = dim.bands[choice]
        if band.test is not None:
            return (explain(band.test, feats),)
        cut = cutoffs.get(band.label)
        percent = format_number(band.percent or 0)
        return (f"{shown} is in the {band.kind} {percent}% (cut-off {format_number(cut or 0)})",)
    notes = []
    for band in dim.bands:
        if band.test is None and cutoffs.get(band.label) is None:
            why = "no customer has a value" if band.label in cutoffs else "no population fitted"
            notes.append(f"the {band.text} of {metric} is not known ({why})")
    return (f"{shown} is in none of the bands", *notes)


def _rfm_reasons(
    dim: RfmDimension, choice: int, scores: tuple[int, int, int], feats: Features, fitted: Fitted
) -> tuple[str, ...]:
    if choice == -2:
        problems = []
        cut_sets = fitted.quintiles.get(dim.name, {})
        for letter, metric in dim.inputs:
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
        for (letter, metric), score in zip(dim.inputs, scores, strict=True)
    )
    summary = f"RFM {r}-{f}-{m} ({parts})"
    if choice < 0:
        return (summary, "in none of the groups")
    return (summary, _group_reason(dim.groups[choice].when, r, f, m))


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


def _manual_reasons(dim: ManualDimension, population: Population, row: int) -> tuple[str, ...]:
    where = "VIP list" if dim.label.lower() == "vip" else f"{dim.name} list"
    allow = _match_reasons(dim.allow, population, row, where)
    if not dim.deny:
        return allow
    deny = _match_reasons(dim.deny, population, row, f"{where.removesuffix(' list')} deny list")
    if not deny:
        return allow
    if allow:
        return (*deny, f"the deny list wins over: {'; '.join(allow)}")
    return deny


def _match_reasons(lists: MatchList, population: Population, row: int, where: str) -> tuple[str, ...]:
    reasons = []
    external_id = population.external_ids[row]
    if external_id in lists.id_set:
        reasons.append(f"id {external_id} is on the {where}")
    email = population.emails[row]
    if email:
        if email in lists.email_set:
            reasons.append(f"email {email} is on the {where}")
        domain = email.rpartition("@")[2]
        listed = _listed_domain(domain, lists.domain_set)
        if listed == domain:
            reasons.append(f"email domain {domain} is on the {where}")
        elif listed:
            reasons.append(f"email domain {domain} is under {listed}, on the {where}")
    for domain in population.domains[row]:
        listed = _listed_domain(domain, lists.domain_set)
        if listed == domain:
            reasons.append(f"domain {domain} is on the {where}")
        elif listed:
            reasons.append(f"domain {domain} is under {listed}, on the {where}")
    if lists.tag_set:
        source = population.sources[row]
        system = _SOURCE_NAMES.get(source, source or "the source system")
        for tag in population.tags[row]:
            if tag.lower() in lists.tag_set:
                reasons.append(f"tag {tag} in {system}")
    return tuple(reasons)


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


# --------------------------------------------------------------------------------------------------
# Data quality


@dataclass(frozen=True)
class QualityReport:
    """What `tierdesk segment --report` prints besides the distribution."""

    customers: int
    organizations: int
    missing: dict[str, int]  # customer-level input -> customers without a value
    organization_missing: dict[str, int]  # organization-level input -> organizations without one
    warnings: tuple[str, ...]


def quality_report(seg: Segmentation, min_share: float = 0.01, max_share: float = 0.80) -> QualityReport:
    """How many rows lack each input the mapping reads, and segments that are too small or too big.

    A label held by fewer than ``min_share`` of the customers (over-segmentation: a segment too
    small to act on) or more than ``max_share`` (under-segmentation: it no longer separates
    anyone) gets a warning; so does a label nobody has.
    """
    pop = seg.population
    mapping = seg.mapping
    missing = {name: pop.missing(name) for name in mapping.inputs("customer")}
    org_missing: dict[str, int] = {}
    org_size = 0
    if seg.organizations is not None:
        org_size = seg.organizations.population.size
        org_missing = {
            name: seg.organizations.population.missing(name) for name in mapping.inputs("organization")
        }
    warnings: list[str] = []
    total = pop.size
    distribution = seg.distribution()
    for dim in mapping.segments:
        counts = distribution.get(dim.name, {})
        for label in dim.labels:
            n = counts.get(label, 0)
            share = n / total if total else 0.0
            if n == 0:
                warnings.append(f"{dim.name} {label}: nobody has this label")
            elif share < min_share:
                warnings.append(
                    f"{dim.name} {label}: {n:,} customers ({share:.1%}) is under {min_share:.0%}: "
                    "over-segmented, too small to act on?"
                )
            elif share > max_share:
                warnings.append(
                    f"{dim.name} {label}: {n:,} customers ({share:.1%}) is over {max_share:.0%}: "
                    "under-segmented, it separates almost nobody"
                )
    for name, n in missing.items():
        if total and n == total:
            warnings.append(f"no customer has {name}: every dimension reading it falls back")
    return QualityReport(total, org_size, missing, org_missing, tuple(warnings))
