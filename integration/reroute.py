"""Re-route open tickets when their customer changes segment.

Modes (TIERDESK_REROUTE): `off`; `priority`, only the priority; `all`, priority, group and tags. A
priority an agent raised by hand (the live priority is above the one we last set) is never lowered, and
every re-route adds an internal note saying what changed.

Which tickets: the open tickets tierdesk routed, of customers with segment changes since the last
re-route (the scheduler keeps that bookmark), and of those only the ones whose customer's labels now
differ from the labels the ticket was routed (or last re-routed) with. A ticket's own arrival never
re-routes it: the worker counts the ticket from the moment it arrives and an open ticket adds no cost
to serve (docs/mapping.md), so what the next sync computes for its requester is what the ticket was
routed with; a label that moved at webhook time is already in the ticket's decision.

The recorded decision says what the ticket carries from tierdesk after the re-route, and for every
field the reason it has that value, so the admin never shows a rule that did not apply.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.base import Connector, is_helpdesk
from connectors.http import ApiError
from integration import segment_service
from integration.core import routing
from integration.core.mapping import ROUTED_FIELDS, MappingSpec
from integration.core.models import Assignment, Decision, DecisionRecord
from integration.store import Store

log = logging.getLogger("tierdesk.reroute")
MODES = ("off", "priority", "all")
RANK = {"low": 0, "normal": 1, "high": 2, "urgent": 3}
BOOKMARK = "reroute_bookmark"  # the store's record of the last segment change re-routing has handled


@dataclass(frozen=True)
class Plan:
    priority: str | None
    group: str | None
    add_tags: tuple[str, ...]
    remove_tags: tuple[str, ...]
    kept_agent_priority: bool = False


def plan(
    mode: str,
    live_priority: str | None,
    last_priority: str | None,
    new: Decision,
    live_tags: tuple[str, ...],
    mapping: MappingSpec,
) -> Plan:
    """What to change on one open ticket. Pure: the rules in one place, tested on their own."""
    if mode not in MODES:
        raise ValueError(f"re-route mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return Plan(None, None, (), ())
    priority = new.priority
    agent_raised = (
        live_priority is not None
        and live_priority != last_priority
        and RANK.get(live_priority, -1) > RANK.get(last_priority or "", -1)
    )
    kept = False
    if priority and agent_raised and RANK.get(priority, -1) < RANK[live_priority or "low"]:
        priority, kept = None, True  # an agent escalated it: we do not take that back
    if priority == live_priority:
        priority = None
    if mode == "priority":
        return Plan(priority, None, (), (), kept)
    owned = tuple(routing.tag_for(d, "", mapping) for d in mapping.dimension_names)
    owned += (routing.sla_tag("", mapping),)
    add = tuple(t for t in new.tags if t not in live_tags)
    remove = tuple(t for t in live_tags if t.startswith(owned) and t not in new.tags)
    return Plan(priority, new.group, add, remove, kept)


def moved_labels(
    routed_with: dict[str, Any], now: dict[str, Assignment], order: tuple[str, ...] = ()
) -> list[tuple[str, str | None, str | None]]:
    """(dimension, label the ticket was routed with, label now) for every dimension that differs.

    ``routed_with`` is a decision's recorded segments ({dimension: {"label": ...}})."""
    dims = list(dict.fromkeys([*order, *routed_with, *now]))
    out = []
    for dim in dims:
        before = (routed_with.get(dim) or {}).get("label")
        after = now[dim].label if dim in now else None
        if before != after:
            out.append((dim, before, after))
    return out


def _why(reason: str) -> str:
    """The rule part of a routing reason: "priority low: routing rule 6 (...)" -> "routing rule 6 (...)"."""
    return reason.partition(": ")[2] or reason


def outcome(
    mode: str,
    previous: DecisionRecord,
    new: Decision,
    live_priority: str | None,
    result: Plan,
    changes: list[tuple[str, str | None, str | None]],
) -> Decision:
    """The decision a re-route records, and the note it adds: what the ticket carries from tierdesk
    after the update (changed fields from the current rules, the others as they were) and, per field,
    why. Pure."""
    rules = dict(zip(ROUTED_FIELDS, new.reasons, strict=False))
    reasons: list[str] = []
    lines = ["tierdesk re-routed this ticket: the customer's segments changed since it was routed"]
    lines += [f"- {d}: {a or 'none'} -> {b or 'none'}" for d, a, b in changes]

    priority = result.priority or live_priority
    if result.priority:
        reasons.append(rules.get("priority", f"priority {result.priority}"))
        lines.append(f"Priority: {live_priority or 'none'} -> {result.priority}, by {_why(reasons[-1])}")
    elif result.kept_agent_priority:
        reasons.append(
            f"priority {live_priority}: kept, an agent set it above {previous.priority or 'none'} by hand "
            f"(the rules now say {new.priority})"
        )
        lines.append(f"Priority kept at {live_priority}: an agent set it higher by hand")
    elif new.priority is None or new.priority == live_priority:
        reasons.append(rules.get("priority", f"priority {live_priority}"))
    else:  # mode off: nothing is planned
        reasons.append(f"priority {live_priority}: left as it is (re-routing is off)")

    if mode == "all":
        sla, tags = new.sla, new.tags
        group = new.group or previous.group_name
        reasons.append(rules.get("sla", f"sla {sla}"))
        reasons.append(rules.get("group", f"group {group}"))
        if new.group and new.group != previous.group_name:
            lines.append(f"Group: {previous.group_name or 'none'} -> {new.group}, by {_why(reasons[-1])}")
        if new.sla != previous.sla:
            lines.append(f"SLA: {previous.sla or 'none'} -> {new.sla or 'none'}, by {_why(reasons[-2])}")
        if result.add_tags or result.remove_tags:
            lines.append("Tags now: " + " ".join(new.tags))
    else:
        sla, group, tags = previous.sla, previous.group_name, previous.tags
        kept = "as first routed; TIERDESK_REROUTE=priority changes only the priority"
        for name, value, wanted in (("sla", sla, new.sla), ("group", group, new.group)):
            if value == wanted or wanted is None:
                reasons.append(rules.get(name, f"{name} {value}"))
            else:
                reasons.append(f"{name} {value or 'none'}: {kept} (the rules now say {wanted})")
        if set(tags) != set(new.tags):
            reasons.append(f"tags: {kept} (now they would be {' '.join(new.tags)})")
        lines.append("SLA, group and tags stay as first routed (re-routing changes only the priority)")
    return Decision(
        priority=priority,
        sla=sla,
        group=group,
        tags=tuple(tags),
        note="\n".join(lines),
        reasons=tuple(reasons),
    )


@dataclass
class RerouteSummary:
    customers: int = 0
    tickets: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


def reroute(
    store: Store,
    connector: Connector,
    mapping: MappingSpec,
    bookmark: int,
    mode: str,
    now: datetime | None = None,
) -> RerouteSummary:
    """Re-route the open tickets of every customer with segment changes after `bookmark` whose labels
    differ from those the ticket was routed with."""
    now = now or datetime.now(UTC)
    summary = RerouteSummary()
    if mode == "off" or not is_helpdesk(connector):
        return summary
    source = connector.name
    model = store.model_digest(segment_service.MODEL)  # the stored segments' model version
    changed = [k for k in store.customers_changed_since(bookmark) if k.startswith(f"{source}:")]
    summary.customers = len(changed)
    for ticket_key, external_id, customer_key in store.open_routed_tickets(changed):
        summary.tickets += 1
        customer = store.get_customer(customer_key)
        previous = store.get_decision(ticket_key)
        if customer is None or previous is None:
            continue
        assignments = store.segments_for(customer_key)
        changes = moved_labels(previous.segments, assignments, mapping.dimension_names)
        if not changes:  # routed (or re-routed) with these very labels: nothing to take back
            summary.unchanged += 1
            continue
        organization = (
            store.get_organization(customer.organization_key) if customer.organization_key else None
        )
        stats = store.ticket_stats(now, customer_key).get(customer_key)
        feats = segment_service.customer_features(customer, organization, stats, mapping, now)
        new = routing.decide(assignments, mapping, feats)
        try:
            live = connector.get_ticket(external_id)
            what = plan(mode, live.priority, previous.priority, new, live.tags, mapping)
            recorded = outcome(mode, previous, new, live.priority, what, changes)
            sla = mapping.sla_targets.get(recorded.sla) if recorded.sla else None  # for due dates
            result = connector.update_routing(
                live,
                priority=what.priority,
                group=what.group,
                add_tags=what.add_tags,
                remove_tags=what.remove_tags,
                note=recorded.note,
                first_response_minutes=sla.first_response_minutes if sla else None,
                resolution_minutes=sla.resolution_minutes if sla else None,
            )
        except ApiError as e:
            summary.errors.append(f"{ticket_key}: {e}")
            log.warning("reroute.failed", extra={"ticket": ticket_key, "error": str(e)})
            continue
        if result.outcome != "applied":
            summary.unchanged += 1
            continue
        summary.updated += 1
        store.record_decision(
            ticket_key,
            event_id=previous.event_id,
            customer_key=customer_key,
            outcome="rerouted",
            decision=recorded,
            segments=assignments,
            response=dict(result.response),
            received_at=previous.received_at,  # when its webhook arrived; no latency is counted for it
            decided_at=time.time(),
            model_digest=model[0] if model else None,
        )
    log.info("reroute.done", extra={"customers": summary.customers, "updated": summary.updated})
    return summary
