"""A local, API-compatible stand-in for the Zendesk Support API, served over loopback HTTP.

Why it exists: tierdesk's tests and demo must drive the real HTTP paths of the Zendesk connector (token auth,
cursor pagination, incremental exports, bulk jobs, tag semantics, safe updates, rate limits, signed trigger
webhooks) without a Zendesk account. Paths, body wrappers, field names and error bodies follow Zendesk's
official OpenAPI description (shared/specs/zendesk); where that description is silent we follow Zendesk's
documentation. Use it from Python (``ZendeskSandbox().start()``) or on its own::

    python -m sandbox.zendesk --port 8765 --customers 1000 --seed 42

Everything lives in memory behind one re-entrant lock; webhook deliveries and bulk jobs run on small
thread pools so API calls return as quickly as Zendesk's do.

Behaviour worth knowing (spec = the OpenAPI subset; choice = ours where Zendesk's is unknown or unstated):
- Tags are lowercased, deduplicated in first-seen order, and split on whitespace (Zendesk stores them
  space-joined). ``tags`` replaces, ``additional_tags``/``remove_tags`` add/remove (ticket, user and
  organization updates, single and bulk). /tickets/{id}/tags: POST sets (201), PUT adds (200), DELETE
  removes (204), per the spec.
- safe_update (spec): a present ``safe_update`` -- true *or false* -- with an ``updated_stamp`` that is not
  the ticket's updated_at gives 409. updated_at only moves when an update changes something (spec: "updated
  only if the update generates a ticket event"); a change within the same second still gets a new stamp.
- A comment's ``public`` defaults to the first comment's value (spec), so true unless the ticket opened
  with an internal note. Closed tickets refuse updates with 422 (Zendesk behaviour).
- Lists use cursor pagination (meta/links) unless ``?page=N`` asks for offset pagination; page[size] above
  100 is a 400 (choice). Triggers and SLA policies list offset-style, as the spec's schemas show.
- Incremental exports order by updated_at, then by the order the changes happened; cursors encode that
  position, so polling with an old after_cursor returns exactly the later changes. Time-based exports
  always give a next_page (spec example): stop on end_of_stream.
- Trigger placeholders render Zendesk's display values ({{ticket.status}} -> "Open", {{ticket.priority}}
  -> "High"); empty values render "". For JSON webhooks each value is JSON-escaped so a quote in a subject
  cannot break the body (choice). The acting user of API calls is the API agent; ``submit_ticket`` (and
  POST /__sandbox/tickets) opens a ticket as its end-user requester via the web channel.
- The Webhooks API answers PUT/PATCH/DELETE with 204 and a signing-secret reset with 201, and reports
  errors as {"errors": [{"code", "title"}]}, like Zendesk's newer APIs (choice where unverified).
- Reopens (solved -> unsolved) are tracked per ticket but, as in Zendesk, are not a ticket field:
  read them with ``ticket_reopens``.
- Deletes are soft, as Zendesk's: a deleted user stays readable with ``active: false``; a deleted ticket
  (204) answers 404 to reads and writes but stays in the incremental export with status "deleted".
- Bulk job results, as recorded from Zendesk (shared/recordings/zendesk): a written record is
  ``{"id", "action", "status", "success": true}``; a failed one is ``{"index", "error", "id", "details"}``
  with no ``success`` key (an organizations update_many answered 99 of its 100 records so).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import html
import itertools
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, has_request_context, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from connectors.zendesk import sign
from sandbox.base import CONTROL, HelpdeskSandbox, SlidingWindow, serve_until_stopped

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

WEBHOOK_TIMEOUT = 10.0
WEBHOOK_EXTRA_ATTEMPTS = 3
WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
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
_Task = Callable[[list[dict[str, Any]]], dict[str, Any]]
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# -- small pure helpers ----------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    """Zendesk's timestamp format: UTC, whole seconds, trailing Z."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    """Read an ISO-8601 timestamp the way Zendesk accepts one (Z or offset, whole seconds kept)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0)


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


def _ulid() -> str:
    """A ULID-shaped id (26 Crockford base32 chars), the shape Zendesk gives webhooks."""
    number = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        number, rest = divmod(number, 32)
        chars.append(_CROCKFORD[rest])
    return "".join(reversed(chars))


def _as_int(value: Any) -> int:
    """Ids arrive as JSON numbers or digit strings; anything else is invalid."""
    if isinstance(value, bool):
        raise ValueError("boolean is not an id")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ValueError(f"not an id: {value!r}")


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "", "no")
    return bool(value)


def _encode_cursor(data: Mapping[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, kind: str, fields: tuple[str, ...]) -> dict[str, Any]:
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


def _plain_text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", markup)).strip()


# -- errors ----------------------------------------------------------------------------------------


class ZendeskError(Exception):
    """An API answer other than success, carried up to the Flask error handler."""

    def __init__(self, status: int, body: Mapping[str, Any] | str, headers: Mapping[str, str] | None = None):
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def _not_found() -> ZendeskError:
    return ZendeskError(404, {"error": "RecordNotFound", "description": "Not found"})


def _bad_request(error: str, description: str) -> ZendeskError:
    return ZendeskError(400, {"error": error, "description": description})


def _webhook_error(status: int, code: str, title: str) -> ZendeskError:
    """The Webhooks API is newer than Support's and answers in the JSON:API-style errors list."""
    return ZendeskError(status, {"errors": [{"code": code, "title": title}]})


class _Details:
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


class _StripJsonSuffix:
    """Zendesk accepts every path with or without ".json"; route both to the same view."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        environ["sandbox.original_path"] = path
        if path.startswith(API) and path.endswith(".json"):
            environ["PATH_INFO"] = path[: -len(".json")]
        return self.app(environ, start_response)


# -- the sandbox -----------------------------------------------------------------------------------


class ZendeskSandbox(HelpdeskSandbox):
    """In-memory Zendesk account with an HTTP face; see the module docstring for why."""

    thread_name = "zd-sandbox"
    api_prefix = API

    def __init__(
        self,
        email: str = "agent@example.com",
        token: str = "sandbox-token",  # noqa: S107 - a documented sandbox default, not a secret
        rate_limit_per_minute: int | None = None,
        incremental_limit_per_minute: int | None = None,
        webhook_retry_delay: float = 0.5,
    ) -> None:
        self.email = email
        self.token = token
        self.rate_limit_per_minute = rate_limit_per_minute
        self.incremental_limit_per_minute = incremental_limit_per_minute
        self.webhook_retry_delay = webhook_retry_delay
        self.account_id = DEFAULT_ACCOUNT_ID
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

        self._lock = threading.RLock()
        self._users: dict[int, dict[str, Any]] = {}
        self._orgs: dict[int, dict[str, Any]] = {}
        self._groups: dict[int, dict[str, Any]] = {}
        self._tickets: dict[int, dict[str, Any]] = {}
        self._comments: dict[int, list[dict[str, Any]]] = {}
        self._jobs: dict[str, dict[str, Any]] = {}
        self._webhooks: dict[str, dict[str, Any]] = {}
        self._triggers: dict[int, dict[str, Any]] = {}
        self._slas: dict[int, dict[str, Any]] = {}
        self._email_index: dict[str, int] = {}
        self._user_external_index: dict[str, int] = {}
        self._org_external_index: dict[str, int] = {}
        self._org_name_index: dict[str, int] = {}

        self._user_ids = itertools.count(1_000_001)
        self._org_ids = itertools.count(2_000_001)
        self._group_ids = itertools.count(3_000_001)
        self._ticket_ids = itertools.count(1)
        self._comment_ids = itertools.count(5_000_000_001)
        self._audit_ids = itertools.count(6_000_000_001)
        self._event_ids = itertools.count(7_000_000_001)
        self._trigger_ids = itertools.count(8_000_001)
        self._sla_ids = itertools.count(9_000_001)
        self._invocation_ids = itertools.count(8_100_000_001)
        self._seq = itertools.count(1)
        self._last_stamp = datetime.fromtimestamp(0, UTC)

        self._rate = SlidingWindow(rate_limit_per_minute) if rate_limit_per_minute else None
        self._incremental_rate = (
            SlidingWindow(incremental_limit_per_minute) if incremental_limit_per_minute else None
        )
        self._init_controls()

        now = self._now()
        self.api_user_id = self.add_user(
            "Sandbox Agent", email, role="agent", created_at=now, updated_at=now
        )["id"]
        self.app = self._build_app()

    # -- lifecycle ---------------------------------------------------------------------------------

    def _open_pools(self) -> None:
        self._webhook_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="zd-webhook")
        self._job_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="zd-job")

    def _close_pools(self) -> None:
        self._webhook_pool.shutdown(wait=False, cancel_futures=True)
        self._job_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def credentials(self) -> tuple[str, str]:
        """The (username, password) pair for HTTP Basic, as `requests` takes it."""
        return (f"{self.email}/token", self.token)

    # -- direct access for seeding, tests and the demo (no HTTP, no triggers) ----------------------

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def _stamp(self, previous: datetime | None = None) -> datetime:
        """A change time: never earlier than any earlier change, and distinct from `previous`.

        Zendesk timestamps have whole seconds; two updates of one ticket within a second must still
        differ for safe_update, and incremental cursors need change times that never go backwards.
        """
        stamp = max(self._now(), self._last_stamp)
        if previous is not None and stamp <= previous:
            stamp = previous + timedelta(seconds=1)
        self._last_stamp = stamp
        return stamp

    def _note_time(self, value: datetime) -> None:
        self._last_stamp = max(self._last_stamp, value)

    def add_group(
        self,
        name: str,
        *,
        description: str = "",
        default: bool = False,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Create a group directly; returns its JSON."""
        with self._lock:
            when = created_at or self._now()
            group = {
                "id": next(self._group_ids),
                "name": name,
                "description": description,
                "default": default,
                "deleted": False,
                "is_public": True,
                "created_at": when,
                "updated_at": when,
                "_seq": next(self._seq),
            }
            self._groups[group["id"]] = group
            self._note_time(when)
            return self._render_group(group)

    def add_organization(
        self,
        name: str,
        *,
        domain_names: Iterable[str] = (),
        tags: Iterable[str] = (),
        organization_fields: Mapping[str, Any] | None = None,
        external_id: str | None = None,
        group_id: int | None = None,
        notes: str = "",
        details: str = "",
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Create an organization directly; returns its JSON."""
        with self._lock:
            when = created_at or self._now()
            org = self._new_org(next(self._org_ids), when)
            org.update(
                name=name,
                domain_names=list(domain_names),
                tags=normalize_tags(list(tags)),
                organization_fields=dict(organization_fields or {}),
                external_id=external_id,
                group_id=group_id,
                notes=notes,
                details=details,
                updated_at=updated_at or when,
            )
            self._orgs[org["id"]] = org
            self._index_org(org)
            self._note_time(org["updated_at"])
            return self._render_org(org)

    def add_user(
        self,
        name: str,
        email: str | None = None,
        *,
        role: str = "end-user",
        organization_id: int | None = None,
        tags: Iterable[str] = (),
        user_fields: Mapping[str, Any] | None = None,
        external_id: str | None = None,
        time_zone: str = "UTC",
        locale: str = "en-US",
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Create a user directly; returns its JSON."""
        with self._lock:
            if email and email.lower() in self._email_index:
                raise ValueError(f"email already used: {email}")
            when = created_at or self._now()
            user = self._new_user(next(self._user_ids), when)
            user.update(
                name=name,
                email=email.lower() if email else None,
                role=role,
                organization_id=organization_id,
                tags=normalize_tags(list(tags)),
                user_fields=dict(user_fields or {}),
                external_id=external_id,
                time_zone=time_zone,
                locale=locale,
                updated_at=updated_at or when,
            )
            self._fit_role(user)
            self._users[user["id"]] = user
            self._index_user(user)
            self._note_time(user["updated_at"])
            return self._render_user(user)

    def add_ticket(
        self,
        requester_id: int,
        subject: str,
        description: str,
        *,
        status: str = "open",
        priority: str | None = None,
        ticket_type: str | None = None,
        group_id: int | None = None,
        assignee_id: int | None = None,
        organization_id: int | None = None,
        tags: Iterable[str] = (),
        via_channel: str = "web",
        satisfaction_rating: Mapping[str, Any] | None = None,
        reopens: int = 0,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
        first_reply_at: datetime | None = None,
        solved_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Create a (historic) ticket directly with its first comment; no triggers run.

        ``first_reply_at`` / ``solved_at`` feed the ticket's metric set (``include=metric_sets``).
        """
        with self._lock:
            requester = self._users[requester_id]
            when = created_at or self._now()
            ticket = self._new_ticket(next(self._ticket_ids), when, via_channel)
            ticket.update(
                subject=subject,
                raw_subject=subject,
                description=description,
                status=status,
                priority=priority,
                type=ticket_type,
                group_id=group_id,
                assignee_id=assignee_id,
                requester_id=requester_id,
                submitter_id=requester_id,
                organization_id=organization_id
                if organization_id is not None
                else requester["organization_id"],
                tags=normalize_tags(list(tags)),
                satisfaction_rating=dict(satisfaction_rating or {"score": "unoffered"}),
                updated_at=updated_at or when,
                _reopens=reopens,
                _updated_by_id=requester_id,
                _first_reply_at=first_reply_at,
                _solved_at=solved_at,
            )
            self._tickets[ticket["id"]] = ticket
            self._comments[ticket["id"]] = []
            self._store_comment(
                ticket,
                {"body": description, "public": True, "author_id": requester_id},
                next(self._audit_ids),
                when,
                via_channel,
            )
            self._note_time(ticket["updated_at"])
            return self._render_ticket(ticket)

    def add_comment(
        self,
        ticket_id: int,
        body: str,
        *,
        author_id: int,
        public: bool = True,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Append a (historic) comment directly; the ticket's updated_at is left alone."""
        with self._lock:
            ticket = self._tickets[ticket_id]
            comment = self._store_comment(
                ticket,
                {"body": body, "public": public, "author_id": author_id},
                next(self._audit_ids),
                created_at or self._now(),
                ticket["via"]["channel"],
            )
            return self._render_comment(comment)

    def get_user(self, user_id: int) -> dict[str, Any]:
        with self._lock:
            return self._render_user(self._users[user_id])

    def get_organization(self, organization_id: int) -> dict[str, Any]:
        with self._lock:
            return self._render_org(self._orgs[organization_id])

    def get_ticket(self, ticket_id: int) -> dict[str, Any]:
        with self._lock:
            return self._render_ticket(self._tickets[ticket_id])

    def find_user(self, email: str) -> dict[str, Any] | None:
        with self._lock:
            user_id = self._email_index.get(email.lower())
            return self._render_user(self._users[user_id]) if user_id else None

    def ticket_comments(self, ticket_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return [self._render_comment(c) for c in self._comments[ticket_id]]

    def ticket_reopens(self, ticket_id: int) -> int:
        """How often the ticket went from solved back to an unsolved status (not a ticket field)."""
        with self._lock:
            return int(self._tickets[ticket_id]["_reopens"])

    def ticket_updated_by(self, ticket_id: int) -> int | None:
        """The user whose request last changed the ticket."""
        with self._lock:
            return self._tickets[ticket_id]["_updated_by_id"]

    def group_ids(self) -> dict[str, int]:
        with self._lock:
            return {g["name"]: g["id"] for g in self._groups.values() if not g["deleted"]}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "users": len(self._users),
                "organizations": len(self._orgs),
                "groups": len(self._groups),
                "tickets": len(self._tickets),
                "comments": sum(len(c) for c in self._comments.values()),
                "webhooks": len(self._webhooks),
                "triggers": len(self._triggers),
                "sla_policies": len(self._slas),
            }

    def applied_sla_policy(self, ticket_id: int) -> dict[str, Any] | None:
        """The SLA policy Zendesk would apply: the first by position whose filter the ticket matches."""
        with self._lock:
            ticket = self._tickets[ticket_id]
            for policy in sorted(self._slas.values(), key=lambda p: (p["position"], p["id"])):
                if self._conditions_match(policy["filter"], ticket, None, None):
                    return self._render_sla(policy)
            return None

    def submit_ticket(
        self,
        requester_email: str,
        subject: str,
        body: str,
        *,
        name: str | None = None,
        via_channel: str = "web",
        **fields: Any,
    ) -> dict[str, Any]:
        """A customer opens a ticket (web form): the requester is the acting user, triggers run."""
        with self._lock:
            user_id = self._email_index.get(requester_email.lower())
            if user_id is None:
                user_id = self.add_user(name or requester_email.split("@")[0], requester_email)["id"]
            payload = {"subject": subject, "comment": {"body": body}, "requester_id": user_id, **fields}
            ticket, _audit, dispatches = self._create_ticket(payload, user_id, via_channel=via_channel)
        self._dispatch(dispatches)
        return ticket

    # -- records -----------------------------------------------------------------------------------

    def _new_user(self, user_id: int, when: datetime) -> dict[str, Any]:
        return {
            "id": user_id,
            "name": "",
            "email": None,
            "role": "end-user",
            "role_type": None,
            "custom_role_id": None,
            "organization_id": None,
            "default_group_id": None,
            "tags": [],
            "user_fields": {},
            "external_id": None,
            "alias": "",
            "active": True,
            "verified": False,
            "suspended": False,
            "shared": False,
            "shared_agent": False,
            "shared_phone_number": None,
            "moderator": False,
            "only_private_comments": False,
            "restricted_agent": True,
            "ticket_restriction": "requested",
            "two_factor_auth_enabled": None,
            "time_zone": "UTC",
            "iana_time_zone": "Etc/UTC",
            "locale": "en-US",
            "locale_id": 1,
            "phone": None,
            "photo": None,
            "signature": None,
            "details": "",
            "notes": "",
            "report_csv": False,
            "chat_only": False,
            "last_login_at": None,
            "created_at": when,
            "updated_at": when,
            "_seq": next(self._seq),
        }

    @staticmethod
    def _fit_role(user: dict[str, Any]) -> None:
        """Agent-only attributes follow the role, as Zendesk shows them."""
        agent = user["role"] in ("agent", "admin")
        user["restricted_agent"] = not agent
        user["ticket_restriction"] = None if agent else "requested"
        user["role_type"] = 4 if user["role"] == "admin" else None
        user["moderator"] = agent

    def _new_org(self, org_id: int, when: datetime) -> dict[str, Any]:
        return {
            "id": org_id,
            "name": "",
            "domain_names": [],
            "tags": [],
            "organization_fields": {},
            "external_id": None,
            "group_id": None,
            "notes": "",
            "details": "",
            "shared_tickets": False,
            "shared_comments": False,
            "created_at": when,
            "updated_at": when,
            "_seq": next(self._seq),
        }

    def _new_ticket(self, ticket_id: int, when: datetime, via_channel: str) -> dict[str, Any]:
        return {
            "id": ticket_id,
            "external_id": None,
            "type": None,
            "subject": "",
            "raw_subject": "",
            "description": "",
            "priority": None,
            "status": "new",
            "recipient": None,
            "requester_id": None,
            "submitter_id": None,
            "assignee_id": None,
            "organization_id": None,
            "group_id": None,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "forum_topic_id": None,
            "problem_id": None,
            "has_incidents": False,
            "is_public": True,
            "due_at": None,
            "tags": [],
            "custom_fields": [],
            "satisfaction_rating": {"score": "unoffered"},
            "sharing_agreement_ids": [],
            "followup_ids": [],
            "ticket_form_id": None,
            "brand_id": DEFAULT_BRAND_ID,
            "allow_channelback": False,
            "allow_attachments": True,
            "from_messaging_channel": False,
            "via": {"channel": via_channel, "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": when,
            "updated_at": when,
            "_seq": next(self._seq),
            "_reopens": 0,
            "_updated_by_id": None,
            "_first_reply_at": None,  # the first public comment by an agent after the opening one
            "_solved_at": None,  # the latest time the ticket became solved
        }

    def _index_user(self, user: dict[str, Any]) -> None:
        if user["email"]:
            self._email_index[user["email"].lower()] = user["id"]
        if user["external_id"]:
            self._user_external_index[str(user["external_id"]).lower()] = user["id"]

    def _unindex_user(self, user: dict[str, Any]) -> None:
        if user["email"]:
            self._email_index.pop(user["email"].lower(), None)
        if user["external_id"]:
            self._user_external_index.pop(str(user["external_id"]).lower(), None)

    def _index_org(self, org: dict[str, Any]) -> None:
        self._org_name_index[org["name"].lower()] = org["id"]
        if org["external_id"]:
            self._org_external_index[str(org["external_id"]).lower()] = org["id"]

    def _unindex_org(self, org: dict[str, Any]) -> None:
        self._org_name_index.pop(org["name"].lower(), None)
        if org["external_id"]:
            self._org_external_index.pop(str(org["external_id"]).lower(), None)

    def _touch(self, record: dict[str, Any]) -> None:
        record["updated_at"] = self._stamp(record["updated_at"])
        record["_seq"] = next(self._seq)

    # -- rendering ---------------------------------------------------------------------------------

    def _host(self) -> str:
        if has_request_context():
            return request.host_url.rstrip("/")
        return self._base_url or "http://127.0.0.1"

    def _url(self, path: str) -> str:
        return f"{self._host()}{API}/{path}.json"

    def _export(self, record: Mapping[str, Any], path: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in record.items():
            if key.startswith("_"):
                continue
            if isinstance(value, datetime):
                out[key] = iso(value)
            elif isinstance(value, list | dict):
                out[key] = deepcopy(value)
            else:
                out[key] = value
        if path is not None:
            out["url"] = self._url(path)
        return out

    def _render_user(self, user: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(user, f"users/{user['id']}")

    def _render_org(self, org: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(org, f"organizations/{org['id']}")

    def _render_group(self, group: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(group, f"groups/{group['id']}")

    def _render_ticket(self, ticket: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(ticket, f"tickets/{ticket['id']}")

    def _render_comment(self, comment: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(comment, None)

    def _render_job(self, job: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(job, f"job_statuses/{job['id']}")

    def _render_trigger(self, trigger: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(trigger, f"triggers/{trigger['id']}")

    def _render_sla(self, policy: Mapping[str, Any]) -> dict[str, Any]:
        return self._export(policy, f"slas/policies/{policy['id']}")

    def _render_webhook(self, webhook: Mapping[str, Any]) -> dict[str, Any]:
        out = self._export(webhook, None)
        auth = webhook.get("authentication")
        if auth:  # like Zendesk, never echo credentials back
            data = {"username": auth["data"]["username"]} if auth["type"] == "basic_auth" else {}
            out["authentication"] = {"type": auth["type"], "add_position": "header", "data": data}
        return out

    # -- the Flask app -----------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = self._new_app("zendesk_sandbox")
        app.wsgi_app = _StripJsonSuffix(app.wsgi_app)  # type: ignore[method-assign]
        app.register_error_handler(ZendeskError, self._zendesk_error)
        app.register_error_handler(HTTPException, self._http_error)
        app.register_error_handler(Exception, self._unexpected_error)

        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("/users/me", "GET", self._users_me),
            ("/users", "GET", self._list_users),
            ("/users", "POST", self._create_user_view),
            ("/users/<int:user_id>", "GET", self._show_user),
            ("/users/<int:user_id>", "PUT", self._update_user_view),
            ("/users/<int:user_id>", "DELETE", self._delete_user_view),
            ("/users/show_many", "GET", self._show_many_users),
            ("/users/update_many", "PUT", self._update_many_users),
            ("/users/create_or_update", "POST", self._create_or_update_user),
            ("/users/search", "GET", self._search_users),
            ("/organizations", "GET", self._list_orgs),
            ("/organizations", "POST", self._create_org_view),
            ("/organizations/<int:organization_id>", "GET", self._show_org),
            ("/organizations/<int:organization_id>", "PUT", self._update_org_view),
            ("/organizations/show_many", "GET", self._show_many_orgs),
            ("/organizations/update_many", "PUT", self._update_many_orgs),
            ("/organizations/create_or_update", "POST", self._create_or_update_org),
            ("/organizations/search", "GET", self._search_orgs),
            ("/groups", "GET", self._list_groups),
            ("/groups", "POST", self._create_group_view),
            ("/groups/<int:group_id>", "GET", self._show_group),
            ("/groups/<int:group_id>", "PUT", self._update_group_view),
            ("/tickets", "GET", self._list_tickets),
            ("/tickets", "POST", self._create_ticket_view),
            ("/tickets/<int:ticket_id>", "GET", self._show_ticket),
            ("/tickets/<int:ticket_id>", "PUT", self._update_ticket_view),
            ("/tickets/<int:ticket_id>", "DELETE", self._delete_ticket_view),
            ("/tickets/show_many", "GET", self._show_many_tickets),
            ("/tickets/update_many", "PUT", self._update_many_tickets),
            ("/tickets/create_many", "POST", self._create_many_tickets),
            ("/tickets/<int:ticket_id>/tags", "GET", self._ticket_tags),
            ("/tickets/<int:ticket_id>/tags", "POST", self._ticket_tags),
            ("/tickets/<int:ticket_id>/tags", "PUT", self._ticket_tags),
            ("/tickets/<int:ticket_id>/tags", "DELETE", self._ticket_tags),
            ("/tickets/<int:ticket_id>/comments", "GET", self._list_comments),
            ("/incremental/users/cursor", "GET", self._export_users_cursor),
            ("/incremental/tickets/cursor", "GET", self._export_tickets_cursor),
            ("/incremental/users", "GET", self._export_users_time),
            ("/incremental/tickets", "GET", self._export_tickets_time),
            ("/incremental/organizations", "GET", self._export_orgs_time),
            ("/job_statuses", "GET", self._list_jobs),
            ("/job_statuses/show_many", "GET", self._show_many_jobs),
            ("/job_statuses/<job_status_id>", "GET", self._show_job),
            ("/webhooks", "GET", self._list_webhooks),
            ("/webhooks", "POST", self._create_webhook),
            ("/webhooks/<webhook_id>", "GET", self._show_webhook),
            ("/webhooks/<webhook_id>", "PUT", self._replace_webhook),
            ("/webhooks/<webhook_id>", "PATCH", self._patch_webhook),
            ("/webhooks/<webhook_id>", "DELETE", self._delete_webhook),
            ("/webhooks/<webhook_id>/signing_secret", "GET", self._show_signing_secret),
            ("/webhooks/<webhook_id>/signing_secret", "POST", self._reset_signing_secret),
            ("/triggers", "GET", self._list_triggers),
            ("/triggers", "POST", self._create_trigger),
            ("/triggers/<int:trigger_id>", "GET", self._show_trigger),
            ("/triggers/<int:trigger_id>", "PUT", self._update_trigger),
            ("/triggers/<int:trigger_id>", "DELETE", self._delete_trigger),
            ("/slas/policies", "GET", self._list_slas),
            ("/slas/policies", "POST", self._create_sla),
            ("/slas/policies/<int:sla_policy_id>", "GET", self._show_sla),
            ("/slas/policies/<int:sla_policy_id>", "PUT", self._update_sla),
            ("/slas/policies/<int:sla_policy_id>", "DELETE", self._delete_sla),
        ]
        self._add_routes(app, routes, API)
        self._add_control_routes(app, [("/tickets", "POST", self._control_submit_ticket)])
        return app

    def _before_request(self) -> Response | None:
        request.get_data(cache=True)  # always drain the body: keep-alive connections stay in sync
        if not self._is_api():
            return None  # control endpoints and unknown paths: no auth, no limits, no faults
        fault = self._delay_or_fault()
        if fault is not None:
            return fault
        if self._rate is not None:
            admitted, _remaining, retry_after = self._rate.admit()
            if not admitted:
                return self._rate_limited(retry_after)
        if self._incremental_rate is not None and request.path.startswith(f"{API}/incremental/"):
            admitted, _remaining, retry_after = self._incremental_rate.admit()
            if not admitted:
                return self._rate_limited(retry_after)
        if not self._authenticated():
            return self._json({"error": "Couldn't authenticate you"}, 401)
        return None

    def _authenticated(self) -> bool:
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return False
        user_ok = hmac.compare_digest((auth.username or "").encode(), f"{self.email}/token".encode())
        token_ok = hmac.compare_digest((auth.password or "").encode(), self.token.encode())
        return user_ok and token_ok

    @staticmethod
    def _rate_limited(retry_after: int) -> Response:
        return Response(
            "Rate limit exceeded",
            status=429,
            headers={"Retry-After": str(retry_after)},
            content_type="text/plain; charset=utf-8",
        )

    def _fault_response(self, status: int, retry_after: int | None) -> Response:
        if status == 429:
            return self._rate_limited(retry_after or 1)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return self._json(
            {"error": phrase.replace(" ", ""), "description": "Injected fault"}, status, headers
        )

    def _after_request(self, response: Response) -> Response:
        path = request.environ.get("sandbox.original_path", request.path)
        if path.startswith(CONTROL):
            return response
        if self._rate is not None and self._is_api():
            response.headers["X-Rate-Limit"] = str(self._rate.limit)
            response.headers["X-Rate-Limit-Remaining"] = str(self._rate.remaining())
        self._log_request(path, response)
        return response

    def _zendesk_error(self, error: ZendeskError) -> Response:
        if isinstance(error.body, str):
            return Response(error.body, error.status, error.headers, content_type="text/plain")
        return self._json(error.body, error.status, error.headers)

    def _http_error(self, error: HTTPException) -> Response:
        status = error.code or 500
        if status == 404:
            return self._json({"error": "InvalidEndpoint", "description": "Not found"}, 404)
        if isinstance(error, MethodNotAllowed):
            allow = {"Allow": ", ".join(error.valid_methods or [])}
            return self._json({"error": "MethodNotAllowed", "description": "Method not allowed"}, 405, allow)
        return self._json({"error": error.name.replace(" ", ""), "description": error.description}, status)

    def _unexpected_error(self, error: Exception) -> Response:
        self.app.logger.exception("sandbox bug while answering %s %s", request.method, request.path)
        return self._json({"error": "InternalServerError", "description": str(error)}, 500)

    # -- request helpers ---------------------------------------------------------------------------

    @staticmethod
    def _body() -> dict[str, Any]:
        raw = request.get_data(cache=True)
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise _bad_request("InvalidJSON", "The request body is not valid JSON") from e
        if not isinstance(data, dict):
            raise _bad_request("InvalidJSON", "The request body must be a JSON object")
        return data

    @staticmethod
    def _wrapped(body: Mapping[str, Any], key: str) -> dict[str, Any]:
        value = body.get(key)
        if not isinstance(value, dict):
            raise _bad_request("ParameterMissing", f"param is missing or the value is empty: {key}")
        return value

    @staticmethod
    def _int_arg(name: str, default: int, maximum: int) -> int:
        raw = request.args.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as e:
            raise _bad_request("InvalidPaginationParameter", f"{name} must be an integer") from e
        if value < 1:
            raise _bad_request("InvalidPaginationParameter", f"{name} must be at least 1")
        if value > maximum:
            raise _bad_request("InvalidPaginationParameter", f"{name} is more than the maximum {maximum}")
        return value

    @staticmethod
    def _id_list(name: str, *, required: bool = False) -> list[str]:
        raw = request.args.get(name, "")
        ids = [part.strip() for part in raw.split(",") if part.strip()]
        if required and not ids:
            raise _bad_request("ParameterMissing", f"param is missing or the value is empty: {name}")
        if len(ids) > BULK_LIMIT:
            raise _bad_request("InvalidValue", f"{name} accepts at most {BULK_LIMIT} values")
        return ids

    def _int_ids(self, name: str, *, required: bool = False) -> list[int]:
        try:
            return [_as_int(v) for v in self._id_list(name, required=required)]
        except ValueError as e:
            raise _bad_request("InvalidValue", f"{name} must be a comma-separated list of ids") from e

    def _page_link(self, **params: str) -> str:
        args = request.args.to_dict(flat=False)
        for key in ("page[after]", "page[before]", "page"):
            args.pop(key, None)
        args.update({k: [v] for k, v in params.items()})
        return f"{self._host()}{request.path}?{urlencode(args, doseq=True)}"

    def _paginate(
        self,
        name: str,
        records: list[dict[str, Any]],
        render: Callable[[dict[str, Any]], dict[str, Any]],
        key: Callable[[dict[str, Any]], int] = lambda r: r["id"],
        *,
        cursor_default: bool = True,
    ) -> dict[str, Any]:
        """One page of a list endpoint: cursor pagination (meta/links), or offset with ?page=N.

        `records` must be sorted by `key`; cursors encode the key, so pages stay stable while records
        are added.
        """
        offset_requested = request.args.get("page", "").isdigit()
        cursor_requested = any(k.startswith("page[") for k in request.args)
        if offset_requested or not (cursor_requested or cursor_default):
            per_page = self._int_arg("per_page", PAGE_SIZE_MAX, PAGE_SIZE_MAX)
            page = max(1, int(request.args.get("page") or 1))
            chunk = records[(page - 1) * per_page : page * per_page]
            more = page * per_page < len(records)
            return {
                name: [render(r) for r in chunk],
                "next_page": self._page_link(page=str(page + 1)) if more else None,
                "previous_page": self._page_link(page=str(page - 1)) if page > 1 else None,
                "count": len(records),
            }
        size = self._int_arg("page[size]", PAGE_SIZE_MAX, PAGE_SIZE_MAX)
        keys = [key(r) for r in records]
        after = request.args.get("page[after]")
        before = request.args.get("page[before]")
        if after:
            position = _decode_cursor(after, "page", ("v",))["v"]
            start = next((i for i, k in enumerate(keys) if k > position), len(keys))
            end = start + size
        elif before:
            position = _decode_cursor(before, "page", ("v",))["v"]
            end = next((i for i, k in enumerate(keys) if k >= position), len(keys))
            start = max(0, end - size)
        else:
            start, end = 0, size
        chunk = records[start:end]
        has_more = end < len(records)
        after_cursor = _encode_cursor({"k": "page", "v": key(chunk[-1])}) if chunk else None
        before_cursor = _encode_cursor({"k": "page", "v": key(chunk[0])}) if chunk else None
        return {
            name: [render(r) for r in chunk],
            "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
            "links": {
                "next": self._page_link(**{"page[after]": after_cursor})
                if has_more and after_cursor
                else None,
                "prev": self._page_link(**{"page[before]": before_cursor})
                if start > 0 and before_cursor
                else None,
            },
        }

    # -- users -------------------------------------------------------------------------------------

    def _user_or_404(self, user_id: int) -> dict[str, Any]:
        user = self._users.get(user_id)
        if user is None:
            raise _not_found()
        return user

    def _users_me(self) -> Response:
        with self._lock:
            return self._json({"user": self._render_user(self._users[self.api_user_id])})

    def _list_users(self) -> Response:
        roles = set(request.args.getlist("role") + request.args.getlist("role[]"))
        external_id = request.args.get("external_id")
        with self._lock:
            users = sorted(self._users.values(), key=lambda u: u["id"])
            if roles:
                users = [u for u in users if u["role"] in roles]
            if external_id:
                users = [u for u in users if str(u["external_id"] or "").lower() == external_id.lower()]
            return self._json(self._paginate("users", users, self._render_user))

    def _show_user(self, user_id: int) -> Response:
        with self._lock:
            return self._json({"user": self._render_user(self._user_or_404(user_id))})

    def _show_many_users(self) -> Response:
        with self._lock:
            if request.args.get("external_ids"):
                wanted = [v.lower() for v in self._id_list("external_ids")]
                ids = [self._user_external_index[v] for v in wanted if v in self._user_external_index]
            else:
                ids = self._int_ids("ids", required=True)
            users = [self._render_user(self._users[i]) for i in ids if i in self._users]
            return self._json({"users": users})

    def _search_users(self) -> Response:
        query = (request.args.get("query") or "").strip()
        external_id = request.args.get("external_id")
        with self._lock:
            if external_id:
                found = self._user_external_index.get(external_id.lower())
                users = [self._users[found]] if found else []
            elif query:
                users = [
                    u for u in sorted(self._users.values(), key=lambda u: u["id"]) if _user_matches(u, query)
                ]
            else:
                raise _bad_request("ParameterMissing", "Provide query or external_id")
            page = self._paginate("users", users, self._render_user, cursor_default=False)
            return self._json(page)

    def _user_changes(
        self, data: Mapping[str, Any], user: Mapping[str, Any] | None, details: _Details
    ) -> dict[str, Any]:
        """Validate a user payload into field changes; problems go to `details`."""
        changes: dict[str, Any] = {}
        if "name" in data or user is None:
            name = data.get("name")
            if not isinstance(name, str) or not name.strip():
                details.add("name", "Name: is too short (minimum one character)", "BlankValue")
            else:
                changes["name"] = name.strip()
        if "email" in data:
            email = data["email"]
            if email is None or email == "":
                changes["email"] = None
            elif not isinstance(email, str) or "@" not in email:
                details.add("email", f"Email: {email} is not properly formatted", "InvalidFormat")
            else:
                owner = self._email_index.get(email.lower())
                if owner is not None and (user is None or owner != user["id"]):
                    details.add(
                        "email", f"Email: {email} is already being used by another user", "DuplicateValue"
                    )
                changes["email"] = email.lower()
        if "role" in data:
            if data["role"] not in USER_ROLES:
                details.add("role", f"Role: {data['role']} is not valid", "InvalidValue")
            else:
                changes["role"] = data["role"]
        if "organization_id" in data:
            changes["organization_id"] = self._ref(
                details, data["organization_id"], "organization_id", self._orgs
            )
        if isinstance(data.get("organization"), dict) and "organization_id" not in data:
            org_name = data["organization"].get("name")
            if isinstance(org_name, str) and org_name.strip():
                changes["_organization_name"] = org_name.strip()
        if "default_group_id" in data:
            changes["default_group_id"] = self._ref(
                details, data["default_group_id"], "default_group_id", self._groups
            )
        if "external_id" in data:
            ext = data["external_id"]
            if ext is not None and not isinstance(ext, str | int):
                details.add("external_id", "External ID: is invalid")
            elif ext is not None:
                owner = self._user_external_index.get(str(ext).lower())
                if owner is not None and (user is None or owner != user["id"]):
                    details.add("external_id", f"External ID: {ext} has already been taken", "DuplicateValue")
                changes["external_id"] = str(ext)
            else:
                changes["external_id"] = None
        tags = self._tag_changes(data, list(user["tags"]) if user else [], details)
        if tags is not None:
            changes["tags"] = tags
        if "user_fields" in data:
            fields = data["user_fields"]
            if not isinstance(fields, dict):
                details.add("user_fields", "User fields: must be an object")
            else:
                merged = dict(user["user_fields"]) if user else {}
                merged.update(fields)
                changes["user_fields"] = merged
        for key in ("time_zone", "locale", "phone", "notes", "details", "alias", "signature"):
            if key in data:
                changes[key] = data[key]
        for key in ("verified", "suspended", "moderator", "only_private_comments", "shared_phone_number"):
            if key in data:
                changes[key] = _as_bool(data[key])
        return changes

    def _apply_user_changes(self, user: dict[str, Any], changes: Mapping[str, Any]) -> bool:
        org_name = changes.get("_organization_name")
        if org_name:
            org_id = self._org_name_index.get(org_name.lower())
            if org_id is None:
                org_id = self.add_organization(org_name)["id"]
            changes = {**changes, "organization_id": org_id}
        changed = False
        self._unindex_user(user)
        for key, value in changes.items():
            if key.startswith("_"):
                continue
            if user.get(key) != value:
                user[key] = deepcopy(value)
                changed = True
        if "role" in changes:
            self._fit_role(user)
        self._index_user(user)
        return changed

    def _create_user(self, data: Mapping[str, Any]) -> dict[str, Any]:
        details = _Details()
        changes = self._user_changes(data, None, details)
        details.raise_if_any()
        now = self._stamp()
        user = self._new_user(next(self._user_ids), now)
        self._users[user["id"]] = user
        self._apply_user_changes(user, changes)
        return user

    def _update_user(self, user: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        details = _Details()
        changes = self._user_changes(data, user, details)
        details.raise_if_any()
        if self._apply_user_changes(user, changes):
            self._touch(user)
        return user

    def _create_user_view(self) -> Response:
        data = self._wrapped(self._body(), "user")
        with self._lock:
            user = self._create_user(data)
            rendered = self._render_user(user)
        return self._json({"user": rendered}, 201, {"Location": rendered["url"]})

    def _update_user_view(self, user_id: int) -> Response:
        data = self._wrapped(self._body(), "user")
        with self._lock:
            user = self._update_user(self._user_or_404(user_id), data)
            return self._json({"user": self._render_user(user)})

    def _delete_user_view(self, user_id: int) -> Response:
        """Soft delete (spec): the user answers with ``active: false`` from then on, in reads and in the
        incremental export (recorded: 760 of 1,000 users of one export page)."""
        with self._lock:
            user = self._user_or_404(user_id)
            if user["id"] == self.api_user_id:
                raise ZendeskError(403, {"error": "Forbidden", "description": "You cannot delete yourself"})
            if user["active"]:
                user["active"] = False
                self._touch(user)
            return self._json({"user": self._render_user(user)})

    def _create_or_update_user(self) -> Response:
        data = self._wrapped(self._body(), "user")
        with self._lock:
            existing = self._match_user(data)
            if existing is not None:
                user = self._update_user(existing, data)
                status = 200
            else:
                user = self._create_user(data)
                status = 201
            rendered = self._render_user(user)
        return self._json({"user": rendered}, status, {"Location": rendered["url"]})

    def _match_user(self, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """create_or_update identifies a user by id, external_id or email (never by name)."""
        if data.get("id") is not None:
            try:
                return self._users.get(_as_int(data["id"]))
            except ValueError:
                return None
        if data.get("external_id") is not None:
            found = self._user_external_index.get(str(data["external_id"]).lower())
            if found is not None:
                return self._users[found]
        if isinstance(data.get("email"), str):
            found = self._email_index.get(data["email"].lower())
            if found is not None:
                return self._users[found]
        return None

    def _update_many_users(self) -> Response:
        return self._update_many("user", "users", self._users, self._user_external_index, self._update_user)

    # -- organizations -----------------------------------------------------------------------------

    def _org_or_404(self, org_id: int) -> dict[str, Any]:
        org = self._orgs.get(org_id)
        if org is None:
            raise _not_found()
        return org

    def _list_orgs(self) -> Response:
        with self._lock:
            orgs = sorted(self._orgs.values(), key=lambda o: o["id"])
            return self._json(self._paginate("organizations", orgs, self._render_org))

    def _show_org(self, organization_id: int) -> Response:
        with self._lock:
            return self._json({"organization": self._render_org(self._org_or_404(organization_id))})

    def _show_many_orgs(self) -> Response:
        with self._lock:
            if request.args.get("external_ids"):
                wanted = [v.lower() for v in self._id_list("external_ids")]
                ids = [self._org_external_index[v] for v in wanted if v in self._org_external_index]
            else:
                ids = self._int_ids("ids", required=True)
            orgs = [self._render_org(self._orgs[i]) for i in ids if i in self._orgs]
            return self._json({"organizations": orgs})

    def _search_orgs(self) -> Response:
        external_id = request.args.get("external_id")
        name = request.args.get("name")
        with self._lock:
            if external_id:
                found = self._org_external_index.get(external_id.lower())
            elif name:
                found = self._org_name_index.get(name.lower())
            else:
                raise _bad_request("ParameterMissing", "Provide external_id or name")
            orgs = [self._render_org(self._orgs[found])] if found else []
            return self._json(
                {"organizations": orgs, "count": len(orgs), "next_page": None, "previous_page": None}
            )

    def _org_changes(
        self, data: Mapping[str, Any], org: Mapping[str, Any] | None, details: _Details
    ) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if "name" in data or org is None:
            name = data.get("name")
            if not isinstance(name, str) or not name.strip():
                details.add("name", "Name: cannot be blank", "BlankValue")
            else:
                owner = self._org_name_index.get(name.strip().lower())
                if owner is not None and (org is None or owner != org["id"]):
                    details.add("name", f"Name: {name} has already been taken", "DuplicateValue")
                changes["name"] = name.strip()
        if "domain_names" in data:
            domains = data["domain_names"]
            if isinstance(domains, str):
                domains = domains.split()
            if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
                details.add("domain_names", "Domain names: must be a list of strings")
            else:
                changes["domain_names"] = [d.lower() for d in domains]
        if "external_id" in data:
            ext = data["external_id"]
            if ext is not None:
                owner = self._org_external_index.get(str(ext).lower())
                if owner is not None and (org is None or owner != org["id"]):
                    details.add("external_id", f"External ID: {ext} has already been taken", "DuplicateValue")
                changes["external_id"] = str(ext)
            else:
                changes["external_id"] = None
        if "group_id" in data:
            changes["group_id"] = self._ref(details, data["group_id"], "group_id", self._groups)
        tags = self._tag_changes(data, list(org["tags"]) if org else [], details)
        if tags is not None:
            changes["tags"] = tags
        if "organization_fields" in data:
            fields = data["organization_fields"]
            if not isinstance(fields, dict):
                details.add("organization_fields", "Organization fields: must be an object")
            else:
                merged = dict(org["organization_fields"]) if org else {}
                merged.update(fields)
                changes["organization_fields"] = merged
        for key in ("notes", "details"):
            if key in data:
                changes[key] = data[key]
        for key in ("shared_tickets", "shared_comments"):
            if key in data:
                changes[key] = _as_bool(data[key])
        return changes

    def _apply_org_changes(self, org: dict[str, Any], changes: Mapping[str, Any]) -> bool:
        changed = False
        self._unindex_org(org)
        for key, value in changes.items():
            if org.get(key) != value:
                org[key] = deepcopy(value)
                changed = True
        self._index_org(org)
        return changed

    def _create_org(self, data: Mapping[str, Any]) -> dict[str, Any]:
        details = _Details()
        changes = self._org_changes(data, None, details)
        details.raise_if_any()
        org = self._new_org(next(self._org_ids), self._stamp())
        self._apply_org_changes(org, changes)
        self._orgs[org["id"]] = org
        return org

    def _update_org(self, org: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        details = _Details()
        changes = self._org_changes(data, org, details)
        details.raise_if_any()
        if self._apply_org_changes(org, changes):
            self._touch(org)
        return org

    def _create_org_view(self) -> Response:
        data = self._wrapped(self._body(), "organization")
        with self._lock:
            rendered = self._render_org(self._create_org(data))
        return self._json({"organization": rendered}, 201, {"Location": rendered["url"]})

    def _update_org_view(self, organization_id: int) -> Response:
        data = self._wrapped(self._body(), "organization")
        with self._lock:
            org = self._update_org(self._org_or_404(organization_id), data)
            return self._json({"organization": self._render_org(org)})

    def _create_or_update_org(self) -> Response:
        data = self._wrapped(self._body(), "organization")
        with self._lock:
            existing = None
            if data.get("id") is not None:
                try:
                    existing = self._orgs.get(_as_int(data["id"]))
                except ValueError:
                    existing = None
            elif data.get("external_id") is not None:
                found = self._org_external_index.get(str(data["external_id"]).lower())
                existing = self._orgs.get(found) if found else None
            if existing is not None:
                org, status = self._update_org(existing, data), 200
            else:
                org, status = self._create_org(data), 201
            rendered = self._render_org(org)
        return self._json({"organization": rendered}, status, {"Location": rendered["url"]})

    def _update_many_orgs(self) -> Response:
        return self._update_many(
            "organization", "organizations", self._orgs, self._org_external_index, self._update_org
        )

    # -- groups ------------------------------------------------------------------------------------

    def _group_or_404(self, group_id: int) -> dict[str, Any]:
        group = self._groups.get(group_id)
        if group is None:
            raise _not_found()
        return group

    def _list_groups(self) -> Response:
        with self._lock:
            groups = sorted(self._groups.values(), key=lambda g: g["id"])
            if _as_bool(request.args.get("exclude_deleted", "false")):
                groups = [g for g in groups if not g["deleted"]]
            return self._json(self._paginate("groups", groups, self._render_group))

    def _show_group(self, group_id: int) -> Response:
        with self._lock:
            return self._json({"group": self._render_group(self._group_or_404(group_id))})

    def _group_changes(self, data: Mapping[str, Any], group: Mapping[str, Any] | None) -> dict[str, Any]:
        details = _Details()
        changes: dict[str, Any] = {}
        if "name" in data or group is None:
            name = data.get("name")
            if not isinstance(name, str) or not name.strip():
                details.add("name", "Name: cannot be blank", "BlankValue")
            else:
                changes["name"] = name.strip()
        if "description" in data:
            changes["description"] = data["description"] or ""
        if "is_public" in data:
            changes["is_public"] = _as_bool(data["is_public"])
        details.raise_if_any()
        return changes

    def _create_group_view(self) -> Response:
        data = self._wrapped(self._body(), "group")
        with self._lock:
            changes = self._group_changes(data, None)
            group = self.add_group(changes.pop("name"), created_at=self._stamp())
            self._groups[group["id"]].update(changes)
            rendered = self._render_group(self._groups[group["id"]])
        return self._json({"group": rendered}, 201, {"Location": rendered["url"]})

    def _update_group_view(self, group_id: int) -> Response:
        data = self._wrapped(self._body(), "group")
        with self._lock:
            group = self._group_or_404(group_id)
            changes = self._group_changes(data, group)
            if any(group.get(k) != v for k, v in changes.items()):
                group.update(changes)
                self._touch(group)
            return self._json({"group": self._render_group(group)})

    # -- shared validation -------------------------------------------------------------------------

    @staticmethod
    def _ref(
        details: _Details, value: Any, field: str, table: Mapping[int, Any], label: str = ""
    ) -> int | None:
        """A nullable reference to an existing record; unknown ids are a 422 naming the field."""
        if value is None or value == "":
            return None
        label = label or field.removesuffix("_id").replace("_", " ").capitalize()
        try:
            ref = _as_int(value)
        except ValueError:
            details.add(field, f"{label}: {value!r} is not a valid id")
            return None
        record = table.get(ref)
        if record is None or record.get("deleted"):
            details.add(field, f"{label}: {ref} does not exist (invalid {field})")
            return None
        return ref

    @staticmethod
    def _tag_changes(data: Mapping[str, Any], current: list[str], details: _Details) -> list[str] | None:
        """tags replaces the list; additional_tags and remove_tags add and remove without replacing."""
        if not any(k in data for k in ("tags", "additional_tags", "remove_tags")):
            return None
        tags = list(current)
        try:
            if "tags" in data:
                tags = normalize_tags(data["tags"])
            if "additional_tags" in data:
                tags += [t for t in normalize_tags(data["additional_tags"]) if t not in tags]
            if "remove_tags" in data:
                removed = set(normalize_tags(data["remove_tags"]))
                tags = [t for t in tags if t not in removed]
        except ValueError as e:
            details.add("tags", f"Tags: {e}")
            return None
        return tags

    # -- tickets -----------------------------------------------------------------------------------

    def _ticket_or_404(self, ticket_id: int) -> dict[str, Any]:
        ticket = self._tickets.get(ticket_id)
        if ticket is None or ticket["status"] == "deleted":  # deleted tickets live under /deleted_tickets
            raise _not_found()
        return ticket

    def _list_tickets(self) -> Response:
        external_id = request.args.get("external_id")
        with self._lock:
            tickets = sorted(
                (t for t in self._tickets.values() if t["status"] != "deleted"), key=lambda t: t["id"]
            )
            if external_id:
                tickets = [t for t in tickets if t["external_id"] == external_id]
            return self._json(self._paginate("tickets", tickets, self._render_ticket))

    def _show_ticket(self, ticket_id: int) -> Response:
        with self._lock:
            return self._json({"ticket": self._render_ticket(self._ticket_or_404(ticket_id))})

    def _show_many_tickets(self) -> Response:
        ids = self._int_ids("ids", required=True)
        with self._lock:
            tickets = [
                self._render_ticket(self._tickets[i])
                for i in ids
                if i in self._tickets and self._tickets[i]["status"] != "deleted"
            ]
            return self._json({"tickets": tickets})

    def _delete_ticket_view(self, ticket_id: int) -> Response:
        """Soft delete (spec: 204): the ticket keeps its history and shows in the incremental export with
        status "deleted" (recorded: 515 of 1,000 tickets of one export page), but no longer in reads."""
        with self._lock:
            ticket = self._ticket_or_404(ticket_id)
            ticket["status"] = "deleted"
            self._touch(ticket)
        return Response(status=204)

    def _ticket_changes(
        self, data: Mapping[str, Any], ticket: Mapping[str, Any] | None, details: _Details
    ) -> dict[str, Any]:
        """Validate ticket fields into changes; unknown fields are ignored, as Zendesk does."""
        changes: dict[str, Any] = {}
        if "subject" in data:
            subject = data["subject"]
            if subject is not None and not isinstance(subject, str):
                details.add("subject", "Subject: must be a string")
            else:
                changes["subject"] = subject or ""
                changes["raw_subject"] = subject or ""
        if "priority" in data:
            value = data["priority"]
            if value in (None, ""):
                changes["priority"] = None
            elif value not in PRIORITIES:
                details.add("priority", f"Priority: {value!r} is not valid (one of {', '.join(PRIORITIES)})")
            else:
                changes["priority"] = value
        if "status" in data:
            if data["status"] not in STATUSES:
                details.add(
                    "status", f"Status: {data['status']!r} is not valid (one of {', '.join(STATUSES)})"
                )
            else:
                changes["status"] = data["status"]
        if "type" in data:
            value = data["type"]
            if value in (None, ""):
                changes["type"] = None
            elif value not in TICKET_TYPES:
                details.add("type", f"Type: {value!r} is not valid (one of {', '.join(TICKET_TYPES)})")
            else:
                changes["type"] = value
        if "group_id" in data:
            changes["group_id"] = self._ref(details, data["group_id"], "group_id", self._groups)
        if "assignee_email" in data and "assignee_id" not in data:
            found = self._email_index.get(str(data["assignee_email"] or "").lower())
            if found is None:
                details.add("assignee_id", f"Assignee: {data['assignee_email']} is not an agent")
            else:
                changes["assignee_id"] = found
        if "assignee_id" in data:
            assignee = self._ref(details, data["assignee_id"], "assignee_id", self._users)
            if assignee is not None and self._users[assignee]["role"] not in ("agent", "admin"):
                details.add("assignee_id", f"Assignee: {assignee} is not an agent")
            else:
                changes["assignee_id"] = assignee
        if "requester_id" in data and ticket is not None:
            requester = self._ref(details, data["requester_id"], "requester_id", self._users)
            if requester is not None:
                changes["requester_id"] = requester
        if "organization_id" in data:
            changes["organization_id"] = self._ref(
                details, data["organization_id"], "organization_id", self._orgs
            )
        if "external_id" in data:
            changes["external_id"] = None if data["external_id"] is None else str(data["external_id"])
        if "due_at" in data:
            try:
                changes["due_at"] = parse_time(data["due_at"])
            except ValueError:
                details.add("due_at", "Due at: is not a valid ISO-8601 time")
        if "custom_fields" in data:
            fields = data["custom_fields"]
            if not isinstance(fields, list) or not all(isinstance(f, dict) and "id" in f for f in fields):
                details.add("custom_fields", "Custom fields: must be a list of {id, value}")
            else:
                merged = {f["id"]: dict(f) for f in (ticket["custom_fields"] if ticket else [])}
                for f in fields:
                    merged[f["id"]] = {"id": f["id"], "value": f.get("value")}
                changes["custom_fields"] = list(merged.values())
        for key in ("collaborator_ids", "follower_ids", "email_cc_ids"):
            if key in data:
                try:
                    changes[key] = [_as_int(v) for v in data[key] or []]
                except (ValueError, TypeError):
                    details.add(key, f"{key}: must be a list of ids")
        if "recipient" in data:
            changes["recipient"] = data["recipient"]
        if "brand_id" in data:
            try:
                changes["brand_id"] = _as_int(data["brand_id"])
            except ValueError:
                details.add("brand_id", "Brand: is invalid")
        tags = self._tag_changes(data, list(ticket["tags"]) if ticket else [], details)
        if tags is not None:
            changes["tags"] = tags
        return changes

    def _comment_input(
        self, value: Any, ticket: Mapping[str, Any] | None, actor_id: int, details: _Details
    ) -> dict[str, Any] | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = {"body": value}
        if not isinstance(value, dict):
            details.add("comment", "Comment: must be an object with a body")
            return None
        body = value.get("body")
        html_body = value.get("html_body")
        if not (isinstance(body, str) and body.strip()) and not (
            isinstance(html_body, str) and html_body.strip()
        ):
            details.add("comment", "Comment: cannot be blank", "BlankValue")
            return None
        if "public" in value:
            public = _as_bool(value["public"])
        elif ticket is not None and self._comments.get(ticket["id"]):
            # The spec: "The initial value set on ticket creation persists for any additional comment".
            public = bool(self._comments[ticket["id"]][0]["public"])
        else:
            public = True
        author = self._ref(details, value.get("author_id", actor_id), "author_id", self._users, "Author")
        return {"body": body, "html_body": html_body, "public": public, "author_id": author or actor_id}

    def _store_comment(
        self,
        ticket: dict[str, Any],
        data: Mapping[str, Any],
        audit_id: int,
        when: datetime,
        via_channel: str,
    ) -> dict[str, Any]:
        body = data.get("body")
        html_body = data.get("html_body")
        if not body and html_body:
            body = _plain_text(html_body)
        if not html_body:
            paragraphs = "".join(f'<p dir="auto">{html.escape(p)}</p>' for p in str(body).split("\n\n"))
            html_body = f'<div class="zd-comment" dir="auto">{paragraphs}</div>'
        comment = {
            "id": next(self._comment_ids),
            "type": "Comment",
            "author_id": data["author_id"],
            "body": body,
            "html_body": html_body,
            "plain_body": str(body).strip(),
            "public": bool(data.get("public", True)),
            "attachments": [],
            "audit_id": audit_id,
            "via": {"channel": via_channel, "source": {"from": {}, "to": {}, "rel": None}},
            "metadata": {"system": {}, "custom": {}},
            "created_at": when,
        }
        earlier = self._comments.setdefault(ticket["id"], [])
        author = self._users.get(comment["author_id"]) or {}
        first_reply = earlier and comment["public"] and author.get("role") != "end-user"
        if first_reply and not ticket["_first_reply_at"]:
            ticket["_first_reply_at"] = when
        earlier.append(comment)
        if comment["public"]:
            ticket["is_public"] = True
        elif len(self._comments[ticket["id"]]) == 1:
            ticket["is_public"] = False
        return comment

    def _check_safe_update(self, ticket: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        """With safe_update and an updated_stamp that is not the ticket's updated_at, refuse with 409.

        The spec says a safe_update of false acts like true; only leaving it out makes an update unsafe.
        """
        if "safe_update" not in data or data.get("updated_stamp") in (None, ""):
            return
        try:
            stamp = parse_time(data["updated_stamp"])
        except ValueError as e:
            raise ZendeskError(
                422,
                {
                    "error": "RecordInvalid",
                    "description": "Record validation errors",
                    "details": {
                        "updated_stamp": [
                            {"description": "Updated stamp: is invalid", "error": "InvalidValue"}
                        ]
                    },
                },
            ) from e
        if stamp != ticket["updated_at"]:
            raise ZendeskError(
                409,
                {
                    "error": "UpdateConflict",
                    "description": "Safe Update prevented the update due to outdated ticket data. "
                    "Please fetch the latest ticket data and try again.",
                },
            )

    def _audit(
        self, ticket: Mapping[str, Any], audit_id: int, actor_id: int, events: list[dict[str, Any]], via: str
    ) -> dict[str, Any]:
        return {
            "id": audit_id,
            "ticket_id": ticket["id"],
            "author_id": actor_id,
            "created_at": iso(ticket["updated_at"]),
            "metadata": {"system": {"client": "tierdesk zendesk sandbox"}, "custom": {}},
            "via": {"channel": via, "source": {"from": {}, "to": {}, "rel": None}},
            "events": events,
        }

    def _apply_ticket_changes(
        self,
        ticket: dict[str, Any],
        changes: Mapping[str, Any],
        event_type: str,
        via: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        events = []
        for key, value in changes.items():
            previous = ticket.get(key)
            if previous == value and event_type == "Change":
                continue
            ticket[key] = deepcopy(value)
            if key == "raw_subject":
                continue
            event: dict[str, Any] = {
                "id": next(self._event_ids),
                "type": event_type,
                "field_name": key,
                "value": iso(value) if isinstance(value, datetime) else deepcopy(value),
            }
            if event_type == "Change":
                event["previous_value"] = iso(previous) if isinstance(previous, datetime) else previous
            if via is not None:
                event["via"] = dict(via)
            events.append(event)
        return events

    def _create_ticket(
        self, data: Mapping[str, Any], actor_id: int, *, via_channel: str = "api"
    ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        """Create a ticket as `actor_id` would through the API; returns (ticket, audit, deliveries)."""
        details = _Details()
        comment = self._comment_input(data.get("comment"), None, actor_id, details)
        if "comment" not in data:
            details.add("comment", "Description: cannot be blank", "BlankValue")
        new_requester: dict[str, Any] | None = None
        if data.get("requester_id") is not None:
            requester_id = self._ref(details, data["requester_id"], "requester_id", self._users, "Requester")
        elif isinstance(data.get("requester"), dict):
            req = data["requester"]
            email = req.get("email")
            found = self._email_index.get(email.lower()) if isinstance(email, str) else None
            if found is not None:
                requester_id = found
            elif not (isinstance(email, str) and "@" in email) and not req.get("name"):
                details.add("requester", "Requester: needs an email or a name")
                requester_id = None
            else:
                new_requester = {"name": req.get("name") or str(email).split("@")[0], "email": email}
                if req.get("locale_id") is not None:
                    new_requester["locale_id"] = req["locale_id"]
                requester_id = None
        else:
            requester_id = actor_id
        changes = self._ticket_changes(data, None, details)
        if data.get("submitter_id") is not None:
            submitter_id = self._ref(details, data["submitter_id"], "submitter_id", self._users, "Submitter")
        else:
            submitter_id = actor_id
        details.raise_if_any()
        if new_requester is not None:
            requester_id = self._create_user(new_requester)["id"]
        assert requester_id is not None  # noqa: S101 - validated above
        requester = self._users[requester_id]
        now = self._stamp()
        ticket = self._new_ticket(next(self._ticket_ids), now, via_channel)
        self._tickets[ticket["id"]] = ticket
        self._comments[ticket["id"]] = []
        assert comment is not None  # noqa: S101 - validated above
        ticket["description"] = comment["body"] or _plain_text(comment["html_body"] or "")
        base = {
            "subject": "",
            "raw_subject": "",
            "status": "new",
            "requester_id": requester_id,
            "submitter_id": submitter_id or actor_id,
            "organization_id": requester["organization_id"],
        }
        if "subject" not in changes:
            first_line = (
                ticket["description"].strip().splitlines()[0] if ticket["description"].strip() else ""
            )
            base["subject"] = base["raw_subject"] = first_line[:100]
        base.update(changes)
        if base.get("assignee_id") is not None and "status" not in changes:
            base["status"] = "open"
        events = self._apply_ticket_changes(ticket, base, "Create")
        ticket["_updated_by_id"] = actor_id
        audit_id = next(self._audit_ids)
        stored = self._store_comment(ticket, comment, audit_id, now, via_channel)
        events.append(self._comment_event(stored))
        deliveries = self._run_triggers(ticket, None, "Create", actor_id, events)
        audit = self._audit(ticket, audit_id, actor_id, events, via_channel)
        return self._render_ticket(ticket), audit, deliveries

    def _comment_event(self, comment: Mapping[str, Any]) -> dict[str, Any]:
        keys = (
            "id",
            "type",
            "author_id",
            "body",
            "html_body",
            "plain_body",
            "public",
            "attachments",
            "audit_id",
        )
        return {k: deepcopy(comment[k]) for k in keys}

    def _update_ticket(
        self, ticket_id: int, data: Mapping[str, Any], actor_id: int
    ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        """Apply one ticket update as `actor_id`; returns (ticket, audit, deliveries)."""
        ticket = self._ticket_or_404(ticket_id)
        self._check_safe_update(ticket, data)
        if ticket["status"] == "closed":
            details = _Details()
            details.add("status", "Status: closed prevents ticket update", "ClosedPreventsUpdate")
            details.raise_if_any()
        details = _Details()
        changes = self._ticket_changes(data, ticket, details)
        comment = (
            self._comment_input(data.get("comment"), ticket, actor_id, details) if "comment" in data else None
        )
        details.raise_if_any()
        previous = deepcopy(ticket)
        events = self._apply_ticket_changes(ticket, changes, "Change")
        automatic: dict[str, Any] = {}
        author_is_customer = comment is not None and self._users[comment["author_id"]]["role"] == "end-user"
        if author_is_customer and ticket["status"] in ("pending", "solved") and "status" not in changes:
            automatic["status"] = "open"  # a requester's reply reopens the ticket
        if ticket["status"] == "new" and ticket["assignee_id"] is not None and "status" not in changes:
            automatic["status"] = "open"
        events += self._apply_ticket_changes(ticket, automatic, "Change")
        audit_id = next(self._audit_ids)
        if not events and comment is None:
            audit = self._audit(ticket, audit_id, actor_id, [], "api")
            return self._render_ticket(ticket), audit, []
        if previous["status"] == "solved" and ticket["status"] in ("new", "open", "pending", "hold"):
            ticket["_reopens"] += 1
        self._touch(ticket)
        if ticket["status"] in ("solved", "closed") and previous["status"] not in ("solved", "closed"):
            ticket["_solved_at"] = ticket["updated_at"]
        ticket["_updated_by_id"] = actor_id
        if comment is not None:
            stored = self._store_comment(ticket, comment, audit_id, ticket["updated_at"], "api")
            events.append(self._comment_event(stored))
        deliveries = self._run_triggers(ticket, previous, "Change", actor_id, events)
        return self._render_ticket(ticket), self._audit(ticket, audit_id, actor_id, events, "api"), deliveries

    def _create_ticket_view(self) -> Response:
        data = self._wrapped(self._body(), "ticket")
        with self._lock:
            ticket, audit, deliveries = self._create_ticket(data, self.api_user_id)
        self._dispatch(deliveries)
        return self._json({"ticket": ticket, "audit": audit}, 201, {"Location": ticket["url"]})

    def _update_ticket_view(self, ticket_id: int) -> Response:
        data = self._wrapped(self._body(), "ticket")
        with self._lock:
            ticket, audit, deliveries = self._update_ticket(ticket_id, data, self.api_user_id)
        self._dispatch(deliveries)
        return self._json({"ticket": ticket, "audit": audit})

    def _ticket_tags(self, ticket_id: int) -> Response:
        """GET lists; POST sets (replaces, 201); PUT adds (200); DELETE removes (204) -- per the spec."""
        with self._lock:
            ticket = self._ticket_or_404(ticket_id)
            if request.method == "GET":
                return self._json({"tags": list(ticket["tags"])})
        body = self._body()
        if "tags" not in body:
            raise _bad_request("ParameterMissing", "param is missing or the value is empty: tags")
        key = {"POST": "tags", "PUT": "additional_tags", "DELETE": "remove_tags"}[request.method]
        update: dict[str, Any] = {key: body["tags"]}
        for extra in ("safe_update", "updated_stamp"):
            if extra in body:
                update[extra] = body[extra]
        with self._lock:
            ticket, _audit, deliveries = self._update_ticket(ticket_id, update, self.api_user_id)
        self._dispatch(deliveries)
        if request.method == "DELETE":
            return Response(status=204)
        return self._json({"tags": ticket["tags"]}, 201 if request.method == "POST" else 200)

    def _list_comments(self, ticket_id: int) -> Response:
        descending = request.args.get("sort") == "-created_at" or request.args.get("sort_order") == "desc"
        with self._lock:
            self._ticket_or_404(ticket_id)
            comments = list(self._comments.get(ticket_id, []))
            if descending:
                comments.reverse()
                key: Callable[[dict[str, Any]], int] = lambda c: -c["id"]  # noqa: E731
            else:
                key = lambda c: c["id"]  # noqa: E731
            return self._json(self._paginate("comments", comments, self._render_comment, key))

    # -- bulk jobs ---------------------------------------------------------------------------------

    def _update_many(
        self,
        single: str,
        plural: str,
        table: dict[int, dict[str, Any]],
        external_index: Mapping[str, int],
        update: Callable[[dict[str, Any], Mapping[str, Any]], dict[str, Any]],
    ) -> Response:
        """Bulk (?ids= + one object) or batch ({plural: [...]}) update, done by a background job."""
        body = self._body()
        items: list[tuple[Any, Mapping[str, Any]]] = []
        if isinstance(body.get(plural), list):
            batch = body[plural]
            if len(batch) > BULK_LIMIT:
                raise _bad_request("InvalidValue", f"{plural} accepts at most {BULK_LIMIT} records")
            for entry in batch:
                if not isinstance(entry, dict):
                    raise _bad_request("InvalidValue", f"every entry of {plural} must be an object")
                items.append((entry.get("id", ("external_id", entry.get("external_id"))), entry))
        else:
            data = self._wrapped(body, single)
            if request.args.get("external_ids"):
                items = [(("external_id", v), data) for v in self._id_list("external_ids")]
            else:
                items = [(i, data) for i in self._int_ids("ids", required=True)]

        def make_task(ref: Any, data: Mapping[str, Any]) -> _Task:
            def task(_deliveries: list[dict[str, Any]]) -> dict[str, Any]:
                record_id: int | None
                if isinstance(ref, tuple):
                    record_id = external_index.get(str(ref[1]).lower()) if ref[1] is not None else None
                else:
                    try:
                        record_id = _as_int(ref)
                    except ValueError:
                        record_id = None
                record = table.get(record_id) if record_id is not None else None
                if record is None:
                    raise _not_found()
                fields = {k: v for k, v in data.items() if k not in ("id",)}
                update(record, fields)
                return {"id": record["id"], "action": "update", "status": "Updated", "success": True}

            return task

        tasks = [make_task(ref, data) for ref, data in items]
        with self._lock:
            job = self._queue_job(f"bulk_update_{plural}", tasks, [_int_or_none(ref) for ref, _ in items])
        return self._json({"job_status": job})

    def _update_many_tickets(self) -> Response:
        body = self._body()
        entries: list[tuple[Any, dict[str, Any]]]
        if isinstance(body.get("tickets"), list):
            if len(body["tickets"]) > BULK_LIMIT:
                raise _bad_request("InvalidValue", f"tickets accepts at most {BULK_LIMIT} records")
            if not all(isinstance(t, dict) for t in body["tickets"]):
                raise _bad_request("InvalidValue", "every entry of tickets must be an object")
            entries = [(t.get("id"), t) for t in body["tickets"]]
        else:
            data = self._wrapped(body, "ticket")
            entries = [(i, data) for i in self._int_ids("ids", required=True)]
        actor = self.api_user_id

        def make_task(ref: Any, data: Mapping[str, Any]) -> _Task:
            def task(out: list[dict[str, Any]]) -> dict[str, Any]:
                try:
                    ticket_id = _as_int(ref)
                except ValueError:
                    raise _not_found() from None
                fields = {k: v for k, v in data.items() if k != "id"}
                ticket, _audit, deliveries = self._update_ticket(ticket_id, fields, actor)
                out.extend(deliveries)
                return {"id": ticket["id"], "action": "update", "status": "Updated", "success": True}

            return task

        with self._lock:
            tasks = [make_task(r, d) for r, d in entries]
            job = self._queue_job("bulk_update_tickets", tasks, [_int_or_none(r) for r, _ in entries])
        return self._json({"job_status": job})

    def _create_many_tickets(self) -> Response:
        body = self._body()
        tickets = body.get("tickets")
        if not isinstance(tickets, list) or not tickets:
            raise _bad_request("ParameterMissing", "param is missing or the value is empty: tickets")
        if len(tickets) > BULK_LIMIT:
            raise _bad_request("InvalidValue", f"tickets accepts at most {BULK_LIMIT} records")
        actor = self.api_user_id

        def make_task(data: Any) -> _Task:
            def task(out: list[dict[str, Any]]) -> dict[str, Any]:
                if not isinstance(data, dict):
                    raise _bad_request("InvalidValue", "ticket must be an object")
                ticket, _audit, deliveries = self._create_ticket(data, actor)
                out.extend(deliveries)
                return {"id": ticket["id"], "action": "create", "status": "Created", "success": True}

            return task

        with self._lock:
            job = self._queue_job("bulk_create_tickets", [make_task(t) for t in tickets])
        return self._json({"job_status": job})

    def _queue_job(
        self, job_type: str, tasks: list[_Task], record_ids: list[int | None] | None = None
    ) -> dict[str, Any]:
        """Queue a bulk job; `record_ids` (one per task, where the request named a record by id) let a
        failed record's result carry its id, as Zendesk's do."""
        job = {
            "id": uuid.uuid4().hex,
            "job_type": job_type,
            "status": "queued",
            "total": len(tasks),
            "progress": 0,
            "message": None,
            "results": None,
            "_seq": next(self._seq),
        }
        self._jobs[job["id"]] = job
        rendered = self._render_job(job)
        self._job_pool.submit(self._run_job, job["id"], tasks, record_ids)
        return rendered

    def _run_job(self, job_id: str, tasks: list[_Task], record_ids: list[int | None] | None = None) -> None:
        """Work a bulk job off like Zendesk's job queue: queued, working, then completed."""
        time.sleep(0.005)
        deliveries: list[dict[str, Any]] = []
        with self._lock:
            job = self._jobs[job_id]
            job["status"] = "working"
            job["results"] = []
        for index, task in enumerate(tasks):
            with self._lock:
                # A failed record is {"index", "error", "id", "details"} with no "success" key, as Zendesk
                # answers (recorded: {"index":1,"error":"OrganizationUpdateFailed","id":...,"details":...}).
                failed: dict[str, Any] = {"index": index}
                ref = record_ids[index] if record_ids else None
                try:
                    result = task(deliveries)  # a written record: {"id", "action", "status", "success"}
                except ZendeskError as e:
                    body = e.body if isinstance(e.body, dict) else {"error": str(e.body)}
                    failed["error"] = body.get("error", "Error")
                    result = failed
                except Exception as e:  # a sandbox bug must still finish the job visibly
                    failed["error"], body = "InternalError", {"description": str(e)}
                    result = failed
                if result is failed:
                    if ref is not None:
                        failed["id"] = ref
                    failed["details"] = _describe(body)
                job["results"].append(result)
                job["progress"] = index + 1
        with self._lock:
            job["status"] = "completed"
            job["message"] = f"Completed at {self._now():%Y-%m-%d %H:%M:%S} +0000"
        self._dispatch(deliveries)

    def _list_jobs(self) -> Response:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: -j["_seq"])
            return self._json(self._paginate("job_statuses", jobs, self._render_job, lambda j: -j["_seq"]))

    def _show_job(self, job_status_id: str) -> Response:
        with self._lock:
            job = self._jobs.get(job_status_id)
            if job is None:
                raise _not_found()
            return self._json({"job_status": self._render_job(job)})

    def _show_many_jobs(self) -> Response:
        ids = self._id_list("ids", required=True)
        with self._lock:
            return self._json(
                {"job_statuses": [self._render_job(self._jobs[i]) for i in ids if i in self._jobs]}
            )

    # -- incremental exports -----------------------------------------------------------------------

    def _start_time(self) -> int:
        raw = request.args.get("start_time")
        if raw is None or raw == "":
            raise _bad_request("InvalidValue", "start_time is required")
        try:
            start = int(raw)
        except ValueError as e:
            raise _bad_request("InvalidValue", "start_time must be a unix timestamp in seconds") from e
        if start > self._now().timestamp() - 60:
            raise _bad_request("InvalidValue", "Too recent start_time. Use a start_time older than 1 minute")
        return max(0, start)

    @staticmethod
    def _change_key(record: Mapping[str, Any]) -> tuple[int, int]:
        """Export order: updated_at, then the order changes happened (stable across polls)."""
        return (int(record["updated_at"].timestamp()), record["_seq"])

    def _export_cursor(
        self,
        kind: str,
        records: Iterable[dict[str, Any]],
        render: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        cursor = request.args.get("cursor")
        per_page = self._int_arg("per_page", EXPORT_PAGE_MAX, EXPORT_PAGE_MAX)
        if cursor:
            data = _decode_cursor(cursor, f"export:{kind}", ("t", "s"))
            position = (data["t"], data["s"])
        else:
            position = (self._start_time(), -1)
        ordered = sorted((r for r in records if self._change_key(r) > position), key=self._change_key)
        chunk = ordered[:per_page]
        if chunk:
            position = self._change_key(chunk[-1])
        after = _encode_cursor({"k": f"export:{kind}", "t": position[0], "s": position[1]})
        return {
            kind: [render(r) for r in chunk],
            "after_cursor": after,
            "after_url": f"{self._host()}{API}/incremental/{kind}/cursor.json?{urlencode({'cursor': after})}",
            "before_cursor": None,
            "before_url": None,
            "end_of_stream": len(ordered) <= per_page,
        }

    def _export_time(
        self,
        kind: str,
        records: Iterable[dict[str, Any]],
        render: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        """Time-based export: records changed at or after start_time; end_time is the next start_time.

        Records sharing the last second are kept together on one page, so a next page starting at
        end_time repeats them (Zendesk documents such duplicates) but never skips one.
        """
        start = self._start_time()
        per_page = self._int_arg("per_page", EXPORT_PAGE_MAX, EXPORT_PAGE_MAX)
        ordered = sorted((r for r in records if r["updated_at"].timestamp() >= start), key=self._change_key)
        chunk = ordered[:per_page]
        if chunk:
            last = self._change_key(chunk[-1])[0]
            while len(chunk) < len(ordered) and self._change_key(ordered[len(chunk)])[0] == last:
                chunk.append(ordered[len(chunk)])
            end_time = last
            if end_time == start and len(chunk) < len(ordered):
                end_time = last + 1  # a whole page within start_time's second: move on
        else:
            end_time = start
        return {
            kind: [render(r) for r in chunk],
            "count": len(chunk),
            "end_time": end_time,
            "next_page": f"{self._host()}{API}/incremental/{kind}.json?{urlencode({'start_time': end_time})}",
            "end_of_stream": len(chunk) == len(ordered),
        }

    def _export_users_cursor(self) -> Response:
        with self._lock:
            return self._json(self._export_cursor("users", self._users.values(), self._render_user))

    def _metric_set(self, ticket: Mapping[str, Any]) -> dict[str, Any]:
        """The ticket's metric set as the ``metric_sets`` sideload shows it (calendar, business minutes)."""

        def minutes(end: datetime | None) -> dict[str, int | None]:
            if end is None:
                return {"calendar": None, "business": None}
            calendar = max(0, round((end - ticket["created_at"]).total_seconds() / 60))
            return {"calendar": calendar, "business": round(calendar * 0.35)}  # choice: ~8h of 24, weekdays

        solved = ticket["_solved_at"] if ticket["status"] in ("solved", "closed") else None
        return {
            "id": 10_000_000 + ticket["id"],
            "ticket_id": ticket["id"],
            "url": self._url(f"ticket_metrics/{10_000_000 + ticket['id']}"),
            "reopens": ticket["_reopens"],
            "replies": max(0, len(self._comments.get(ticket["id"], ())) - 1),
            "solved_at": iso(solved),
            "reply_time_in_minutes": minutes(ticket["_first_reply_at"]),
            "first_resolution_time_in_minutes": minutes(solved),
            "full_resolution_time_in_minutes": minutes(solved),
            "created_at": iso(ticket["created_at"]),
            "updated_at": iso(ticket["updated_at"]),
        }

    def _with_metric_sets(self, page: dict[str, Any]) -> dict[str, Any]:
        """Sideload metric sets when asked (``include=metric_sets``), as Zendesk's ticket exports do."""
        if "metric_sets" in request.args.get("include", "").split(","):
            page["metric_sets"] = [self._metric_set(self._tickets[t["id"]]) for t in page["tickets"]]
        return page

    def _export_tickets_cursor(self) -> Response:
        with self._lock:
            page = self._export_cursor("tickets", self._tickets.values(), self._render_ticket)
            return self._json(self._with_metric_sets(page))

    def _export_users_time(self) -> Response:
        with self._lock:
            return self._json(self._export_time("users", self._users.values(), self._render_user))

    def _export_tickets_time(self) -> Response:
        with self._lock:
            page = self._export_time("tickets", self._tickets.values(), self._render_ticket)
            return self._json(self._with_metric_sets(page))

    def _export_orgs_time(self) -> Response:
        with self._lock:
            return self._json(self._export_time("organizations", self._orgs.values(), self._render_org))

    # -- webhooks ----------------------------------------------------------------------------------

    def _webhook_or_404(self, webhook_id: str) -> dict[str, Any]:
        webhook = self._webhooks.get(webhook_id)
        if webhook is None:
            raise _webhook_error(404, "WebhookNotFound", f"Webhook {webhook_id} not found")
        return webhook

    @staticmethod
    def _webhook_fields(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
        errors = []
        out: dict[str, Any] = {}
        for key in ("name", "endpoint", "http_method", "request_format", "status"):
            if key in data:
                out[key] = data[key]
            elif not partial:
                errors.append(
                    {
                        "code": "InvalidInput",
                        "title": f"{key} is required",
                        "source": {"pointer": f"/webhook/{key}"},
                    }
                )
        if "endpoint" in out:
            parts = urlsplit(str(out["endpoint"]))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                errors.append({"code": "InvalidInput", "title": "endpoint must be an http(s) URL"})
        if "http_method" in out and out["http_method"] not in WEBHOOK_METHODS:
            errors.append(
                {"code": "InvalidInput", "title": f"http_method must be one of {', '.join(WEBHOOK_METHODS)}"}
            )
        if "request_format" in out and out["request_format"] not in WEBHOOK_FORMATS:
            errors.append(
                {"code": "InvalidInput", "title": "request_format must be json, xml or form_encoded"}
            )
        if "status" in out and out["status"] not in ("active", "inactive"):
            errors.append({"code": "InvalidInput", "title": "status must be active or inactive"})
        if "subscriptions" in data:
            subs = data["subscriptions"]
            if not isinstance(subs, list) or not all(isinstance(s, str) for s in subs):
                errors.append({"code": "InvalidInput", "title": "subscriptions must be a list of strings"})
            else:
                out["subscriptions"] = list(subs)
        if "description" in data:
            out["description"] = data["description"]
        if "custom_headers" in data:
            if not isinstance(data["custom_headers"], dict):
                errors.append({"code": "InvalidInput", "title": "custom_headers must be an object"})
            else:
                out["custom_headers"] = {str(k): str(v) for k, v in data["custom_headers"].items()}
        if "authentication" in data:
            auth = data["authentication"]
            kinds = {
                "basic_auth": ("username", "password"),
                "bearer_token": ("token",),
                "api_key": ("name", "value"),
            }
            if auth is None:
                out["authentication"] = None
            elif (
                not isinstance(auth, dict)
                or auth.get("type") not in kinds
                or not isinstance(auth.get("data"), dict)
                or not all(auth["data"].get(k) for k in kinds[auth["type"]])
            ):
                errors.append({"code": "InvalidInput", "title": "authentication is invalid"})
            else:
                out["authentication"] = {"type": auth["type"], "data": dict(auth["data"])}
        if errors:
            raise ZendeskError(400, {"errors": errors})
        return out

    def _list_webhooks(self) -> Response:
        name_filter = (request.args.get("filter[name_contains]") or "").lower()
        status_filter = request.args.get("filter[status]")
        with self._lock:
            hooks = [
                w
                for w in sorted(self._webhooks.values(), key=lambda w: w["_seq"])
                if name_filter in w["name"].lower() and (not status_filter or w["status"] == status_filter)
            ]
            page = self._paginate("webhooks", hooks, self._render_webhook, lambda w: w["_seq"])
            return self._json(page)

    def _create_webhook(self) -> Response:
        data = self._wrapped(self._body(), "webhook")
        fields = self._webhook_fields(data, partial=False)
        secret_in = data.get("signing_secret")
        secret = secret_in.get("secret") if isinstance(secret_in, dict) else None
        with self._lock:
            now = self._stamp()
            webhook = {
                "id": _ulid(),
                "name": "",
                "description": "",
                "endpoint": "",
                "http_method": "POST",
                "request_format": "json",
                "status": "active",
                "subscriptions": [],
                "created_at": now,
                "created_by": str(self.api_user_id),
                "updated_at": now,
                "updated_by": str(self.api_user_id),
                "_secret": secret or _new_secret(),
                "_seq": next(self._seq),
            }
            webhook.update(fields)
            self._webhooks[webhook["id"]] = webhook
            rendered = self._render_webhook(webhook)
        return self._json({"webhook": rendered}, 201, {"Location": self._url(f"webhooks/{webhook['id']}")})

    def _show_webhook(self, webhook_id: str) -> Response:
        with self._lock:
            return self._json({"webhook": self._render_webhook(self._webhook_or_404(webhook_id))})

    def _change_webhook(self, webhook_id: str, *, partial: bool) -> Response:
        data = self._wrapped(self._body(), "webhook")
        fields = self._webhook_fields(data, partial=partial)
        with self._lock:
            webhook = self._webhook_or_404(webhook_id)
            if not partial:  # PUT replaces every writable field it does not name
                webhook["description"] = ""
                webhook.pop("custom_headers", None)
                webhook.pop("authentication", None)
            webhook.update(fields)
            webhook["updated_at"] = self._stamp(webhook["updated_at"])
            webhook["updated_by"] = str(self.api_user_id)
        return Response(status=204)

    def _replace_webhook(self, webhook_id: str) -> Response:
        return self._change_webhook(webhook_id, partial=False)

    def _patch_webhook(self, webhook_id: str) -> Response:
        return self._change_webhook(webhook_id, partial=True)

    def _delete_webhook(self, webhook_id: str) -> Response:
        with self._lock:
            self._webhook_or_404(webhook_id)
            del self._webhooks[webhook_id]
        return Response(status=204)

    def _show_signing_secret(self, webhook_id: str) -> Response:
        with self._lock:
            webhook = self._webhook_or_404(webhook_id)
            return self._json({"signing_secret": {"algorithm": "SHA256", "secret": webhook["_secret"]}})

    def _reset_signing_secret(self, webhook_id: str) -> Response:
        with self._lock:
            webhook = self._webhook_or_404(webhook_id)
            webhook["_secret"] = _new_secret()
            return self._json({"signing_secret": {"algorithm": "SHA256", "secret": webhook["_secret"]}}, 201)

    # -- triggers and their evaluation -------------------------------------------------------------

    def _trigger_or_404(self, trigger_id: int) -> dict[str, Any]:
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise _not_found()
        return trigger

    def _list_triggers(self) -> Response:
        active = request.args.get("active")
        with self._lock:
            triggers = sorted(self._triggers.values(), key=lambda t: (t["position"], t["id"]))
            if active is not None:
                triggers = [t for t in triggers if t["active"] == _as_bool(active)]
            ordered = list(enumerate(triggers))
            page = self._paginate(
                "triggers",
                [dict(t, _rank=i) for i, t in ordered],
                self._render_trigger,
                lambda t: t["_rank"],
                cursor_default=False,
            )
            return self._json(page)

    def _validate_conditions(
        self, conditions: Any, details: _Details, field: str, *, triggers: bool
    ) -> dict[str, Any]:
        if not isinstance(conditions, dict):
            details.add(field, f"{field.capitalize()}: must be an object with 'all' and 'any' lists")
            return {"all": [], "any": []}
        out: dict[str, Any] = {"all": [], "any": []}
        for group in ("all", "any"):
            items = conditions.get(group) or []
            if not isinstance(items, list):
                details.add(field, f"{field.capitalize()}: '{group}' must be a list")
                continue
            for item in items:
                if not isinstance(item, dict) or "field" not in item or "operator" not in item:
                    details.add(field, f"{field.capitalize()}: every condition needs field and operator")
                    continue
                if triggers:
                    allowed = CONDITION_OPERATORS.get(item["field"])
                    if allowed is None:
                        details.add(field, f"Conditions: unsupported condition field {item['field']!r}")
                        continue
                    if item["operator"] not in allowed:
                        details.add(
                            field,
                            f"Conditions: operator {item['operator']!r} is not valid for {item['field']!r}",
                        )
                        continue
                out[group].append(
                    {"field": item["field"], "operator": item["operator"], "value": item.get("value")}
                )
        return out

    def _validate_actions(self, actions: Any, details: _Details) -> list[dict[str, Any]]:
        if not isinstance(actions, list) or not actions:
            details.add("actions", "Actions: at least one action is required", "BlankValue")
            return []
        out = []
        for action in actions:
            if not isinstance(action, dict) or action.get("field") not in ACTION_FIELDS:
                name = action.get("field") if isinstance(action, dict) else action
                details.add("actions", f"Actions: unsupported action {name!r}")
                continue
            field, value = action["field"], action.get("value")
            if field == "notification_webhook":
                if not (
                    isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
                ):
                    details.add("actions", "Actions: notification_webhook needs [webhook_id, body]")
                    continue
                webhook = self._webhooks.get(value[0])
                if webhook is None:
                    details.add("actions", f"Actions: webhook {value[0]} does not exist")
                    continue
                if "conditional_ticket_events" not in webhook.get("subscriptions", []):
                    details.add(
                        "actions",
                        f"Actions: webhook {value[0]} is not connected to triggers "
                        "(subscriptions must be ['conditional_ticket_events'])",
                    )
                    continue
            elif field == "status" and value not in STATUSES:
                details.add("actions", f"Actions: status {value!r} is not valid")
                continue
            elif field == "priority" and value not in PRIORITIES:
                details.add("actions", f"Actions: priority {value!r} is not valid")
                continue
            elif field == "type" and value not in TICKET_TYPES:
                details.add("actions", f"Actions: type {value!r} is not valid")
                continue
            elif field in ("group_id", "assignee_id") and value not in (None, "", "current_user"):
                table = self._groups if field == "group_id" else self._users
                if self._ref(details, value, field, table) is None:
                    continue
            out.append({"field": field, "value": deepcopy(value)})
        return out

    def _trigger_fields(self, data: Mapping[str, Any], trigger: Mapping[str, Any] | None) -> dict[str, Any]:
        details = _Details()
        out: dict[str, Any] = {}
        if "title" in data or trigger is None:
            title = data.get("title")
            if not isinstance(title, str) or not title.strip():
                details.add("title", "Title: cannot be blank", "BlankValue")
            else:
                out["title"] = out["raw_title"] = title
        if "conditions" in data or trigger is None:
            out["conditions"] = self._validate_conditions(
                data.get("conditions"), details, "conditions", triggers=True
            )
        if "actions" in data or trigger is None:
            out["actions"] = self._validate_actions(data.get("actions"), details)
        if "active" in data:
            out["active"] = _as_bool(data["active"])
        if "description" in data:
            out["description"] = data["description"]
        if "category_id" in data:
            out["category_id"] = None if data["category_id"] is None else str(data["category_id"])
        if "position" in data:
            try:
                out["position"] = _as_int(data["position"])
            except ValueError:
                details.add("position", "Position: must be an integer")
        details.raise_if_any()
        return out

    def _create_trigger(self) -> Response:
        data = self._wrapped(self._body(), "trigger")
        with self._lock:
            fields = self._trigger_fields(data, None)
            now = self._stamp()
            trigger = {
                "id": next(self._trigger_ids),
                "title": "",
                "raw_title": "",
                "description": None,
                "active": True,
                "default": False,
                "position": max((t["position"] for t in self._triggers.values()), default=0) + 1,
                "category_id": None,
                "conditions": {"all": [], "any": []},
                "actions": [],
                "created_at": now,
                "updated_at": now,
            }
            trigger.update(fields)
            self._triggers[trigger["id"]] = trigger
            rendered = self._render_trigger(trigger)
        return self._json({"trigger": rendered}, 201, {"Location": rendered["url"]})

    def _show_trigger(self, trigger_id: int) -> Response:
        with self._lock:
            return self._json({"trigger": self._render_trigger(self._trigger_or_404(trigger_id))})

    def _update_trigger(self, trigger_id: int) -> Response:
        data = self._wrapped(self._body(), "trigger")
        with self._lock:
            trigger = self._trigger_or_404(trigger_id)
            fields = self._trigger_fields(data, trigger)
            trigger.update(fields)
            trigger["updated_at"] = self._stamp(trigger["updated_at"])
            return self._json({"trigger": self._render_trigger(trigger)})

    def _delete_trigger(self, trigger_id: int) -> Response:
        with self._lock:
            self._trigger_or_404(trigger_id)
            del self._triggers[trigger_id]
        return Response(status=204)

    def _conditions_match(
        self,
        conditions: Mapping[str, Any],
        ticket: Mapping[str, Any],
        previous: Mapping[str, Any] | None,
        context: Mapping[str, Any] | None,
    ) -> bool:
        """ALL conditions hold and, when there are ANY conditions, at least one of them holds."""
        every = conditions.get("all") or []
        some = conditions.get("any") or []
        if not all(self._condition_holds(c, ticket, previous, context) for c in every):
            return False
        return not some or any(self._condition_holds(c, ticket, previous, context) for c in some)

    def _condition_holds(
        self,
        condition: Mapping[str, Any],
        ticket: Mapping[str, Any],
        previous: Mapping[str, Any] | None,
        context: Mapping[str, Any] | None,
    ) -> bool:
        field, operator, value = condition["field"], condition["operator"], condition.get("value")
        if field == "update_type":
            return context is not None and str(value).lower() == str(context["update_type"]).lower()
        if field == "role":
            if context is None:
                return False
            role = context["role"]
            role = "agent" if role in ("agent", "admin") else "end_user"
            matches = role == str(value).replace("-", "_").lower()
            return matches if operator == "is" else not matches
        if field == "current_tags":
            try:
                wanted = set(normalize_tags(value))
            except ValueError:
                return False
            present = bool(wanted & set(ticket["tags"]))
            return present if operator == "includes" else not present
        if field not in ticket:
            return False  # an SLA filter on a field the sandbox does not model never matches
        current = ticket[field]
        before = previous.get(field) if previous is not None else None
        changed = previous is None or before != current

        def same(actual: Any) -> bool:
            if value in (None, ""):
                return actual is None
            return str(actual).lower() == str(value).lower() if actual is not None else False

        rank: Callable[[Any], int] | None = None
        if field == "status":
            rank = lambda s: STATUS_RANK.get(s, -1)  # noqa: E731
        elif field == "priority":
            rank = lambda p: PRIORITY_RANK.get(p, 0)  # noqa: E731
        if operator == "is":
            return same(current)
        if operator == "is_not":
            return not same(current)
        if operator in ("less_than", "greater_than") and rank is not None:
            target = str(value).lower() if value not in (None, "") else None
            if operator == "less_than":
                return rank(current) < rank(target)
            return rank(current) > rank(target)
        if operator == "changed":
            return changed
        if operator == "not_changed":
            return not changed
        if operator == "value":
            return changed and same(current)
        if operator == "value_previous":
            return changed and same(before)
        return False

    def _apply_trigger_action(
        self, ticket: dict[str, Any], trigger: Mapping[str, Any], action: Mapping[str, Any], actor_id: int
    ) -> list[dict[str, Any]]:
        field, value = action["field"], action["value"]
        changes: dict[str, Any] = {}
        if field in ("status", "priority", "type"):
            changes[field] = value or None
        elif field == "group_id":
            changes["group_id"] = _as_int(value) if value not in (None, "") else None
        elif field == "assignee_id":
            if value == "current_user":
                changes["assignee_id"] = actor_id
            else:
                changes["assignee_id"] = _as_int(value) if value not in (None, "") else None
        elif field == "set_tags":
            changes["tags"] = normalize_tags(value)
        elif field == "current_tags":
            changes["tags"] = ticket["tags"] + [t for t in normalize_tags(value) if t not in ticket["tags"]]
        elif field == "remove_tags":
            removed = set(normalize_tags(value))
            changes["tags"] = [t for t in ticket["tags"] if t not in removed]
        via = {
            "channel": "rule",
            "source": {"id": trigger["id"], "title": trigger["title"], "type": "trigger"},
        }
        return self._apply_ticket_changes(ticket, changes, "Change", via)

    def _run_triggers(
        self,
        ticket: dict[str, Any],
        previous: Mapping[str, Any] | None,
        update_type: str,
        actor_id: int,
        events: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """Run active triggers in position order, each at most once per update; when one changes the
        ticket, start over (as Zendesk does). Webhook bodies are rendered once all have run."""
        context = {"update_type": update_type, "role": self._users[actor_id]["role"]}
        fired: set[int] = set()
        notifications: list[tuple[dict[str, Any], list[str]]] = []
        again = True
        while again:
            again = False
            for trigger in sorted(self._triggers.values(), key=lambda t: (t["position"], t["id"])):
                if not trigger["active"] or trigger["id"] in fired:
                    continue
                if not self._conditions_match(trigger["conditions"], ticket, previous, context):
                    continue
                fired.add(trigger["id"])
                changed = False
                for action in trigger["actions"]:
                    if action["field"] == "notification_webhook":
                        notifications.append((trigger, action["value"]))
                    else:
                        new_events = self._apply_trigger_action(ticket, trigger, action, actor_id)
                        events.extend(new_events)
                        changed = changed or bool(new_events)
                if changed:
                    again = True
                    break
        deliveries = []
        for trigger, (webhook_id, template) in notifications:
            webhook = self._webhooks.get(webhook_id)
            if webhook is None or webhook["status"] != "active":
                continue
            body = self._render_template(
                template, ticket, actor_id, json_escape=webhook["request_format"] == "json"
            )
            deliveries.append(
                {
                    "webhook_id": webhook_id,
                    "invocation_id": str(next(self._invocation_ids)),
                    "ticket_id": ticket["id"],
                    "trigger_id": trigger["id"],
                    "body": body,
                }
            )
            events.append(
                {
                    "id": next(self._event_ids),
                    "type": "WebhookNotification",
                    "webhook_id": webhook_id,
                    "via": {
                        "channel": "rule",
                        "source": {"id": trigger["id"], "title": trigger["title"], "type": "trigger"},
                    },
                }
            )
        return deliveries

    def _placeholders(self, ticket: Mapping[str, Any], actor_id: int) -> dict[str, str]:
        def text(value: Any) -> str:
            return "" if value is None else str(value)

        requester = self._users.get(ticket["requester_id"]) or {}
        org = self._orgs.get(ticket["organization_id"]) if ticket["organization_id"] else None
        group = self._groups.get(ticket["group_id"]) if ticket["group_id"] else None
        assignee = self._users.get(ticket["assignee_id"]) if ticket["assignee_id"] else None
        actor = self._users.get(actor_id) or {}
        name = text(requester.get("name"))
        channel = ticket["via"]["channel"]
        values = {
            "ticket.id": text(ticket["id"]),
            "ticket.external_id": text(ticket["external_id"]),
            "ticket.title": text(ticket["subject"]),
            "ticket.description": text(ticket["description"]),
            "ticket.status": STATUS_LABELS.get(ticket["status"], text(ticket["status"])),
            "ticket.priority": text(ticket["priority"]).capitalize(),
            "ticket.ticket_type": text(ticket["type"]).capitalize(),
            "ticket.tags": " ".join(ticket["tags"]),
            "ticket.via": VIA_LABELS.get(channel, channel.capitalize()),
            "ticket.url": f"{self._base_url or 'http://127.0.0.1'}/agent/tickets/{ticket['id']}",
            "ticket.created_at_with_timestamp": text(iso(ticket["created_at"])),
            "ticket.updated_at_with_timestamp": text(iso(ticket["updated_at"])),
            "ticket.requester.id": text(requester.get("id")),
            "ticket.requester.email": text(requester.get("email")),
            "ticket.requester.name": name,
            "ticket.requester.first_name": name.split(" ")[0] if name else "",
            "ticket.requester.last_name": name.split(" ", 1)[1] if " " in name else "",
            "ticket.requester.external_id": text(requester.get("external_id")),
            "ticket.organization.id": text(org["id"]) if org else "",
            "ticket.organization.name": text(org["name"]) if org else "",
            "ticket.organization.external_id": text(org["external_id"]) if org else "",
            "ticket.group.id": text(group["id"]) if group else "",
            "ticket.group.name": text(group["name"]) if group else "",
            "ticket.assignee.id": text(assignee["id"]) if assignee else "",
            "ticket.assignee.email": text(assignee["email"]) if assignee else "",
            "ticket.assignee.name": text(assignee["name"]) if assignee else "",
            "current_user.id": text(actor.get("id")),
            "current_user.email": text(actor.get("email")),
            "current_user.name": text(actor.get("name")),
        }
        values["ticket.link"] = values["ticket.url"]
        values["ticket.requester_id"] = values["ticket.requester.id"]
        values["ticket.organization_id"] = values["ticket.organization.id"]
        return values

    def _render_template(
        self, template: str, ticket: Mapping[str, Any], actor_id: int, *, json_escape: bool
    ) -> str:
        """Replace {{placeholders}} with text; unknown ones become empty. For JSON webhooks the text is
        JSON-escaped so a quote in a subject cannot break the body (sandbox choice, see module doc)."""
        values = self._placeholders(ticket, actor_id)

        def replace(match: re.Match[str]) -> str:
            value = values.get(match.group(1), "")
            return json.dumps(value)[1:-1] if json_escape else value

        return _PLACEHOLDER.sub(replace, template)

    # -- webhook delivery --------------------------------------------------------------------------

    def _dispatch(self, deliveries: list[dict[str, Any]]) -> None:
        for delivery in deliveries:
            try:
                self._webhook_pool.submit(self._deliver, delivery)
            except RuntimeError:  # the sandbox is stopping: record that nothing was sent
                self._record_delivery(delivery, 1, None, "sandbox stopped")

    def _record_delivery(
        self,
        delivery: Mapping[str, Any],
        attempt: int,
        status: int | None,
        error: str | None,
        sent_at: float | None = None,
    ) -> None:
        entry = {
            "webhook_id": delivery["webhook_id"],
            "invocation_id": delivery["invocation_id"],
            "ticket_id": delivery["ticket_id"],
            "trigger_id": delivery["trigger_id"],
            "status_code": status,
            "sent_at": sent_at if sent_at is not None else time.time(),
            "attempt": attempt,
            "error": error,
            "body": delivery["body"],
        }
        self._append_delivery(entry)

    def _deliver(self, delivery: Mapping[str, Any]) -> None:
        """POST one invocation like Zendesk: signed, 10 s timeout, retried on errors, 409, 429 and 5xx
        with a fresh signature and the same invocation id."""
        body = delivery["body"].encode("utf-8")
        for attempt in range(1, WEBHOOK_EXTRA_ATTEMPTS + 2):
            with self._lock:
                webhook = deepcopy(self._webhooks.get(delivery["webhook_id"]))
            if webhook is None or self._stopped.is_set():
                return
            timestamp = iso(self._now()) or ""
            headers = {
                "Content-Type": WEBHOOK_FORMATS[webhook["request_format"]],
                "User-Agent": "Zendesk Webhook",
                "x-zendesk-account-id": str(self.account_id),
                "x-zendesk-webhook-id": webhook["id"],
                "x-zendesk-webhook-invocation-id": delivery["invocation_id"],
                "x-zendesk-webhook-signature-timestamp": timestamp,
                "x-zendesk-webhook-signature": sign(webhook["_secret"], body, timestamp),
            }
            headers.update(webhook.get("custom_headers") or {})
            headers.update(_auth_headers(webhook.get("authentication")))
            status, error, sent_at = self._send_webhook(
                webhook["http_method"], webhook["endpoint"], body, headers, WEBHOOK_TIMEOUT
            )
            self._record_delivery(delivery, attempt, status, error, sent_at)
            retry = error is not None or status in (409, 429) or (status is not None and status >= 500)
            if not retry or attempt > WEBHOOK_EXTRA_ATTEMPTS:
                return
            if self._stopped.wait(self.webhook_retry_delay):
                return

    # -- SLA policies ------------------------------------------------------------------------------

    def _sla_or_404(self, sla_policy_id: int) -> dict[str, Any]:
        policy = self._slas.get(sla_policy_id)
        if policy is None:
            raise _not_found()
        return policy

    def _sla_fields(self, data: Mapping[str, Any], policy: Mapping[str, Any] | None) -> dict[str, Any]:
        details = _Details()
        out: dict[str, Any] = {}
        if "title" in data or policy is None:
            title = data.get("title")
            if not isinstance(title, str) or not title.strip():
                details.add("title", "Title: cannot be blank", "BlankValue")
            else:
                out["title"] = title
        if "filter" in data or policy is None:
            if data.get("filter") is None:
                details.add("filter", "Filter: cannot be blank", "BlankValue")
            else:
                out["filter"] = self._validate_conditions(data["filter"], details, "filter", triggers=False)
        if "description" in data:
            out["description"] = data["description"] or ""
        if "position" in data:
            try:
                out["position"] = _as_int(data["position"])
            except ValueError:
                details.add("position", "Position: must be an integer")
        if "policy_metrics" in data:
            metrics = data["policy_metrics"]
            if not isinstance(metrics, list):
                details.add("policy_metrics", "Policy metrics: must be a list")
                metrics = []
            clean = []
            for metric in metrics:
                if not isinstance(metric, dict):
                    details.add("policy_metrics", "Policy metrics: every metric must be an object")
                    continue
                if metric.get("priority") not in PRIORITIES:
                    details.add(
                        "policy_metrics", f"Policy metrics: priority {metric.get('priority')!r} is not valid"
                    )
                if metric.get("metric") not in SLA_METRICS:
                    details.add(
                        "policy_metrics", f"Policy metrics: metric {metric.get('metric')!r} is not valid"
                    )
                target = metric.get("target")
                if isinstance(target, bool) or not isinstance(target, int) or target < 0:
                    details.add("policy_metrics", "Policy metrics: target must be a whole number of minutes")
                clean.append(
                    {
                        "priority": metric.get("priority"),
                        "metric": metric.get("metric"),
                        "target": target,
                        "business_hours": _as_bool(metric.get("business_hours", False)),
                    }
                )
            out["policy_metrics"] = clean
        details.raise_if_any()
        return out

    def _list_slas(self) -> Response:
        with self._lock:
            policies = sorted(self._slas.values(), key=lambda p: (p["position"], p["id"]))
            return self._json(
                {
                    "sla_policies": [self._render_sla(p) for p in policies],
                    "count": len(policies),
                    "next_page": None,
                    "previous_page": None,
                }
            )

    def _create_sla(self) -> Response:
        data = self._wrapped(self._body(), "sla_policy")
        with self._lock:
            fields = self._sla_fields(data, None)
            now = self._stamp()
            policy = {
                "id": next(self._sla_ids),
                "title": "",
                "description": "",
                "position": max((p["position"] for p in self._slas.values()), default=0) + 1,
                "filter": {"all": [], "any": []},
                "policy_metrics": [],
                "created_at": now,
                "updated_at": now,
            }
            policy.update(fields)
            self._slas[policy["id"]] = policy
            rendered = self._render_sla(policy)
        return self._json({"sla_policy": rendered}, 201, {"Location": rendered["url"]})

    def _show_sla(self, sla_policy_id: int) -> Response:
        with self._lock:
            return self._json({"sla_policy": self._render_sla(self._sla_or_404(sla_policy_id))})

    def _update_sla(self, sla_policy_id: int) -> Response:
        data = self._wrapped(self._body(), "sla_policy")
        with self._lock:
            policy = self._sla_or_404(sla_policy_id)
            policy.update(self._sla_fields(data, policy))
            policy["updated_at"] = self._stamp(policy["updated_at"])
            return self._json({"sla_policy": self._render_sla(policy)})

    def _delete_sla(self, sla_policy_id: int) -> Response:
        with self._lock:
            self._sla_or_404(sla_policy_id)
            del self._slas[sla_policy_id]
        return Response(status=204)

    # -- sandbox-only control endpoints (no auth, never rate limited) ------------------------------

    def _control_body(self) -> dict[str, Any]:
        return self._body()

    def _control_error(self, field: str, message: str) -> Exception:
        return _bad_request("InvalidValue", message)

    def _control_submit_ticket(self) -> Response:
        body = self._body()
        requester = body.get("requester") or {}
        email = requester.get("email") if isinstance(requester, dict) else None
        if not isinstance(email, str) or "@" not in email:
            raise _bad_request("ParameterMissing", "requester.email is required")
        extra = {k: v for k, v in body.items() if k not in ("requester", "subject", "body")}
        ticket = self.submit_ticket(
            email,
            str(body.get("subject") or ""),
            str(body.get("body") or "(no body)"),
            name=requester.get("name"),
            **extra,
        )
        return self._json({"ticket": ticket}, 201)


# -- module helpers used by the class --------------------------------------------------------------


def _new_secret() -> str:
    """A signing secret shaped like Zendesk's (URL-safe base64 of 32 random bytes)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def _auth_headers(auth: Mapping[str, Any] | None) -> dict[str, str]:
    if not auth:
        return {}
    data = auth["data"]
    if auth["type"] == "basic_auth":
        pair = base64.b64encode(f"{data['username']}:{data['password']}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    if auth["type"] == "bearer_token":
        return {"Authorization": f"Bearer {data['token']}"}
    return {str(data["name"]): str(data["value"])}


def _int_or_none(ref: Any) -> int | None:
    """A bulk entry's record id when it names one by id (not by external_id)."""
    if isinstance(ref, tuple):
        return None
    try:
        return _as_int(ref)
    except (TypeError, ValueError):
        return None


def _describe(body: Mapping[str, Any]) -> str:
    """One line for a job result out of an error body."""
    details = body.get("details")
    if isinstance(details, dict):
        return "; ".join(item["description"] for items in details.values() for item in items)
    return str(body.get("description") or body.get("error") or "")


def _user_matches(user: Mapping[str, Any], query: str) -> bool:
    """A small slice of Zendesk's search syntax: field:value terms and bare words, all must match."""
    for term in query.split():
        if ":" in term:
            field, _, value = term.partition(":")
            value = value.strip('"').lower()
            if field == "email":
                if (user.get("email") or "").lower() != value:
                    return False
            elif field in ("external_id", "organization_id", "role", "name", "id"):
                if str(user.get(field) or "").lower() != value:
                    return False
            elif field == "tags":
                if value not in user.get("tags", []):
                    return False
            else:
                return False
        else:
            word = term.lower()
            if word not in (user.get("name") or "").lower() and word not in (user.get("email") or "").lower():
                return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Run a seeded sandbox until interrupted; prints the base URL and the credentials to use."""
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.zendesk", description="Run the Zendesk sandbox on loopback."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--customers", type=int, default=1000, help="synthetic customers to seed (0: none)")
    parser.add_argument("--seed", type=int, default=42, help="random seed for the synthetic data")
    parser.add_argument("--email", default="agent@example.com")
    parser.add_argument("--token", default="sandbox-token")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per minute (default: none)")
    parser.add_argument("--incremental-rate-limit", type=int, default=None)
    parser.add_argument("--webhook-retry-delay", type=float, default=0.5)
    args = parser.parse_args(argv)

    from sandbox.seed import seed as seed_data

    sandbox = ZendeskSandbox(
        email=args.email,
        token=args.token,
        rate_limit_per_minute=args.rate_limit,
        incremental_limit_per_minute=args.incremental_rate_limit,
        webhook_retry_delay=args.webhook_retry_delay,
    )
    summary = seed_data(sandbox, customers=args.customers, seed=args.seed) if args.customers > 0 else None
    url = sandbox.start(args.host, args.port)
    print(f"Zendesk sandbox listening on {url}")
    print(f"  auth: HTTP Basic, username '{args.email}/token', password '{args.token}'")
    if summary is not None:
        print(
            f"  seeded {summary.customers} customers, {summary.organizations} organizations, "
            f"{summary.tickets} tickets (seed {args.seed})"
        )
        print(f"  VIP list: {', '.join(summary.vip_emails) or '-'}")
    print(f"  controls: POST {url}{CONTROL}/faults | /delay, GET {url}{CONTROL}/deliveries | /requests")
    return serve_until_stopped(sandbox)


if __name__ == "__main__":
    raise SystemExit(main())
