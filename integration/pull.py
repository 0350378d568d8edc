"""Pull what changed in one source since its stored cursors, and match identities across sources.

The refresh cycle (refresh.py) pulls every source with `pull`, then resolves identities once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from connectors.base import Source
from integration.core import identity
from integration.store import Store

log = logging.getLogger("tierdesk.sync")


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
