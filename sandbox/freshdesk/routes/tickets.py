"""Freshdesk's tickets API: tickets, their notes and conversations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Response, request

from sandbox.base import route
from sandbox.freshdesk.common import (
    API,
    NOTE_FIELDS,
    ORDER_BY,
    SHOW_INCLUDES,
    TICKET_CREATE_FIELDS,
    TICKET_INCLUDES,
    TICKET_LIST_DAYS,
    TICKET_UPDATE_FIELDS,
    Errors,
    is_int,
)
from sandbox.freshdesk.routes.http import FreshdeskHttp


class TicketRoutes(FreshdeskHttp):
    """/tickets, /tickets/{id}/notes and /tickets/{id}/conversations."""

    @route("/tickets", "GET")
    def _list_tickets(self) -> Response:
        since = self._since("updated_since")
        requester_id = self._int_filter("requester_id")
        company_id = self._int_filter("company_id")
        email = (request.args.get("email") or "").lower() or None
        order_by = request.args.get("order_by") or "created_at"
        order_type = request.args.get("order_type") or "desc"
        list_filter = request.args.get("filter")
        errors = Errors()
        if order_by not in ORDER_BY:
            errors.add("order_by", f"It should be one of these values: '{','.join(ORDER_BY)}'")
        if order_type not in ("asc", "desc"):
            errors.add("order_type", "It should be one of these values: 'asc,desc'")
        if list_filter not in (None, "", "new_and_my_open", "watching", "spam", "deleted"):
            errors.add("filter", "It should be one of these values: 'new_and_my_open,watching,spam,deleted'")
        errors.raise_if_any()
        include = self._includes(TICKET_INCLUDES)
        with self._lock:
            now = self._now()
            requester_by_email = self._email_index.get(email) if email else None
            tickets = []
            for t in self._tickets.values():
                if list_filter in ("spam", "deleted"):
                    if not t[list_filter]:
                        continue
                elif t["spam"] or t["deleted"]:
                    continue
                if list_filter == "new_and_my_open" and t["status"] != 2:
                    continue
                if list_filter == "watching":
                    continue  # the API agent watches nothing here
                if since is not None:
                    if t["updated_at"] < since:
                        continue
                elif t["created_at"] < now - timedelta(days=TICKET_LIST_DAYS):
                    continue
                if requester_id is not None and t["requester_id"] != requester_id:
                    continue
                if company_id is not None and t["company_id"] != company_id:
                    continue
                if email is not None and t["requester_id"] != requester_by_email:
                    continue
                tickets.append(t)
            epoch = datetime.fromtimestamp(0, UTC)
            tickets.sort(key=lambda t: (t[order_by] or epoch, t["id"]), reverse=order_type == "desc")
            return self._paginate(
                tickets, lambda t: self._render_ticket(t, include=include), self.ticket_page_max
            )

    @route("/tickets/<int:ticket_id>", "GET")
    def _show_ticket(self, ticket_id: int) -> Response:
        include = self._includes(SHOW_INCLUDES)
        with self._lock:
            ticket = self._ticket_or_404(ticket_id)
            return self._json(self._render_ticket(ticket, full=True, include=include))

    @route("/tickets", "POST")
    def _create_ticket_view(self) -> Response:
        data = self._body(TICKET_CREATE_FIELDS)
        with self._lock:
            ticket, deliveries = self._create_ticket(data)
        self._dispatch(deliveries)
        return self._json(ticket, 201, {"Location": f"{self._host()}{API}/tickets/{ticket['id']}"})

    @route("/tickets/<int:ticket_id>", "PUT")
    def _update_ticket_view(self, ticket_id: int) -> Response:
        data = self._body(TICKET_UPDATE_FIELDS)
        with self._lock:
            ticket = self._ticket_or_404(ticket_id)
            changes = self._ticket_changes(data, ticket)
            new_priority = changes.get("priority", ticket["priority"]) != ticket["priority"]
            if not any(ticket.get(k) != v for k, v in changes.items()):
                return self._json(self._render_ticket(ticket, full=True))
            previous_status = ticket["status"]
            ticket.update(changes)
            if new_priority and "due_by" not in changes and "fr_due_by" not in changes:
                self._set_due_dates(ticket)  # the SLA policy's targets for the new priority
            now = self._stamp(ticket["updated_at"])
            if ticket["status"] in (4, 5) and previous_status not in (4, 5):
                ticket["_resolved_at"] = now
            elif previous_status in (4, 5) and ticket["status"] in (2, 3):
                ticket["_reopened_at"] = now
            ticket["updated_at"] = now
            return self._json(self._render_ticket(ticket, full=True))

    # -- notes and conversations -------------------------------------------------------------------

    @route("/tickets/<int:ticket_id>/notes", "POST")
    def _create_note_view(self, ticket_id: int) -> Response:
        data = self._body(NOTE_FIELDS)
        with self._lock:
            ticket = self._ticket_or_404(ticket_id)
            errors = Errors()
            if not isinstance(data.get("body"), str) or not data["body"].strip():
                errors.add("body", "It should not be blank as this is a mandatory field", "missing_field")
            for field in ("private", "incoming"):
                if field in data and not isinstance(data[field], bool):
                    errors.add(field, "It should be a/an Boolean", "datatype_mismatch")
            if "user_id" in data and not (
                is_int(data["user_id"])
                and (data["user_id"] in self._agents or data["user_id"] in self._contacts)
            ):
                errors.add("user_id", "There is no contact or agent matching the given user_id")
            self._string_list(errors, data, "notify_emails")
            errors.raise_if_any()
            when = self._stamp(ticket["updated_at"])
            note = self._store_note(ticket, {"user_id": self.api_agent_id, **data}, when)
            ticket["updated_at"] = when
            return self._json(self._render(note), 201)

    @route("/tickets/<int:ticket_id>/conversations", "GET")
    def _list_conversations(self, ticket_id: int) -> Response:
        with self._lock:
            self._ticket_or_404(ticket_id)
            return self._paginate(list(self._conversations.get(ticket_id, [])), self._render)
