"""Zendesk's incremental exports: cursor-based (users, tickets) and time-based (users, tickets,
organizations), with the tickets' metric sets sideloaded on request."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Response, request

from sandbox.base import route
from sandbox.zendesk.common import (
    API,
    EXPORT_PAGE_MAX,
    bad_request,
    decode_cursor,
    encode_cursor,
    iso,
)
from sandbox.zendesk.routes.http import ZendeskHttp


class ExportRoutes(ZendeskHttp):
    """/incremental/...: ordered by change, so polling with an old cursor returns exactly what came since."""

    def _start_time(self) -> int:
        raw = request.args.get("start_time")
        if raw is None or raw == "":
            raise bad_request("InvalidValue", "start_time is required")
        try:
            start = int(raw)
        except ValueError as e:
            raise bad_request("InvalidValue", "start_time must be a unix timestamp in seconds") from e
        if start > self._now().timestamp() - 60:
            raise bad_request("InvalidValue", "Too recent start_time. Use a start_time older than 1 minute")
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
            data = decode_cursor(cursor, f"export:{kind}", ("t", "s"))
            position = (data["t"], data["s"])
        else:
            position = (self._start_time(), -1)
        ordered = sorted((r for r in records if self._change_key(r) > position), key=self._change_key)
        chunk = ordered[:per_page]
        if chunk:
            position = self._change_key(chunk[-1])
        after = encode_cursor({"k": f"export:{kind}", "t": position[0], "s": position[1]})
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

    @route("/incremental/users/cursor", "GET")
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

    @route("/incremental/tickets/cursor", "GET")
    def _export_tickets_cursor(self) -> Response:
        with self._lock:
            page = self._export_cursor("tickets", self._tickets.values(), self._render_ticket)
            return self._json(self._with_metric_sets(page))

    @route("/incremental/users", "GET")
    def _export_users_time(self) -> Response:
        with self._lock:
            return self._json(self._export_time("users", self._users.values(), self._render_user))

    @route("/incremental/tickets", "GET")
    def _export_tickets_time(self) -> Response:
        with self._lock:
            page = self._export_time("tickets", self._tickets.values(), self._render_ticket)
            return self._json(self._with_metric_sets(page))

    @route("/incremental/organizations", "GET")
    def _export_orgs_time(self) -> Response:
        with self._lock:
            return self._json(self._export_time("organizations", self._orgs.values(), self._render_org))
