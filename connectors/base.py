"""The small face every connector shows the rest of tierdesk."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from integration.core.models import Customer, Decision, Organization, Ticket, TicketEvent

STREAMS = ("organizations", "users", "tickets")


class WebhookRejected(Exception):
    """A webhook delivery we refuse; `status` is the HTTP answer and `reason` a stable log name."""

    def __init__(self, reason: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


def parse_time(value: str | None) -> datetime | None:
    """ISO-8601 times as helpdesk APIs send them ("2024-01-01T12:00:00Z")."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def custom_value(value: Any) -> Any:
    """Custom fields come back as numbers, strings or null; keep numbers numeric ("1,200" too)."""
    if isinstance(value, str):
        try:
            return float(value.replace(",", "")) if value.strip() else None
        except ValueError:
            return value
    return value


def optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def json_object(body: bytes) -> dict[str, Any]:
    """Decode a webhook body; malformed, absurdly nested ("[[[[...") or not an object is a 400, not a 500."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise WebhookRejected("malformed_json", "body is not valid JSON", 400) from e
    if not isinstance(data, dict):
        raise WebhookRejected("bad_payload", "body must be a JSON object", 400)
    return data


def numeric_id(value: Any, field: str, *, required: bool = False) -> str | None:
    """Placeholders render as text, possibly empty; an id is ASCII digits (not "²" or "١٢")."""
    text = "" if value is None or isinstance(value, bool) else str(value).strip()
    if not text:
        if required:
            raise WebhookRejected("bad_payload", f"{field} is missing", 400)
        return None
    if not (text.isascii() and text.isdigit()):
        raise WebhookRejected("bad_payload", f"{field} must be a numeric id, got {text[:40]!r}", 400)
    return text


@dataclass(frozen=True)
class Batch:
    """One page of an incremental pull and the cursor to resume after it."""

    stream: str
    records: list[Any]
    cursor: str | None


@dataclass(frozen=True)
class TagChange:
    """Tags to add to and remove from one helpdesk user or organization."""

    external_id: str
    add: tuple[str, ...]
    remove: tuple[str, ...]


@dataclass
class PushReport:
    """What a tag push did: write calls, job polls, and which records took the change."""

    write_calls: int = 0
    job_polls: int = 0
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ApplyResult:
    """What the helpdesk answered when we applied a decision."""

    outcome: str  # applied | skipped
    detail: str = ""
    calls: int = 0
    response: Mapping[str, Any] = field(default_factory=dict)


class Connector(Protocol):
    name: str

    def pull(self, stream: str, cursor: str | None) -> Iterator[Batch]: ...

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, now: float) -> None: ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TicketEvent: ...

    def get_ticket(self, ticket_id: str) -> Ticket: ...

    def get_customer(self, external_id: str) -> Customer | None: ...  # None: staff, not a customer

    def get_organization(self, external_id: str) -> Organization: ...

    def check_groups(self, names: set[str]) -> None: ...

    def apply(self, ticket: Ticket, decision: Decision) -> ApplyResult: ...
