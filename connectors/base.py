"""The faces a connector shows the rest of tierdesk, one Protocol per capability.

A connector states what it is by naming its capabilities as base classes, e.g.
``class ZendeskConnector(Source, Helpdesk, TagWriter)``:

- `Source`: streams of records to pull incrementally (every connector is one today);
- `Helpdesk`: tickets to read and route, webhooks to verify and parse, the routed marker;
- `TagWriter` / `SegmentWriter` (both a `TagTarget`): where segment tags are written back.

Callers never probe a connector with hasattr: they ask `is_helpdesk(c)` and the like (or take the
typed views `helpdesks(...)`, `sources(...)`, `tag_targets(...)` the runtime offers), which answer from
what the class declared, not from what it happens to look like.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeGuard, TypeVar

from connectors.http import ApiError, HttpClient
from integration.core.models import Customer, Decision, Organization, Ticket, TicketEvent

STREAMS = ("organizations", "users", "tickets")
DEFAULT_MARKER = "tierdesk_routed"


class WebhookRejected(Exception):
    """A webhook delivery we refuse; `status` is the HTTP answer and `reason` a stable log name."""

    def __init__(self, reason: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


class UnknownGroup(ApiError):
    """The mapping names a group this helpdesk account does not have (each vendor has its subclass)."""


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
    """What a push of segment tags did: write calls, job polls, and which records took the change.

    `push_tags` names records by their external id, `push_segments` by record key. `errors` are lines
    for a person (a failed record's reason among them); `skipped` are records this target does not hold.
    """

    write_calls: int = 0
    job_polls: int = 0
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ApplyResult:
    """What the helpdesk answered when we applied a decision."""

    outcome: str  # applied | skipped
    detail: str = ""
    calls: int = 0
    response: Mapping[str, Any] = field(default_factory=dict)


# -- the capabilities -----------------------------------------------------------------------------------


class Connector(Protocol):
    """What every connector has: a name (the source of its records) and the client its calls go through
    (None for a connector that calls no API, such as a file import)."""

    name: str
    http: HttpClient | None


class Source(Connector, Protocol):
    """Records pulled incrementally, stream by stream, each batch with the cursor to resume after it.

    `pull_only`: the source only enriches customers (a CRM, an export) and routes no ticket.
    `snapshot`: every pull is the whole set, so records a newer pull lacks are forgotten (a CSV file);
    a pull-only source is treated as one on a full pull.
    """

    streams: tuple[str, ...]
    pull_only: bool
    snapshot: bool

    def pull(self, stream: str, cursor: str | None) -> Iterator[Batch]: ...

    def estimate(self, stream: str, cursor: str | None) -> int | None:
        """How many records a pull from `cursor` will read, for a progress bar; None: no cheap way to say."""
        return None


class Helpdesk(Connector, Protocol):
    """Where tickets arrive: webhooks in, one ticket read and routed, re-routed when segments move."""

    http: HttpClient

    @property
    def marker_tag(self) -> str:
        """The tag that says tierdesk routed a ticket (the active mapping's ``tags.routed``)."""
        ...

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, now: float) -> None: ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TicketEvent: ...

    def get_ticket(self, ticket_id: str) -> Ticket: ...

    def get_customer(self, external_id: str) -> Customer | None: ...  # None: staff, not a customer

    def get_organization(self, external_id: str) -> Organization: ...

    def groups(self, refresh: bool = False) -> dict[str, int]: ...

    def check_groups(self, names: set[str]) -> None: ...

    def apply(self, ticket: Ticket, decision: Decision) -> ApplyResult: ...

    def update_routing(
        self,
        ticket: Ticket,
        *,
        priority: str | None = None,
        group: str | None = None,
        add_tags: tuple[str, ...] = (),
        remove_tags: tuple[str, ...] = (),
        note: str = "",
        first_response_minutes: int | None = None,
        resolution_minutes: int | None = None,
    ) -> ApplyResult:
        """Change an already routed ticket (a re-route). `ticket` is as just read; the SLA targets are
        for helpdesks that take due dates (Freshdesk), the others keep SLAs by tag."""
        ...


class TagTarget(Connector, Protocol):
    """Keeps tierdesk's segment tags on records of the kinds in `tag_kinds` (users, organizations)."""

    tag_kinds: tuple[str, ...]


class TagWriter(TagTarget, Protocol):
    """A helpdesk's tags: ours are added and removed per record, everyone else's are left alone."""

    def push_tags(self, kind: str, changes: list[TagChange]) -> PushReport: ...


class SegmentWriter(TagTarget, Protocol):
    """A CRM property that holds only our segment values: set whole per record key."""

    def push_segments(self, changes: Mapping[str, Sequence[str]]) -> PushReport: ...


# -- asking what a connector is -------------------------------------------------------------------------


def _declares(connector: object, capability: type) -> bool:
    """Whether the connector's class names `capability` among its bases: what it states it is, not
    what it happens to look like."""
    return capability in type(connector).__mro__


def is_source(connector: object) -> TypeGuard[Source]:
    return _declares(connector, Source)


def is_helpdesk(connector: object) -> TypeGuard[Helpdesk]:
    return _declares(connector, Helpdesk)


def writes_tags(connector: object) -> TypeGuard[TagWriter]:
    return _declares(connector, TagWriter)


def writes_segments(connector: object) -> TypeGuard[SegmentWriter]:
    return _declares(connector, SegmentWriter)


def is_tag_target(connector: object) -> TypeGuard[TagTarget]:
    return _declares(connector, TagTarget)


C = TypeVar("C")


def _having(connectors: Mapping[str, Connector], test: Callable[[object], TypeGuard[C]]) -> dict[str, C]:
    return {name: c for name, c in connectors.items() if test(c)}


def sources(connectors: Mapping[str, Connector]) -> dict[str, Source]:
    """The connectors to pull from, by name, in configuration order."""
    return _having(connectors, is_source)


def helpdesks(connectors: Mapping[str, Connector]) -> dict[str, Helpdesk]:
    """The connectors that route tickets: webhooks, the worker, re-routing, group checks."""
    return _having(connectors, is_helpdesk)


def tag_targets(connectors: Mapping[str, Connector]) -> dict[str, TagTarget]:
    """The connectors segment tags are written back to."""
    return _having(connectors, is_tag_target)


# -- pieces every helpdesk needs ------------------------------------------------------------------------


Marker = str | Callable[[], str]


def marker_reader(marker: Marker) -> Callable[[], str]:
    """The routed marker as a function: the runtime passes one that reads the active mapping, so a
    published mapping with another marker applies without anyone changing the connector."""
    if callable(marker):
        return marker
    return lambda: marker


class GroupsByName:
    """Group names to ids, read once and cached: routing names groups, helpdesks want ids.

    A helpdesk mixes this in and says how to read its groups (`_read_groups`), how it is called in
    messages (`title`) and which error names a group it lacks (`unknown_group`).
    """

    name: str
    title: str
    unknown_group: type[UnknownGroup]
    _group_ids: dict[str, int] | None = None

    def _read_groups(self) -> dict[str, int]:
        raise NotImplementedError

    def groups(self, refresh: bool = False) -> dict[str, int]:
        if self._group_ids is None or refresh:
            self._group_ids = self._read_groups()
        return self._group_ids

    def group_id(self, name: str) -> int:
        groups = self.groups()
        if name not in groups:
            groups = self.groups(refresh=True)
        if name not in groups:
            known = ", ".join(sorted(groups)) or "none"
            raise self.unknown_group(
                self.name,
                f"group {name!r} named in the mapping does not exist in {self.title} (has: {known})",
            )
        return groups[name]

    def check_groups(self, names: set[str]) -> None:
        """Fail early, naming every mapped group the helpdesk lacks."""
        groups = self.groups(refresh=True)
        missing = sorted(n for n in names if n not in groups)
        if missing:
            known = ", ".join(sorted(groups)) or "none"
            raise self.unknown_group(
                self.name,
                f"groups named in the mapping do not exist in {self.title}: {', '.join(missing)} "
                f"(has: {known})",
            )


def changed_tags(
    current: Sequence[str], add: Sequence[str], remove: Sequence[str], fold: bool = False
) -> list[str]:
    """`current` without `remove`, then each of `add` it lacks; `fold`: tags ignore case (Freshdesk)."""
    norm: Callable[[str], str] = str.lower if fold else str
    dropped = {norm(t) for t in remove}
    tags = [t for t in current if norm(t) not in dropped]
    held = {norm(t) for t in tags}
    return tags + [t for t in add if norm(t) not in held]
