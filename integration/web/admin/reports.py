"""Read-only reports for the admin: decisions, segments and their drift, service per segment, the queue.

Plain dicts out, so the pages and the JSON API show the same numbers.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors import base as capabilities
from integration.core import keys, routing
from integration.core.mapping import MappingSpec
from integration.core.models import Assignment, DecisionRecord, Event
from integration.store import Store
from integration.web.admin.whatif import Scenario

NONE_LABEL = "(none)"


def _stamp(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- decisions ---------------------------------------------------------------------------------------


def event_dict(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "source": event.source,
        "delivery": event.event_id,
        "ticket_key": event.ticket_key,
        "ticket": keys.external_id(event.ticket_key),
        "status": event.status,
        "attempts": event.attempts,
        "received_at": _stamp(event.received_at),
        "available_at": _stamp(event.available_at),
        "finished_at": _stamp(event.finished_at),
        "last_error": event.last_error,
    }


def decision_dict(record: DecisionRecord, order: tuple[str, ...] = ()) -> dict[str, Any]:
    """``order``: dimension names in the order to show the recorded segments (the mapping's)."""
    rank = {name: i for i, name in enumerate(order)}
    dims = sorted(record.segments, key=lambda dim: (rank.get(dim, len(rank)), dim))
    return {
        "ticket_key": record.ticket_key,
        "ticket": keys.external_id(record.ticket_key),
        "source": record.ticket_key.split(":", 1)[0],
        "outcome": record.outcome,
        "priority": record.priority,
        "sla": record.sla,
        "group": record.group_name,
        "tags": list(record.tags),
        "note": record.note,
        "reasons": list(record.reasons),
        "segments": [
            {
                "dimension": dim,
                "label": record.segments[dim].get("label"),
                "reasons": list(record.segments[dim].get("reasons") or []),
            }
            for dim in dims
        ],
        "customer_key": record.customer_key,
        "helpdesk_answer": record.response,
        "event_id": record.event_id,
        "received_at": _stamp(record.received_at),
        "decided_at": _stamp(record.decided_at),
        "latency_ms": None if record.latency_ms is None else round(record.latency_ms, 1),
        "model_digest": record.model_digest,  # the mapping version the segments' model was fitted for
    }


_TICKET_KEY = re.compile(r"[a-z][a-z0-9_]*:ticket:\d+")


def ticket_query(text: str) -> str:
    """A ticket id as people write it (``1612``, ``#1612``, `` # 1612 ``) or a ticket key
    (``zendesk:ticket:1612``), cleaned; ValueError with the reason for anything else."""
    query = text.strip().removeprefix("#").strip()
    if query.isdecimal() or _TICKET_KEY.fullmatch(query):
        return query
    raise ValueError(f"{text.strip()!r} is not a ticket id: give its number, like 1612 or #1612")


def lookup_decision(
    store: Store, ticket_id: str, order: tuple[str, ...] = (), sources: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """What tierdesk decided for a ticket id (in every source that has it), with its events and ticket.

    A ticket tierdesk only has queue events for (waiting, retrying, dead) is found too, with no decision;
    ``sources``: the helpdesks whose event keys to look under. ValueError for text that is no ticket id.
    """
    ticket_id = ticket_query(ticket_id)
    found: dict[str, dict[str, Any]] = {}
    for record in store.decisions_for_ticket_id(ticket_id):
        found[record.ticket_key] = {"ticket_key": record.ticket_key, "decision": decision_dict(record, order)}
    for row in store.ticket_rows(ticket_id):
        found.setdefault(row["key"], {"ticket_key": row["key"], "decision": None})["ticket"] = row
    candidates = [ticket_id] if ":" in ticket_id else [keys.ticket(source, ticket_id) for source in sources]
    for key in candidates:
        if key not in found and (events := store.events_for_ticket(key)):
            found[key] = {"ticket_key": key, "decision": None, "events": [event_dict(e) for e in events]}
    for key, item in found.items():
        item.setdefault("ticket", None)
        if "events" not in item:
            item["events"] = [event_dict(e) for e in store.events_for_ticket(key)]
        customer_key = (item["decision"] or {}).get("customer_key") or (item["ticket"] or {}).get(
            "requester_key"
        )
        customer = store.get_customer(customer_key) if customer_key else None
        item["customer"] = (
            {"key": customer.key, "id": customer.external_id, "email": customer.email, "name": customer.name}
            if customer
            else None
        )
    return sorted(found.values(), key=lambda item: item["ticket_key"])


def recent_decisions(store: Store, limit: int = 50, order: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [decision_dict(record, order) for record in store.list_decisions(limit)]


# -- overview ----------------------------------------------------------------------------------------


def connector_names(connectors: dict[str, Any]) -> dict[str, list[str]]:
    """Helpdesks (they route tickets) apart from sources (CRM and file exports that only enrich)."""
    sources = sorted(name for name, c in capabilities.sources(connectors).items() if c.pull_only)
    return {"helpdesks": sorted(name for name in connectors if name not in sources), "sources": sources}


# -- segments ----------------------------------------------------------------------------------------


def distribution(store: Store, mapping: MappingSpec) -> list[dict[str, Any]]:
    """Customers per label of every dimension, in mapping order (stored labels, from the last recompute)."""
    stored = store.segment_distribution()
    out = []
    for dim in mapping.segments:
        counts = stored.get(dim.name, {})
        total = sum(counts.values())
        labels = [*dim.labels, *(label for label in counts if label not in dim.labels and label is not None)]
        rows = [
            {
                "label": label,
                "customers": counts.get(label, 0),
                "share": counts.get(label, 0) / total if total else 0,
            }
            for label in labels
        ]
        if counts.get(None):
            rows.append({"label": None, "customers": counts[None], "share": counts[None] / total})
        out.append(
            {"dimension": dim.name, "method": dim.method, "description": dim.description, "labels": rows}
        )
    return out


def quality(sc: Scenario) -> dict[str, Any]:
    """Missing inputs and segments too small or too big (segments.quality_report) for the active mapping."""
    from integration.core import segments

    report = segments.quality_report(sc.seg)
    return {
        "customers": report.customers,
        "organizations": report.organizations,
        "missing": [{"feature": k, "customers": v} for k, v in report.missing.items()],
        "organization_missing": [
            {"feature": k, "organizations": v} for k, v in report.organization_missing.items()
        ],
        "warnings": list(report.warnings),
    }


def drift(
    store: Store, mapping: MappingSpec, dimension: str, days: int, today: date | None = None
) -> dict[str, Any]:
    """Customers per label at the end of each of the last ``days`` days, rebuilt backwards from today's
    counts and the recorded label changes; plus the moves between labels in that period."""
    today = today or datetime.now(UTC).date()
    start = today - timedelta(days=days - 1)
    current = store.segment_distribution().get(dimension, {})
    changes = store.segment_change_counts(dimension, datetime.combine(start, datetime.min.time(), UTC))
    delta_by_day: dict[str, Counter] = defaultdict(Counter)
    moves: Counter = Counter()
    for day, from_label, to_label, n in changes:
        delta_by_day[day][to_label] += n
        delta_by_day[day][from_label] -= n
        moves[(from_label, to_label)] += n
    try:
        known = list(mapping.dimension(dimension).labels)
    except KeyError:
        known = []
    labels = known + sorted(
        {lab for lab in [*current, *(lab for d in delta_by_day.values() for lab in d)] if lab is not None}
        - set(known)
    )
    if current.get(None) or any(d.get(None) for d in delta_by_day.values()):
        labels.append(None)
    counts = Counter(current)
    series: dict[str | None, list[int]] = {label: [0] * days for label in labels}
    for back in range(days):
        index = days - 1 - back
        day = start + timedelta(days=index)
        for label in labels:
            series[label][index] = max(0, counts.get(label, 0))
        for label, n in delta_by_day.get(day.isoformat(), {}).items():
            counts[label] -= n  # undo that day's changes to get the end of the previous day
    return {
        "dimension": dimension,
        "days": [(start + timedelta(days=i)).isoformat() for i in range(days)],
        "series": [
            {"label": label if label is not None else NONE_LABEL, "values": series[label]} for label in labels
        ],
        "moves": [
            {
                "from": f if f is not None else NONE_LABEL,
                "to": t if t is not None else NONE_LABEL,
                "customers": n,
            }
            for (f, t), n in moves.most_common(20)
        ],
        # the first day any label change of this dimension was recorded, possibly before the period;
        # the counts of earlier days are today's counts undone, not something that was observed
        "history_starts": store.segment_history_start(dimension),
    }


# -- service per segment -----------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def service(
    store: Store, mapping: MappingSpec, dimension: str, since: datetime, until: datetime
) -> dict[str, Any]:
    """First response and resolution times, CSAT and SLA breach rate per label of one dimension.

    Tickets created in [since, until), grouped by their requester's current label. A ticket's SLA is
    the one tierdesk applied (its decision, or the SLA tag on the ticket), else the one the active
    mapping gives the requester's current segments. A breach is a measured time over the SLA's target
    in the mapping's ``slas:``; tickets without a measured time or target do not count.
    """
    tickets = store.tickets_created_between(since, until)
    labels = store.segment_labels(t["requester_key"] for t in tickets if t["requester_key"])
    decided = store.decided_slas(t["key"] for t in tickets)
    sla_prefix = routing.sla_tag("", mapping)
    targets = mapping.sla_targets
    routed_sla: dict[tuple, str | None] = {}

    def sla_of(ticket: dict[str, Any]) -> str | None:
        if ticket["key"] in decided:
            return decided[ticket["key"]]
        tagged = next((t[len(sla_prefix) :] for t in ticket["tags"] if t.startswith(sla_prefix)), None)
        if tagged:
            return tagged
        mine = labels.get(ticket["requester_key"] or "", {})
        key = tuple(sorted(mine.items(), key=lambda kv: kv[0]))
        if key not in routed_sla:
            assignments = {d: Assignment(d, label) for d, label in mine.items()}
            routed_sla[key] = routing.decide(assignments, mapping).sla
        return routed_sla[key]

    groups: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for ticket in tickets:
        label = labels.get(ticket["requester_key"] or "", {}).get(dimension)
        groups[label].append(ticket)

    def measure(rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
        first = [r["first_response_minutes"] for r in rows if r["first_response_minutes"] is not None]
        resolved = [r["resolution_minutes"] for r in rows if r["resolution_minutes"] is not None]
        good = sum(1 for r in rows if r["satisfaction"] == "good")
        bad = sum(1 for r in rows if r["satisfaction"] == "bad")
        checked = breached = fr_checked = fr_breached = res_checked = res_breached = 0
        slas: Counter = Counter()
        for r in rows:
            sla = sla_of(r)
            slas[sla or "(none)"] += 1
            target = targets.get(sla) if sla else None
            if target is None:
                continue
            hit = False
            measured = False
            if target.first_response_minutes is not None and r["first_response_minutes"] is not None:
                fr_checked += 1
                measured = True
                if r["first_response_minutes"] > target.first_response_minutes:
                    fr_breached += 1
                    hit = True
            if target.resolution_minutes is not None and r["resolution_minutes"] is not None:
                res_checked += 1
                measured = True
                if r["resolution_minutes"] > target.resolution_minutes:
                    res_breached += 1
                    hit = True
            checked += measured
            breached += hit
        return {
            "label": label,
            "tickets": len(rows),
            "first_response_median": _median(first),
            "first_response_p90": _p90(first),
            "first_response_measured": len(first),
            "resolution_median": _median(resolved),
            "resolution_p90": _p90(resolved),
            "resolved": len(resolved),
            "csat": good / (good + bad) if good + bad else None,
            "rated": good + bad,
            "sla_breach_rate": breached / checked if checked else None,
            "first_response_breach_rate": fr_breached / fr_checked if fr_checked else None,
            "resolution_breach_rate": res_breached / res_checked if res_checked else None,
            "sla_checked": checked,
            "slas": dict(slas.most_common()),
        }

    try:
        order = list(mapping.dimension(dimension).labels)
    except KeyError:
        order = []
    present = [label for label in order if label in groups]
    present += sorted(label for label in groups if label is not None and label not in order)
    rows = [measure(groups[label], label) for label in present]
    if None in groups:
        rows.append(measure(groups[None], NONE_LABEL))
    return {
        "dimension": dimension,
        "since": since.strftime("%Y-%m-%d"),
        "until": until.strftime("%Y-%m-%d"),
        "targets": {
            name: {
                "first_response_minutes": t.first_response_minutes,
                "resolution_minutes": t.resolution_minutes,
            }
            for name, t in targets.items()
        },
        "has_targets": bool(targets),
        "rows": rows,
        "all": measure(tickets, "all tickets"),
    }


# -- queue -------------------------------------------------------------------------------------------


def queue(store: Store, limit: int = 100) -> dict[str, Any]:
    """Pending (never tried), retrying (failed before, waiting for the next try), leased and dead events."""
    return {
        "counts": store.queue_counts(),
        "pending": [
            event_dict(e) for e in store.list_events_filtered("pending", retrying=False, limit=limit)
        ],
        "retrying": [
            event_dict(e) for e in store.list_events_filtered("pending", retrying=True, limit=limit)
        ],
        "leased": [event_dict(e) for e in store.list_events_filtered("leased", limit=limit)],
        "dead": [event_dict(e) for e in store.list_events_filtered("dead", limit=limit)],
    }
