"""The Freshdesk sandbox's constants, small pure helpers and error shapes, shared by its state and routes."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sandbox.base import iso, parse_utc

__all__ = ["html_text", "iso", "merge_tags", "note_html", "parse_time"]

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
# Freshdesk's per-endpoint cap on Ticket Update, by plan, per minute (support.freshdesk.com solutions
# article 225439, "Maximum limit per endpoint"); it counts on top of the account-wide budget.
PLAN_TICKET_UPDATE_LIMITS = {"growth": 80, "pro": 160, "enterprise": 280}

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


# -- small pure helpers ----------------------------------------------------------------------------


def parse_time(value: Any) -> datetime:
    """An ISO-8601 timestamp or date as Freshdesk accepts it; naive values are UTC."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a timestamp: {value!r}")
    return parse_utc(value)


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


def is_int(value: Any) -> bool:
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


def not_found() -> FreshdeskError:
    return FreshdeskError(404, None)


class Errors:
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


def validation_error(field: str, message: str, code: str = "invalid_value") -> FreshdeskError:
    errors = Errors()
    errors.add(field, message, code)
    return FreshdeskError(errors.status, {"description": "Validation failed", "errors": errors.items})
