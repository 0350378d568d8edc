"""Freshdesk tickets and notes: validating changes (integer enumerations, due dates), creating a ticket
as the API or the portal would (automation rules fire), and storing notes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sandbox.freshdesk.common import (
    PRIORITIES,
    SOURCES,
    STATUSES,
    Errors,
    html_text,
    is_int,
    merge_tags,
    not_found,
    note_html,
    parse_time,
    validation_error,
)
from sandbox.freshdesk.rules import FreshdeskRules


class FreshdeskTickets(FreshdeskRules):
    """Ticket operations, shared by the API's views and the direct-access methods."""

    # -- direct access for seeding, tests and the demo ---------------------------------------------

    def add_ticket(
        self,
        requester_id: int,
        subject: str,
        description: str,
        *,
        status: int = 2,
        priority: int = 1,
        source: int = 2,
        ticket_type: str | None = None,
        group_id: int | None = None,
        responder_id: int | None = None,
        tags: Iterable[str] = (),
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Create a (historic) ticket directly; no automation rule runs."""
        with self._lock:
            requester = self._contacts[requester_id]
            when = created_at or self._now()
            ticket = self._new_ticket(next(self._ticket_ids), when)
            ticket.update(
                subject=subject,
                description=note_html(description),
                description_text=description,
                status=status,
                priority=priority,
                source=source,
                type=ticket_type,
                group_id=group_id,
                responder_id=responder_id,
                requester_id=requester_id,
                company_id=requester["company_id"],
                tags=merge_tags(tags),
                updated_at=updated_at or when,
            )
            self._set_due_dates(ticket)
            self._tickets[ticket["id"]] = ticket
            self._conversations[ticket["id"]] = []
            self._note_time(ticket["updated_at"])
            return self._render_ticket(ticket)

    def add_note(
        self,
        ticket_id: int,
        body: str,
        *,
        private: bool = True,
        user_id: int | None = None,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Append a (historic) note directly; the ticket's updated_at is left alone."""
        with self._lock:
            note = self._store_note(
                self._tickets[ticket_id],
                {"body": note_html(body), "private": private, "user_id": user_id or self.api_agent_id},
                created_at or self._now(),
            )
            return self._render(note)

    def get_ticket(self, ticket_id: int) -> dict[str, Any]:
        with self._lock:
            return self._render_ticket(self._tickets[ticket_id], full=True)

    def ticket_conversations(self, ticket_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return [self._render(c) for c in self._conversations[ticket_id]]

    def submit_ticket(
        self, requester_email: str, subject: str, body: str, *, name: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A customer opens a ticket in the portal: the contact is created if new, rules run."""
        payload = {"email": requester_email, "subject": subject, "description": body, **fields}
        if name:
            payload["name"] = name
        with self._lock:
            ticket, deliveries = self._create_ticket(payload)
        self._dispatch(deliveries)
        return ticket

    # -- operations --------------------------------------------------------------------------------

    def _ticket_or_404(self, ticket_id: int) -> dict[str, Any]:
        ticket = self._tickets.get(ticket_id)
        if ticket is None or ticket["deleted"]:
            raise not_found()
        return ticket

    def _ticket_changes(self, data: Mapping[str, Any], ticket: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate ticket fields into changes (ints for priority, status and source, as Freshdesk)."""
        errors = Errors()
        for field, values in (("priority", PRIORITIES), ("status", STATUSES), ("source", SOURCES)):
            if field in data and not (is_int(data[field]) and data[field] in values):
                allowed = ",".join(str(v) for v in values)
                errors.add(field, f"It should be one of these values: '{allowed}'")
        for field in ("subject", "description", "type", "name", "phone"):
            if field in data and data[field] is not None and not isinstance(data[field], str):
                errors.add(field, "It should be a/an String", "datatype_mismatch")
        self._ref(errors, data, "group_id", self._groups)
        self._ref(errors, data, "company_id", self._companies)
        self._ref(errors, data, "responder_id", self._agents)
        self._ref(errors, data, "requester_id", self._contacts)
        self._string_list(errors, data, "tags")
        self._string_list(errors, data, "cc_emails")
        self._custom_fields(errors, data)
        dates: dict[str, datetime] = {}
        for field in ("due_by", "fr_due_by"):
            if field in data:
                try:
                    dates[field] = parse_time(data[field])
                except ValueError:
                    errors.add(field, "It should be in the 'valid date time' format")
        created = ticket["created_at"] if ticket else self._now()
        due_by = dates.get("due_by", ticket["due_by"] if ticket and "fr_due_by" in dates else None)
        fr_due_by = dates.get("fr_due_by", ticket["fr_due_by"] if ticket and "due_by" in dates else None)
        if "due_by" in dates and dates["due_by"] < created:
            errors.add("due_by", "It should be a/an date greater than created_at")
        if due_by and fr_due_by and fr_due_by > due_by:
            errors.add("fr_due_by", "It should be a/an date less than or equal to due_by")
        errors.raise_if_any()

        changes: dict[str, Any] = {}
        for field in ("subject", "type", "status", "priority", "source", "group_id", "company_id"):
            if field in data:
                changes[field] = data[field]
        if "responder_id" in data:
            changes["responder_id"] = data["responder_id"]
        if "requester_id" in data and data["requester_id"] is not None:
            changes["requester_id"] = data["requester_id"]
        if "description" in data:
            changes["description"] = data["description"] or ""
            changes["description_text"] = html_text(data["description"] or "")
        if "tags" in data:
            changes["tags"] = merge_tags(data["tags"])  # PUT replaces the whole list, like Freshdesk
        if "custom_fields" in data:
            changes["custom_fields"] = {
                **(ticket["custom_fields"] if ticket else {}),
                **data["custom_fields"],
            }
        if "cc_emails" in data:
            changes["cc_emails"] = list(data["cc_emails"])
        changes.update(dates)
        return changes

    def _create_ticket(self, data: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Create a ticket as the API would; returns (ticket JSON, webhook deliveries to send)."""
        errors = Errors()
        identities = ("requester_id", "email", "phone", "unique_external_id")
        if not any(data.get(k) not in (None, "") for k in identities):
            errors.add(
                "requester_id",
                "Please fill at least 1 of email, mobile, phone, twitter_id, unique_external_id, "
                "requester_id fields",
                "missing_field",
            )
        for field in ("subject", "description"):
            if not isinstance(data.get(field), str) or not data[field].strip():
                errors.add(field, "It should not be blank as this is a mandatory field", "missing_field")
        email = data.get("email")
        if email is not None and (not isinstance(email, str) or "@" not in email):
            errors.add("email", "It should be in the 'valid email address' format")
        errors.raise_if_any()
        changes = self._ticket_changes(data, None)

        requester_id = changes.pop("requester_id", None)
        if requester_id is None and isinstance(email, str):
            requester_id = self._email_index.get(email.lower())
            if requester_id is None:
                name = data.get("name") or email.split("@")[0]
                requester_id = self.add_contact(name, email, created_at=self._stamp())["id"]
        if requester_id is None:
            raise validation_error("requester_id", "There is no contact matching the given identity")
        when = self._stamp()
        ticket = self._new_ticket(next(self._ticket_ids), when)
        ticket["requester_id"] = requester_id
        ticket["company_id"] = self._contacts[requester_id]["company_id"]
        ticket.update(changes)
        if "description" not in changes:
            ticket["description"] = note_html(data["description"])
        if not ticket["description_text"]:
            ticket["description_text"] = html_text(ticket["description"])
        explicit = {k: ticket[k] for k in ("due_by", "fr_due_by") if k in changes}
        self._set_due_dates(ticket)
        ticket.update(explicit)
        self._tickets[ticket["id"]] = ticket
        self._conversations[ticket["id"]] = []
        return self._render_ticket(ticket, full=True), self._rule_deliveries(ticket)

    def _store_note(self, ticket: dict[str, Any], data: Mapping[str, Any], when: datetime) -> dict[str, Any]:
        note = {
            "id": next(self._conversation_ids),
            "body": data["body"],
            "body_text": html_text(data["body"]),
            "incoming": bool(data.get("incoming", False)),
            "private": bool(data.get("private", True)),
            "user_id": data["user_id"],
            "support_email": None,
            "source": 2,
            "category": 2,
            "ticket_id": ticket["id"],
            "to_emails": list(data.get("notify_emails") or []),
            "from_email": None,
            "cc_emails": [],
            "bcc_emails": None,
            "attachments": [],
            "created_at": when,
            "updated_at": when,
        }
        self._conversations.setdefault(ticket["id"], []).append(note)
        return note
