"""Plain records shared by the core, the store and the connectors.

Connectors translate vendor payloads into these; nothing outside connectors/ sees a vendor's field names.
Everything here is frozen so the pure core can pass records around without defensive copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from integration.core import keys

# A customer attribute value: numbers for metrics, strings for categories, None when the source has no value.
Value = float | int | str | bool | None


@dataclass(frozen=True)
class Organization:
    source: str  # "zendesk"
    external_id: str  # the id in the source system, as a string
    name: str | None = None
    domains: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    attributes: Mapping[str, Value] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return keys.org(self.source, self.external_id)


@dataclass(frozen=True)
class Customer:
    source: str
    external_id: str
    email: str | None = None
    name: str | None = None
    organization_id: str | None = None  # external id of the organization in the same source
    tags: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    attributes: Mapping[str, Value] = field(default_factory=dict)
    # False: deleted, suspended or blocked at the source. Such a person cannot raise tickets; the record is
    # kept (their old tickets point at it) but is no customer: never segmented, counted or tagged.
    active: bool = True

    @property
    def key(self) -> str:
        return keys.user(self.source, self.external_id)

    @property
    def organization_key(self) -> str | None:
        if self.organization_id is None:
            return None
        return keys.org(self.source, self.organization_id)


@dataclass(frozen=True)
class Ticket:
    source: str
    external_id: str
    requester_id: str | None = None
    organization_id: str | None = None
    subject: str | None = None
    status: str | None = None  # new | open | pending | hold | solved | closed
    priority: str | None = None  # low | normal | high | urgent
    group_id: str | None = None
    tags: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    satisfaction: str | None = None  # good | bad | offered | unoffered
    reopens: int = 0
    updated_stamp: str | None = None  # the source's own updated_at text, for safe updates
    # service measures from the helpdesk's ticket metrics (calendar minutes), None when unknown
    first_response_minutes: float | None = None
    resolution_minutes: float | None = None  # full resolution, only once the ticket is solved
    solved_at: datetime | None = None

    @property
    def key(self) -> str:
        return keys.ticket(self.source, self.external_id)


@dataclass(frozen=True)
class TicketEvent:
    """A "ticket created" notification as the webhook delivered it, before anything is fetched."""

    source: str
    event_id: str  # the sender's delivery id, used to drop duplicates
    ticket_id: str
    requester_id: str | None = None
    organization_id: str | None = None
    tags: tuple[str, ...] = ()
    received_at: datetime | None = None
    # What the sender signed (a digest of it), for senders whose delivery id is not signed: a replay of
    # a captured delivery under a new delivery id is still dropped as a duplicate. None: nothing signed.
    replay_key: str | None = None


@dataclass(frozen=True)
class TicketStats:
    """Ticket history of one customer, counted by the store."""

    tickets_30d: int = 0
    tickets_90d: int = 0
    tickets_total: int = 0
    tickets_365d: int | None = None
    # of tickets_365d, those solved or closed: only these add to cost_to_serve (docs/mapping.md)
    tickets_solved_365d: int | None = None
    reopened_90d: int = 0
    csat_good: int = 0
    csat_bad: int = 0


@dataclass(frozen=True)
class Assignment:
    """One customer's label in one dimension, and why."""

    dimension: str
    label: str | None  # None: the customer is in no segment of this dimension
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """What routing decided for one ticket; connectors turn it into API calls."""

    priority: str | None = None  # low | normal | high | urgent
    sla: str | None = None
    group: str | None = None  # a group *name*; the connector resolves it to an id
    # SLA targets from the mapping's `slas:` section, for helpdesks that take due dates (Freshdesk)
    first_response_minutes: int | None = None
    resolution_minutes: int | None = None
    tags: tuple[str, ...] = ()  # segment tags, SLA tag and the routed marker
    note: str = ""
    reasons: tuple[str, ...] = ()  # which rule set which field


@dataclass(frozen=True)
class Purchase:
    """Money a customer brought: a closed-won CRM deal or a row of a billing export.

    It counts for every customer and organization it names (a HubSpot deal can have several contacts,
    as HubSpot's own "total revenue" does); the store sums it into revenue_12m, lifetime_value,
    purchases_12m and last_purchase_days of each of them.
    """

    source: str
    external_id: str
    amount: float
    closed_at: datetime | None = None
    won: bool = True  # False: the deal is open or lost (again); the store forgets it
    customer_ids: tuple[str, ...] = ()  # external ids of customers in the same source
    organization_ids: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return keys.purchase(self.source, self.external_id)

    @property
    def party_keys(self) -> tuple[str, ...]:
        return tuple(
            [keys.user(self.source, c) for c in self.customer_ids]
            + [keys.org(self.source, o) for o in self.organization_ids]
        )


# Records the store hands back: the queue's events, what was decided for a ticket, a published mapping.


@dataclass(frozen=True)
class Event:
    """A queued webhook event as the worker sees it."""

    id: int
    source: str
    event_id: str
    ticket_key: str
    payload: dict[str, Any]
    status: str
    attempts: int
    available_at: float
    received_at: float
    last_error: str | None
    finished_at: float | None
    lease: str | None = None  # the claim's token while leased: every transition must present it


@dataclass(frozen=True)
class DecisionRecord:
    ticket_key: str
    event_id: int | None
    customer_key: str | None
    outcome: str  # applied | skipped | rerouted
    priority: str | None
    sla: str | None
    group_name: str | None
    tags: tuple[str, ...]
    note: str
    reasons: tuple[str, ...]
    segments: dict[str, Any]
    response: dict[str, Any] | None
    received_at: float | None
    decided_at: float
    model_digest: str | None = None  # mapping digest of the model the segments came from (none: no customer)

    @property
    def latency_ms(self) -> float | None:
        """Webhook received -> decided. None for a re-route: no webhook started it, the scheduler did."""
        if self.received_at is None or self.outcome == "rerouted":
            return None
        return (self.decided_at - self.received_at) * 1000


@dataclass(frozen=True)
class MappingVersion:
    """One published mapping: the YAML text as it was, who published it, when and why."""

    id: int
    digest: str
    text: str
    author: str  # "file" when adopted from TIERDESK_MAPPINGS at start
    note: str
    source: str  # the file it came from, or "admin" / "api"
    created_at: str
    active: bool
