"""What conditions and scores read about a customer or an organization: the features.

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
from datetime import UTC, datetime, timedelta

import numpy as np

from integration.core.mapping.formatting import is_number
from integration.core.mapping.spec import FeatureSpec, MappingSpec
from integration.core.models import Customer, Organization, TicketStats, Value
from integration.core.segments.population import (
    CustomerTable,
    OrganizationTable,
    Population,
    column_of,
    normalise_email,
    numeric_view,
)

SECONDS_PER_DAY = 86_400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
