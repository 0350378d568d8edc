"""Zendesk tickets and comments: validating changes, safe updates, audits and events, and creating or
updating a ticket as an acting user would (triggers run, webhook deliveries come back to send)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from copy import deepcopy
from datetime import datetime
from typing import Any

from sandbox.zendesk.common import (
    PRIORITIES,
    STATUSES,
    TICKET_TYPES,
    Details,
    ZendeskError,
    as_bool,
    as_int,
    iso,
    normalize_tags,
    not_found,
    parse_time,
    plain_text,
)
from sandbox.zendesk.rules import ZendeskRules


class ZendeskTickets(ZendeskRules):
    """Ticket operations, shared by the API's views, bulk jobs and the direct-access methods."""

    # -- direct access for seeding, tests and the demo ---------------------------------------------

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

    # -- operations --------------------------------------------------------------------------------

    def _ticket_or_404(self, ticket_id: int) -> dict[str, Any]:
        ticket = self._tickets.get(ticket_id)
        if ticket is None or ticket["status"] == "deleted":  # deleted tickets live under /deleted_tickets
            raise not_found()
        return ticket

    def _ticket_changes(
        self, data: Mapping[str, Any], ticket: Mapping[str, Any] | None, details: Details
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
                    changes[key] = [as_int(v) for v in data[key] or []]
                except (ValueError, TypeError):
                    details.add(key, f"{key}: must be a list of ids")
        if "recipient" in data:
            changes["recipient"] = data["recipient"]
        if "brand_id" in data:
            try:
                changes["brand_id"] = as_int(data["brand_id"])
            except ValueError:
                details.add("brand_id", "Brand: is invalid")
        tags = self._tag_changes(data, list(ticket["tags"]) if ticket else [], details)
        if tags is not None:
            changes["tags"] = tags
        return changes

    def _comment_input(
        self, value: Any, ticket: Mapping[str, Any] | None, actor_id: int, details: Details
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
            public = as_bool(value["public"])
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
            body = plain_text(html_body)
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

    def _create_ticket(
        self, data: Mapping[str, Any], actor_id: int, *, via_channel: str = "api"
    ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        """Create a ticket as `actor_id` would through the API; returns (ticket, audit, deliveries)."""
        details = Details()
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
        ticket["description"] = comment["body"] or plain_text(comment["html_body"] or "")
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
            details = Details()
            details.add("status", "Status: closed prevents ticket update", "ClosedPreventsUpdate")
            details.raise_if_any()
        details = Details()
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
