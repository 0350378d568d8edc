"""Zendesk records as ours: users, organizations, tickets, and what a bulk job says it wrote.

Only end users are customers; deleted and suspended ones are kept inactive (see `to_customer`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import custom_value, optional_str, parse_time
from integration.core.models import Customer, Organization, Ticket

NAME = "zendesk"


def written_records(job: Mapping[str, Any], ids: list[str]) -> set[str]:
    """The ids (of `ids`, in the order they were sent) that a finished bulk job says it wrote.

    Only a result that says so counts: ``"success": true`` and no ``error``. Zendesk marks a failed record
    with ``error`` / ``details`` and sends no ``success`` key at all (recorded: 99 of 100 records of an
    organizations update_many as ``{"index": 1, "error": "OrganizationUpdateFailed", "id": ...}``), and a
    record with no result, or a job that failed as a whole, was not written either. A result names its
    record by ``id``, or only by ``index`` (its position in the request).
    """
    if job.get("status") != "completed":
        return set()
    results = job.get("results")
    if isinstance(results, Mapping):  # the documented whole-job form: {"success": bool}
        return set(ids) if results.get("success") is True and not results.get("error") else set()
    written: set[str] = set()
    for result in results if isinstance(results, list) else []:
        if not isinstance(result, Mapping) or result.get("success") is not True or result.get("error"):
            continue
        if result.get("id") is not None:
            written.add(str(result["id"]))
        elif isinstance(result.get("index"), int) and 0 <= result["index"] < len(ids):
            written.add(ids[result["index"]])
    return written & set(ids)


def job_failures(job: Mapping[str, Any], limit: int = 3) -> str:
    """A short account of a job's failed records for the push report, e.g. "99 record(s) failed:
    6164110666394: OrganizationUpdateFailed (Name: ... has already been taken); ..."."""
    results = job.get("results")
    failures = [
        r for r in (results if isinstance(results, list) else []) if isinstance(r, Mapping) and r.get("error")
    ]
    shown = "; ".join(
        f"{r.get('id', r.get('index'))}: {r.get('error')} ({r.get('details')})" for r in failures[:limit]
    )
    return f"{len(failures)} record(s) failed: {shown[:300]}" if failures else "records without a result"


CUSTOMER_ROLE = "end-user"  # agents and admins are users too, but only end users are customers


def is_customer(user: Mapping[str, Any]) -> bool:
    """Whether a user is one of the account's customers (an end user) rather than staff."""
    return user.get("role") == CUSTOMER_ROLE


def to_customer(user: Mapping[str, Any]) -> Customer:
    """A user as our customer record. Zendesk keeps deleted users with ``active: false`` (760 of 1,000
    in a recorded export) and suspended ones with ``suspended: true``: neither can raise tickets, so both
    are inactive (kept for their tickets, never segmented or tagged)."""
    return Customer(
        source=NAME,
        external_id=str(user["id"]),
        email=user.get("email"),
        name=user.get("name"),
        organization_id=optional_str(user.get("organization_id")),
        tags=tuple(user.get("tags") or ()),
        created_at=parse_time(user.get("created_at")),
        updated_at=parse_time(user.get("updated_at")),
        attributes={k: custom_value(v) for k, v in (user.get("user_fields") or {}).items()},
        active=user.get("active") is not False and not user.get("suspended"),
    )


def to_organization(org: Mapping[str, Any]) -> Organization:
    return Organization(
        source=NAME,
        external_id=str(org["id"]),
        name=org.get("name"),
        domains=tuple(org.get("domain_names") or ()),
        tags=tuple(org.get("tags") or ()),
        created_at=parse_time(org.get("created_at")),
        updated_at=parse_time(org.get("updated_at")),
        attributes={k: custom_value(v) for k, v in (org.get("organization_fields") or {}).items()},
    )


def _minutes(value: Any) -> float | None:
    """A metric set's ``{"calendar": 90, "business": 30}``: we keep calendar minutes."""
    minutes = value.get("calendar") if isinstance(value, Mapping) else None
    return float(minutes) if isinstance(minutes, int | float) and not isinstance(minutes, bool) else None


def to_ticket(ticket: Mapping[str, Any], metrics: Mapping[str, Any] | None = None) -> Ticket:
    """``metrics``: the ticket's metric set (the ``include=metric_sets`` sideload), for service measures."""
    rating = ticket.get("satisfaction_rating") or {}
    metrics = metrics or {}
    return Ticket(
        source=NAME,
        external_id=str(ticket["id"]),
        requester_id=optional_str(ticket.get("requester_id")),
        organization_id=optional_str(ticket.get("organization_id")),
        subject=ticket.get("subject"),
        status=ticket.get("status"),
        priority=ticket.get("priority"),
        group_id=optional_str(ticket.get("group_id")),
        tags=tuple(ticket.get("tags") or ()),
        created_at=parse_time(ticket.get("created_at")),
        updated_at=parse_time(ticket.get("updated_at")),
        satisfaction=rating.get("score") if isinstance(rating, dict) else None,
        reopens=int(metrics.get("reopens") or 0),
        updated_stamp=ticket.get("updated_at"),
        first_response_minutes=_minutes(metrics.get("reply_time_in_minutes")),
        resolution_minutes=_minutes(metrics.get("full_resolution_time_in_minutes")),
        solved_at=parse_time(metrics.get("solved_at")),
    )
