"""Preview and simulate: what a mapping, active or draft, decides for stored customers and tickets.

Both run the pure core (segments, routing) on stored data: no call to the helpdesk, nothing written.
A ``Scenario`` is one mapping applied to the whole stored population: fitted cut-offs and every
customer's labels, built once (columnar, fast) and kept for a minute, so a preview after a preview, or
a simulation of a draft against the active mapping, pays for it once. Labels therefore come from the
same code path a recompute uses; features for routing conditions come from the single-customer path
the worker uses (``segment_service.customer_features``).

"Before" in a simulation is what the active mapping decides today for the same tickets, not what was
decided when they arrived (most stored tickets were synced, never routed), so the comparison is
like for like.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from integration import segment_service
from integration.core import routing, segments
from integration.core.mapping import MappingSpec, format_value
from integration.core.models import Assignment, Customer, Decision, Organization, TicketStats
from integration.store import Store

CACHE_SECONDS = 60.0
FIELDS = ("priority", "sla", "group")
PRIORITY_ORDER = ("urgent", "high", "normal", "low")


@dataclass
class Scenario:
    """One mapping over the stored population: cut-offs and labels for everyone."""

    mapping: MappingSpec
    digest: str
    seg: segments.Segmentation
    rows: dict[str, int]
    now: datetime
    built_at: float = field(default_factory=time.monotonic)

    def assign(self, customer: Customer | None, feats: dict[str, Any]) -> dict[str, Assignment]:
        """Stored customers take their row; others are classified alone against the same cut-offs."""
        if customer is None:
            return {}
        row = self.rows.get(customer.key)
        if row is not None:
            return self.seg.assignments(row)
        return segments.classify(customer, feats, self.seg.fitted, self.mapping, organizations={})


_CACHE: dict[tuple[str, str], Scenario] = {}
_CACHE_LOCK = threading.Lock()


def scenario(store: Store, mapping: MappingSpec, digest: str) -> Scenario:
    """The population under ``mapping``; reused for CACHE_SECONDS per database and mapping digest."""
    key = (store.path, digest)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None and time.monotonic() - hit.built_at < CACHE_SECONDS:
            return hit
    now = datetime.now(UTC)
    population, organizations = segment_service.load_population(store, mapping, now)
    seg = segments.segment(population, mapping, organizations=organizations)
    built = Scenario(mapping, digest, seg, {k: i for i, k in enumerate(population.keys)}, now)
    with _CACHE_LOCK:
        for stale in [k for k, v in _CACHE.items() if time.monotonic() - v.built_at >= CACHE_SECONDS]:
            del _CACHE[stale]
        _CACHE[key] = built
    return built


class Facts:
    """What features are computed from, read from the store once per request (lazily, in bulk)."""

    def __init__(self, store: Store, now: datetime, bulk: bool = False) -> None:
        self.store = store
        self.now = now
        self.bulk = bulk
        self._stats: dict[str, TicketStats] | None = None
        self._orgs: dict[str, Organization] | None = None
        self._customers: dict[str, Customer | None] = {}

    def customer(self, key: str | None) -> Customer | None:
        if not key:
            return None
        if key not in self._customers:
            self._customers[key] = self.store.get_customer(key)
        return self._customers[key]

    def stats(self, key: str) -> TicketStats | None:
        if not self.bulk:
            return self.store.ticket_stats(self.now, key).get(key)
        if self._stats is None:
            self._stats = self.store.ticket_stats(self.now)
        return self._stats.get(key)

    def organization(self, key: str | None) -> Organization | None:
        if not key:
            return None
        if not self.bulk:
            return self.store.get_organization(key)
        if self._orgs is None:
            self._orgs = self.store.organizations_by_key()
        return self._orgs.get(key)

    def features(self, customer: Customer | None, mapping: MappingSpec) -> dict[str, Any]:
        if customer is None:
            return {}
        org = self.organization(customer.organization_key)
        return segment_service.customer_features(customer, org, self.stats(customer.key), mapping, self.now)


def decision_dict(decision: Decision) -> dict[str, Any]:
    return {
        "priority": decision.priority,
        "sla": decision.sla,
        "group": decision.group,
        "first_response_minutes": decision.first_response_minutes,
        "resolution_minutes": decision.resolution_minutes,
        "tags": list(decision.tags),
        "note": decision.note,
        "reasons": list(decision.reasons),
    }


def segments_list(assignments: dict[str, Assignment], mapping: MappingSpec) -> list[dict[str, Any]]:
    out = []
    for dim in mapping.segments:
        a = assignments.get(dim.name)
        if a is not None:
            out.append({"dimension": dim.name, "label": a.label, "reasons": list(a.reasons)})
    return out


def customer_dict(customer: Customer, facts: Facts | None = None) -> dict[str, Any]:
    org = facts.organization(customer.organization_key) if facts else None
    return {
        "key": customer.key,
        "source": customer.source,
        "id": customer.external_id,
        "email": customer.email,
        "name": customer.name,
        "organization": (org.name or org.external_id) if org else customer.organization_id,
        "tags": list(customer.tags),
        "created_at": customer.created_at.strftime("%Y-%m-%d") if customer.created_at else None,
    }


# -- preview -----------------------------------------------------------------------------------------


class TicketInputError(ValueError):
    """A pasted ticket we cannot read."""


def read_ticket(text: str) -> dict[str, Any]:
    """A pasted ticket: a helpdesk ticket or webhook body as JSON (``{"ticket": {...}}`` or the ticket
    itself), whose requester we look for by id or email. Returns id, subject, requester id, email, tags."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise TicketInputError("the ticket is nested too deeply to read") from None
    except ValueError as e:
        raise TicketInputError(f"the ticket is not JSON ({str(e)[:120]})") from e
    if not isinstance(data, dict):
        raise TicketInputError("the ticket must be a JSON object")
    ticket = data.get("ticket") if isinstance(data.get("ticket"), dict) else data
    if isinstance(data.get("detail"), dict):
        ticket = data["detail"]
    requester = ticket.get("requester") if isinstance(ticket.get("requester"), dict) else {}
    requester_id = ticket.get("requester_id") or requester.get("id")
    email = requester.get("email") or ticket.get("requester_email") or ticket.get("email")
    if requester_id in (None, "") and not email:
        raise TicketInputError("the ticket names no requester: give requester_id or requester.email")
    tags = ticket.get("tags") or []
    return {
        "id": None if ticket.get("id") is None else str(ticket.get("id")),
        "subject": ticket.get("subject"),
        "requester_id": None if requester_id in (None, "") else str(requester_id),
        "email": str(email) if email else None,
        "tags": tags.split() if isinstance(tags, str) else [str(t) for t in tags],
    }


def find_requester(store: Store, ticket: dict[str, Any]) -> Customer | None:
    """The stored customer a pasted ticket names, by id (any source) or email."""
    for probe in (ticket.get("requester_id"), ticket.get("email")):
        if not probe:
            continue
        for customer in store.search_customers(probe, limit=5):
            if probe in (customer.external_id, customer.key) or (
                customer.email and customer.email.lower() == str(probe).lower()
            ):
                return customer
    return None


def _features_table(feats: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, format_value(value)) for name, value in sorted(feats.items()) if value is not None]


def preview(
    store: Store,
    scenarios: list[tuple[str, Scenario]],
    *,
    customer: Customer | None = None,
    ticket: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Segments with reasons and the decision each scenario makes for one customer (or pasted ticket).

    A pasted ticket whose requester is not stored is previewed as a new customer with only what the
    ticket says (the worker would pull them from the helpdesk first).
    """
    now = scenarios[0][1].now if scenarios else datetime.now(UTC)
    facts = Facts(store, now)
    known = customer is not None
    if customer is None and ticket is not None:
        customer = find_requester(store, ticket)
        known = customer is not None
        if customer is None:
            customer = Customer(
                source="preview",
                external_id=ticket.get("requester_id") or "unknown",
                email=ticket.get("email"),
                created_at=now,
            )
    results = []
    for name, sc in scenarios:
        feats = facts.features(customer, sc.mapping)
        assignments = sc.assign(customer, feats)
        decision = routing.decide(assignments, sc.mapping, feats)
        results.append(
            {
                "name": name,
                "digest": sc.digest,
                "segments": segments_list(assignments, sc.mapping),
                "decision": decision_dict(decision),
                "features": _features_table(feats),
            }
        )
    changed = []
    if len(results) == 2:
        a, b = results[0]["decision"], results[1]["decision"]
        changed = [f for f in (*FIELDS, "tags", "note") if a[f] != b[f]]
    return {
        "customer": customer_dict(customer, facts) if customer is not None else None,
        "known": known,
        "ticket": ticket,
        "results": results,
        "changed": changed,
    }


# -- simulate ----------------------------------------------------------------------------------------


def _ordered(field_name: str, values: set[str]) -> list[str]:
    if field_name == "priority":
        return [p for p in PRIORITY_ORDER if p in values] + sorted(
            v for v in values if v not in PRIORITY_ORDER
        )
    return sorted(values)


def simulate(
    store: Store,
    before: tuple[str, Scenario],
    after: tuple[str, Scenario],
    days: int,
    *,
    limit: int = 500,
) -> dict[str, Any]:
    """Decide every stored ticket of the last ``days`` days with both mappings and compare.

    Counts per priority, SLA and group before and after, and the tickets whose decision moves, also
    grouped by change ("priority normal → low": 12 tickets), biggest first, which is how one reads it.
    """
    now = after[1].now
    since = now - timedelta(days=days)
    tickets = store.tickets_created_between(since, now + timedelta(minutes=1))
    facts = Facts(store, now, bulk=True)
    counts = {name: (Counter(), Counter()) for name in FIELDS}
    moves = []
    for ticket in tickets:
        customer = facts.customer(ticket["requester_key"])
        decisions = []
        for _, sc in (before, after):
            feats = facts.features(customer, sc.mapping)
            decisions.append(routing.decide(sc.assign(customer, feats), sc.mapping, feats))
        old, new = decisions
        for i, decision in enumerate(decisions):
            for name in FIELDS:
                counts[name][i][getattr(decision, name) or "(unchanged)"] += 1
        changed = [name for name in FIELDS if getattr(old, name) != getattr(new, name)]
        if changed:
            moves.append(
                {
                    "ticket": ticket["external_id"],
                    "key": ticket["key"],
                    "subject": ticket["subject"],
                    "created_at": ticket["created_at"],
                    "customer": (customer.email or customer.name or customer.key) if customer else None,
                    "before": {name: getattr(old, name) for name in FIELDS},
                    "after": {name: getattr(new, name) for name in FIELDS},
                    "changed": changed,
                    "why": [r for r in new.reasons if r.split(" ", 1)[0].rstrip(":") in changed],
                }
            )
    changes: dict[tuple[tuple[str, str | None, str | None], ...], list[dict[str, Any]]] = {}
    for move in moves:
        key = tuple((name, move["before"][name], move["after"][name]) for name in move["changed"])
        changes.setdefault(key, []).append(move)
    tables = {}
    for name, (was, now_) in counts.items():
        tables[name] = [
            {"value": value, "before": was[value], "after": now_[value], "delta": now_[value] - was[value]}
            for value in _ordered(name, set(was) | set(now_))
        ]
    return {
        "days": days,
        "since": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "before": before[0],
        "after": after[0],
        "tickets": len(tickets),
        "moved": len(moves),
        "counts": tables,
        "moves": moves[:limit],
        "truncated": len(moves) > limit,
        "changes": [
            {
                "change": [{"field": f, "before": b, "after": a} for f, b, a in key],
                "label": " · ".join(f"{f} {b or '–'} → {a or '–'}" for f, b, a in key),
                "tickets": len(group),
                "moves": group[:limit],
            }
            for key, group in sorted(changes.items(), key=lambda kv: (-len(kv[1]), kv[1][0]["ticket"]))
        ],
    }
