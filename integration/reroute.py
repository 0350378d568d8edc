"""Re-route open tickets when their customer changes segment.

Modes (TIERDESK_REROUTE): `off`; `priority`, only the priority; `all`, priority, group and tags. A
priority an agent raised by hand (the live priority is above the one we last set) is never lowered, and
every re-route adds an internal note saying what changed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.http import ApiError
from integration import routing, sync
from integration.mapping import Mapping
from integration.models import Decision
from integration.store import Store

log = logging.getLogger("tierdesk.reroute")
MODES = ("off", "priority", "all")
RANK = {"low": 0, "normal": 1, "high": 2, "urgent": 3}


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
    mapping: Mapping,
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


def note(changes: list[tuple[str, str | None, str | None]], before: str | None, result: Plan) -> str:
    lines = ["tierdesk re-routed this ticket: the customer's segments changed"]
    lines += [f"- {d}: {a or 'none'} -> {b or 'none'}" for d, a, b in changes]
    if result.priority:
        lines.append(f"Priority: {before or 'none'} -> {result.priority}")
    if result.kept_agent_priority:
        lines.append(f"Priority kept at {before}: an agent set it higher by hand")
    if result.group:
        lines.append(f"Group: {result.group}")
    return "\n".join(lines)


@dataclass
class RerouteSummary:
    customers: int = 0
    tickets: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


def reroute(
    store: Store, connector: object, mapping: Mapping, bookmark: int, mode: str, now: datetime | None = None
) -> RerouteSummary:
    """Re-route the open tickets of every customer whose segments changed after `bookmark`
    (Store.last_segment_change taken before the recompute)."""
    now = now or datetime.now(UTC)
    summary = RerouteSummary()
    if mode == "off" or not hasattr(connector, "update_routing"):
        return summary
    source = connector.name  # type: ignore[attr-defined]
    changed = [k for k in store.customers_changed_since(bookmark) if k.startswith(f"{source}:")]
    summary.customers = len(changed)
    for ticket_key, external_id, customer_key in store.open_routed_tickets(changed):
        summary.tickets += 1
        customer = store.get_customer(customer_key)
        previous = store.get_decision(ticket_key)
        if customer is None or previous is None:
            continue
        assignments = store.segments_for(customer_key)
        organization = (
            store.get_organization(customer.organization_key) if customer.organization_key else None
        )
        stats = store.ticket_stats(now, customer_key).get(customer_key)
        feats = sync.customer_features(customer, organization, stats, mapping, now)
        new = routing.decide(assignments, mapping, feats)
        try:
            live = connector.get_ticket(external_id)  # type: ignore[attr-defined]
            what = plan(mode, live.priority, previous.priority, new, live.tags, mapping)
            changes = store.segment_changes_since(customer_key, bookmark)
            result = connector.update_routing(  # type: ignore[attr-defined]
                live,
                priority=what.priority,
                group=what.group,
                add_tags=what.add_tags,
                remove_tags=what.remove_tags,
                note=note(changes, live.priority, what),
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
            decision=Decision(
                priority=what.priority or live.priority,
                sla=new.sla if mode == "all" else previous.sla,
                group=what.group or previous.group_name,
                tags=new.tags if mode == "all" else previous.tags,
                note=note(changes, live.priority, what),
                reasons=new.reasons,
            ),
            segments=assignments,
            response=dict(result.response),
            received_at=previous.received_at,
            decided_at=time.time(),
        )
    log.info("reroute.done", extra={"customers": summary.customers, "updated": summary.updated})
    return summary
