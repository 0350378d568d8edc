"""A local, API-compatible stand-in for the Freshdesk API v2, served over loopback HTTP.

Why it exists: tierdesk's tests and its Freshdesk demo must drive the real HTTP paths of the Freshdesk
connector (API-key basic auth, page/per_page lists with a Link header, tag replacement on PUT, private
notes, due dates, rate limits, webhooks fired by an automation rule) without a Freshdesk account. Freshdesk
publishes no OpenAPI description; paths, field names, integer enumerations and error bodies follow its API
documentation (see shared/reference/helpdesk-apis.md, section 2). Use it from Python
(``FreshdeskSandbox().start()``) or on its own::

    python -m sandbox.freshdesk --port 8766 --customers 1000 --seed 42

Everything lives in memory behind one re-entrant lock; webhook deliveries run on a small thread pool so
the ticket-create call returns before the webhook is sent, as Freshdesk's does.

Behaviour worth knowing (docs = Freshdesk's documentation; choice = ours where it is silent):
- Auth (docs): HTTP Basic with the API key as the username and any password ("X"); anything else is 401.
- Bodies are unwrapped JSON (docs): ``{"subject": ...}``, not ``{"ticket": {...}}``. Writes need
  ``Content-Type: application/json`` (else 415) and refuse fields the endpoint does not know (400
  ``invalid_field``), as Freshdesk does. Validation errors answer 400 ``{"description": "Validation
  failed", "errors": [{"field", "message", "code"}]}``; a duplicate contact email is 409 (docs).
- Enumerations (docs): priority 1 low, 2 medium, 3 high, 4 urgent; status 2 open, 3 pending, 4 resolved,
  5 closed; source 1 email, 2 portal, 3 phone, 7 chat, 9 feedback widget, 10 outbound email.
- Lists (docs): ``page`` from 1 and ``per_page`` up to 100 (default 30); a ``Link: <...>; rel="next"``
  header while more pages exist, none on the last page. The ticket list without ``updated_since`` shows
  only tickets created in the last 30 days (docs) and refuses pages beyond 300 (choice: Freshdesk caps
  deep paging at about that depth). Contacts are listed by id (choice; Freshdesk documents no order) and
  filter with ``_updated_since``; companies have no change filter (docs). A contact's list row leaves out
  ``tags``, ``avatar``, ``other_emails``, ``deleted``, ``other_companies`` and ``view_all_tickets``, which
  only GET /contacts/{id} shows (Freshdesk's API views and tests).
- ``tags`` on a ticket or contact update REPLACES the whole list (docs); ``custom_fields`` merge by key.
  Tags keep their spelling and are deduplicated ignoring case (choice).
- Due dates: a new ticket gets ``fr_due_by``/``due_by`` from the account's default SLA policy by priority
  (calendar time, choice of targets below); a priority change recomputes them unless the same update sets
  them explicitly. ``due_by`` before the ticket's creation or ``fr_due_by`` after ``due_by`` is a 400.
- Notes (docs): POST /tickets/{id}/notes with ``{"body": "<html>", "private": true}``; ``private``
  defaults to true. A note moves the ticket's ``updated_at``. GET /tickets/{id}?include=conversations
  embeds the oldest ten conversations (docs); /tickets/{id}/conversations lists them all.
- Unknown ids and unknown paths answer 404 with an empty body (choice).
- Rate limits (docs): every API answer carries X-RateLimit-Total, X-RateLimit-Remaining and
  X-RateLimit-Used-CurrentRequest; over the per-minute budget, 429 with Retry-After (seconds). Each
  ``include`` costs one more credit (docs).
- Webhooks: Freshdesk has no webhook API; an admin adds a "Trigger webhook" action to an automation rule.
  Here ``add_automation_rule`` (or POST /__sandbox/automations) configures one "on ticket created" rule:
  URL, method, JSON template with {{placeholders}}, custom headers, basic auth or an API key. Deliveries
  are unsigned (docs), asynchronous, and retried three times on connection errors and 5xx (choice).
  Placeholders render display values ({{ticket.priority}} -> "High", {{ticket.status}} -> "Open");
  {{ticket.tags}} renders comma-separated; unknown placeholders render "" (choice); values are
  JSON-escaped in JSON templates (choice). Only tickets created through the API or the portal
  (``submit_ticket``) fire rules; seeded history does not.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import html
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, has_request_context, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from sandbox.base import CONTROL, HelpdeskSandbox, SlidingWindow, serve_until_stopped

API = "/api/v2"

PRIORITIES = {1: "Low", 2: "Medium", 3: "High", 4: "Urgent"}
STATUSES = {2: "Open", 3: "Pending", 4: "Resolved", 5: "Closed"}
SOURCES = {1: "Email", 2: "Portal", 3: "Phone", 7: "Chat", 9: "Feedback Widget", 10: "Outbound Email"}
# The account's default SLA policy: (respond within, resolve within) in seconds, by priority (choice).
DEFAULT_SLA = {
    4: (3600, 4 * 3600),
    3: (4 * 3600, 24 * 3600),
    2: (8 * 3600, 3 * 86400),
    1: (24 * 3600, 5 * 86400),
}
PER_PAGE_DEFAULT = 30
PER_PAGE_MAX = 100
TICKET_PAGE_MAX = 300
TICKET_LIST_DAYS = 30
ORDER_BY = ("created_at", "due_by", "updated_at", "status")
TICKET_INCLUDES = ("requester", "stats", "company", "description")
SHOW_INCLUDES = ("requester", "stats", "company", "conversations")
EMBEDDED_CONVERSATIONS = 10
DEFAULT_RATE_LIMIT = 700  # per minute: Freshdesk's Enterprise plan

WEBHOOK_TIMEOUT = 10.0
WEBHOOK_EXTRA_ATTEMPTS = 3
WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

TICKET_CREATE_FIELDS = frozenset(
    {
        "name", "requester_id", "email", "phone", "unique_external_id", "subject", "type", "status",
        "priority", "description", "responder_id", "cc_emails", "custom_fields", "due_by", "fr_due_by",
        "email_config_id", "group_id", "product_id", "source", "tags", "company_id",
    }
)  # fmt: skip
TICKET_UPDATE_FIELDS = TICKET_CREATE_FIELDS - {"cc_emails"}
NOTE_FIELDS = frozenset({"body", "private", "incoming", "notify_emails", "user_id"})
CONTACT_FIELDS = frozenset(
    {
        "name", "email", "phone", "mobile", "twitter_id", "unique_external_id", "other_emails",
        "company_id", "view_all_tickets", "other_companies", "address", "description", "job_title",
        "language", "time_zone", "tags", "custom_fields",
    }
)  # fmt: skip
# Freshdesk's contact list (and search) rows are the contact without these; only GET /contacts/{id} has
# them (Freshdesk's own API views and tests). Notably the list never shows a contact's tags.
CONTACT_LIST_OMITS = frozenset(
    {"avatar", "tags", "other_emails", "deleted", "other_companies", "view_all_tickets"}
)
COMPANY_FIELDS = frozenset(
    {"name", "description", "note", "domains", "custom_fields", "health_score", "account_tier",
     "renewal_date", "industry"}
)  # fmt: skip
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


# -- small pure helpers ----------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    """Freshdesk's timestamp format: UTC, whole seconds, trailing Z."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime:
    """An ISO-8601 timestamp or date as Freshdesk accepts it; naive values are UTC."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a timestamp: {value!r}")
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0)


def merge_tags(*groups: Iterable[str]) -> list[str]:
    """Tags in first-seen order, a second spelling of the same tag (ignoring case) dropped."""
    seen: dict[str, str] = {}
    for group in groups:
        for tag in group:
            seen.setdefault(tag.lower(), tag)
    return list(seen.values())


def note_html(text: str) -> str:
    """Plain text as the HTML body Freshdesk stores for a note."""
    return "<div>" + "<br>".join(html.escape(line) for line in text.splitlines()) + "</div>"


def html_text(markup: str) -> str:
    """The body_text Freshdesk derives from an HTML body."""
    text = re.sub(r"<br\s*/?>", "\n", markup, flags=re.IGNORECASE)
    text = re.sub(r"</(p|div)>", "\n", text, flags=re.IGNORECASE)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- errors ----------------------------------------------------------------------------------------


class FreshdeskError(Exception):
    """An API answer other than success, carried up to the Flask error handler."""

    def __init__(
        self, status: int, body: Mapping[str, Any] | None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def _not_found() -> FreshdeskError:
    return FreshdeskError(404, None)


class _Errors:
    """Collects validation errors in Freshdesk's shape; raises them all at once."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []
        self.status = 400

    def add(self, field: str, message: str, code: str = "invalid_value") -> None:
        self.items.append({"field": field, "message": message, "code": code})
        if code == "duplicate_value":
            self.status = 409

    def raise_if_any(self) -> None:
        if self.items:
            raise FreshdeskError(self.status, {"description": "Validation failed", "errors": self.items})


def _validation(field: str, message: str, code: str = "invalid_value") -> FreshdeskError:
    errors = _Errors()
    errors.add(field, message, code)
    return FreshdeskError(errors.status, {"description": "Validation failed", "errors": errors.items})


# -- the sandbox -----------------------------------------------------------------------------------


class FreshdeskSandbox(HelpdeskSandbox):
    """In-memory Freshdesk account with an HTTP face; see the module docstring for why."""

    thread_name = "fd-sandbox"
    api_prefix = API

    def __init__(
        self,
        api_key: str = "sandbox-api-key",  # a documented sandbox default, not a secret
        *,
        agent_email: str = "agent@example.com",
        rate_limit_per_minute: int = DEFAULT_RATE_LIMIT,
        webhook_retry_delay: float = 0.5,
        ticket_page_max: int = TICKET_PAGE_MAX,
    ) -> None:
        self.api_key = api_key
        self.rate_limit_per_minute = rate_limit_per_minute
        self.webhook_retry_delay = webhook_retry_delay
        self.ticket_page_max = ticket_page_max
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

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
        self._last_stamp = datetime.fromtimestamp(0, UTC)

        self._rate = SlidingWindow(rate_limit_per_minute)
        self._init_controls()
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

    def add_automation_rule(
        self,
        url: str,
        body: str,
        *,
        name: str = "Trigger webhook on ticket creation",
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
        api_key: str | None = None,
        active: bool = True,
    ) -> dict[str, Any]:
        """Configure a "ticket is created" rule whose action triggers a webhook; returns the rule.

        Freshdesk has no API for this: an admin builds the rule in Admin > Workflows > Automations.
        The body is a JSON template whose {{placeholders}} are filled per ticket.
        """
        method = method.upper()
        if method not in WEBHOOK_METHODS:
            raise ValueError(f"method must be one of {', '.join(WEBHOOK_METHODS)}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("url must be an absolute http(s) URL")
        if basic_auth and api_key:
            raise ValueError("give basic_auth or api_key, not both")
        if not isinstance(body, str):
            raise ValueError("body must be a string (a JSON template)")
        with self._lock:
            rule = {
                "id": next(self._rule_ids),
                "name": name,
                "event": "ticket_created",
                "active": bool(active),
                "url": url,
                "method": method,
                "encoding": "json",
                "body": body,
                "headers": dict(headers or {}),
                "auth": {"username": basic_auth[0], "password": basic_auth[1]}
                if basic_auth
                else ({"username": api_key, "password": "X"} if api_key else None),
                "created_at": self._now(),
            }
            self._rules[rule["id"]] = rule
            return self._render_rule(rule)

    def automation_rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._render_rule(r) for r in self._rules.values()]

    def remove_automation_rule(self, rule_id: int) -> None:
        with self._lock:
            self._rules.pop(rule_id, None)

    # -- direct access for seeding, tests and the demo (no HTTP, no rules) -------------------------

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def _stamp(self, previous: datetime | None = None) -> datetime:
        """A change time that never goes backwards and differs from `previous` (whole seconds)."""
        stamp = max(self._now(), self._last_stamp)
        if previous is not None and stamp <= previous:
            stamp = previous + timedelta(seconds=1)
        self._last_stamp = stamp
        return stamp

    def _note_time(self, value: datetime) -> None:
        self._last_stamp = max(self._last_stamp, value)

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

    def add_ticket(
        self,
        requester_id: int,
        subject: str,
        description: str,
        *,
        status: int = 2,
        priority: int = 1,
        source: int = 2,
        ticket_type: str | None = None,
        group_id: int | None = None,
        responder_id: int | None = None,
        tags: Iterable[str] = (),
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Create a (historic) ticket directly; no automation rule runs."""
        with self._lock:
            requester = self._contacts[requester_id]
            when = created_at or self._now()
            ticket = self._new_ticket(next(self._ticket_ids), when)
            ticket.update(
                subject=subject,
                description=note_html(description),
                description_text=description,
                status=status,
                priority=priority,
                source=source,
                type=ticket_type,
                group_id=group_id,
                responder_id=responder_id,
                requester_id=requester_id,
                company_id=requester["company_id"],
                tags=merge_tags(tags),
                updated_at=updated_at or when,
            )
            self._set_due_dates(ticket)
            self._tickets[ticket["id"]] = ticket
            self._conversations[ticket["id"]] = []
            self._note_time(ticket["updated_at"])
            return self._render_ticket(ticket)

    def add_note(
        self,
        ticket_id: int,
        body: str,
        *,
        private: bool = True,
        user_id: int | None = None,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Append a (historic) note directly; the ticket's updated_at is left alone."""
        with self._lock:
            note = self._store_note(
                self._tickets[ticket_id],
                {"body": note_html(body), "private": private, "user_id": user_id or self.api_agent_id},
                created_at or self._now(),
            )
            return self._render(note)

    def get_ticket(self, ticket_id: int) -> dict[str, Any]:
        with self._lock:
            return self._render_ticket(self._tickets[ticket_id], full=True)

    def get_contact(self, contact_id: int) -> dict[str, Any]:
        with self._lock:
            return self._render(self._contacts[contact_id])

    def find_contact(self, email: str) -> dict[str, Any] | None:
        with self._lock:
            contact_id = self._email_index.get(email.lower())
            return self._render(self._contacts[contact_id]) if contact_id else None

    def ticket_conversations(self, ticket_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return [self._render(c) for c in self._conversations[ticket_id]]

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

    def submit_ticket(
        self, requester_email: str, subject: str, body: str, *, name: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A customer opens a ticket in the portal: the contact is created if new, rules run."""
        payload = {"email": requester_email, "subject": subject, "description": body, **fields}
        if name:
            payload["name"] = name
        with self._lock:
            ticket, deliveries = self._create_ticket(payload)
        self._dispatch(deliveries)
        return ticket

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

    # -- rendering ---------------------------------------------------------------------------------

    @staticmethod
    def _render(record: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in record.items():
            if key.startswith("_"):
                continue
            out[key] = iso(value) if isinstance(value, datetime) else deepcopy(value)
        return out

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

    @staticmethod
    def _render_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
        """A rule as the admin screen shows it: header names and auth user, never their secrets."""
        out = {k: v for k, v in rule.items() if k not in ("headers", "auth", "created_at")}
        out["header_names"] = sorted(rule["headers"])
        api_key_auth = bool(rule["auth"]) and rule["auth"]["password"] == "X"  # noqa: S105 - Freshdesk's convention
        out["auth_username"] = rule["auth"]["username"] if rule["auth"] and not api_key_auth else None
        out["created_at"] = iso(rule["created_at"])
        return out

    # -- the Flask app -----------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = self._new_app("freshdesk_sandbox")
        app.register_error_handler(FreshdeskError, self._freshdesk_error)
        app.register_error_handler(HTTPException, self._http_error)
        app.register_error_handler(Exception, self._unexpected_error)

        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("/agents/me", "GET", self._agents_me),
            ("/groups", "GET", self._list_groups),
            ("/groups/<int:group_id>", "GET", self._show_group),
            ("/contacts", "GET", self._list_contacts),
            ("/contacts", "POST", self._create_contact_view),
            ("/contacts/<int:contact_id>", "GET", self._show_contact),
            ("/contacts/<int:contact_id>", "PUT", self._update_contact_view),
            ("/companies", "GET", self._list_companies),
            ("/companies/<int:company_id>", "GET", self._show_company),
            ("/companies/<int:company_id>", "PUT", self._update_company_view),
            ("/tickets", "GET", self._list_tickets),
            ("/tickets", "POST", self._create_ticket_view),
            ("/tickets/<int:ticket_id>", "GET", self._show_ticket),
            ("/tickets/<int:ticket_id>", "PUT", self._update_ticket_view),
            ("/tickets/<int:ticket_id>/notes", "POST", self._create_note_view),
            ("/tickets/<int:ticket_id>/conversations", "GET", self._list_conversations),
        ]
        self._add_routes(app, routes, API)
        control: list[tuple[str, str, Callable[..., Response]]] = [
            ("/automations", "GET", self._control_list_rules),
            ("/automations", "POST", self._control_add_rule),
            ("/automations/<int:rule_id>", "DELETE", self._control_remove_rule),
            ("/tickets", "POST", self._control_submit_ticket),
        ]
        self._add_control_routes(app, control)
        return app

    @staticmethod
    def _credits() -> int:
        """One credit a call, one more for each embedded resource (Freshdesk's `include`)."""
        include = request.args.get("include", "")
        return 1 + len([part for part in include.split(",") if part.strip()])

    def _before_request(self) -> Response | None:
        request.get_data(cache=True)  # always drain the body: keep-alive connections stay in sync
        if not self._is_api():
            return None  # control endpoints: no auth, no limits, no faults
        fault = self._delay_or_fault()
        if fault is not None:
            return fault
        admitted, _remaining, retry_after = self._rate.spend(self._credits())
        if not admitted:
            return self._rate_limited(retry_after)
        if not self._authenticated():
            return self._json(
                {
                    "code": "invalid_credentials",
                    "message": "You have to be logged in to perform this action.",
                },
                401,
            )
        if request.method in ("POST", "PUT") and request.get_data(cache=True).strip():
            mimetype = request.mimetype or ""
            if mimetype != "application/json":
                shown = request.content_type or "not set"
                return self._json(
                    {
                        "code": "invalid_content_type",
                        "message": f"Content-Type header is set to {shown}. "
                        "It should be set to application/json",
                    },
                    415,
                )
        return None

    def _fault_matches(self, fault: Mapping[str, Any]) -> bool:
        return (fault.get("method") in (None, request.method)) and (
            not fault.get("path") or request.path.startswith(fault["path"])
        )

    def _authenticated(self) -> bool:
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return False
        return hmac.compare_digest((auth.username or "").encode(), self.api_key.encode())

    @staticmethod
    def _rate_limited(retry_after: int) -> Response:
        return Response(
            json.dumps({"code": "rate_limit_exceeded", "message": "You have exceeded the limit of requests"}),
            status=429,
            headers={"Retry-After": str(retry_after)},
            content_type="application/json; charset=utf-8",
        )

    def _fault_response(self, status: int, retry_after: int | None) -> Response:
        if status == 429:
            return self._rate_limited(retry_after or 1)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return self._json({"code": "internal_error", "message": "Injected fault"}, status, headers)

    def _after_request(self, response: Response) -> Response:
        if not self._is_api():
            return response
        response.headers["X-RateLimit-Total"] = str(self._rate.limit)
        response.headers["X-RateLimit-Remaining"] = str(self._rate.remaining())
        response.headers["X-RateLimit-Used-CurrentRequest"] = str(self._credits())
        self._log_request(request.path, response)
        hold = 0.0
        with self._lock:
            lost = self._lost
            if lost["remaining"] > 0 and response.status_code < 400 and self._fault_matches(lost):
                lost["remaining"] -= 1
                hold = lost["hold"]
        if hold:
            time.sleep(hold)  # the work is done; the answer arrives after the client gave up
        return response

    def _freshdesk_error(self, error: FreshdeskError) -> Response:
        if error.body is None:
            return Response(b"", error.status, error.headers)
        return self._json(error.body, error.status, error.headers)

    def _http_error(self, error: HTTPException) -> Response:
        status = error.code or 500
        if status == 404:
            return Response(b"", 404)
        if isinstance(error, MethodNotAllowed):
            allowed = ", ".join(m for m in (error.valid_methods or []) if m not in ("HEAD", "OPTIONS"))
            return self._json(
                {
                    "code": "method_not_allowed",
                    "message": f"{request.method} method is not allowed. "
                    f"It should be one of these method(s): {allowed}",
                },
                405,
                {"Allow": allowed},
            )
        return self._json(
            {"code": error.name.lower().replace(" ", "_"), "message": error.description}, status
        )

    def _unexpected_error(self, error: Exception) -> Response:
        self.app.logger.exception("sandbox bug while answering %s %s", request.method, request.path)
        return self._json({"code": "internal_error", "message": str(error)}, 500)

    # -- request helpers ---------------------------------------------------------------------------

    @staticmethod
    def _body(allowed: frozenset[str]) -> dict[str, Any]:
        raw = request.get_data(cache=True)
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise FreshdeskError(
                400,
                {
                    "description": "Validation failed",
                    "errors": [{"code": "invalid_json", "message": "Request body has invalid json format"}],
                },
            ) from e
        if not isinstance(data, dict):
            raise FreshdeskError(
                400,
                {
                    "description": "Validation failed",
                    "errors": [{"code": "invalid_json", "message": "Request body must be a JSON object"}],
                },
            )
        errors = _Errors()
        for key in data:
            if key not in allowed:
                errors.add(key, "Unexpected/invalid field in request", "invalid_field")
        errors.raise_if_any()
        return data

    def _page_args(self, page_max: int | None = None) -> tuple[int, int]:
        errors = _Errors()
        values = {}
        for name, default in (("page", 1), ("per_page", PER_PAGE_DEFAULT)):
            raw = request.args.get(name)
            if raw in (None, ""):
                values[name] = default
                continue
            try:
                values[name] = int(raw)
            except ValueError:
                values[name] = default
                errors.add(name, "It should be a Positive Number", "datatype_mismatch")
                continue
            if values[name] < 1:
                errors.add(name, "It should be a Positive Number")
        if values["per_page"] > PER_PAGE_MAX:
            errors.add("per_page", f"It should be a Positive Number less than or equal to {PER_PAGE_MAX}")
        if page_max is not None and values["page"] > page_max:
            errors.add("page", f"It should be a Positive Number less than or equal to {page_max}")
        errors.raise_if_any()
        return values["page"], values["per_page"]

    def _host(self) -> str:
        if has_request_context():
            return request.host_url.rstrip("/")
        return self._base_url or "http://127.0.0.1"

    def _paginate(
        self,
        records: list[dict[str, Any]],
        render: Callable[[dict[str, Any]], dict[str, Any]],
        page_max: int | None = None,
    ) -> Response:
        """One page of `records` and, while more exist, a Link header to the next page."""
        page, per_page = self._page_args(page_max)
        start = (page - 1) * per_page
        chunk = records[start : start + per_page]
        headers = {}
        if start + per_page < len(records) and (page_max is None or page < page_max):
            query = [(k, v) for k, v in request.args.items(multi=True) if k != "page"]
            query.append(("page", str(page + 1)))
            headers["Link"] = f'<{self._host()}{request.path}?{urlencode(query)}>; rel="next"'
        return self._json([render(r) for r in chunk], 200, headers)

    @staticmethod
    def _since(name: str) -> datetime | None:
        raw = request.args.get(name)
        if raw in (None, ""):
            return None
        try:
            return parse_time(raw)
        except ValueError as e:
            raise _validation(name, "It should be in the 'valid date time' format") from e

    @staticmethod
    def _int_filter(name: str) -> int | None:
        raw = request.args.get(name)
        if raw in (None, ""):
            return None
        if not raw.isdigit():
            raise _validation(name, "It should be a Positive Number", "datatype_mismatch")
        return int(raw)

    def _ref(self, errors: _Errors, data: Mapping[str, Any], field: str, table: Mapping[int, Any]) -> None:
        """A reference field must name an existing record; null clears it."""
        if field not in data or data[field] is None:
            return
        value = data[field]
        if not _is_int(value):
            errors.add(field, "It should be a/an Positive Integer", "datatype_mismatch")
        elif value not in table:
            label = {"group_id": "group", "company_id": "company", "responder_id": "agent"}.get(
                field, "contact"
            )
            errors.add(field, f"There is no {label} matching the given {field}")

    @staticmethod
    def _string_list(errors: _Errors, data: Mapping[str, Any], field: str) -> None:
        if field in data and not (
            isinstance(data[field], list) and all(isinstance(t, str) and t.strip() for t in data[field])
        ):
            errors.add(field, "It should be a/an Array", "datatype_mismatch")

    @staticmethod
    def _custom_fields(errors: _Errors, data: Mapping[str, Any]) -> None:
        if "custom_fields" in data and not isinstance(data["custom_fields"], dict):
            errors.add("custom_fields", "It should be a/an key/value pair", "datatype_mismatch")

    # -- agents and groups -------------------------------------------------------------------------

    def _agents_me(self) -> Response:
        with self._lock:
            return self._json(self._render(self._agents[self.api_agent_id]))

    def _list_groups(self) -> Response:
        with self._lock:
            groups = sorted(self._groups.values(), key=lambda g: g["id"])
            return self._paginate(groups, self._render)

    def _show_group(self, group_id: int) -> Response:
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                raise _not_found()
            return self._json(self._render(group))

    # -- contacts ----------------------------------------------------------------------------------

    def _contact_or_404(self, contact_id: int) -> dict[str, Any]:
        contact = self._contacts.get(contact_id)
        if contact is None:
            raise _not_found()
        return contact

    def _list_contacts(self) -> Response:
        since = self._since("_updated_since")
        company_id = self._int_filter("company_id")
        email = (request.args.get("email") or "").lower() or None
        state = request.args.get("state")
        if state not in (None, "", "verified", "unverified", "blocked", "deleted"):
            raise _validation(
                "state", "It should be one of these values: 'blocked,deleted,unverified,verified'"
            )
        with self._lock:
            contacts = sorted(self._contacts.values(), key=lambda c: c["id"])
            wanted = [
                c
                for c in contacts
                if (c["deleted"] if state == "deleted" else not c["deleted"])
                and (since is None or c["updated_at"] >= since)
                and (company_id is None or c["company_id"] == company_id)
                and (email is None or c["email"] == email)
            ]
            return self._paginate(wanted, self._render_list_contact)

    @classmethod
    def _render_list_contact(cls, contact: Mapping[str, Any]) -> dict[str, Any]:
        """A contact as the list shows it: without the fields only its own record has (docs)."""
        return {k: v for k, v in cls._render(contact).items() if k not in CONTACT_LIST_OMITS}

    def _show_contact(self, contact_id: int) -> Response:
        with self._lock:
            return self._json(self._render(self._contact_or_404(contact_id)))

    def _contact_changes(self, data: Mapping[str, Any], contact: Mapping[str, Any] | None) -> dict[str, Any]:
        errors = _Errors()
        if contact is None:
            if not isinstance(data.get("name"), str) or not data["name"].strip():
                errors.add("name", "It should be a/an String", "missing_field")
            if not any(data.get(k) for k in ("email", "phone", "mobile", "twitter_id", "unique_external_id")):
                errors.add(
                    "requester_id",
                    "Please fill at least 1 of email, mobile, phone, twitter_id, unique_external_id fields",
                    "missing_field",
                )
        email = data.get("email")
        if email is not None:
            if not isinstance(email, str) or "@" not in email:
                errors.add("email", "It should be in the 'valid email address' format")
            else:
                owner = self._email_index.get(email.lower())
                if owner is not None and (contact is None or owner != contact["id"]):
                    errors.add("email", "It should be a unique value", "duplicate_value")
        self._ref(errors, data, "company_id", self._companies)
        self._string_list(errors, data, "tags")
        self._custom_fields(errors, data)
        errors.raise_if_any()
        changes = {k: deepcopy(v) for k, v in data.items() if k != "custom_fields"}
        if "email" in changes and changes["email"]:
            changes["email"] = changes["email"].lower()
        if "tags" in changes:
            changes["tags"] = merge_tags(changes["tags"])  # replaces the whole list, like Freshdesk
        if "custom_fields" in data:
            merged = dict(contact["custom_fields"]) if contact else {}
            merged.update(data["custom_fields"])
            changes["custom_fields"] = merged
        return changes

    def _create_contact_view(self) -> Response:
        data = self._body(CONTACT_FIELDS)
        with self._lock:
            changes = self._contact_changes(data, None)
            contact = self._new_contact(next(self._contact_ids), self._stamp())
            contact.update(changes)
            self._contacts[contact["id"]] = contact
            if contact["email"]:
                self._email_index[contact["email"]] = contact["id"]
            return self._json(self._render(contact), 201)

    def _update_contact_view(self, contact_id: int) -> Response:
        data = self._body(CONTACT_FIELDS)
        with self._lock:
            contact = self._contact_or_404(contact_id)
            changes = self._contact_changes(data, contact)
            if any(contact.get(k) != v for k, v in changes.items()):
                if "email" in changes and contact["email"]:
                    self._email_index.pop(contact["email"], None)
                contact.update(changes)
                if contact["email"]:
                    self._email_index[contact["email"]] = contact["id"]
                contact["updated_at"] = self._stamp(contact["updated_at"])
            return self._json(self._render(contact))

    # -- companies ---------------------------------------------------------------------------------

    def _company_or_404(self, company_id: int) -> dict[str, Any]:
        company = self._companies.get(company_id)
        if company is None:
            raise _not_found()
        return company

    def _list_companies(self) -> Response:
        with self._lock:
            companies = sorted(self._companies.values(), key=lambda c: c["id"])
            return self._paginate(companies, self._render)

    def _show_company(self, company_id: int) -> Response:
        with self._lock:
            return self._json(self._render(self._company_or_404(company_id)))

    def _update_company_view(self, company_id: int) -> Response:
        data = self._body(COMPANY_FIELDS)
        with self._lock:
            company = self._company_or_404(company_id)
            errors = _Errors()
            if "name" in data and (not isinstance(data["name"], str) or not data["name"].strip()):
                errors.add("name", "It should be a/an String", "datatype_mismatch")
            self._string_list(errors, data, "domains")
            self._custom_fields(errors, data)
            errors.raise_if_any()
            changes = {k: deepcopy(v) for k, v in data.items() if k != "custom_fields"}
            if "custom_fields" in data:
                changes["custom_fields"] = {**company["custom_fields"], **data["custom_fields"]}
            if any(company.get(k) != v for k, v in changes.items()):
                company.update(changes)
                company["updated_at"] = self._stamp(company["updated_at"])
            return self._json(self._render(company))

    # -- tickets -----------------------------------------------------------------------------------

    def _ticket_or_404(self, ticket_id: int) -> dict[str, Any]:
        ticket = self._tickets.get(ticket_id)
        if ticket is None or ticket["deleted"]:
            raise _not_found()
        return ticket

    @staticmethod
    def _includes(allowed: tuple[str, ...]) -> list[str]:
        raw = request.args.get("include", "")
        names = [part.strip() for part in raw.split(",") if part.strip()]
        bad = [n for n in names if n not in allowed]
        if bad:
            raise _validation("include", f"It should be one of these values: '{','.join(allowed)}'")
        return names

    def _list_tickets(self) -> Response:
        since = self._since("updated_since")
        requester_id = self._int_filter("requester_id")
        company_id = self._int_filter("company_id")
        email = (request.args.get("email") or "").lower() or None
        order_by = request.args.get("order_by") or "created_at"
        order_type = request.args.get("order_type") or "desc"
        list_filter = request.args.get("filter")
        errors = _Errors()
        if order_by not in ORDER_BY:
            errors.add("order_by", f"It should be one of these values: '{','.join(ORDER_BY)}'")
        if order_type not in ("asc", "desc"):
            errors.add("order_type", "It should be one of these values: 'asc,desc'")
        if list_filter not in (None, "", "new_and_my_open", "watching", "spam", "deleted"):
            errors.add("filter", "It should be one of these values: 'new_and_my_open,watching,spam,deleted'")
        errors.raise_if_any()
        include = self._includes(TICKET_INCLUDES)
        with self._lock:
            now = self._now()
            requester_by_email = self._email_index.get(email) if email else None
            tickets = []
            for t in self._tickets.values():
                if list_filter in ("spam", "deleted"):
                    if not t[list_filter]:
                        continue
                elif t["spam"] or t["deleted"]:
                    continue
                if list_filter == "new_and_my_open" and t["status"] != 2:
                    continue
                if list_filter == "watching":
                    continue  # the API agent watches nothing here
                if since is not None:
                    if t["updated_at"] < since:
                        continue
                elif t["created_at"] < now - timedelta(days=TICKET_LIST_DAYS):
                    continue
                if requester_id is not None and t["requester_id"] != requester_id:
                    continue
                if company_id is not None and t["company_id"] != company_id:
                    continue
                if email is not None and t["requester_id"] != requester_by_email:
                    continue
                tickets.append(t)
            epoch = datetime.fromtimestamp(0, UTC)
            tickets.sort(key=lambda t: (t[order_by] or epoch, t["id"]), reverse=order_type == "desc")
            return self._paginate(
                tickets, lambda t: self._render_ticket(t, include=include), self.ticket_page_max
            )

    def _show_ticket(self, ticket_id: int) -> Response:
        include = self._includes(SHOW_INCLUDES)
        with self._lock:
            ticket = self._ticket_or_404(ticket_id)
            return self._json(self._render_ticket(ticket, full=True, include=include))

    def _ticket_changes(self, data: Mapping[str, Any], ticket: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate ticket fields into changes (ints for priority, status and source, as Freshdesk)."""
        errors = _Errors()
        for field, values in (("priority", PRIORITIES), ("status", STATUSES), ("source", SOURCES)):
            if field in data and not (_is_int(data[field]) and data[field] in values):
                allowed = ",".join(str(v) for v in values)
                errors.add(field, f"It should be one of these values: '{allowed}'")
        for field in ("subject", "description", "type", "name", "phone"):
            if field in data and data[field] is not None and not isinstance(data[field], str):
                errors.add(field, "It should be a/an String", "datatype_mismatch")
        self._ref(errors, data, "group_id", self._groups)
        self._ref(errors, data, "company_id", self._companies)
        self._ref(errors, data, "responder_id", self._agents)
        self._ref(errors, data, "requester_id", self._contacts)
        self._string_list(errors, data, "tags")
        self._string_list(errors, data, "cc_emails")
        self._custom_fields(errors, data)
        dates: dict[str, datetime] = {}
        for field in ("due_by", "fr_due_by"):
            if field in data:
                try:
                    dates[field] = parse_time(data[field])
                except ValueError:
                    errors.add(field, "It should be in the 'valid date time' format")
        created = ticket["created_at"] if ticket else self._now()
        due_by = dates.get("due_by", ticket["due_by"] if ticket and "fr_due_by" in dates else None)
        fr_due_by = dates.get("fr_due_by", ticket["fr_due_by"] if ticket and "due_by" in dates else None)
        if "due_by" in dates and dates["due_by"] < created:
            errors.add("due_by", "It should be a/an date greater than created_at")
        if due_by and fr_due_by and fr_due_by > due_by:
            errors.add("fr_due_by", "It should be a/an date less than or equal to due_by")
        errors.raise_if_any()

        changes: dict[str, Any] = {}
        for field in ("subject", "type", "status", "priority", "source", "group_id", "company_id"):
            if field in data:
                changes[field] = data[field]
        if "responder_id" in data:
            changes["responder_id"] = data["responder_id"]
        if "requester_id" in data and data["requester_id"] is not None:
            changes["requester_id"] = data["requester_id"]
        if "description" in data:
            changes["description"] = data["description"] or ""
            changes["description_text"] = html_text(data["description"] or "")
        if "tags" in data:
            changes["tags"] = merge_tags(data["tags"])  # PUT replaces the whole list, like Freshdesk
        if "custom_fields" in data:
            changes["custom_fields"] = {
                **(ticket["custom_fields"] if ticket else {}),
                **data["custom_fields"],
            }
        if "cc_emails" in data:
            changes["cc_emails"] = list(data["cc_emails"])
        changes.update(dates)
        return changes

    def _create_ticket(self, data: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Create a ticket as the API would; returns (ticket JSON, webhook deliveries to send)."""
        errors = _Errors()
        identities = ("requester_id", "email", "phone", "unique_external_id")
        if not any(data.get(k) not in (None, "") for k in identities):
            errors.add(
                "requester_id",
                "Please fill at least 1 of email, mobile, phone, twitter_id, unique_external_id, "
                "requester_id fields",
                "missing_field",
            )
        for field in ("subject", "description"):
            if not isinstance(data.get(field), str) or not data[field].strip():
                errors.add(field, "It should not be blank as this is a mandatory field", "missing_field")
        email = data.get("email")
        if email is not None and (not isinstance(email, str) or "@" not in email):
            errors.add("email", "It should be in the 'valid email address' format")
        errors.raise_if_any()
        changes = self._ticket_changes(data, None)

        requester_id = changes.pop("requester_id", None)
        if requester_id is None and isinstance(email, str):
            requester_id = self._email_index.get(email.lower())
            if requester_id is None:
                name = data.get("name") or email.split("@")[0]
                requester_id = self.add_contact(name, email, created_at=self._stamp())["id"]
        if requester_id is None:
            raise _validation("requester_id", "There is no contact matching the given identity")
        when = self._stamp()
        ticket = self._new_ticket(next(self._ticket_ids), when)
        ticket["requester_id"] = requester_id
        ticket["company_id"] = self._contacts[requester_id]["company_id"]
        ticket.update(changes)
        if "description" not in changes:
            ticket["description"] = note_html(data["description"])
        if not ticket["description_text"]:
            ticket["description_text"] = html_text(ticket["description"])
        explicit = {k: ticket[k] for k in ("due_by", "fr_due_by") if k in changes}
        self._set_due_dates(ticket)
        ticket.update(explicit)
        self._tickets[ticket["id"]] = ticket
        self._conversations[ticket["id"]] = []
        return self._render_ticket(ticket, full=True), self._rule_deliveries(ticket)

    def _create_ticket_view(self) -> Response:
        data = self._body(TICKET_CREATE_FIELDS)
        with self._lock:
            ticket, deliveries = self._create_ticket(data)
        self._dispatch(deliveries)
        return self._json(ticket, 201, {"Location": f"{self._host()}{API}/tickets/{ticket['id']}"})

    def _update_ticket_view(self, ticket_id: int) -> Response:
        data = self._body(TICKET_UPDATE_FIELDS)
        with self._lock:
            ticket = self._ticket_or_404(ticket_id)
            changes = self._ticket_changes(data, ticket)
            new_priority = changes.get("priority", ticket["priority"]) != ticket["priority"]
            if not any(ticket.get(k) != v for k, v in changes.items()):
                return self._json(self._render_ticket(ticket, full=True))
            previous_status = ticket["status"]
            ticket.update(changes)
            if new_priority and "due_by" not in changes and "fr_due_by" not in changes:
                self._set_due_dates(ticket)  # the SLA policy's targets for the new priority
            now = self._stamp(ticket["updated_at"])
            if ticket["status"] in (4, 5) and previous_status not in (4, 5):
                ticket["_resolved_at"] = now
            elif previous_status in (4, 5) and ticket["status"] in (2, 3):
                ticket["_reopened_at"] = now
            ticket["updated_at"] = now
            return self._json(self._render_ticket(ticket, full=True))

    # -- notes and conversations -------------------------------------------------------------------

    def _store_note(self, ticket: dict[str, Any], data: Mapping[str, Any], when: datetime) -> dict[str, Any]:
        note = {
            "id": next(self._conversation_ids),
            "body": data["body"],
            "body_text": html_text(data["body"]),
            "incoming": bool(data.get("incoming", False)),
            "private": bool(data.get("private", True)),
            "user_id": data["user_id"],
            "support_email": None,
            "source": 2,
            "category": 2,
            "ticket_id": ticket["id"],
            "to_emails": list(data.get("notify_emails") or []),
            "from_email": None,
            "cc_emails": [],
            "bcc_emails": None,
            "attachments": [],
            "created_at": when,
            "updated_at": when,
        }
        self._conversations.setdefault(ticket["id"], []).append(note)
        return note

    def _create_note_view(self, ticket_id: int) -> Response:
        data = self._body(NOTE_FIELDS)
        with self._lock:
            ticket = self._ticket_or_404(ticket_id)
            errors = _Errors()
            if not isinstance(data.get("body"), str) or not data["body"].strip():
                errors.add("body", "It should not be blank as this is a mandatory field", "missing_field")
            for field in ("private", "incoming"):
                if field in data and not isinstance(data[field], bool):
                    errors.add(field, "It should be a/an Boolean", "datatype_mismatch")
            if "user_id" in data and not (
                _is_int(data["user_id"])
                and (data["user_id"] in self._agents or data["user_id"] in self._contacts)
            ):
                errors.add("user_id", "There is no contact or agent matching the given user_id")
            self._string_list(errors, data, "notify_emails")
            errors.raise_if_any()
            when = self._stamp(ticket["updated_at"])
            note = self._store_note(ticket, {"user_id": self.api_agent_id, **data}, when)
            ticket["updated_at"] = when
            return self._json(self._render(note), 201)

    def _list_conversations(self, ticket_id: int) -> Response:
        with self._lock:
            self._ticket_or_404(ticket_id)
            return self._paginate(list(self._conversations.get(ticket_id, [])), self._render)

    # -- automation rules: placeholders and webhook delivery ----------------------------------------

    def _placeholders(self, ticket: Mapping[str, Any]) -> dict[str, str]:
        def text(value: Any) -> str:
            if value is None:
                return ""
            return iso(value) or "" if isinstance(value, datetime) else str(value)

        contact = self._contacts.get(ticket["requester_id"]) or {}
        company = self._companies.get(ticket["company_id"]) if ticket["company_id"] else None
        group = self._groups.get(ticket["group_id"]) if ticket["group_id"] else None
        agent = self._agents.get(ticket["responder_id"]) if ticket["responder_id"] else None
        url = f"{self._base_url or 'http://127.0.0.1'}/a/tickets/{ticket['id']}"
        values = {
            "ticket.id": text(ticket["id"]),
            "ticket.subject": text(ticket["subject"]),
            "ticket.description": text(ticket["description_text"]),
            "ticket.url": url,
            "ticket.status": STATUSES.get(ticket["status"], text(ticket["status"])),
            "ticket.priority": PRIORITIES.get(ticket["priority"], text(ticket["priority"])),
            "ticket.source": SOURCES.get(ticket["source"], text(ticket["source"])),
            "ticket.ticket_type": text(ticket["type"]),
            "ticket.tags": ", ".join(ticket["tags"]),
            "ticket.due_by_time": text(ticket["due_by"]),
            "ticket.fr_due_by_time": text(ticket["fr_due_by"]),
            "ticket.created_at": text(ticket["created_at"]),
            "ticket.group.id": text(group["id"]) if group else "",
            "ticket.group.name": text(group["name"]) if group else "",
            "ticket.agent.name": text(agent["contact"]["name"]) if agent else "",
            "ticket.agent.email": text(agent["contact"]["email"]) if agent else "",
            "ticket.contact.id": text(contact.get("id")),
            "ticket.contact.name": text(contact.get("name")),
            "ticket.contact.email": text(contact.get("email")),
            "ticket.company.id": text(company["id"]) if company else "",
            "ticket.company.name": text(company["name"]) if company else "",
        }
        for key in ("id", "name", "email"):
            values[f"ticket.requester.{key}"] = values[f"ticket.contact.{key}"]
        values["ticket.portal_url"] = values["ticket.url"]
        return values

    def render_template(self, template: str, ticket_id: int) -> str:
        """Fill a rule's JSON template for one ticket (values JSON-escaped; unknown placeholders empty)."""
        with self._lock:
            values = self._placeholders(self._tickets[ticket_id])
        return _PLACEHOLDER.sub(lambda m: json.dumps(values.get(m.group(1), ""))[1:-1], template)

    def _rule_deliveries(self, ticket: Mapping[str, Any]) -> list[dict[str, Any]]:
        values = self._placeholders(ticket)
        deliveries = []
        for rule in sorted(self._rules.values(), key=lambda r: r["id"]):
            if not rule["active"]:
                continue
            body = _PLACEHOLDER.sub(lambda m: json.dumps(values.get(m.group(1), ""))[1:-1], rule["body"])
            deliveries.append(
                {
                    "delivery_id": next(self._delivery_ids),
                    "rule_id": rule["id"],
                    "ticket_id": ticket["id"],
                    "body": body,
                }
            )
        return deliveries

    def _dispatch(self, deliveries: list[dict[str, Any]]) -> None:
        for delivery in deliveries:
            try:
                self._webhook_pool.submit(self._deliver, delivery)
            except RuntimeError:  # the sandbox is stopping: record that nothing was sent
                self._record_delivery(delivery, 1, None, "sandbox stopped", {})

    def _record_delivery(
        self,
        delivery: Mapping[str, Any],
        attempt: int,
        status: int | None,
        error: str | None,
        headers: Mapping[str, str],
        sent_at: float | None = None,
    ) -> None:
        entry = {
            "delivery_id": delivery["delivery_id"],
            "rule_id": delivery["rule_id"],
            "ticket_id": delivery["ticket_id"],
            "status_code": status,
            "sent_at": sent_at if sent_at is not None else time.time(),
            "attempt": attempt,
            "error": error,
            "body": delivery["body"],
            "headers": dict(headers),
        }
        self._append_delivery(entry)

    def _deliver(self, delivery: Mapping[str, Any]) -> None:
        """Send one rule's webhook: unsigned, the rule's headers and auth, retried on errors and 5xx."""
        body = delivery["body"].encode("utf-8")
        for attempt in range(1, WEBHOOK_EXTRA_ATTEMPTS + 2):
            with self._lock:
                rule = deepcopy(self._rules.get(delivery["rule_id"]))
            if rule is None or self._stopped.is_set():
                return
            headers = {"Content-Type": "application/json", "User-Agent": "Freshdesk"}
            headers.update(rule["headers"])
            if rule["auth"]:
                pair = f"{rule['auth']['username']}:{rule['auth']['password']}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
            status, error, sent_at = self._send_webhook(
                rule["method"], rule["url"], body, headers, WEBHOOK_TIMEOUT
            )
            self._record_delivery(delivery, attempt, status, error, headers, sent_at)
            retry = error is not None or (status is not None and status >= 500)
            if not retry or attempt > WEBHOOK_EXTRA_ATTEMPTS:
                return
            if self._stopped.wait(self.webhook_retry_delay):
                return

    # -- sandbox-only control endpoints (no auth, never rate limited) ------------------------------

    def _control_body(self) -> dict[str, Any]:
        raw = request.get_data(cache=True)
        try:
            data = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError) as e:
            raise _validation("body", "Request body has invalid json format", "invalid_json") from e
        if not isinstance(data, dict):
            raise _validation("body", "Request body must be a JSON object", "invalid_json")
        return data

    def _control_error(self, field: str, message: str) -> Exception:
        return _validation(field, message)

    def _fault_options(self, body: Mapping[str, Any]) -> dict[str, Any]:
        method, path = body.get("method"), body.get("path")
        return {"method": str(method) if method else None, "path": str(path) if path else None}

    def _control_list_rules(self) -> Response:
        return self._json({"automations": self.automation_rules()})

    def _control_add_rule(self) -> Response:
        """POST {"url", "body", "name"?, "method"?, "headers"?, "auth"?}; auth is {"username", "password"}
        or {"api_key"}."""
        data = self._control_body()
        auth = data.get("auth") or {}
        try:
            if not isinstance(auth, dict) or not isinstance(data.get("headers") or {}, dict):
                raise ValueError("auth and headers must be objects")
            basic = (str(auth["username"]), str(auth["password"])) if "username" in auth else None
            rule = self.add_automation_rule(
                str(data.get("url") or ""),
                data.get("body") if isinstance(data.get("body"), str) else json.dumps(data.get("body") or {}),
                name=str(data.get("name") or "Trigger webhook on ticket creation"),
                method=str(data.get("method") or "POST"),
                headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
                basic_auth=basic,
                api_key=str(auth["api_key"]) if "api_key" in auth else None,
                active=bool(data.get("active", True)),
            )
        except (KeyError, ValueError) as e:
            raise _validation("automation", str(e)) from e
        return self._json({"automation": rule}, 201)

    def _control_remove_rule(self, rule_id: int) -> Response:
        self.remove_automation_rule(rule_id)
        return Response(status=204)

    def _control_submit_ticket(self) -> Response:
        body = self._control_body()
        email = body.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise _validation("email", "email is required", "missing_field")
        extra = {k: v for k, v in body.items() if k not in ("email", "subject", "description", "name")}
        ticket = self.submit_ticket(
            email,
            str(body.get("subject") or "(no subject)"),
            str(body.get("description") or "(no description)"),
            name=body.get("name"),
            **extra,
        )
        return self._json(ticket, 201)


def main(argv: list[str] | None = None) -> int:
    """Run a seeded sandbox until interrupted; prints the base URL and the credentials to use."""
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.freshdesk", description="Run the Freshdesk sandbox on loopback."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--customers", type=int, default=1000, help="synthetic contacts to seed (0: none)")
    parser.add_argument("--seed", type=int, default=42, help="random seed for the synthetic data")
    parser.add_argument("--api-key", default="sandbox-api-key")
    parser.add_argument("--rate-limit", type=int, default=DEFAULT_RATE_LIMIT, help="API credits per minute")
    args = parser.parse_args(argv)

    from sandbox.freshdesk_seed import seed as seed_data

    sandbox = FreshdeskSandbox(args.api_key, rate_limit_per_minute=args.rate_limit)
    summary = seed_data(sandbox, customers=args.customers, seed=args.seed) if args.customers > 0 else None
    url = sandbox.start(args.host, args.port)
    print(f"Freshdesk sandbox listening on {url}")
    print(f"  auth: HTTP Basic, username '{args.api_key}' (the API key), password 'X'")
    if summary is not None:
        print(
            f"  seeded {summary.customers} contacts, {summary.organizations} companies, "
            f"{summary.tickets} tickets (seed {args.seed})"
        )
    print(f"  automation rules: POST {url}{CONTROL}/automations; deliveries: GET {url}{CONTROL}/deliveries")
    return serve_until_stopped(sandbox)


if __name__ == "__main__":
    raise SystemExit(main())
