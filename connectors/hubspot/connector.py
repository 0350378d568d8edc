"""HubSpot CRM (v3): the client calls, the only code that knows HubSpot's paths.

A pull-only source: it enriches helpdesk customers, it never routes tickets (no webhooks, no apply).

What it does with the API (docs/connectors.md, "HubSpot"):
- pulls companies (``organizations``), contacts (``users``) and deals (``purchases``) incrementally with the
  search API: ``hs_lastmodifieddate`` (``lastmodifieddate`` for contacts) >= the stored cursor, sorted
  ascending, 200 per page, paged with ``after``. Search answers at most 10,000 results per query, so
  before a page would pass that cap the pull starts a new query ("window") at the last modified date it
  has seen. The cursor is the newest modified date saved (epoch ms); the next pull starts a minute before
  it, because search indexes writes a few seconds late;
- reads each page of deals' contacts and companies through the v4 associations batch API (search results
  carry no associations). A closed-won deal (``hs_is_closed_won``, or a won ``dealstage``) becomes a
  Purchase of its amount on its close date for every associated contact and company; the store turns
  those into revenue_12m, lifetime_value, purchases_12m and last_purchase_days;
- writes segments back (`push_segments`) into one custom multi-select enumeration property on contacts
  and companies (created, or given new options, when needed) with batch updates of 100;
- authenticates with a private app's access token (``Authorization: Bearer``);
- on a 429 (HubSpot sends no Retry-After) waits out the window its X-HubSpot-RateLimit-Interval-Milliseconds
  header names, 10 seconds when it names none.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import requests

from connectors.base import Batch, PushReport, SegmentWriter, Source
from connectors.http import ApiError, ApiNotFound, HttpClient
from connectors.hubspot.records import (
    DEFAULT_PROPERTY,
    NAME,
    millis,
    to_customer,
    to_organization,
    to_purchase,
)
from connectors.pagination import LoopGuard, follow_cursor
from integration.core import keys
from integration.core.models import Customer, Organization, Purchase

log = logging.getLogger("tierdesk.hubspot")

DEFAULT_URL = "https://api.hubapi.com"
PAGE_SIZE = 200  # the search API's maximum
SEARCH_CAP = 10_000  # results one search query can page through
LOOKBACK_MS = 60_000  # search indexes writes a few seconds late: re-read the last minute before the cursor
RATE_WINDOW = 10.0  # seconds; HubSpot's burst limits are per rolling 10 seconds
BATCH_SIZE = 100  # inputs per batch update
WON_STAGES = frozenset({"closedwon"})

STREAMS = ("organizations", "users", "purchases")
OBJECTS = {"organizations": "companies", "users": "contacts", "purchases": "deals"}
MODIFIED = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
PROPERTIES = {
    "contacts": (
        "email", "firstname", "lastname", "lifecyclestage", "associatedcompanyid", "createdate",
        "lastmodifieddate",
    ),
    "companies": (
        "name", "domain", "industry", "numberofemployees", "lifecyclestage", "createdate",
        "hs_lastmodifieddate",
    ),
    "deals": (
        "amount", "closedate", "dealstage", "pipeline", "hs_is_closed_won", "createdate",
        "hs_lastmodifieddate",
    ),
}  # fmt: skip
PROPERTY_GROUPS = {"contacts": "contactinformation", "companies": "companyinformation"}


def rate_limit_wait(response: requests.Response) -> float:
    """Seconds to wait on a 429: the rate-limit window HubSpot's headers name (it sends no Retry-After)."""
    headers = response.headers
    if headers.get("X-HubSpot-RateLimit-Daily-Remaining") == "0":
        log.warning("hubspot.daily_limit_reached", extra={"daily": headers.get("X-HubSpot-RateLimit-Daily")})
    interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
    if interval:
        try:
            return max(0.0, int(interval) / 1000)
        except ValueError:
            pass
    if headers.get("X-HubSpot-RateLimit-Secondly"):
        return 1.0  # the older per-second policy
    return RATE_WINDOW


def _next_after(page: Mapping[str, Any]) -> int | None:
    """Where the next page of a search starts (``paging.next.after``); None on the last page."""
    after = ((page.get("paging") or {}).get("next") or {}).get("after")
    return int(after) if after else None


# -- the connector ------------------------------------------------------------------------------------


class HubSpotConnector(Source, SegmentWriter):
    """Pull-only CRM source: no webhooks, no ticket writes; `push_segments` for the scheduler."""

    name = NAME
    streams = STREAMS
    pull_only = True
    snapshot = False
    tag_kinds = ("users", "organizations")

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_URL,
        *,
        segment_property: str = DEFAULT_PROPERTY,
        won_stages: Sequence[str] = tuple(WON_STAGES),
        page_size: int = PAGE_SIZE,
        search_cap: int = SEARCH_CAP,
        timeout: tuple[float, float] = (3.05, 10.0),
        max_attempts: int = 4,
        backoff_initial: float = 0.5,
        backoff_max: float = 20.0,
    ) -> None:
        self.http = HttpClient(
            NAME,
            base_url,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            rate_limit_wait=rate_limit_wait,
        )
        self.segment_property = segment_property
        self.won_stages = frozenset(won_stages)
        self.page_size = min(page_size, PAGE_SIZE)
        self.search_cap = search_cap

    # not a helpdesk: the webhook gate answers 404 for it
    # reads
    def get_customer(self, external_id: str) -> Customer:
        props = ",".join((*PROPERTIES["contacts"], self.segment_property))
        answer = self.http.get(f"/crm/v3/objects/contacts/{external_id}", properties=props)
        return to_customer(answer, self.segment_property)

    def get_organization(self, external_id: str) -> Organization:
        props = ",".join((*PROPERTIES["companies"], self.segment_property))
        answer = self.http.get(f"/crm/v3/objects/companies/{external_id}", properties=props)
        return to_organization(answer, self.segment_property)

    def estimate(self, stream: str, cursor: str | None) -> int | None:
        """How many records a pull from `cursor` will read (one search call), for a progress bar."""
        object_type = OBJECTS.get(stream)
        if object_type is None:
            return None
        body = {**self._search_body(object_type, self._since(cursor)), "limit": 1}
        return int(self.http.post(f"/crm/v3/objects/{object_type}/search", body).get("total") or 0)

    # incremental pulls
    def pull(self, stream: str, cursor: str | None) -> Iterator[Batch]:
        object_type = OBJECTS.get(stream)
        if object_type is None:
            raise ValueError(f"hubspot has no stream {stream!r}")
        for results, next_cursor in self._search_windows(object_type, cursor):
            if object_type == "contacts":
                records: list[Any] = [to_customer(r, self.segment_property) for r in results]
            elif object_type == "companies":
                records = [to_organization(r, self.segment_property) for r in results]
            else:
                records = self._purchases(results)
            yield Batch(stream, records, next_cursor)

    @staticmethod
    def _since(cursor: str | None) -> int | None:
        if not cursor:
            return None
        try:
            return max(0, int(cursor) - LOOKBACK_MS)
        except ValueError:
            return None  # an unreadable cursor: pull everything again

    def _own_properties(self, object_type: str) -> list[str]:
        """Our segment property is read back with contacts and companies, so a push diffs against it."""
        return [self.segment_property] if object_type in ("contacts", "companies") else []

    def _search_body(self, object_type: str, since: int | None) -> dict[str, Any]:
        modified = MODIFIED[object_type]
        body: dict[str, Any] = {
            "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
            "properties": [
                *PROPERTIES[object_type],
                *([self.segment_property] if object_type != "deals" else []),
            ],
            "limit": self.page_size,
        }
        if since is not None:
            body["filterGroups"] = [
                {"filters": [{"propertyName": modified, "operator": "GTE", "value": str(since)}]}
            ]
        return body

    def _search_page(self, object_type: str, body: dict[str, Any], after: int | None) -> dict[str, Any]:
        if after:
            body["after"] = str(after)
        return self.http.post(f"/crm/v3/objects/{object_type}/search", body)

    def _search_windows(
        self, object_type: str, cursor: str | None
    ) -> Iterator[tuple[list[dict], str | None]]:
        """Pages of records modified since the cursor, oldest first, in windows under the 10,000 cap."""
        modified = MODIFIED[object_type]
        since = self._since(cursor)
        watermark = int(cursor) if cursor and cursor.isdigit() else None
        windows: LoopGuard[int | None] = LoopGuard(
            lambda at: ApiError(NAME, f"{object_type} search window repeated at {modified} >= {at}")
        )

        def advance(page: dict[str, Any]) -> int | None:
            after = _next_after(page)
            if after is None or not page.get("results"):
                return None
            if after + self.page_size > self.search_cap:
                return None  # the next page would pass the cap: start a new window
            return after

        def repeated(after: int) -> ApiError:
            return ApiError(NAME, f"{object_type} search repeated after={after}")

        while True:
            windows.see(since)
            fetch = functools.partial(self._search_page, object_type, self._search_body(object_type, since))
            last: int | None = None
            page: dict[str, Any] = {}
            for page in follow_cursor(fetch, advance, repeated):
                results = page.get("results") or []
                stamps = [ms for r in results if (ms := millis((r.get("properties") or {}).get(modified)))]
                if stamps:
                    last = max(stamps)
                    watermark = max(watermark or 0, last)
                yield results, str(watermark) if watermark is not None else cursor
            if _next_after(page) is None or not page.get("results"):
                return
            if last is None or (since is not None and last <= since):
                raise ApiError(
                    NAME,
                    f"more than {self.search_cap} {object_type} share {modified} {last}: "
                    "cannot window the search",
                )
            log.info("hubspot.search.window", extra={"object": object_type, "since": last})
            since = last  # GTE: the records at exactly `last` come again, which is harmless

    def _associations(self, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, list[str]]:
        """Associated record ids per record, through the v4 batch read (up to 1,000 ids per call)."""
        out: dict[str, list[str]] = {i: [] for i in ids}
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            answer = self.http.post(
                f"/crm/v4/associations/{from_type}/{to_type}/batch/read",
                {"inputs": [{"id": i} for i in chunk]},
            )
            for result in answer.get("results") or []:
                source_id = str((result.get("from") or {}).get("id"))
                out[source_id] = [str(t["toObjectId"]) for t in result.get("to") or [] if "toObjectId" in t]
        return out

    def _purchases(self, deals: list[dict[str, Any]]) -> list[Purchase]:
        ids = [str(d["id"]) for d in deals]
        if not ids:
            return []
        contacts = self._associations("deals", "contacts", ids)
        companies = self._associations("deals", "companies", ids)
        return [
            to_purchase(d, contacts[str(d["id"])], companies[str(d["id"])], self.won_stages) for d in deals
        ]

    # the write-back
    def ensure_property(self, object_type: str, values: set[str]) -> int:
        """Create the segment property, or add missing options to it; returns the calls it took."""
        path = f"/crm/v3/properties/{object_type}/{self.segment_property}"
        try:
            existing = self.http.get(path)
        except ApiNotFound:
            options = [
                {"label": v, "value": v, "displayOrder": i, "hidden": False}
                for i, v in enumerate(sorted(values))
            ]
            self.http.post(
                f"/crm/v3/properties/{object_type}",
                {
                    "name": self.segment_property,
                    "label": "tierdesk segment",
                    "description": "Segments computed by tierdesk; overwritten on every sync.",
                    "groupName": PROPERTY_GROUPS[object_type],
                    "type": "enumeration",
                    "fieldType": "checkbox",
                    "options": options,
                },
            )
            log.info(
                "hubspot.property.created", extra={"object": object_type, "property": self.segment_property}
            )
            return 2
        options = list(existing.get("options") or [])
        known = {o.get("value") for o in options}
        missing = sorted(values - known)
        if not missing:
            return 1
        options += [
            {"label": v, "value": v, "displayOrder": len(options) + i, "hidden": False}
            for i, v in enumerate(missing)
        ]
        self.http.request("PATCH", path, json={"options": options})
        return 2

    def push_segments(self, changes: Mapping[str, Sequence[str]]) -> PushReport:
        """Write each changed record's segment values (record key -> values; empty clears the property).

        Keys are tierdesk record keys: ``hubspot:user:<contact id>`` or ``hubspot:org:<company id>``;
        keys of other sources are skipped. Only what changed should be passed in: every key costs a write.
        The report names records by key; each refused one has an error line with HubSpot's reason.
        """
        by_type: dict[str, dict[str, str]] = {"contacts": {}, "companies": {}}
        report = PushReport()
        values: dict[str, set[str]] = {"contacts": set(), "companies": set()}
        for key, segments in changes.items():
            try:
                record = keys.parse(key)
            except ValueError:
                record = None
            object_type = {"user": "contacts", "org": "companies"}.get(record.kind) if record else None
            if record is None or record.source != NAME or object_type is None:
                report.skipped.append(key)
                continue
            labels = sorted(dict.fromkeys(str(s) for s in segments if s))
            by_type[object_type][record.external_id] = ";".join(labels)
            values[object_type].update(labels)
        for object_type, records in by_type.items():
            if not records:
                continue
            report.write_calls += self.ensure_property(object_type, values[object_type])
            kind: keys.Kind = "user" if object_type == "contacts" else "org"
            items = sorted(records.items())
            for start in range(0, len(items), BATCH_SIZE):
                chunk = items[start : start + BATCH_SIZE]
                report.write_calls += 1
                answer = self.http.post(
                    f"/crm/v3/objects/{object_type}/batch/update",
                    {"inputs": [{"id": i, "properties": {self.segment_property: v}} for i, v in chunk]},
                )
                refused: dict[str, str] = {}
                for error in (answer or {}).get("errors") or []:
                    context = error.get("context") or {}
                    for record_id in context.get("ids") or []:
                        refused[str(record_id)] = f"{error.get('category')}: {error.get('message')}"
                for record_id, _ in chunk:
                    written = keys.key(NAME, kind, record_id)
                    if record_id in refused:
                        report.failed.append(written)
                        report.errors.append(f"{written}: {refused[record_id]}")
                    else:
                        report.succeeded.append(written)
        if report.failed:
            log.warning(
                "hubspot.push.partial", extra={"failed": len(report.failed), "updated": len(report.succeeded)}
            )
        return report
