"""Pull what changed since the stored cursors, then recompute everyone's segments."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.base import STREAMS, Connector
from integration import segments
from integration.mapping import Mapping
from integration.models import Assignment, Customer, Organization, TicketStats
from integration.store import Store

log = logging.getLogger("tierdesk.sync")
MODEL = "segments"


def pull(
    store: Store, connector: Connector, *, full: bool = False, streams: tuple[str, ...] = STREAMS
) -> dict[str, int]:
    """Incremental pull of each stream; every page is saved with its cursor in one transaction."""
    if full:
        store.reset_cursors(connector.name)
    counts: dict[str, int] = {}
    for stream in streams:
        counts[stream] = 0
        for batch in connector.pull(stream, store.get_cursor(connector.name, stream)):
            store.save_batch(connector.name, stream, batch.records, batch.cursor)
            counts[stream] += len(batch.records)
        log.info(
            "sync.pulled",
            extra={"connector": connector.name, "stream": stream, "n": counts[stream]},
        )
    return counts


@dataclass(frozen=True)
class RecomputeReport:
    customers: int
    changes: int
    distribution: dict[str, dict[str | None, int]]


def customer_features(
    customer: Customer,
    organization: Organization | None,
    stats: TicketStats | None,
    mapping: Mapping,
    now: datetime,
) -> dict:
    return segments.features(customer, organization, stats or TicketStats(), now, mapping.features)


def recompute(
    store: Store, mapping: Mapping, mapping_digest: str, now: datetime | None = None
) -> RecomputeReport:
    """Fit the population cut-offs and classify every stored customer, keeping their history."""
    now = now or datetime.now(UTC)
    organizations = store.organizations_by_key()
    stats = store.ticket_stats(now)
    rows = [
        (
            c,
            customer_features(c, organizations.get(c.organization_key or ""), stats.get(c.key), mapping, now),
        )
        for c in store.iter_customers()
    ]
    fitted, assignments = segments.classify_all(rows, mapping)
    changes = store.save_segments(assignments, now)
    store.save_model(MODEL, {"digest": mapping_digest, "fitted": fitted.to_dict()}, now)
    report = RecomputeReport(len(rows), changes, store.segment_distribution())
    log.info("sync.recomputed", extra={"customers": report.customers, "changes": changes})
    return report


def fitted_model(store: Store, mapping: Mapping, mapping_digest: str) -> segments.Fitted:
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
    mapping: Mapping,
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
    assignments = segments.classify(customer, feats, fitted, mapping)
    store.save_segments({customer.key: assignments}, now)
    return assignments, feats
