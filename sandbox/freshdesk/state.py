"""The Freshdesk sandbox's account: its records in memory, their ids, validation and rendering.

Everything lives behind one re-entrant lock. The direct-access methods here (add_contact, find_contact,
...) serve seeding, tests and the demo without HTTP and without automation rules; tickets (tickets.py),
automation rules (rules.py) and the routes (routes/) build on this class.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from sandbox.base import HelpdeskSandbox, SlidingWindow, export_record
from sandbox.base.limits import LimitOption
from sandbox.freshdesk.common import (
    API,
    DEFAULT_RATE_LIMIT,
    DEFAULT_SLA,
    EMBEDDED_CONVERSATIONS,
    PLAN_TICKET_UPDATE_LIMITS,
    TICKET_PAGE_MAX,
    Errors,
    is_int,
    iso,
    merge_tags,
)


class FreshdeskState(HelpdeskSandbox):
    """In-memory Freshdesk account; FreshdeskSandbox (server.py) gives it its HTTP face."""

    thread_name = "fd-sandbox"
    api_prefix = API
    delivery_keys = ("delivery_id", "rule_id", "ticket_id")
    record_headers = True

    def __init__(
        self,
        api_key: str = "sandbox-api-key",  # a documented sandbox default, not a secret
        *,
        agent_email: str = "agent@example.com",
        rate_limit_per_minute: int = DEFAULT_RATE_LIMIT,
        webhook_retry_delay: float = 0.5,
        ticket_page_max: int = TICKET_PAGE_MAX,
        endpoint_limits: LimitOption = None,
        plan: str = "enterprise",
    ) -> None:
        if plan not in PLAN_TICKET_UPDATE_LIMITS:
            raise ValueError(f"plan must be one of {', '.join(PLAN_TICKET_UPDATE_LIMITS)}, got {plan!r}")
        self.api_key = api_key
        self.plan = plan  # growth, pro or enterprise: the ticket-update cap when endpoint limits are on
        self.rate_limit_per_minute = rate_limit_per_minute
        self.webhook_retry_delay = webhook_retry_delay
        self.ticket_page_max = ticket_page_max

        self._lock = threading.RLock()
        self._contacts: dict[int, dict[str, Any]] = {}
        self._companies: dict[int, dict[str, Any]] = {}
        self._groups: dict[int, dict[str, Any]] = {}
        self._agents: dict[int, dict[str, Any]] = {}
        self._tickets: dict[int, dict[str, Any]] = {}
        self._conversations: dict[int, list[dict[str, Any]]] = {}
        self._rules: dict[int, dict[str, Any]] = {}
        self._email_index: dict[str, int] = {}

        self._contact_ids = itertools.count(43_000_000_001)
        self._company_ids = itertools.count(44_000_000_001)
        self._group_ids = itertools.count(45_000_001)
        self._agent_ids = itertools.count(46_000_000_001)
        self._ticket_ids = itertools.count(1)
        self._conversation_ids = itertools.count(47_000_000_001)
        self._rule_ids = itertools.count(1)
        self._delivery_ids = itertools.count(1)

        self._rate = SlidingWindow(rate_limit_per_minute)
        self._init_controls()
        self.set_endpoint_limits(endpoint_limits)
        self._faults["method"] = None
        self._lost: dict[str, Any] = {"remaining": 0, "method": None, "path": None, "hold": 0.0}

        self.api_agent_id = self.add_agent("Sandbox Agent", agent_email)["id"]
        self.app = self._build_app()

    # -- lifecycle ---------------------------------------------------------------------------------

    def _open_pools(self) -> None:
        self._webhook_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fd-webhook")

    def _close_pools(self) -> None:
        self._webhook_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def credentials(self) -> tuple[str, str]:
        """The (username, password) pair for HTTP Basic, as `requests` takes it."""
        return (self.api_key, "X")

    # -- test and demo controls --------------------------------------------------------------------

    def inject_faults(
        self,
        status: int,
        count: int,
        retry_after: int | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `count` API requests with `status` (a flaky or rate-limiting helpdesk).

        `method` and `path` (a prefix such as "/api/v2/tickets/1") narrow the fault to matching requests,
        e.g. only the PUT that follows a note.
        """
        self._set_faults(status, count, retry_after, method=method.upper() if method else None, path=path)

    def lose_responses(
        self, count: int, *, method: str | None = None, path: str | None = None, hold: float = 1.0
    ) -> None:
        """Carry out the next `count` matching API requests, then hold each answer back `hold` seconds.

        A response lost after the write succeeded: the client times out not knowing that its note or
        update was made. `method` and `path` (a prefix) narrow it, as for inject_faults.
        """
        with self._lock:
            self._lost = {
                "remaining": max(0, int(count)),
                "method": method.upper() if method else None,
                "path": path,
                "hold": max(0.0, float(hold)),
            }

    # -- direct access for seeding, tests and the demo (no HTTP, no rules) -------------------------

    def add_group(
        self, name: str, *, description: str = "", created_at: datetime | None = None
    ) -> dict[str, Any]:
        """Create a group directly; returns its JSON."""
        with self._lock:
            when = created_at or self._now()
            group = {
                "id": next(self._group_ids),
                "name": name,
                "description": description,
                "escalate_to": None,
                "unassigned_for": "30m",
                "business_hour_id": None,
                "group_type": "support_agent_group",
                "auto_ticket_assign": False,
                "agent_ids": [],
                "created_at": when,
                "updated_at": when,
            }
            self._groups[group["id"]] = group
            self._note_time(when)
            return self._render(group)

    def add_agent(self, name: str, email: str, *, created_at: datetime | None = None) -> dict[str, Any]:
        """Create an agent directly (agents are not contacts in Freshdesk); returns its JSON."""
        with self._lock:
            when = created_at or self._now()
            agent = {
                "id": next(self._agent_ids),
                "available": True,
                "occasional": False,
                "signature": None,
                "ticket_scope": 1,
                "type": "support_agent",
                "group_ids": [],
                "role_ids": [],
                "contact": {
                    "active": True,
                    "email": email.lower(),
                    "job_title": None,
                    "language": "en",
                    "name": name,
                    "mobile": None,
                    "phone": None,
                    "time_zone": "UTC",
                    "created_at": iso(when),
                    "updated_at": iso(when),
                },
                "created_at": when,
                "updated_at": when,
            }
            self._agents[agent["id"]] = agent
            return self._render(agent)

    def add_company(
        self,
        name: str,
        *,
        domains: Iterable[str] = (),
        custom_fields: Mapping[str, Any] | None = None,
        description: str | None = None,
        industry: str | None = None,
        account_tier: str | None = None,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Create a company directly; returns its JSON."""
        with self._lock:
            when = created_at or self._now()
            company = {
                "id": next(self._company_ids),
                "name": name,
                "description": description,
                "note": None,
                "domains": list(domains),
                "custom_fields": dict(custom_fields or {}),
                "health_score": None,
                "account_tier": account_tier,
                "renewal_date": None,
                "industry": industry,
                "created_at": when,
                "updated_at": updated_at or when,
            }
            self._companies[company["id"]] = company
            self._note_time(company["updated_at"])
            return self._render(company)

    def add_contact(
        self,
        name: str,
        email: str | None = None,
        *,
        company_id: int | None = None,
        tags: Iterable[str] = (),
        custom_fields: Mapping[str, Any] | None = None,
        unique_external_id: str | None = None,
        time_zone: str = "UTC",
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Create a contact directly; returns its JSON."""
        with self._lock:
            if email and email.lower() in self._email_index:
                raise ValueError(f"email already used: {email}")
            if company_id is not None and company_id not in self._companies:
                raise ValueError(f"no company {company_id}")
            when = created_at or self._now()
            contact = self._new_contact(next(self._contact_ids), when)
            contact.update(
                name=name,
                email=email.lower() if email else None,
                company_id=company_id,
                tags=merge_tags(tags),
                custom_fields=dict(custom_fields or {}),
                unique_external_id=unique_external_id,
                time_zone=time_zone,
                updated_at=updated_at or when,
            )
            self._contacts[contact["id"]] = contact
            if contact["email"]:
                self._email_index[contact["email"]] = contact["id"]
            self._note_time(contact["updated_at"])
            return self._render(contact)

    def get_contact(self, contact_id: int) -> dict[str, Any]:
        with self._lock:
            return self._render(self._contacts[contact_id])

    def find_contact(self, email: str) -> dict[str, Any] | None:
        with self._lock:
            contact_id = self._email_index.get(email.lower())
            return self._render(self._contacts[contact_id]) if contact_id else None

    def group_ids(self) -> dict[str, int]:
        with self._lock:
            return {g["name"]: g["id"] for g in self._groups.values()}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "contacts": len(self._contacts),
                "companies": len(self._companies),
                "groups": len(self._groups),
                "agents": len(self._agents),
                "tickets": len(self._tickets),
                "conversations": sum(len(c) for c in self._conversations.values()),
                "automation_rules": len(self._rules),
            }

    # -- records -----------------------------------------------------------------------------------

    @staticmethod
    def _new_contact(contact_id: int, when: datetime) -> dict[str, Any]:
        return {
            "id": contact_id,
            "active": True,
            "address": None,
            "company_id": None,
            "description": None,
            "email": None,
            "job_title": None,
            "language": "en",
            "mobile": None,
            "name": "",
            "phone": None,
            "time_zone": "UTC",
            "twitter_id": None,
            "facebook_id": None,
            "unique_external_id": None,
            "other_emails": [],
            "other_companies": [],
            "view_all_tickets": False,
            "tags": [],
            "custom_fields": {},
            "avatar": None,
            "deleted": False,
            "created_at": when,
            "updated_at": when,
        }

    @staticmethod
    def _new_ticket(ticket_id: int, when: datetime) -> dict[str, Any]:
        return {
            "id": ticket_id,
            "subject": "",
            "description": "",
            "description_text": "",
            "status": 2,
            "priority": 1,
            "source": 2,
            "type": None,
            "requester_id": None,
            "responder_id": None,
            "company_id": None,
            "group_id": None,
            "product_id": None,
            "email_config_id": None,
            "cc_emails": [],
            "fwd_emails": [],
            "reply_cc_emails": [],
            "ticket_cc_emails": [],
            "to_emails": None,
            "tags": [],
            "custom_fields": {},
            "spam": False,
            "deleted": False,
            "fr_escalated": False,
            "is_escalated": False,
            "nr_escalated": False,
            "fr_due_by": None,
            "due_by": None,
            "nr_due_by": None,
            "associated_tickets_count": None,
            "created_at": when,
            "updated_at": when,
            "_first_responded_at": None,
            "_resolved_at": None,
            "_reopened_at": None,
        }

    @staticmethod
    def _set_due_dates(ticket: dict[str, Any]) -> None:
        """The default SLA policy's targets, counted from creation in calendar time."""
        respond, resolve = DEFAULT_SLA.get(ticket["priority"], DEFAULT_SLA[1])
        ticket["fr_due_by"] = ticket["created_at"] + timedelta(seconds=respond)
        ticket["due_by"] = ticket["created_at"] + timedelta(seconds=resolve)

    # -- validation shared by the API's writes ------------------------------------------------------

    def _ref(self, errors: Errors, data: Mapping[str, Any], field: str, table: Mapping[int, Any]) -> None:
        """A reference field must name an existing record; null clears it."""
        if field not in data or data[field] is None:
            return
        value = data[field]
        if not is_int(value):
            errors.add(field, "It should be a/an Positive Integer", "datatype_mismatch")
        elif value not in table:
            label = {"group_id": "group", "company_id": "company", "responder_id": "agent"}.get(
                field, "contact"
            )
            errors.add(field, f"There is no {label} matching the given {field}")

    @staticmethod
    def _string_list(errors: Errors, data: Mapping[str, Any], field: str) -> None:
        if field in data and not (
            isinstance(data[field], list) and all(isinstance(t, str) and t.strip() for t in data[field])
        ):
            errors.add(field, "It should be a/an Array", "datatype_mismatch")

    @staticmethod
    def _custom_fields(errors: Errors, data: Mapping[str, Any]) -> None:
        if "custom_fields" in data and not isinstance(data["custom_fields"], dict):
            errors.add("custom_fields", "It should be a/an key/value pair", "datatype_mismatch")

    # -- rendering ---------------------------------------------------------------------------------

    @staticmethod
    def _render(record: Mapping[str, Any]) -> dict[str, Any]:
        return export_record(record)

    def _render_ticket(
        self, ticket: Mapping[str, Any], *, full: bool = False, include: Iterable[str] = ()
    ) -> dict[str, Any]:
        out = self._render(ticket)
        out.pop("deleted", None)
        if not full and "description" not in include:
            out.pop("description", None)
            out.pop("description_text", None)
        if full:
            out["attachments"] = []
        for name in include:
            if name == "requester":
                contact = self._contacts.get(ticket["requester_id"]) or {}
                out["requester"] = {k: contact.get(k) for k in ("id", "name", "email", "mobile", "phone")}
            elif name == "company":
                company = self._companies.get(ticket["company_id"]) if ticket["company_id"] else None
                out["company"] = {"id": company["id"], "name": company["name"]} if company else {}
            elif name == "stats":
                out["stats"] = {
                    "agent_responded_at": iso(ticket["_first_responded_at"]),
                    "requester_responded_at": None,
                    "first_responded_at": iso(ticket["_first_responded_at"]),
                    "status_updated_at": iso(ticket["updated_at"]),
                    "reopened_at": iso(ticket["_reopened_at"]),
                    "resolved_at": iso(ticket["_resolved_at"]),
                    "closed_at": iso(ticket["_resolved_at"]) if ticket["status"] == 5 else None,
                    "pending_since": None,
                }
            elif name == "conversations":
                conversations = self._conversations.get(ticket["id"], [])[:EMBEDDED_CONVERSATIONS]
                out["conversations"] = [self._render(c) for c in conversations]
        return out
