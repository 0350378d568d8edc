"""Zendesk Support: the only module that knows Zendesk's paths and field names.

What it does with the API (see docs/connectors.md):
- pulls users and tickets with the cursor-based incremental exports and organizations with the time-based
  one, resuming from a stored cursor; only end users are customers, deleted and suspended ones inactive;
- reads one ticket, user or organization when a webhook names one we do not know yet (staff: no customer);
- pushes segment tags with update_many jobs, counting a record written only when its result says so;
- routes a ticket with ONE write: PUT /api/v2/tickets/{id} carrying priority, group_id, the merged tag list
  and an internal note, guarded by safe_update so an agent's concurrent change is never overwritten (on a
  409 we read the ticket again and merge anew). The routed marker tag lands in the same write as the note,
  so a repeated delivery sees the marker and adds no second note;
- verifies webhook signatures: base64(HMAC-SHA256(secret, timestamp + raw body)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

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
from connectors.http import ApiConflict, ApiError, HttpClient
from integration.core.models import Customer, Decision, Organization, Ticket, TicketEvent

NAME = "zendesk"
SIGNATURE_HEADER = "x-zendesk-webhook-signature"
TIMESTAMP_HEADER = "x-zendesk-webhook-signature-timestamp"
INVOCATION_HEADER = "x-zendesk-webhook-invocation-id"
EXPORT_PAGE_SIZE = 1000  # the exports' maximum and default page size
START_TIME_LAG = 61  # Zendesk refuses an incremental start_time less than a minute old


# The body the "ticket created" trigger sends (docs/zendesk.md). Zendesk renders placeholders as text.
TRIGGER_BODY = json.dumps(
    {
        "ticket": {
            "id": "{{ticket.id}}",
            "requester_id": "{{ticket.requester.id}}",
            "organization_id": "{{ticket.organization.id}}",
            "tags": "{{ticket.tags}}",
            "priority": "{{ticket.priority}}",
            "via": "{{ticket.via}}",
        }
    },
    indent=2,
)


BATCH_SIZE = 100  # update_many takes at most 100 records
JOB_WAVE = 25  # jobs in flight at once; Zendesk allows 30 queued per account
JOB_TIMEOUT = 300.0


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class UnknownGroup(ApiError):
    """The mapping names a group this Zendesk account does not have."""


def written_records(job: Mapping[str, Any], ids: list[str]) -> set[str]:
    """The ids (of `ids`, in the order they were sent) that a finished bulk job says it wrote.

    Only a result that says so counts: ``"success": true`` and no ``error``. Zendesk marks a failed record
    with ``error`` / ``details`` and sends no ``success`` key at all (recorded: 99 of 100 records of an
    organizations update_many as ``{"index": 1, "error": "OrganizationUpdateFailed", "id": ...}``), and a
    record with no result, or a job that failed as a whole, was not written either. A result names its
    record by ``id``, or only by ``index`` (its position in the request).
    """
    if job.get("status") != "completed":
        return set()
    results = job.get("results")
    if isinstance(results, Mapping):  # the documented whole-job form: {"success": bool}
        return set(ids) if results.get("success") is True and not results.get("error") else set()
    written: set[str] = set()
    for result in results if isinstance(results, list) else []:
        if not isinstance(result, Mapping) or result.get("success") is not True or result.get("error"):
            continue
        if result.get("id") is not None:
            written.add(str(result["id"]))
        elif isinstance(result.get("index"), int) and 0 <= result["index"] < len(ids):
            written.add(ids[result["index"]])
    return written & set(ids)


def job_failures(job: Mapping[str, Any], limit: int = 3) -> str:
    """A short account of a job's failed records for the push report, e.g. "99 record(s) failed:
    6164110666394: OrganizationUpdateFailed (Name: ... has already been taken); ..."."""
    results = job.get("results")
    failures = [
        r for r in (results if isinstance(results, list) else []) if isinstance(r, Mapping) and r.get("error")
    ]
    shown = "; ".join(
        f"{r.get('id', r.get('index'))}: {r.get('error')} ({r.get('details')})" for r in failures[:limit]
    )
    return f"{len(failures)} record(s) failed: {shown[:300]}" if failures else "records without a result"


# -- webhooks: pure functions over the raw body --------------------------------------------------


def sign(secret: str, body: bytes, timestamp: str) -> str:
    """The value Zendesk puts in x-zendesk-webhook-signature."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _parse_timestamp(value: str) -> float:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise WebhookRejected("bad_timestamp", "signature timestamp is not ISO-8601") from e
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: float = 300.0,
) -> None:
    """Raise WebhookRejected unless the delivery is signed with our secret and fresh."""
    signature = headers.get(SIGNATURE_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise WebhookRejected("missing_signature", "missing Zendesk signature headers")
    # The text exactly as Zendesk writes it, never the decoded bytes: base64 ignores the spare bits of
    # the last character, so decoding first would let several spellings of one signature pass (and
    # each would look like a new delivery to a replay check keyed on it). compare_digest on bytes: a
    # header may carry any latin-1 character, which compare_digest refuses in a str.
    expected = sign(secret, body, timestamp)
    if not hmac.compare_digest(signature.encode("utf-8", "replace"), expected.encode()):
        raise WebhookRejected("bad_signature", "signature does not match")
    if abs(now - _parse_timestamp(timestamp)) > tolerance:
        raise WebhookRejected("stale_timestamp", "signature timestamp outside the allowed window")


def _id(value: Any, field: str, required: bool = False) -> str | None:
    if isinstance(value, bool):  # a JSON true is no id, even where the id is optional
        raise WebhookRejected("bad_payload", f"{field} must be a numeric id, got {value!r}", 400)
    return numeric_id(value, field, required=required)


def _tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(str(t) for t in value)
    return ()


def parse_event(headers: Mapping[str, str], body: bytes) -> TicketEvent:
    """Read the ticket reference out of a trigger body or a Zendesk event envelope."""
    data = json_object(body)
    if isinstance(data.get("ticket"), dict):  # our documented trigger template
        ticket = data["ticket"]
        requester = ticket.get("requester_id")
        if requester is None and isinstance(ticket.get("requester"), dict):
            requester = ticket["requester"].get("id")
        organization = ticket.get("organization_id")
        if organization is None and isinstance(ticket.get("organization"), dict):
            organization = ticket["organization"].get("id")
        fallback_id = None
    elif isinstance(data.get("detail"), dict) and str(data.get("type", "")).startswith(
        "zen:event-type:ticket"
    ):  # a Zendesk event subscription
        ticket = data["detail"]
        requester = ticket.get("requester_id")
        organization = ticket.get("organization_id")
        fallback_id = data.get("id")
    else:
        raise WebhookRejected("bad_payload", "body has no 'ticket' object", 400)
    ticket_id = _id(ticket.get("id"), "ticket.id", required=True)
    assert ticket_id is not None  # noqa: S101 - required=True guarantees it
    event_id = headers.get(INVOCATION_HEADER) or fallback_id or f"ticket:{ticket_id}"
    timestamp = headers.get(TIMESTAMP_HEADER)
    return TicketEvent(
        source=NAME,
        # backslashreplace: a lone surrogate ("\ud800") from the JSON would make SQLite refuse the row
        event_id=str(event_id).encode("utf-8", "backslashreplace").decode()[:200],
        ticket_id=ticket_id,
        requester_id=_id(requester, "ticket.requester_id"),
        organization_id=_id(organization, "ticket.organization_id"),
        tags=_tags(ticket.get("tags")),
        replay_key=replay_key(timestamp, body) if timestamp and headers.get(SIGNATURE_HEADER) else None,
    )


def replay_key(timestamp: str, body: bytes) -> str:
    """What a delivery's signature covers (timestamp + body), as a digest: the same signed delivery sent
    again under a new invocation id (an unsigned header) has the same key, and the queue drops it.

    Zendesk's own retries re-sign with a new timestamp and keep the invocation id, so they are caught
    by the id instead. Two deliveries of one webhook with the same body in the same second share a key
    and are one delivery to us: they would route the same ticket the same way.
    """
    return "sig:" + hashlib.sha256(timestamp.encode("utf-8", "replace") + b"\n" + body).hexdigest()[:32]


# -- translation from Zendesk JSON to our records ---------------------------------------------------


CUSTOMER_ROLE = "end-user"  # agents and admins are users too, but only end users are customers


def is_customer(user: Mapping[str, Any]) -> bool:
    """Whether a user is one of the account's customers (an end user) rather than staff."""
    return user.get("role") == CUSTOMER_ROLE


def to_customer(user: Mapping[str, Any]) -> Customer:
    """A user as our customer record. Zendesk keeps deleted users with ``active: false`` (760 of 1,000
    in a recorded export) and suspended ones with ``suspended: true``: neither can raise tickets, so both
    are inactive (kept for their tickets, never segmented or tagged)."""
    return Customer(
        source=NAME,
        external_id=str(user["id"]),
        email=user.get("email"),
        name=user.get("name"),
        organization_id=optional_str(user.get("organization_id")),
        tags=tuple(user.get("tags") or ()),
        created_at=parse_time(user.get("created_at")),
        updated_at=parse_time(user.get("updated_at")),
        attributes={k: custom_value(v) for k, v in (user.get("user_fields") or {}).items()},
        active=user.get("active") is not False and not user.get("suspended"),
    )


def to_organization(org: Mapping[str, Any]) -> Organization:
    return Organization(
        source=NAME,
        external_id=str(org["id"]),
        name=org.get("name"),
        domains=tuple(org.get("domain_names") or ()),
        tags=tuple(org.get("tags") or ()),
        created_at=parse_time(org.get("created_at")),
        updated_at=parse_time(org.get("updated_at")),
        attributes={k: custom_value(v) for k, v in (org.get("organization_fields") or {}).items()},
    )


def _minutes(value: Any) -> float | None:
    """A metric set's ``{"calendar": 90, "business": 30}``: we keep calendar minutes."""
    minutes = value.get("calendar") if isinstance(value, Mapping) else None
    return float(minutes) if isinstance(minutes, int | float) and not isinstance(minutes, bool) else None


def to_ticket(ticket: Mapping[str, Any], metrics: Mapping[str, Any] | None = None) -> Ticket:
    """``metrics``: the ticket's metric set (the ``include=metric_sets`` sideload), for service measures."""
    rating = ticket.get("satisfaction_rating") or {}
    metrics = metrics or {}
    return Ticket(
        source=NAME,
        external_id=str(ticket["id"]),
        requester_id=optional_str(ticket.get("requester_id")),
        organization_id=optional_str(ticket.get("organization_id")),
        subject=ticket.get("subject"),
        status=ticket.get("status"),
        priority=ticket.get("priority"),
        group_id=optional_str(ticket.get("group_id")),
        tags=tuple(ticket.get("tags") or ()),
        created_at=parse_time(ticket.get("created_at")),
        updated_at=parse_time(ticket.get("updated_at")),
        satisfaction=rating.get("score") if isinstance(rating, dict) else None,
        reopens=int(metrics.get("reopens") or 0),
        updated_stamp=ticket.get("updated_at"),
        first_response_minutes=_minutes(metrics.get("reply_time_in_minutes")),
        resolution_minutes=_minutes(metrics.get("full_resolution_time_in_minutes")),
        solved_at=parse_time(metrics.get("solved_at")),
    )


# -- the connector ------------------------------------------------------------------------------------


class ZendeskConnector:
    name = NAME

    def __init__(
        self,
        base_url: str,
        email: str,
        token: str,
        webhook_secret: str | None = None,
        *,
        webhook_tolerance: float = 300.0,
        marker_tag: str = "tierdesk_routed",
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
        self.marker_tag = marker_tag
        self._groups: dict[str, int] | None = None

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

    def groups(self, refresh: bool = False) -> dict[str, int]:
        """Group names to ids, read once and cached: routing names groups, Zendesk wants ids."""
        if self._groups is None or refresh:
            groups: dict[str, int] = {}
            path: str | None = "/api/v2/groups"
            params: dict[str, Any] | None = {"page[size]": 100}
            seen: set[str] = set()
            while path:
                page = self.http.request("GET", path, params=params)
                for group in page.get("groups", []):
                    if not group.get("deleted"):
                        groups[group["name"]] = int(group["id"])
                path = (page.get("links") or {}).get("next") if page.get("meta", {}).get("has_more") else None
                if path in seen:
                    raise ApiError(NAME, f"pagination repeated {path}")
                if path:
                    seen.add(path)
                params = None
            self._groups = groups
        return self._groups

    def group_id(self, name: str) -> int:
        groups = self.groups()
        if name not in groups:
            groups = self.groups(refresh=True)
        if name not in groups:
            known = ", ".join(sorted(groups)) or "none"
            raise UnknownGroup(
                NAME,
                f"group {name!r} named in the mapping does not exist in Zendesk (has: {known})",
            )
        return groups[name]

    def check_groups(self, names: set[str]) -> None:
        """Fail early, naming every mapped group Zendesk lacks."""
        groups = self.groups(refresh=True)
        missing = sorted(n for n in names if n not in groups)
        if missing:
            known = ", ".join(sorted(groups)) or "none"
            raise UnknownGroup(
                NAME,
                f"groups named in the mapping do not exist in Zendesk: {', '.join(missing)} (has: {known})",
            )

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
        seen: set[str] = set()
        while True:
            page = self.http.get(path, **params)
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
            if page.get("end_of_stream") or not after:
                return
            if after in seen:
                raise ApiError(NAME, f"incremental {stream} export repeated cursor {after}")
            seen.add(after)
            params = {"per_page": self.export_page_size, "cursor": after, **extra}

    def _pull_time_based(self, stream: str, cursor: str | None) -> Iterator[Batch]:
        start = self._start_time(cursor)
        seen: set[int] = set()
        while True:
            page = self.http.get(
                f"/api/v2/incremental/{stream}", start_time=start, per_page=self.export_page_size
            )
            records = [to_organization(item) for item in page.get(stream, [])]
            end_time = page.get("end_time")
            yield Batch(stream, records, str(end_time) if end_time is not None else cursor)
            if page.get("end_of_stream") or end_time is None:
                return
            if end_time in seen:
                raise ApiError(NAME, f"incremental {stream} export repeated end_time {end_time}")
            seen.add(end_time)
            start = min(int(end_time), int(time.time()) - START_TIME_LAG)

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
    ) -> ApplyResult:
        """Change an already routed ticket (a re-route), merging tags and guarding with safe_update."""
        group_id = self.group_id(group) if group else None
        calls = 0
        for _attempt in range(3):
            tags = [t for t in ticket.tags if t not in remove_tags]
            tags += [t for t in add_tags if t not in tags]
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
        from connectors import zendesk_setup

        result = zendesk_setup.run(self, endpoint=endpoint, slas=[], name=title)
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
