"""Freshdesk: the client calls, the only code that knows Freshdesk's paths.

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
- re-routes a ticket whose customer's segments moved (``update_routing``): the same note and PUT;
- verifies webhooks, which Freshdesk does not sign: a shared secret in a header the automation rule sets,
  or HTTP basic auth, compared in constant time (webhooks.py).

Records are translated in records.py; the Link and rate-limit headers are read in client.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors import base
from connectors.base import (
    ApplyResult,
    Batch,
    GroupsByName,
    Helpdesk,
    Marker,
    PushReport,
    Source,
    TagChange,
    TagWriter,
    changed_tags,
    marker_reader,
    parse_time,
)
from connectors.freshdesk.client import ResponseTap
from connectors.freshdesk.records import (
    NAME,
    PRIORITY_FROM_FRESHDESK,
    PRIORITY_TO_FRESHDESK,
    due_dates,
    iso,
    merge_tags,
    note_body,
    to_customer,
    to_organization,
    to_ticket,
)
from connectors.freshdesk.webhooks import parse_event, verify_secret
from connectors.http import ApiError, ApiInvalid, ApiNotFound, HttpClient
from connectors.pagination import anchored_pages, follow_links
from integration.core.models import Customer, Decision, Organization, Ticket, TicketEvent

PER_PAGE = 100  # Freshdesk's maximum
TICKET_PAGE_LIMIT = 300  # Freshdesk serves no deeper page of the ticket list
EPOCH = "2000-01-01T00:00:00Z"  # "everything": without updated_since the list shows only 30 days
CURSOR_OVERLAP = timedelta(seconds=60)  # never move a cursor past "pull started" minus this
EMBEDDED_CONVERSATIONS = 10  # include=conversations returns at most the oldest ten


def _last_change(page: list[dict[str, Any]]) -> datetime | None:
    """The newest updated_at on a page of records."""
    last: datetime | None = None
    for item in page:
        changed = parse_time(item.get("updated_at"))
        if changed and (last is None or changed > last):
            last = changed
    return last


def _routed(answer: Mapping[str, Any]) -> dict[str, Any]:
    """What a routing PUT left on the ticket, as the decision records it."""
    return {
        "ticket_id": answer.get("id"),
        "priority": PRIORITY_FROM_FRESHDESK.get(answer.get("priority")),
        "group_id": answer.get("group_id"),
        "tags": answer.get("tags"),
        "fr_due_by": answer.get("fr_due_by"),
        "due_by": answer.get("due_by"),
        "updated_at": answer.get("updated_at"),
    }


class UnknownGroup(base.UnknownGroup):
    """The mapping names a group this Freshdesk account does not have."""


class FreshdeskConnector(GroupsByName, Source, Helpdesk, TagWriter):
    name = NAME
    title = "Freshdesk"
    unknown_group = UnknownGroup
    streams = base.STREAMS
    pull_only = False
    snapshot = False
    # Freshdesk companies have no tags, and contacts have no bulk update: one read-merge-write each.
    tag_kinds = ("users",)

    def __init__(
        self,
        base_url: str,
        api_key: str,
        webhook_secret: str | None = None,
        *,
        marker_tag: Marker = base.DEFAULT_MARKER,
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
        self.tap = ResponseTap()
        self.http.session.hooks["response"].append(self.tap)
        self.webhook_secret = webhook_secret
        self._marker = marker_reader(marker_tag)
        self.per_page = per_page
        self.ticket_page_limit = ticket_page_limit
        # Contact versions we hold that a contact pull can list again: id -> (updated_at, tags) of each
        # contact read or written (by the tag push) since the contacts cursor. A listed row with the same
        # updated_at is one we have; a change by anyone else moves updated_at and is read. Entries go once
        # the cursor passes them, so this holds about a minute of changes plus the last push.
        self._held: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.contact_reads = 0  # GET /contacts/{id} made by pulls, for sync reports and benchmarks

    @property
    def marker_tag(self) -> str:
        return self._marker()

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
                tags = changed_tags(current, change.add, change.remove)
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

        def fetch(url: str, query: Mapping[str, Any] | None) -> tuple[list[dict[str, Any]], str | None]:
            page = self._call("GET", url, params=query)
            if not isinstance(page, list):
                raise ApiError(NAME, f"GET {path}: expected a JSON list, got {type(page).__name__}")
            return page, self.tap.next_url()  # read now: the caller may make other calls meanwhile

        def repeated(url: str) -> ApiError:
            return ApiError(NAME, f"pagination repeated {url}")

        # the next link carries every parameter
        for page, following in follow_links(fetch, path, {**params, "per_page": self.per_page}, repeated):
            yield page, following is not None

    def _read_groups(self) -> dict[str, int]:
        """Group names to ids (see GroupsByName): routing names groups, Freshdesk wants ids."""
        return {g["name"]: int(g["id"]) for page, _ in self._pages("/api/v2/groups", {}) for g in page}

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
        return iso(candidate)

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
        ceiling: datetime | None = None
        newest: datetime | None = None
        versions: set[tuple[Any, Any]] = set()  # (id, updated_at) already yielded: re-reads are dropped

        def fetch(since: str, number: int) -> tuple[list[dict[str, Any]], bool]:
            params = {
                "updated_since": since,
                "order_by": "updated_at",
                "order_type": "asc",
                "per_page": self.per_page,
                "page": number,
            }
            page = self._call("GET", "/api/v2/tickets", params=params)
            return page, self.tap.next_url() is not None

        def stuck(since: str, number: int) -> ApiError:
            return ApiError(NAME, f"ticket list does not advance past updated_since={since} page={number}")

        def anchor(page: list[dict[str, Any]]) -> str | None:
            last = _last_change(page)
            return iso(last) if last is not None else None

        for page in anchored_pages(fetch, cursor or EPOCH, anchor, self.ticket_page_limit, stuck):
            if ceiling is None:
                ceiling = self._ceiling()
            last = _last_change(page)
            if last and (newest is None or last > newest):
                newest = last
            fresh = [i for i in page if (i.get("id"), i.get("updated_at")) not in versions]
            versions.update((i.get("id"), i.get("updated_at")) for i in fresh)
            yield Batch("tickets", [to_ticket(i) for i in fresh], self._advance(cursor, newest, ceiling))

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
            response=_routed(answer),
        )

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
        """Change an already routed ticket (a re-route): a private note, then priority, group, tags and
        due dates in one PUT, as `apply` routes it.

        `ticket` is as the caller has just read it: Freshdesk has no safe_update and its PUT replaces the
        tag list, so our change is merged into the tags the ticket carries now (ignoring case, as Freshdesk
        does). The note is posted once, never retried by the HTTP client (a timeout may hide a note that
        was added). Freshdesk resets the due dates to its own policy when the priority changes, so when the
        mapping gives the ticket's SLA targets they are written again with every change (counted from the
        ticket's creation, like `apply`); without targets Freshdesk's own policy decides.
        """
        group_id = self.group_id(group) if group else None
        tags = changed_tags(ticket.tags, add_tags, remove_tags, fold=True)
        update: dict[str, Any] = {}
        if tags != list(ticket.tags):
            update["tags"] = tags
        if priority in PRIORITY_TO_FRESHDESK and priority != ticket.priority:
            update["priority"] = PRIORITY_TO_FRESHDESK[priority]
        if group_id is not None and str(group_id) != ticket.group_id:
            update["group_id"] = group_id
        if not update:
            return ApplyResult("skipped", "nothing to change")
        targets = Decision(
            first_response_minutes=first_response_minutes, resolution_minutes=resolution_minutes
        )
        update.update(due_dates(targets, ticket.created_at, datetime.now(UTC)))
        path = f"/api/v2/tickets/{ticket.external_id}"
        calls = 0
        if note.strip():
            calls += 1
            self._call("POST", f"{path}/notes", json={"body": note_body(note), "private": True}, attempts=1)
        calls += 1
        answer = self._call("PUT", path, json=update)
        return ApplyResult("applied", calls=calls, response=_routed(answer))

    # helpdesk-side helpers
    def create_ticket(self, requester_id: str, subject: str, body: str) -> Ticket:
        """Open a ticket for a contact (the demo uses it so that Freshdesk's automation rule fires)."""
        answer = self._call(
            "POST",
            "/api/v2/tickets",
            json={"requester_id": int(requester_id), "subject": subject, "description": body},
        )
        return to_ticket(answer)
