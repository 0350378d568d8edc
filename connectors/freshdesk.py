"""Freshdesk: the only module that knows Freshdesk's paths and field names.

What it does with the API (see docs/connectors.md, "Freshdesk"):
- pulls contacts (``_updated_since``, then each changed contact's own record, as the list has no tags),
  tickets (``updated_since``, oldest change first) and companies (Freshdesk has no change filter for them:
  every page is read and the unchanged ones are dropped), with page/per_page and the
  ``Link: <...>; rel="next"`` header, resuming from a stored timestamp cursor;
- reads one ticket, contact or company when a webhook names one we do not know yet;
- routes a ticket: a private note, then ONE ``PUT /api/v2/tickets/{id}`` with priority (1-4), group_id,
  the merged tag list (Freshdesk's PUT replaces tags) and, when the mapping gives SLA targets, due_by and
  fr_due_by. Freshdesk has no safe_update, so the tags are read right before the write; the marker tag
  makes a repeated delivery a no-op and an existing note is never added twice, not even after a POST
  that timed out but succeeded (see ``apply``);
- verifies webhooks, which Freshdesk does not sign: a shared secret in a header the automation rule sets,
  or HTTP basic auth, compared in constant time.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from connectors import signatures
from connectors.base import (
    ApplyResult,
    Batch,
    PushReport,
    TagChange,
    WebhookRejected,
    custom_value,
    json_object,
    numeric_id,
    optional_str,
    parse_time,
)
from connectors.http import ApiError, ApiInvalid, ApiNotFound, HttpClient
from integration.core.models import Customer, Decision, Organization, Ticket, TicketEvent

log = logging.getLogger("tierdesk.freshdesk")

NAME = "freshdesk"
SECRET_HEADER = signatures.SHARED_SECRET_HEADER  # x-tierdesk-secret
WEBHOOK_USER = "tierdesk"  # the basic-auth user name the automation rule sends
RULE_HEADER = "x-tierdesk-rule"
DEFAULT_RULE = "ticket_created"
PER_PAGE = 100  # Freshdesk's maximum
TICKET_PAGE_LIMIT = 300  # Freshdesk serves no deeper page of the ticket list
EPOCH = "2000-01-01T00:00:00Z"  # "everything": without updated_since the list shows only 30 days
CURSOR_OVERLAP = timedelta(seconds=60)  # never move a cursor past "pull started" minus this
EMBEDDED_CONVERSATIONS = 10  # include=conversations returns at most the oldest ten
RATE_LOW_SHARE = 0.1  # log once when fewer than 10% of the minute's API credits are left

PRIORITY_TO_FRESHDESK = {"low": 1, "normal": 2, "high": 3, "urgent": 4}
PRIORITY_FROM_FRESHDESK = {v: k for k, v in PRIORITY_TO_FRESHDESK.items()}
STATUS_FROM_FRESHDESK = {2: "open", 3: "pending", 4: "solved", 5: "closed"}
COMPANY_ATTRIBUTES = ("industry", "account_tier", "health_score")

# The JSON body of the automation rule's "Trigger webhook" action (docs/connectors.md). Freshdesk renders
# placeholders as text. tierdesk needs only the ticket id; with the tags the webhook gate can acknowledge
# and ignore a delivery for a ticket that already carries the routed marker.
AUTOMATION_BODY = json.dumps(
    {
        "ticket": {
            "id": "{{ticket.id}}",
            "tags": "{{ticket.tags}}",
            "requester_email": "{{ticket.contact.email}}",
            "priority": "{{ticket.priority}}",
            "status": "{{ticket.status}}",
        }
    },
    indent=2,
)


class UnknownGroup(ApiError):
    """The mapping names a group this Freshdesk account does not have."""


# -- webhooks: pure functions over headers and the raw body ---------------------------------------------


def verify_secret(secret: str, headers: Mapping[str, str]) -> None:
    """Raise WebhookRejected unless the delivery carries our shared secret.

    Freshdesk signs nothing, so the automation rule proves itself with what it can send: the secret in the
    X-Tierdesk-Secret custom header, or HTTP basic auth as user "tierdesk" with the secret as password (or,
    with the rule's "API key" option, the secret as user and "X" as password). The comparisons are the
    constant-time ones in connectors.signatures. There is no timestamp, so no freshness check: a repeated
    delivery is caught by the event id (rule + ticket) instead.
    """
    if headers.get(SECRET_HEADER) is not None:
        signatures.verify_shared_secret(secret, headers, SECRET_HEADER)
        return
    if not headers.get("authorization"):
        raise WebhookRejected("missing_signature", "no X-Tierdesk-Secret header and no basic auth")
    try:
        signatures.verify_basic_auth(WEBHOOK_USER, secret, headers)
    except WebhookRejected as first:
        try:
            signatures.verify_basic_auth(secret, "X", headers)
        except (WebhookRejected, ValueError):  # ValueError: a secret with ':' cannot be a basic-auth user
            raise first from None


def _optional_id(value: Any) -> str | None:
    """Placeholders vary by account and plan; an optional id that is not digits is simply absent."""
    text = "" if value is None or isinstance(value, bool) else str(value).strip()
    return text if text.isascii() and text.isdigit() else None


def _tags(value: Any) -> tuple[str, ...]:
    """{{ticket.tags}} renders comma-separated; accept commas, spaces or a JSON list."""
    if isinstance(value, str):
        return tuple(t for t in value.replace(",", " ").split() if t)
    if isinstance(value, list):
        return tuple(str(t) for t in value)
    return ()


def parse_event(headers: Mapping[str, str], body: bytes) -> TicketEvent:
    """Read the ticket reference from our documented rule body or Freshdesk's "simple" webhook body.

    Freshdesk sends no delivery id. A "ticket created" rule fires once per ticket, so the event id is the
    rule's name (the X-Tierdesk-Rule header, default "ticket_created") plus the ticket id: a repeated
    delivery of the same rule for the same ticket is recognised as a duplicate.
    """
    data = json_object(body)
    if isinstance(data.get("ticket"), dict):  # our documented rule body
        ticket = data["ticket"]
        ticket_id = ticket.get("id")
        requester = ticket.get("requester_id")
        company = ticket.get("company_id")
        tags = ticket.get("tags")
    elif isinstance(data.get("freshdesk_webhook"), dict):  # the rule's "simple" content
        ticket = data["freshdesk_webhook"]
        ticket_id = ticket.get("ticket_id")
        requester = ticket.get("ticket_contact_id") or ticket.get("ticket_requester_id")
        company = ticket.get("ticket_company_id")
        tags = ticket.get("ticket_tags")
    else:
        raise WebhookRejected("bad_payload", "body has no 'ticket' object", 400)
    text = numeric_id(ticket_id, "ticket.id", required=True) or ""
    rule = (headers.get(RULE_HEADER) or DEFAULT_RULE).strip()[:100] or DEFAULT_RULE
    return TicketEvent(
        source=NAME,
        event_id=f"{rule}:{text}",
        ticket_id=text,
        requester_id=_optional_id(requester),
        organization_id=_optional_id(company),
        tags=_tags(tags),
    )


# -- translation from Freshdesk JSON to our records ------------------------------------------------------


def _iso(value: datetime) -> str:
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
        out["fr_due_by"] = _iso(first)
    if due:
        out["due_by"] = _iso(due)
    return out


# -- responses: the Link header and rate-limit headers ---------------------------------------------------


class _ResponseTap:
    """Keeps the last response each thread saw, so pagination can read its Link header.

    HttpClient returns decoded JSON only; a requests response hook is the seam that sees the headers
    without a second HTTP layer. Also watches X-RateLimit-Remaining and logs once when it runs low.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self.total: int | None = None
        self.remaining: int | None = None
        self._warned = False

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._local.response = response
        try:
            self.total = int(response.headers["X-RateLimit-Total"])
            self.remaining = int(response.headers["X-RateLimit-Remaining"])
        except (KeyError, ValueError):
            return
        low = self.remaining < self.total * RATE_LOW_SHARE
        if low and not self._warned:
            log.warning("freshdesk.rate_low", extra={"remaining": self.remaining, "total": self.total})
        self._warned = low

    @property
    def last(self) -> requests.Response | None:
        return getattr(self._local, "response", None)

    def next_url(self) -> str | None:
        response = self.last
        return (response.links.get("next") or {}).get("url") if response is not None else None

    def server_time(self) -> datetime | None:
        response = self.last
        value = response.headers.get("Date") if response is not None else None
        try:
            return parsedate_to_datetime(value).astimezone(UTC) if value else None
        except (TypeError, ValueError):
            return None

    def error_details(self) -> str:
        """Freshdesk's validation errors list, which the shared error text leaves out."""
        response = self.last
        if response is None:
            return ""
        try:
            errors = response.json().get("errors")
        except (ValueError, AttributeError):
            return ""
        if not isinstance(errors, list):
            return ""
        return "; ".join(
            f"{e.get('field', '?')}: {e.get('message', '')} ({e.get('code', '')})"
            for e in errors
            if isinstance(e, dict)
        )


# -- the connector ---------------------------------------------------------------------------------------


class FreshdeskConnector:
    name = NAME

    def __init__(
        self,
        base_url: str,
        api_key: str,
        webhook_secret: str | None = None,
        *,
        marker_tag: str = "tierdesk_routed",
        timeout: tuple[float, float] = (3.05, 10.0),
        max_attempts: int = 4,
        backoff_initial: float = 0.5,
        backoff_max: float = 20.0,
        per_page: int = PER_PAGE,
        ticket_page_limit: int = TICKET_PAGE_LIMIT,
    ) -> None:
        self.http = HttpClient(
            NAME,
            base_url,
            auth=(api_key, "X"),  # Freshdesk: the API key is the user name, the password is ignored
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )
        self.tap = _ResponseTap()
        self.http.session.hooks["response"].append(self.tap)
        self.webhook_secret = webhook_secret
        self.marker_tag = marker_tag
        self.per_page = per_page
        self.ticket_page_limit = ticket_page_limit
        self._groups: dict[str, int] | None = None
        # Contact versions we hold that a contact pull can list again: id -> (updated_at, tags) of each
        # contact read or written (by the tag push) since the contacts cursor. A listed row with the same
        # updated_at is one we have; a change by anyone else moves updated_at and is read. Entries go once
        # the cursor passes them, so this holds about a minute of changes plus the last push.
        self._held: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.contact_reads = 0  # GET /contacts/{id} made by pulls, for sync reports and benchmarks

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        attempts: int | None = None,
    ) -> Any:
        """One API call; a refused request names the fields Freshdesk complained about."""
        try:
            return self.http.request(method, path, params=params, json=json, attempts=attempts)
        except ApiInvalid as e:
            details = self.tap.error_details()
            if not details:
                raise
            raise ApiInvalid(NAME, f"{str(e).removeprefix(f'{NAME}: ')} ({details})", e.status) from e

    # webhooks
    def verify_webhook(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        if not self.webhook_secret:
            return  # only reachable with the explicit insecure development flag
        verify_secret(self.webhook_secret, headers)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TicketEvent:
        return parse_event(headers, body)

    # reads
    def get_ticket(self, ticket_id: str) -> Ticket:
        return to_ticket(self._call("GET", f"/api/v2/tickets/{ticket_id}"))

    def get_customer(self, external_id: str) -> Customer:
        return to_customer(self._call("GET", f"/api/v2/contacts/{external_id}"))

    # Freshdesk companies have no tags, and contacts have no bulk update: one read-merge-write each.
    tag_kinds = ("users",)

    def push_tags(self, kind: str, changes: list[TagChange]) -> PushReport:
        """Add and remove our segment tags on contacts. A contact's PUT replaces its tag list, so each
        contact is read right before the write and only our changes are applied to what it holds; a
        contact that already carries exactly that list is not written at all."""
        if kind != "users":
            raise ValueError(f"Freshdesk keeps no tags on {kind}")
        report = PushReport()
        for change in changes:
            path = f"/api/v2/contacts/{change.external_id}"
            try:
                current = list(self._call("GET", path).get("tags") or [])
                tags = [t for t in current if t not in change.remove]
                tags += [t for t in change.add if t not in tags]
                if tags != current:
                    report.write_calls += 1
                    answer = self._call("PUT", path, json={"tags": tags})
                    if isinstance(answer, dict) and answer.get("updated_at"):
                        self._held[change.external_id] = (
                            str(answer["updated_at"]),
                            tuple(answer.get("tags") or tags),
                        )
            except ApiError as e:
                report.failed.append(change.external_id)
                report.errors.append(str(e))
                continue
            report.succeeded.append(change.external_id)
        return report

    def get_organization(self, external_id: str) -> Organization:
        return to_organization(self._call("GET", f"/api/v2/companies/{external_id}"))

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[tuple[list[dict[str, Any]], bool]]:
        """Each page of a list and whether another follows, by the Link rel="next" header.

        A link that repeats is an error rather than an endless loop.
        """
        url: str | None = path
        query: Mapping[str, Any] | None = {**params, "per_page": self.per_page}
        seen: set[str] = set()
        while url:
            page = self._call("GET", url, params=query)
            if not isinstance(page, list):
                raise ApiError(NAME, f"GET {path}: expected a JSON list, got {type(page).__name__}")
            following = self.tap.next_url()  # read now: the caller may make other calls meanwhile
            if following in seen:
                raise ApiError(NAME, f"pagination repeated {following}")
            if following:
                seen.add(following)
            yield page, following is not None
            url, query = following, None  # the next link carries every parameter

    def groups(self, refresh: bool = False) -> dict[str, int]:
        """Group names to ids, read once and cached: routing names groups, Freshdesk wants ids."""
        if self._groups is None or refresh:
            self._groups = {
                g["name"]: int(g["id"]) for page, _ in self._pages("/api/v2/groups", {}) for g in page
            }
        return self._groups

    def group_id(self, name: str) -> int:
        groups = self.groups()
        if name not in groups:
            groups = self.groups(refresh=True)
        if name not in groups:
            known = ", ".join(sorted(groups)) or "none"
            raise UnknownGroup(
                NAME, f"group {name!r} named in the mapping does not exist in Freshdesk (has: {known})"
            )
        return groups[name]

    def check_groups(self, names: set[str]) -> None:
        """Fail early, naming every mapped group Freshdesk lacks."""
        groups = self.groups(refresh=True)
        missing = sorted(n for n in names if n not in groups)
        if missing:
            known = ", ".join(sorted(groups)) or "none"
            raise UnknownGroup(
                NAME,
                f"groups named in the mapping do not exist in Freshdesk: {', '.join(missing)} (has: {known})",
            )

    # incremental pulls
    def pull(self, stream: str, cursor: str | None) -> Iterator[Batch]:
        """Pull what changed since `cursor` (an ISO timestamp); every batch's cursor is safe to resume from.

        The cursor never moves past the time the pull started (the server's clock) minus a minute: a record
        that changes while we page can shift between pages, and it is then read again next time.
        """
        if stream == "organizations":
            yield from self._pull_unordered(stream, "/api/v2/companies", None, to_organization, cursor)
        elif stream == "users":
            last = cursor
            for batch in self._pull_unordered(
                stream, "/api/v2/contacts", "_updated_since", to_customer, cursor, self._with_tags
            ):
                last = batch.cursor
                yield batch
            passed = parse_time(last) if last else None
            if passed is not None:  # rows no newer than the cursor are never listed again: forget them
                self._held = {k: v for k, v in self._held.items() if (parse_time(v[0]) or passed) > passed}
        elif stream == "tickets":
            yield from self._pull_tickets(cursor)
        else:
            raise ValueError(f"freshdesk has no stream {stream!r}")

    def _ceiling(self) -> datetime:
        started = self.tap.server_time() or datetime.now(UTC)
        return started - CURSOR_OVERLAP

    @staticmethod
    def _advance(cursor: str | None, newest: datetime | None, ceiling: datetime) -> str | None:
        """The next cursor: the newest change seen, at most the ceiling, never behind the old cursor."""
        if newest is None:
            return cursor
        candidate = min(newest, ceiling)
        old = parse_time(cursor) if cursor else None
        if old is not None and candidate <= old:
            return cursor
        return _iso(candidate)

    def _pull_unordered(
        self,
        stream: str,
        path: str,
        since_param: str | None,
        convert: Callable[[Mapping[str, Any]], Any],
        cursor: str | None,
        complete: Callable[[list[dict[str, Any]], datetime | None], list[dict[str, Any]]] | None = None,
    ) -> Iterator[Batch]:
        """Contacts and companies come in no documented order: the cursor moves only after the last page.

        ``complete`` turns a page's list rows into full records (contacts: the tags the list leaves out).
        """
        since = parse_time(cursor) if cursor else None
        params = {since_param: cursor} if since_param and cursor else {}
        newest: datetime | None = None
        ceiling: datetime | None = None
        for page, more in self._pages(path, params):
            if ceiling is None:
                ceiling = self._ceiling()
            items = [i for i in page if not i.get("deleted")]
            if since is not None and since_param is None:  # no server-side filter: drop the unchanged
                items = [i for i in items if (parse_time(i.get("updated_at")) or since) >= since]
            for item in items:
                changed = parse_time(item.get("updated_at"))
                if changed and (newest is None or changed > newest):
                    newest = changed
            next_cursor = cursor if more else self._advance(cursor, newest, ceiling)
            if complete is not None:
                items = complete(items, since)
            yield Batch(stream, [convert(i) for i in items], next_cursor)

    def _with_tags(self, rows: list[dict[str, Any]], since: datetime | None) -> list[dict[str, Any]]:
        """The contacts of a list page as full records, reading GET /contacts/{id} only where needed.

        Freshdesk's contact list (and search) leaves out ``tags`` (and avatar, other_emails, deleted,
        other_companies, view_all_tickets): only a contact's own record has them. Stored from the list, a
        contact's VIP tag would be lost on every sync. So each changed contact is read once, through the
        shared rate budget like every call, except:

        * a row no newer than the cursor: ``_updated_since`` is inclusive, so the cursor's own second comes
          back; we hold that version already (the cursor never passes "pull started" minus a minute) and
          the row is dropped, not stored again without its tags;
        * a row whose updated_at is that of a version this connector read or wrote since (our tag push's
          PUT moves updated_at, and the last minute before a pull is listed by two pulls): its tags are
          the ones we hold.

        A sync therefore reads one contact per contact changed by someone else since the last sync; a
        full pull reads every contact once. A contact gone between list and read (404) is skipped.
        """
        out: list[dict[str, Any]] = []
        for row in rows:
            changed = parse_time(row.get("updated_at"))
            if since is not None and changed is not None and changed <= since:
                continue
            contact_id = str(row["id"])
            held = self._held.get(contact_id)
            if held is not None and held[0] == row.get("updated_at"):
                out.append({**row, "tags": list(held[1])})
                continue
            self.contact_reads += 1
            try:
                contact = self._call("GET", f"/api/v2/contacts/{contact_id}")
            except ApiNotFound:
                self._held.pop(contact_id, None)
                continue
            if contact.get("updated_at"):
                self._held[contact_id] = (str(contact["updated_at"]), tuple(contact.get("tags") or ()))
            out.append(contact)
        return out

    def _pull_tickets(self, cursor: str | None) -> Iterator[Batch]:
        """Tickets oldest change first, anchored on time rather than on page numbers.

        Offset paging over a list that changes while we read it can skip a ticket (one that moves to the
        end pushes the others back a place), and Freshdesk serves at most ~300 pages. So after each page
        the next request asks again from the newest updated_at seen, page 1; only when a whole page shares
        one updated_at does it go to the next page number. The Link header says whether more exist.
        """
        since = cursor or EPOCH
        number = 1
        ceiling: datetime | None = None
        newest: datetime | None = None
        asked: set[tuple[str, int]] = set()
        versions: set[tuple[Any, Any]] = set()  # (id, updated_at) already yielded: re-reads are dropped
        while True:
            if (since, number) in asked or number > self.ticket_page_limit:
                raise ApiError(NAME, f"ticket list does not advance past updated_since={since} page={number}")
            asked.add((since, number))
            params = {
                "updated_since": since,
                "order_by": "updated_at",
                "order_type": "asc",
                "per_page": self.per_page,
                "page": number,
            }
            page = self._call("GET", "/api/v2/tickets", params=params)
            more = self.tap.next_url() is not None
            if ceiling is None:
                ceiling = self._ceiling()
            last: datetime | None = None
            for item in page:
                changed = parse_time(item.get("updated_at"))
                if changed and (last is None or changed > last):
                    last = changed
            if last and (newest is None or last > newest):
                newest = last
            fresh = [i for i in page if (i.get("id"), i.get("updated_at")) not in versions]
            versions.update((i.get("id"), i.get("updated_at")) for i in fresh)
            yield Batch("tickets", [to_ticket(i) for i in fresh], self._advance(cursor, newest, ceiling))
            if not more or not page:
                return
            if last is not None and _iso(last) != since:
                since, number = _iso(last), 1
            else:
                number += 1

    # the write
    def _has_note(self, ticket_id: str, fresh: Mapping[str, Any], first_line: str) -> bool:
        """Whether a private note of ours (same first line) is already on the ticket."""
        conversations = list(fresh.get("conversations") or [])
        if len(conversations) >= EMBEDDED_CONVERSATIONS:  # maybe cut off: read them all
            conversations = [
                c for page, _ in self._pages(f"/api/v2/tickets/{ticket_id}/conversations", {}) for c in page
            ]
        return any(
            c.get("private") and str(c.get("body_text") or "").strip().startswith(first_line)
            for c in conversations
        )

    def apply(self, ticket: Ticket, decision: Decision) -> ApplyResult:
        """Private note, then priority, group, merged tags and due dates in one PUT.

        Freshdesk's PUT replaces the tag list and has no safe_update, so the ticket is read again right
        before the writes and our tags are merged into what it carries now; an agent's tag added in the few
        milliseconds between that read and our PUT could still be lost (docs/connectors.md). The note goes
        first and the marker tag last: a retry after a failed PUT finds the note (by its first line) and
        does not add it again, and once the marker is on the ticket nothing is written at all. The note's
        POST is never retried by the HTTP client (a timeout may hide a note that was added): the event's
        retry reads the conversations first.
        """
        calls = 0
        if self.marker_tag.lower() in (t.lower() for t in ticket.tags):
            return ApplyResult("skipped", "ticket already carries the routed marker", calls)
        group_id = self.group_id(decision.group) if decision.group else None
        path = f"/api/v2/tickets/{ticket.external_id}"
        calls += 1
        fresh = self._call("GET", path, params={"include": "conversations"})
        current = tuple(fresh.get("tags") or ())
        if self.marker_tag.lower() in (t.lower() for t in current):
            return ApplyResult("skipped", "ticket already carries the routed marker", calls)

        note_added = False
        first_line = decision.note.strip().splitlines()[0] if decision.note.strip() else ""
        if first_line and not self._has_note(ticket.external_id, fresh, first_line):
            calls += 1
            # One attempt only: a POST that timed out may have added the note. The failure goes back to the
            # queue, and the retry's fresh read above finds the note before anything is posted again.
            self._call(
                "POST", f"{path}/notes", json={"body": note_body(decision.note), "private": True}, attempts=1
            )
            note_added = True

        update: dict[str, Any] = {"tags": merge_tags(current, decision.tags)}
        if decision.priority in PRIORITY_TO_FRESHDESK:
            update["priority"] = PRIORITY_TO_FRESHDESK[decision.priority]
        if group_id is not None:
            update["group_id"] = group_id
        update.update(due_dates(decision, parse_time(fresh.get("created_at")), datetime.now(UTC)))
        calls += 1
        answer = self._call("PUT", path, json=update)
        return ApplyResult(
            "applied",
            detail="" if note_added or not first_line else "note was already there",
            calls=calls,
            response={
                "ticket_id": answer.get("id"),
                "priority": PRIORITY_FROM_FRESHDESK.get(answer.get("priority")),
                "group_id": answer.get("group_id"),
                "tags": answer.get("tags"),
                "fr_due_by": answer.get("fr_due_by"),
                "due_by": answer.get("due_by"),
                "updated_at": answer.get("updated_at"),
            },
        )

    # helpdesk-side helpers
    def create_ticket(self, requester_id: str, subject: str, body: str) -> Ticket:
        """Open a ticket for a contact (the demo uses it so that Freshdesk's automation rule fires)."""
        answer = self._call(
            "POST",
            "/api/v2/tickets",
            json={"requester_id": int(requester_id), "subject": subject, "description": body},
        )
        return to_ticket(answer)
