"""The segment service: facts about customers, the fitted model, classifying one customer, and the full
recompute that fits the model.

Only the full recompute fits the population cut-offs (the model). It runs as a job: the scheduler's
sync and nightly recompute, and the `refit` job after a mapping is published (scheduler.py). The
webhook path (`classify_customer`) never refits: after a publish it classifies with the last fitted
model, whatever mapping that was fitted for, until the refit job has run, so the first webhook after a
publish does not pay for the whole population while holding its lease. Each classification says which
model it used (the digest of the mapping the cut-offs were fitted for), and the worker records it with
the decision. Only a store with no usable model at all (a fresh install) fits on the spot, and logs so.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from integration.core import segments
from integration.core.mapping import MappingSpec
from integration.core.models import Assignment, Customer, Organization, TicketStats
from integration.store import Store

log = logging.getLogger("tierdesk.sync")
MODEL = "segments"


@dataclass(frozen=True)
class RecomputeReport:
    customers: int
    changes: int
    distribution: dict[str, dict[str | None, int]]
    quality: segments.QualityReport | None = None  # missing inputs and segment-size warnings


def customer_features(
    customer: Customer,
    organization: Organization | None,
    stats: TicketStats | None,
    mapping: MappingSpec,
    now: datetime,
) -> dict:
    return segments.features(customer, organization, stats or TicketStats(), now, mapping.features)


def load_population(
    store: Store, mapping: MappingSpec, now: datetime, organization_key: str | None = None
) -> tuple[segments.Population, segments.Population | None]:
    """Customers (and organizations, when a dimension lives at that level) as feature columns.

    The store reads only the attributes the mapping needs, column by column; segments.py derives
    the features. ``organization_key``: only that organization and its users.
    """
    customer_attrs, org_attrs = segments.stored_attributes(mapping)
    raw = store.customer_columns(customer_attrs, organization_key=organization_key)
    counts = {row[0]: row[1:] for row in store.ticket_stat_rows(now, organization_key)}
    zero = (0,) * 8
    stats = list(zip(*(counts.get(key, zero) for key in raw["keys"]), strict=True)) or [()] * 8
    order = (
        "tickets_30d",
        "tickets_90d",
        "tickets_365d",
        "tickets_total",
        "reopened_90d",
        "csat_good",
        "csat_bad",
        "tickets_solved_365d",
    )
    table = segments.CustomerTable(
        keys=raw["keys"],
        sources=raw["sources"],
        external_ids=raw["external_ids"],
        emails=raw["emails"],
        tags=raw["tags"],
        organization_keys=raw["organization_keys"],
        created_at=np.array(raw["created_at"], dtype=np.float64),
        attributes=raw["attributes"],
        stats={name: np.array(stats[i], dtype=np.float64) for i, name in enumerate(order)},
    )
    org_table = None
    if org_attrs or mapping.dimensions_at("organization"):
        keys = [organization_key] if organization_key is not None else None
        org_raw = store.organization_columns(org_attrs, keys=keys)
        org_table = segments.OrganizationTable(
            keys=org_raw["keys"],
            sources=org_raw["sources"],
            external_ids=org_raw["external_ids"],
            names=org_raw["names"],
            domains=org_raw["domains"],
            tags=org_raw["tags"],
            created_at=np.array(org_raw["created_at"], dtype=np.float64),
            attributes=org_raw["attributes"],
        )
    population = segments.customer_population(table, mapping, now, org_table)
    organizations = None
    if org_table is not None and mapping.dimensions_at("organization"):
        organizations = segments.organization_population(org_table, population, mapping, now)
    return population, organizations


def recompute(
    store: Store,
    mapping: MappingSpec,
    mapping_digest: str,
    now: datetime | None = None,
    *,
    min_share: float = 0.01,
    max_share: float = 0.80,
) -> RecomputeReport:
    """Fit the population cut-offs and classify every stored customer, keeping their history.

    Columnar end to end (segments.py explains why); reasons are rendered once, for the rows the
    store writes. ``min_share`` / ``max_share``: the segment sizes the quality report warns about.
    """
    now = now or datetime.now(UTC)
    population, organizations = load_population(store, mapping, now)
    seg = segments.segment(population, mapping, organizations=organizations)
    if seg.organizations is not None:
        orgs = seg.organizations
        store.save_organization_segments(
            {key: orgs.assignments(row) for row, key in enumerate(orgs.population.keys)}, now
        )
    changes = store.replace_segments(
        (
            (key, dimension, a.label, json.dumps(list(a.reasons), separators=(",", ":")))
            for key, assignments in seg.rows()
            for dimension, a in assignments.items()
        ),
        now,
    )
    store.save_model(MODEL, {"digest": mapping_digest, "fitted": seg.fitted.to_dict()}, now)
    quality = segments.quality_report(seg, min_share, max_share)
    report = RecomputeReport(population.size, changes, seg.distribution(), quality)
    log.info("sync.recomputed", extra={"customers": report.customers, "changes": changes})
    return report


def organization_assignments(
    store: Store,
    mapping: MappingSpec,
    fitted: segments.Fitted,
    organization: Organization | None,
    now: datetime,
) -> dict[str, list[tuple[str, Assignment]]]:
    """A customer's organization-level labels as the last recompute stored them for their organization.

    An organization the last recompute did not see (pulled on the spot) is classified now, from
    its own attributes and its users in the store, against the stored cut-offs.
    """
    dims = mapping.dimensions_at("organization")
    if not dims or organization is None:
        return {}
    title = segments.organization_title(organization.name, organization.external_id)
    stored = store.organization_segments(organization.key)
    if any(dim.name not in stored for dim in dims):
        population, orgs = load_population(store, mapping, now, organization_key=organization.key)
        if orgs is None or orgs.size == 0:
            return {}
        seg = segments.segment(population, mapping, fitted, organizations=orgs)
        assert seg.organizations is not None  # noqa: S101 - there are organization dimensions
        stored = seg.organizations.assignments(0)
    return {dim.name: [(title, stored[dim.name])] for dim in dims}


@dataclass(frozen=True)
class Model:
    """The population cut-offs and the mapping version they were fitted for."""

    fitted: segments.Fitted
    digest: str  # the mapping digest of the fit: the model version a decision records


def refit_pending(store: Store) -> bool:
    """True while the stored segments were fitted for another mapping than the active version."""
    fitted = store.model_digest(MODEL)
    return fitted is None or fitted[0] != store.active_mapping_digest()


def fitted_model(store: Store, mapping: MappingSpec, mapping_digest: str) -> Model:
    """The last fitted population cut-offs, whichever mapping they were fitted for: never a refit.

    A mapping published since is refitted by the refit job (scheduler.py); until then this is the
    previous version's model. Only when there is no usable model at all (a fresh install, or one
    written by a tierdesk whose format this one cannot read) is the current mapping fitted on the spot,
    with a full recompute, as the first sync would; the log says so.
    """
    saved = store.load_model(MODEL)
    if saved:
        try:
            return Model(segments.Fitted.from_dict(saved["fitted"]), str(saved["digest"]))
        except (KeyError, ValueError) as e:
            why = f"the stored model cannot be read ({e})"
    else:
        why = "no model was fitted yet"
    log.warning(
        "segments.fitted_on_the_spot",
        extra={"reason": why, "digest": mapping_digest, "hint": "tierdesk sync fits the model as a job"},
    )
    recompute(store, mapping, mapping_digest)
    saved = store.load_model(MODEL)
    assert saved is not None  # noqa: S101 - recompute just saved it
    return Model(segments.Fitted.from_dict(saved["fitted"]), mapping_digest)


@dataclass(frozen=True)
class Classified:
    """One customer's labels, the features they were computed from (routing may test features too)
    and the model version (mapping digest of the fit) that gave them."""

    assignments: dict[str, Assignment]
    features: dict
    model_digest: str


def classify_customer(
    store: Store,
    mapping: MappingSpec,
    mapping_digest: str,
    customer: Customer,
    now: datetime | None = None,
) -> Classified:
    """Classify one customer against the stored population cut-offs and keep the result.

    ``mapping`` is the active one (its rules and routing apply at once); the cut-offs are the last
    fitted model's (fitted_model), never refitted here. ``mapping_digest`` is the active mapping's,
    used only when there is no model at all and one must be fitted on the spot.
    """
    now = now or datetime.now(UTC)
    organization = store.get_organization(customer.organization_key) if customer.organization_key else None
    stats = store.ticket_stats(now, customer.key).get(customer.key)
    feats = customer_features(customer, organization, stats, mapping, now)
    model = fitted_model(store, mapping, mapping_digest)
    orgs = organization_assignments(store, mapping, model.fitted, organization, now)
    assignments = segments.classify(customer, feats, model.fitted, mapping, organizations=orgs)
    store.save_segments({customer.key: assignments}, now)
    return Classified(assignments, feats, model.digest)
