"""Decide a ticket's priority, SLA and group from its requester's segments: pure, no I/O.

Each field is set by the first routing rule, in file order, whose ``when`` holds and that sets
that field; a field no rule sets comes from the mapping's ``default``. So a VIP rule that only
sets priority does not stop a later rule from choosing the group. The Decision carries the tags
to add, one reason per field, and the internal note agents read on the ticket.
"""

from __future__ import annotations

from collections.abc import Mapping

from integration.core.mapping import ROUTED_FIELDS, Features, MappingSpec, RoutingRule
from integration.core.models import Assignment, Decision

_FIELD_TITLES = {"priority": "Priority", "sla": "SLA", "group": "Group"}


def tag_for(dimension: str, label: str, mapping: MappingSpec) -> str:
    """The helpdesk tag for one segment label, e.g. ``tierdesk_tier_a``."""
    return mapping.tags.segment_tag(dimension, label)


def sla_tag(sla: str, mapping: MappingSpec) -> str:
    """The helpdesk tag that selects an SLA policy, e.g. ``tierdesk_sla_gold``."""
    return mapping.tags.sla_tag(sla)


def segment_tags(assignments: Mapping[str, Assignment], mapping: MappingSpec) -> tuple[str, ...]:
    """Tags for every dimension that has a label, in mapping order (what the scheduler pushes)."""
    tags = []
    for dim in mapping.segments:
        assignment = assignments.get(dim.name)
        if assignment is not None and assignment.label is not None:
            tags.append(tag_for(dim.name, assignment.label, mapping))
    return tuple(dict.fromkeys(tags))


def decide(
    assignments: Mapping[str, Assignment],
    mapping: MappingSpec,
    feats: Features | None = None,
) -> Decision:
    """Route one ticket: first matching rule per field, then defaults; tags, reasons and note."""
    labels = {
        dim.name: (assignments[dim.name].label if dim.name in assignments else None)
        for dim in mapping.segments
    }
    # Condition strings see features, with dimension names standing for their labels.
    env: Features = {**(feats or {}), **labels}
    chosen: dict[str, tuple[str, RoutingRule | None]] = {}
    for rule in mapping.routing:
        wanted = [name for name in ROUTED_FIELDS if name not in chosen and rule.sets.get(name) is not None]
        if wanted and rule.matches(labels, env):
            for name in wanted:
                chosen[name] = (rule.sets.get(name) or "", rule)
        if len(chosen) == len(ROUTED_FIELDS):
            break
    for name in ROUTED_FIELDS:
        value = mapping.default.get(name)
        if name not in chosen and value is not None:
            chosen[name] = (value, None)

    reasons = []
    for name in ROUTED_FIELDS:
        if name in chosen:
            value, rule = chosen[name]
            reasons.append(f"{name} {value}: {_source(rule)}")
        else:
            reasons.append(f"{name}: left as it is (no rule or default sets it)")

    sla = chosen["sla"][0] if "sla" in chosen else None
    tags = list(segment_tags(assignments, mapping))
    if sla is not None:
        tags.append(sla_tag(sla, mapping))
    tags.append(mapping.tags.routed)
    # An SLA without an entry in `slas:` has no targets: the helpdesk's own policy decides.
    target = mapping.sla_targets.get(sla) if sla is not None else None
    return Decision(
        priority=chosen["priority"][0] if "priority" in chosen else None,
        sla=sla,
        group=chosen["group"][0] if "group" in chosen else None,
        first_response_minutes=target.first_response_minutes if target else None,
        resolution_minutes=target.resolution_minutes if target else None,
        tags=tuple(dict.fromkeys(tags)),
        note=_note(chosen, assignments, mapping),
        reasons=tuple(reasons),
    )


def _source(rule: RoutingRule | None) -> str:
    if rule is None:
        return "default"
    return f"routing rule {rule.number} ({rule.summary})"


def _note(
    chosen: dict[str, tuple[str, RoutingRule | None]],
    assignments: Mapping[str, Assignment],
    mapping: MappingSpec,
) -> str:
    """The internal note: what was set, which rule set it, and the segments behind it. No noise."""
    lines = ["tierdesk routed this ticket"]
    settings = []
    for name in ROUTED_FIELDS:
        if name not in chosen:
            continue
        value = chosen[name][0]
        target = mapping.sla_targets.get(value) if name == "sla" else None
        shown = f"{value} ({target.summary})" if target and target.summary else value
        settings.append(f"{_FIELD_TITLES[name]}: {shown}")
    lines.append(" · ".join(settings) if settings else "No field changed")

    by_source: dict[str, list[str]] = {}
    for name in ROUTED_FIELDS:
        if name in chosen:
            by_source.setdefault(_source(chosen[name][1]), []).append(name)
    if len(by_source) == 1:
        (source,) = by_source
        if source == "default":
            source = "default (no routing rule matched)"
        lines.append(f"Why: {source}")
    elif by_source:
        lines.append("Why:")
        for source, names in by_source.items():
            fields = ", ".join(_FIELD_TITLES[name] if name == "sla" else name for name in names)
            lines.append(f"- {fields}: {source}")

    segments = []
    for dim in mapping.segments:
        assignment = assignments.get(dim.name)
        if assignment is None or assignment.label is None:
            continue
        title = dim.name if assignment.label == dim.name else f"{dim.name} {assignment.label}"
        why = "; ".join(assignment.reasons)
        segments.append(f"- {title}: {why}" if why else f"- {title}")
    if segments:
        lines.append("Segments:")
        lines.extend(segments)
    else:
        lines.append("Segments: none")
    return "\n".join(lines)
