"""Freshdesk records as ours, and ours as Freshdesk's: contacts, companies, tickets, notes, due dates.

Freshdesk numbers priorities (1-4) and statuses (2-5); a deleted or blocked contact is inactive, and a
ticket in the trash or marked spam counts as "deleted".
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import custom_value, optional_str, parse_time
from integration.core.models import Customer, Decision, Organization, Ticket

NAME = "freshdesk"

PRIORITY_TO_FRESHDESK = {"low": 1, "normal": 2, "high": 3, "urgent": 4}
PRIORITY_FROM_FRESHDESK = {v: k for k, v in PRIORITY_TO_FRESHDESK.items()}
STATUS_FROM_FRESHDESK = {2: "open", 3: "pending", 4: "solved", 5: "closed"}
COMPANY_ATTRIBUTES = ("industry", "account_tier", "health_score")


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_customer(contact: Mapping[str, Any]) -> Customer:
    """A contact as our customer record. ``tags`` only come with a contact's own record (GET
    /contacts/{id}), never in the list or search rows (see FreshdeskConnector.pull). A deleted or blocked
    contact is inactive; Freshdesk's ``active`` only says whether the contact verified their email, and an
    unverified contact still raises tickets, so it is not read."""
    return Customer(
        source=NAME,
        external_id=str(contact["id"]),
        email=contact.get("email"),
        name=contact.get("name"),
        organization_id=optional_str(contact.get("company_id")),
        tags=tuple(contact.get("tags") or ()),
        created_at=parse_time(contact.get("created_at")),
        updated_at=parse_time(contact.get("updated_at")),
        attributes={k: custom_value(v) for k, v in (contact.get("custom_fields") or {}).items()},
        active=not contact.get("deleted") and not contact.get("blocked"),
    )


def to_organization(company: Mapping[str, Any]) -> Organization:
    attributes = {k: custom_value(v) for k, v in (company.get("custom_fields") or {}).items()}
    for name in COMPANY_ATTRIBUTES:  # Freshdesk's own company fields, where the plan has them
        if company.get(name) is not None:
            attributes.setdefault(name, custom_value(company[name]))
    return Organization(
        source=NAME,
        external_id=str(company["id"]),
        name=company.get("name"),
        domains=tuple(company.get("domains") or ()),
        tags=(),  # Freshdesk companies have no tags
        created_at=parse_time(company.get("created_at")),
        updated_at=parse_time(company.get("updated_at")),
        attributes=attributes,
    )


def _status(ticket: Mapping[str, Any]) -> str | None:
    """Our status name. A ticket in the trash or marked spam is "deleted" (it counts for nothing,
    docs/mapping.md); custom statuses (numbers above 5) are unresolved states, counted as open."""
    if ticket.get("deleted") or ticket.get("spam"):
        return "deleted"
    status = ticket.get("status")
    return STATUS_FROM_FRESHDESK.get(status, "open") if isinstance(status, int) else None


def to_ticket(ticket: Mapping[str, Any]) -> Ticket:
    return Ticket(
        source=NAME,
        external_id=str(ticket["id"]),
        requester_id=optional_str(ticket.get("requester_id")),
        organization_id=optional_str(ticket.get("company_id")),
        subject=ticket.get("subject"),
        status=_status(ticket),
        priority=PRIORITY_FROM_FRESHDESK.get(ticket.get("priority") or 0),
        group_id=optional_str(ticket.get("group_id")),
        tags=tuple(ticket.get("tags") or ()),
        created_at=parse_time(ticket.get("created_at")),
        updated_at=parse_time(ticket.get("updated_at")),
        updated_stamp=ticket.get("updated_at"),
    )


def note_body(text: str) -> str:
    """Our plain-text note as the HTML Freshdesk stores; line breaks kept."""
    return "<div>" + "<br>".join(html.escape(line) for line in text.splitlines()) + "</div>"


def merge_tags(current: tuple[str, ...] | list[str], ours: tuple[str, ...]) -> list[str]:
    """The ticket's tags first, then ours; one spelling per tag (Freshdesk tags ignore case)."""
    seen: dict[str, str] = {}
    for tag in [*current, *ours]:
        seen.setdefault(tag.lower(), tag)
    return list(seen.values())


def due_dates(decision: Decision, created_at: datetime | None, now: datetime) -> dict[str, str]:
    """fr_due_by / due_by from the mapping's SLA targets, counted from the ticket's creation.

    Calendar minutes: Freshdesk's own policies can count business hours, ours do not. No targets, no dates.
    """
    start = created_at or now
    out: dict[str, str] = {}
    due = start + timedelta(minutes=decision.resolution_minutes) if decision.resolution_minutes else None
    first = (
        start + timedelta(minutes=decision.first_response_minutes)
        if decision.first_response_minutes
        else None
    )
    if first and due and first > due:
        first = due  # Freshdesk refuses a first-response due date after the resolution due date
    if first:
        out["fr_due_by"] = iso(first)
    if due:
        out["due_by"] = iso(due)
    return out
