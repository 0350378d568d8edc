"""Keep segment tags on helpdesk users and organizations equal to their current segments.

The diff starts from what the helpdesk holds (the tags we synced, updated after every push), so a run
with nothing changed sends nothing. Only tags we own (``<prefix>_<dimension>_...``) are ever removed;
agents' and other integrations' tags are left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from connectors.base import Connector, SegmentWriter, TagChange, writes_segments, writes_tags
from integration.core import routing
from integration.core.mapping import MappingSpec
from integration.store import Store

log = logging.getLogger("tierdesk.tagsync")
KINDS = ("users", "organizations")


def plan_change(
    current: tuple[str, ...], labels: dict[str, str | None], mapping: MappingSpec
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tags to add, tags to remove) so that our tags on a record match its labels. Pure."""
    wanted = [routing.tag_for(d, label, mapping) for d, label in labels.items() if label is not None]
    owned_prefixes = tuple(f"{routing.tag_for(d, '', mapping)}" for d in mapping.dimension_names)
    add = tuple(t for t in dict.fromkeys(wanted) if t not in current)
    remove = tuple(t for t in current if t.startswith(owned_prefixes) and t not in wanted)
    return add, remove


@dataclass
class PushSummary:
    planned: dict[str, int] = field(default_factory=dict)
    pushed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    write_calls: int = 0
    job_polls: int = 0
    errors: list[str] = field(default_factory=list)


def push(store: Store, connector: Connector, mapping: MappingSpec) -> PushSummary:
    """Push tag differences for every user and organization of this connector's source."""
    if writes_segments(connector):
        return _push_crm(store, connector, mapping)
    summary = PushSummary()
    if not writes_tags(connector):
        return summary  # this connector has nowhere to keep segment tags
    source = connector.name
    for kind in connector.tag_kinds:
        changes: list[TagChange] = []
        new_tags: dict[str, tuple[str, ...]] = {}
        keys: dict[str, str] = {}
        for key, record_source, external_id, current, labels in store.tag_state(kind):
            if record_source != source:
                continue
            add, remove = plan_change(current, labels, mapping)
            if add or remove:
                changes.append(TagChange(external_id, add, remove))
                new_tags[external_id] = tuple(t for t in current if t not in remove) + add
                keys[external_id] = key
        summary.planned[kind] = len(changes)
        if not changes:
            continue
        report = connector.push_tags(kind, changes)
        summary.write_calls += report.write_calls
        summary.job_polls += report.job_polls
        summary.errors += report.errors
        summary.pushed[kind] = len(report.succeeded)
        summary.failed[kind] = len(report.failed)
        store.set_tags(kind, {keys[i]: new_tags[i] for i in report.succeeded})
    log.info(
        "tagsync.pushed",
        extra={"planned": summary.planned, "pushed": summary.pushed, "write_calls": summary.write_calls},
    )
    return summary


def _push_crm(store: Store, connector: SegmentWriter, mapping: MappingSpec) -> PushSummary:
    """A CRM keeps the segment tags in one multi-select property that holds only ours: set it whole."""
    summary = PushSummary()
    source = connector.name
    changes: dict[str, list[str]] = {}
    new_tags: dict[str, dict[str, tuple[str, ...]]] = {kind: {} for kind in connector.tag_kinds}
    for kind in connector.tag_kinds:
        planned = 0
        for key, record_source, _external_id, current, labels in store.tag_state(kind):
            if record_source != source:
                continue
            wanted = tuple(sorted(routing.tag_for(d, v, mapping) for d, v in labels.items() if v is not None))
            if set(wanted) != set(current):
                changes[key] = list(wanted)
                new_tags[kind][key] = wanted
                planned += 1
        summary.planned[kind] = planned
    if not changes:
        return summary
    report = connector.push_segments(changes)
    summary.write_calls = report.write_calls
    summary.errors = report.errors[:20]
    failed = set(report.failed)
    for kind in connector.tag_kinds:
        done = {k: v for k, v in new_tags[kind].items() if k not in failed}
        summary.pushed[kind] = len(done)
        summary.failed[kind] = len(new_tags[kind]) - len(done)
        store.set_tags(kind, done)
    return summary
