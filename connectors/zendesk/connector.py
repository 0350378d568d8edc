"""Zendesk Support: the client calls, the only code that knows Zendesk's paths.

What it does with the API (see docs/connectors.md):
- pulls users and tickets with the cursor-based incremental exports and organizations with the time-based
  one, resuming from a stored cursor; only end users are customers, deleted and suspended ones inactive;
- reads one ticket, user or organization when a webhook names one we do not know yet (staff: no customer);
- pushes segment tags with update_many jobs, counting a record written only when its result says so;
- routes a ticket with ONE write: PUT /api/v2/tickets/{id} carrying priority, group_id, the merged tag list
  and an internal note, guarded by safe_update so an agent's concurrent change is never overwritten (on a
  409 we read the ticket again and merge anew). The routed marker tag lands in the same write as the note,
  so a repeated delivery sees the marker and adds no second note;
- verifies webhook signatures: base64(HMAC-SHA256(secret, timestamp + raw body)) (webhooks.py).

Records are translated in records.py, webhooks verified and parsed in webhooks.py, and the Zendesk side
of tierdesk (webhook, trigger, SLA policies) set up in setup.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
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
)
from connectors.http import ApiConflict, ApiError, HttpClient
from connectors.pagination import follow_cursor, follow_links
from connectors.zendesk.records import (
    NAME,
    is_customer,
    job_failures,
    to_customer,
    to_organization,
    to_ticket,
    written_records,
)
from connectors.zendesk.setup import run as run_setup
from connectors.zendesk.webhooks import parse_event, verify_signature
from integration.core.models import Customer, Decision, Organization, Ticket, TicketEvent

EXPORT_PAGE_SIZE = 1000  # the exports' maximum and default page size
START_TIME_LAG = 61  # Zendesk refuses an incremental start_time less than a minute old


BATCH_SIZE = 100  # update_many takes at most 100 records
JOB_WAVE = 25  # jobs in flight at once; Zendesk allows 30 queued per account
JOB_TIMEOUT = 300.0


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class UnknownGroup(base.UnknownGroup):
    """The mapping names a group this Zendesk account does not have."""


class ZendeskConnector(GroupsByName, Source, Helpdesk, TagWriter):
    name = NAME
    title = "Zendesk"
    unknown_group = UnknownGroup
    streams = base.STREAMS
    pull_only = False
    snapshot = False
    tag_kinds = ("users", "organizations")

    def __init__(
        self,
        base_url: str,
        email: str,
        token: str,
        webhook_secret: str | None = None,
        *,
        webhook_tolerance: float = 300.0,
        marker_tag: Marker = base.DEFAULT_MARKER,
        timeout: tuple[float, float] = (3.05, 10.0),
        max_attempts: int = 4,
        backoff_initial: float = 0.5,
        backoff_max: float = 20.0,
        export_page_size: int = EXPORT_PAGE_SIZE,
    ) -> None:
        if not 1 <= export_page_size <= EXPORT_PAGE_SIZE:
            raise ValueError(f"export_page_size must be 1..{EXPORT_PAGE_SIZE}, got {export_page_size}")
        self.export_page_size = export_page_size
        self.http = HttpClient(
            NAME,
            base_url,
            auth=(f"{email}/token", token),
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )
        self.webhook_secret = webhook_secret
        self.webhook_tolerance = webhook_tolerance
        self._marker = marker_reader(marker_tag)

    @property
    def marker_tag(self) -> str:
        return self._marker()

    # webhooks
    def verify_webhook(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        if not self.webhook_secret:
            return  # only reachable with the explicit insecure development flag
        verify_signature(self.webhook_secret, headers, body, now, self.webhook_tolerance)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TicketEvent:
        return parse_event(headers, body)

    # reads
    def get_ticket(self, ticket_id: str) -> Ticket:
        return to_ticket(self.http.get(f"/api/v2/tickets/{ticket_id}")["ticket"])

    def get_customer(self, external_id: str) -> Customer | None:
        """The user as a customer; None when they are staff (an agent or admin requested the ticket)."""
        user = self.http.get(f"/api/v2/users/{external_id}")["user"]
        return to_customer(user) if is_customer(user) else None

    def get_organization(self, external_id: str) -> Organization:
        return to_organization(self.http.get(f"/api/v2/organizations/{external_id}")["organization"])

    def _read_groups(self) -> dict[str, int]:
        """Group names to ids (see GroupsByName): routing names groups, Zendesk wants ids."""
        groups: dict[str, int] = {}

        def fetch(path: str, params: Mapping[str, Any] | None) -> tuple[dict[str, Any], str | None]:
            page = self.http.request("GET", path, params=params)
            more = page.get("meta", {}).get("has_more")
            return page, (page.get("links") or {}).get("next") if more else None

        pages = follow_links(
            fetch, "/api/v2/groups", {"page[size]": 100}, lambda p: ApiError(NAME, f"pagination repeated {p}")
        )
        for page, _ in pages:
            for group in page.get("groups", []):
                if not group.get("deleted"):
                    groups[group["name"]] = int(group["id"])
        return groups

    # incremental pulls
    def pull(self, stream: str, cursor: str | None) -> Iterator[Batch]:
        if stream == "organizations":
            yield from self._pull_time_based("organizations", cursor)
        elif stream in ("users", "tickets"):
            yield from self._pull_cursor_based(stream, cursor)
        else:
            raise ValueError(f"zendesk has no stream {stream!r}")

    def _start_time(self, cursor: str | None) -> int:
        latest = int(time.time()) - START_TIME_LAG
        return min(int(cursor), latest) if cursor else 0

    def _pull_cursor_based(self, stream: str, cursor: str | None) -> Iterator[Batch]:
        path = f"/api/v2/incremental/{stream}/cursor"
        # tickets: sideload each ticket's metric set (first reply and resolution times, reopens)
        extra: dict[str, Any] = {"include": "metric_sets"} if stream == "tickets" else {}
        params: dict[str, Any] = {"per_page": self.export_page_size, **extra}
        if cursor and cursor.startswith("cursor:"):
            params["cursor"] = cursor.removeprefix("cursor:")
        else:
            params["start_time"] = self._start_time(cursor)

        def fetch(after: str | None) -> dict[str, Any]:
            if after is None:
                return self.http.get(path, **params)
            return self.http.get(path, **{"per_page": self.export_page_size, "cursor": after, **extra})

        def advance(page: dict[str, Any]) -> str | None:
            after = page.get("after_cursor")
            return None if page.get("end_of_stream") or not after else after

        def repeated(after: str) -> ApiError:
            return ApiError(NAME, f"incremental {stream} export repeated cursor {after}")

        for page in follow_cursor(fetch, advance, repeated):
            after = page.get("after_cursor")
            # staff are no customers; inactive end users are kept, marked inactive (to_customer)
            items = [i for i in page.get(stream, []) if stream != "users" or is_customer(i)]
            if stream == "users":
                records: list[Any] = [to_customer(item) for item in items]
            else:
                sets = page.get("metric_sets") or []
                metrics = {m.get("ticket_id"): m for m in sets if isinstance(m, dict)}
                records = [to_ticket(item, metrics.get(item.get("id"))) for item in items]
            next_cursor = f"cursor:{after}" if after else cursor
            yield Batch(stream, records, next_cursor)

    def _pull_time_based(self, stream: str, cursor: str | None) -> Iterator[Batch]:
        def fetch(end_time: int | None) -> dict[str, Any]:
            if end_time is None:
                start = self._start_time(cursor)
            else:
                start = min(int(end_time), int(time.time()) - START_TIME_LAG)
            return self.http.get(
                f"/api/v2/incremental/{stream}", start_time=start, per_page=self.export_page_size
            )

        def advance(page: dict[str, Any]) -> int | None:
            return None if page.get("end_of_stream") else page.get("end_time")

        def repeated(end_time: int) -> ApiError:
            return ApiError(NAME, f"incremental {stream} export repeated end_time {end_time}")

        for page in follow_cursor(fetch, advance, repeated):
            records = [to_organization(item) for item in page.get(stream, [])]
            end_time = page.get("end_time")
            yield Batch(stream, records, str(end_time) if end_time is not None else cursor)

    # the write
    def apply(self, ticket: Ticket, decision: Decision) -> ApplyResult:
        """Set priority, group, tags and the internal note in one safe update."""
        calls = 0
        group_id = self.group_id(decision.group) if decision.group else None
        for _attempt in range(3):
            if self.marker_tag in ticket.tags:
                return ApplyResult("skipped", "ticket already carries the routed marker", calls)
            merged = list(dict.fromkeys([*ticket.tags, *decision.tags]))
            update: dict[str, Any] = {
                "tags": merged,
                "comment": {"body": decision.note, "public": False},
                "safe_update": True,
                "updated_stamp": ticket.updated_stamp,
            }
            if decision.priority:
                update["priority"] = decision.priority
            if group_id is not None:
                update["group_id"] = group_id
            try:
                calls += 1
                answer = self.http.put(f"/api/v2/tickets/{ticket.external_id}", {"ticket": update})
            except ApiConflict:
                calls += 1
                ticket = self.get_ticket(ticket.external_id)  # an agent got there first: merge again
                continue
            updated = answer.get("ticket", {})
            return ApplyResult(
                "applied",
                calls=calls,
                response={
                    "ticket_id": updated.get("id"),
                    "priority": updated.get("priority"),
                    "group_id": updated.get("group_id"),
                    "tags": updated.get("tags"),
                    "updated_at": updated.get("updated_at"),
                },
            )
        raise ApiConflict(NAME, f"ticket {ticket.external_id} kept changing during routing", 409)

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
        """Change an already routed ticket (a re-route), merging tags and guarding with safe_update.

        The SLA targets are not written: Zendesk's SLA policies follow tierdesk's SLA tag."""
        group_id = self.group_id(group) if group else None
        calls = 0
        for _attempt in range(3):
            tags = changed_tags(ticket.tags, add_tags, remove_tags)
            update: dict[str, Any] = {"safe_update": True, "updated_stamp": ticket.updated_stamp}
            if tags != list(ticket.tags):
                update["tags"] = tags
            if priority and priority != ticket.priority:
                update["priority"] = priority
            if group_id is not None and str(group_id) != ticket.group_id:
                update["group_id"] = group_id
            if len(update) == 2:
                return ApplyResult("skipped", "nothing to change", calls)
            if note:
                update["comment"] = {"body": note, "public": False}
            try:
                calls += 1
                answer = self.http.put(f"/api/v2/tickets/{ticket.external_id}", {"ticket": update})
            except ApiConflict:
                calls += 1
                ticket = self.get_ticket(ticket.external_id)
                continue
            updated = answer.get("ticket", {})
            return ApplyResult(
                "applied",
                calls=calls,
                response={k: updated.get(k) for k in ("id", "priority", "group_id", "tags", "updated_at")},
            )
        raise ApiConflict(NAME, f"ticket {ticket.external_id} kept changing during re-routing", 409)

    def update_customer_attributes(self, external_id: str, attributes: Mapping[str, Any]) -> Customer:
        """Write custom user fields, as a CRM integration or an admin would (the demo changes a customer)."""
        answer = self.http.put(f"/api/v2/users/{external_id}", {"user": {"user_fields": dict(attributes)}})
        return to_customer(answer["user"])

    # segment tags on users and organizations
    def push_tags(self, kind: str, changes: list[TagChange]) -> PushReport:
        """Add and remove tags on many users or organizations, 100 per update_many job.

        Each record gets its own additional_tags / remove_tags, so other tags on it are never touched.
        Jobs are submitted in waves (Zendesk queues at most 30 per account) and polled with show_many.
        """
        if kind not in ("users", "organizations"):
            raise ValueError(f"cannot push tags to {kind!r}")
        report = PushReport()
        batches = [changes[i : i + BATCH_SIZE] for i in range(0, len(changes), BATCH_SIZE)]
        for wave_start in range(0, len(batches), JOB_WAVE):
            jobs: dict[str, list[TagChange]] = {}
            for batch in batches[wave_start : wave_start + JOB_WAVE]:
                records = [
                    {"id": int(c.external_id), "additional_tags": list(c.add), "remove_tags": list(c.remove)}
                    for c in batch
                ]
                body = {kind: records}
                report.write_calls += 1
                job = self.http.put(f"/api/v2/{kind}/update_many", body)["job_status"]
                jobs[str(job["id"])] = batch
            self._wait_for_jobs(jobs, report)
        return report

    def _wait_for_jobs(self, jobs: dict[str, list[TagChange]], report: PushReport) -> None:
        pending = dict(jobs)
        delay = 0.05
        deadline = time.monotonic() + JOB_TIMEOUT
        while pending:
            if time.monotonic() > deadline:
                for batch in pending.values():
                    report.failed.extend(c.external_id for c in batch)
                report.errors.append(f"{len(pending)} job(s) still running after {JOB_TIMEOUT:.0f} s")
                return
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            for ids in _chunks(list(pending), 100):
                report.job_polls += 1
                answer = self.http.get("/api/v2/job_statuses/show_many", ids=",".join(ids))
                for job in answer.get("job_statuses", []):
                    job_id = str(job["id"])
                    if job_id not in pending or job.get("status") not in ("completed", "failed"):
                        continue
                    batch = pending.pop(job_id)
                    written = written_records(job, [c.external_id for c in batch])
                    if job.get("status") == "failed":
                        report.errors.append(f"job {job_id} failed: {job.get('message')}")
                    elif len(written) < len(batch):
                        report.errors.append(f"job {job_id}: {job_failures(job)}")
                    for change in batch:
                        (report.succeeded if change.external_id in written else report.failed).append(
                            change.external_id
                        )

    # helpdesk-side setup
    def install_webhook(self, endpoint: str, *, title: str = "tierdesk") -> tuple[str, str]:
        """Create (or find) the webhook and its "ticket created" trigger; returns (id, secret).

        The same code path as `tierdesk setup zendesk`, without SLA policies.
        """
        result = run_setup(self, endpoint=endpoint, slas=[], name=title)
        if not (result.webhook_id and result.secret):
            raise ApiError(NAME, "the webhook was neither found nor created")
        return result.webhook_id, result.secret

    def create_ticket(self, requester_id: str, subject: str, body: str) -> Ticket:
        """Open a ticket as an end user would (the demo uses it to make Zendesk fire webhooks)."""
        answer = self.http.post(
            "/api/v2/tickets",
            {
                "ticket": {
                    "subject": subject,
                    "comment": {"body": body},
                    "requester_id": int(requester_id),
                }
            },
        )
        return to_ticket(answer["ticket"])
