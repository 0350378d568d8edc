"""The Zendesk sandbox's constants, small pure helpers and error shapes, shared by its state and routes."""

from __future__ import annotations

import base64
import binascii
import html
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sandbox.base import iso, parse_utc
from sandbox.base.limits import Limit

__all__ = ["iso", "normalize_tags", "parse_time"]

API = "/api/v2"

PRIORITIES = ("urgent", "high", "normal", "low")
PRIORITY_RANK = {None: 0, "low": 1, "normal": 2, "high": 3, "urgent": 4}
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
STATUS_RANK = {status: rank for rank, status in enumerate(STATUSES)}
TICKET_TYPES = ("problem", "incident", "question", "task")
USER_ROLES = ("end-user", "agent", "admin")
SLA_METRICS = (
    "first_reply_time",
    "next_reply_time",
    "periodic_update_time",
    "pausable_update_time",
    "requester_wait_time",
    "agent_work_time",
    "total_resolution_time",
)
BULK_LIMIT = 100
PAGE_SIZE_MAX = 100
EXPORT_PAGE_MAX = 1000
DEFAULT_BRAND_ID = 360000001
DEFAULT_ACCOUNT_ID = 9000001

# Zendesk's documented endpoint budgets (developer.zendesk.com/api-reference/introduction/rate-limits,
# "Endpoint rate limits"), on top of the plan's account-wide limit: (standard, High Volume add-on).
ENDPOINT_LIMITS = {
    "update_ticket": (Limit(100), Limit(300)),  # PUT /tickets/{id} and /tickets/update_many, per account
    "update_ticket_per_user": (Limit(30, 600.0), Limit(30, 600.0)),  # per ticket per user per 10 min
    "incremental_exports": (Limit(10), Limit(30)),  # every /incremental/ export
    "update_organization": (Limit(5), Limit(5)),  # PUT /organizations/{id}
}

WEBHOOK_FORMATS = {
    "json": "application/json; charset=utf-8",
    "xml": "application/xml; charset=utf-8",
    "form_encoded": "application/x-www-form-urlencoded; charset=utf-8",
}

# How Zendesk renders enumerations inside placeholders: display values, not API values.
STATUS_LABELS = {
    "new": "New",
    "open": "Open",
    "pending": "Pending",
    "hold": "On-hold",
    "solved": "Solved",
    "closed": "Closed",
}
VIA_LABELS = {"api": "Web service", "web": "Web form", "email": "Mail", "mobile": "Mobile"}

_CHANGE_OPERATORS = frozenset({"changed", "not_changed", "value", "value_previous"})
_ORDER_OPERATORS = frozenset({"less_than", "greater_than"})
_EQUALITY = frozenset({"is", "is_not"})
# Trigger condition fields the sandbox evaluates, with the operators each accepts.
CONDITION_OPERATORS: dict[str, frozenset[str]] = {
    "update_type": frozenset({"is"}),
    "current_tags": frozenset({"includes", "not_includes"}),
    "status": _EQUALITY | _ORDER_OPERATORS | _CHANGE_OPERATORS,
    "priority": _EQUALITY | _ORDER_OPERATORS | _CHANGE_OPERATORS,
    "type": _EQUALITY | _CHANGE_OPERATORS,
    "group_id": _EQUALITY | _CHANGE_OPERATORS,
    "assignee_id": _EQUALITY | _CHANGE_OPERATORS,
    "organization_id": _EQUALITY | _CHANGE_OPERATORS,
    "requester_id": _EQUALITY | _CHANGE_OPERATORS,
    "role": _EQUALITY,
}
ACTION_FIELDS = frozenset(
    {
        "notification_webhook",
        "status",
        "priority",
        "type",
        "group_id",
        "assignee_id",
        "set_tags",
        "current_tags",
        "remove_tags",
    }
)
# One unit of a bulk job: does its work under the lock, appends webhook deliveries, returns its result.
Task = Callable[[list[dict[str, Any]]], dict[str, Any]]
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# -- small pure helpers ----------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """Read an ISO-8601 timestamp the way Zendesk accepts one (Z or offset, whole seconds kept)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    return parse_utc(value)


def normalize_tags(value: Any) -> list[str]:
    """Tags as Zendesk stores them: lowercase, whitespace separates tags, first appearance kept."""
    if value is None:
        return []
    if isinstance(value, str):
        items: Iterable[Any] = [value]
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise ValueError("tags must be a list of strings or a space-separated string")
    seen: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str | int) or isinstance(item, bool):
            raise ValueError("tags must be strings")
        for tag in str(item).split():
            seen.setdefault(tag.lower(), None)
    return list(seen)


def ulid() -> str:
    """A ULID-shaped id (26 Crockford base32 chars), the shape Zendesk gives webhooks."""
    number = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        number, rest = divmod(number, 32)
        chars.append(_CROCKFORD[rest])
    return "".join(reversed(chars))


def as_int(value: Any) -> int:
    """Ids arrive as JSON numbers or digit strings; anything else is invalid."""
    if isinstance(value, bool):
        raise ValueError("boolean is not an id")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ValueError(f"not an id: {value!r}")


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "", "no")
    return bool(value)


def encode_cursor(data: Mapping[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """Read back a cursor we issued; anything else (or one from another endpoint) is a 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError) as e:
        raise ZendeskError(
            400, {"error": "InvalidPaginationParameter", "description": "Invalid cursor"}
        ) from e
    valid = isinstance(data, dict) and data.get("k") == kind
    if not valid or not all(isinstance(data.get(f), int) and not isinstance(data[f], bool) for f in fields):
        raise ZendeskError(400, {"error": "InvalidPaginationParameter", "description": "Invalid cursor"})
    return data


def plain_text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", markup)).strip()


def new_secret() -> str:
    """A signing secret shaped like Zendesk's (URL-safe base64 of 32 random bytes)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


# -- errors ----------------------------------------------------------------------------------------


class ZendeskError(Exception):
    """An API answer other than success, carried up to the Flask error handler."""

    def __init__(self, status: int, body: Mapping[str, Any] | str, headers: Mapping[str, str] | None = None):
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def not_found() -> ZendeskError:
    return ZendeskError(404, {"error": "RecordNotFound", "description": "Not found"})


def bad_request(error: str, description: str) -> ZendeskError:
    return ZendeskError(400, {"error": error, "description": description})


def webhook_error(status: int, code: str, title: str) -> ZendeskError:
    """The Webhooks API is newer than Support's and answers in the JSON:API-style errors list."""
    return ZendeskError(status, {"errors": [{"code": code, "title": title}]})


class Details:
    """Collects 422 validation details in Zendesk's shape: {field: [{"description", "error"}]}."""

    def __init__(self) -> None:
        self.items: dict[str, list[dict[str, str]]] = {}

    def add(self, field: str, description: str, error: str = "InvalidValue") -> None:
        self.items.setdefault(field, []).append({"description": description, "error": error})

    def raise_if_any(self) -> None:
        if self.items:
            raise ZendeskError(
                422,
                {"error": "RecordInvalid", "description": "Record validation errors", "details": self.items},
            )
