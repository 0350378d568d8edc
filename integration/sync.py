"""Pull what changed since the stored cursors, then recompute everyone's segments."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from connectors.base import Source
from integration.core import identity, segments
from integration.core.mapping import MappingSpec
from integration.core.models import Assignment, Customer, Organization, TicketStats
from integration.store import Store

log = logging.getLogger("tierdesk.sync")
MODEL = "segments"


def pull(
    store: Store,
    connector: Source,
    *,
    full: bool = False,
    streams: tuple[str, ...] | None = None,
    progress: Callable[[str, str, int], None] | None = None,
    resolve: bool = True,
) -> dict[str, int]:
    """Incremental pull of each stream; every page is saved with its cursor in one transaction.

    Each stream's run (start, finish, count, error) is kept in the store for `tierdesk sync --status`.
    A snapshot source (a CSV file, or a CRM on a full pull) forgets records the snapshot no longer has.
    Afterwards identities are resolved again (unless `resolve` is False: the caller does it once).
    """
    if full:
        store.clear_cursors(connector.name)
    sweeps = connector.snapshot or (full and connector.pull_only)
    counts: dict[str, int] = {}
    for stream in streams or connector.streams:
        counts[stream] = 0
        store.start_stream(connector.name, stream, datetime.now(UTC))
        seen: set[str] | None = set() if sweeps and stream != "tickets" else None
        read = False
        try:
            for batch in connector.pull(stream, store.get_cursor(connector.name, stream)):
                store.save_batch(connector.name, stream, batch.records, batch.cursor)
                counts[stream] += len(batch.records)
                read = True
                if seen is not None:
                    seen.update(record.key for record in batch.records)
                if progress is not None:
                    progress(connector.name, stream, counts[stream])
            if seen is not None and read:
                removed = store.sweep(connector.name, stream, seen)
                if removed:
                    log.info(
                        "sync.swept", extra={"connector": connector.name, "stream": stream, "n": removed}
                    )
        except Exception as e:
            error = f"{e.__class__.__name__}: {e}"[:500]
            store.finish_stream(connector.name, stream, counts[stream], datetime.now(UTC), error)
            raise
        store.finish_stream(connector.name, stream, counts[stream], datetime.now(UTC))
        log.info(
            "sync.pulled",
            extra={"connector": connector.name, "stream": stream, "n": counts[stream]},
        )
    if resolve:
        resolve_identities(store)
    return counts


def resolve_identities(
    store: Store, rules: identity.Rules | None = None, now: datetime | None = None
) -> identity.Resolution | None:
    """Match records across sources and store links, overlays and conflicts (None: nothing to match).

    Purchases are summed here (revenue_12m... as of `now`), so they refresh with every sync.
    """
    rules = rules or store.identity_rules or identity.Rules()
    if not store.has_records_outside(rules.helpdesks):
        return None
    now = now or datetime.now(UTC)
    customers, organizations = store.source_records()
    resolution = identity.resolve(customers, organizations, rules)
    ranks = {link.record_key: link.rank for link in resolution.links}
    parts = {
        r.key: identity.Part(ranks[r.key], r.key, r.attributes, r.tags, r.created_at)
        for r in [*customers, *organizations]
    }
    overlays = identity.overlays(resolution, parts, store.purchase_totals(now))
    store.save_identities(resolution.links, overlays, resolution.conflicts, now)
    log.info(
        "identity.resolved",
        extra={
            "people": resolution.people,
            "organizations": resolution.organizations,
            "linked": resolution.linked,
            "conflicts": len(resolution.conflicts),
        },
    )
    return resolution


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


def fitted_model(store: Store, mapping: MappingSpec, mapping_digest: str) -> segments.Fitted:
    """The population cut-offs for this mapping, refitting when the mapping changed since."""
    saved = store.load_model(MODEL)
    if saved and saved.get("digest") == mapping_digest:
        return segments.Fitted.from_dict(saved["fitted"])
    recompute(store, mapping, mapping_digest)
    saved = store.load_model(MODEL)
    assert saved is not None  # noqa: S101 - recompute just saved it
    return segments.Fitted.from_dict(saved["fitted"])


def segments_for_customer(
    store: Store,
    mapping: MappingSpec,
    mapping_digest: str,
    customer: Customer,
    now: datetime | None = None,
) -> tuple[dict[str, Assignment], dict]:
    """Classify one customer against the stored population cut-offs and keep the result.

    Returns the assignments and the features they were computed from (routing may test features too).
    """
    now = now or datetime.now(UTC)
    organization = store.get_organization(customer.organization_key) if customer.organization_key else None
    stats = store.ticket_stats(now, customer.key).get(customer.key)
    feats = customer_features(customer, organization, stats, mapping, now)
    fitted = fitted_model(store, mapping, mapping_digest)
    orgs = organization_assignments(store, mapping, fitted, organization, now)
    assignments = segments.classify(customer, feats, fitted, mapping, organizations=orgs)
    store.save_segments({customer.key: assignments}, now)
    return assignments, feats
