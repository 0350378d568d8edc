"""Zendesk triggers and SLA policies at work: matching conditions, applying actions, rendering webhook
bodies from placeholders, and delivering those webhooks signed the way Zendesk signs them.

Creating and changing triggers, SLA policies and webhooks is the API's part (routes/triggers.py,
routes/webhooks.py); here they run.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

from connectors.zendesk import sign
from sandbox.base import fill_placeholders
from sandbox.zendesk.common import (
    PRIORITY_RANK,
    STATUS_LABELS,
    STATUS_RANK,
    VIA_LABELS,
    WEBHOOK_FORMATS,
    as_int,
    iso,
    normalize_tags,
)
from sandbox.zendesk.people import ZendeskPeople


class ZendeskRules(ZendeskPeople):
    """Trigger and SLA evaluation, and webhook delivery."""

    delivery_keys = ("webhook_id", "invocation_id", "ticket_id", "trigger_id")

    def applied_sla_policy(self, ticket_id: int) -> dict[str, Any] | None:
        """The SLA policy Zendesk would apply: the first by position whose filter the ticket matches."""
        with self._lock:
            ticket = self._tickets[ticket_id]
            for policy in sorted(self._slas.values(), key=lambda p: (p["position"], p["id"])):
                if self._conditions_match(policy["filter"], ticket, None, None):
                    return self._render_sla(policy)
            return None

    # -- conditions and actions --------------------------------------------------------------------

    def _conditions_match(
        self,
        conditions: Mapping[str, Any],
        ticket: Mapping[str, Any],
        previous: Mapping[str, Any] | None,
        context: Mapping[str, Any] | None,
    ) -> bool:
        """ALL conditions hold and, when there are ANY conditions, at least one of them holds."""
        every = conditions.get("all") or []
        some = conditions.get("any") or []
        if not all(self._condition_holds(c, ticket, previous, context) for c in every):
            return False
        return not some or any(self._condition_holds(c, ticket, previous, context) for c in some)

    def _condition_holds(
        self,
        condition: Mapping[str, Any],
        ticket: Mapping[str, Any],
        previous: Mapping[str, Any] | None,
        context: Mapping[str, Any] | None,
    ) -> bool:
        field, operator, value = condition["field"], condition["operator"], condition.get("value")
        if field == "update_type":
            return context is not None and str(value).lower() == str(context["update_type"]).lower()
        if field == "role":
            if context is None:
                return False
            role = context["role"]
            role = "agent" if role in ("agent", "admin") else "end_user"
            matches = role == str(value).replace("-", "_").lower()
            return matches if operator == "is" else not matches
        if field == "current_tags":
            try:
                wanted = set(normalize_tags(value))
            except ValueError:
                return False
            present = bool(wanted & set(ticket["tags"]))
            return present if operator == "includes" else not present
        if field not in ticket:
            return False  # an SLA filter on a field the sandbox does not model never matches
        current = ticket[field]
        before = previous.get(field) if previous is not None else None
        changed = previous is None or before != current

        def same(actual: Any) -> bool:
            if value in (None, ""):
                return actual is None
            return str(actual).lower() == str(value).lower() if actual is not None else False

        rank: Callable[[Any], int] | None = None
        if field == "status":
            rank = lambda s: STATUS_RANK.get(s, -1)  # noqa: E731
        elif field == "priority":
            rank = lambda p: PRIORITY_RANK.get(p, 0)  # noqa: E731
        if operator == "is":
            return same(current)
        if operator == "is_not":
            return not same(current)
        if operator in ("less_than", "greater_than") and rank is not None:
            target = str(value).lower() if value not in (None, "") else None
            if operator == "less_than":
                return rank(current) < rank(target)
            return rank(current) > rank(target)
        if operator == "changed":
            return changed
        if operator == "not_changed":
            return not changed
        if operator == "value":
            return changed and same(current)
        if operator == "value_previous":
            return changed and same(before)
        return False

    def _apply_trigger_action(
        self, ticket: dict[str, Any], trigger: Mapping[str, Any], action: Mapping[str, Any], actor_id: int
    ) -> list[dict[str, Any]]:
        field, value = action["field"], action["value"]
        changes: dict[str, Any] = {}
        if field in ("status", "priority", "type"):
            changes[field] = value or None
        elif field == "group_id":
            changes["group_id"] = as_int(value) if value not in (None, "") else None
        elif field == "assignee_id":
            if value == "current_user":
                changes["assignee_id"] = actor_id
            else:
                changes["assignee_id"] = as_int(value) if value not in (None, "") else None
        elif field == "set_tags":
            changes["tags"] = normalize_tags(value)
        elif field == "current_tags":
            changes["tags"] = ticket["tags"] + [t for t in normalize_tags(value) if t not in ticket["tags"]]
        elif field == "remove_tags":
            removed = set(normalize_tags(value))
            changes["tags"] = [t for t in ticket["tags"] if t not in removed]
        via = {
            "channel": "rule",
            "source": {"id": trigger["id"], "title": trigger["title"], "type": "trigger"},
        }
        return self._apply_ticket_changes(ticket, changes, "Change", via)

    def _run_triggers(
        self,
        ticket: dict[str, Any],
        previous: Mapping[str, Any] | None,
        update_type: str,
        actor_id: int,
        events: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """Run active triggers in position order, each at most once per update; when one changes the
        ticket, start over (as Zendesk does). Webhook bodies are rendered once all have run."""
        context = {"update_type": update_type, "role": self._users[actor_id]["role"]}
        fired: set[int] = set()
        notifications: list[tuple[dict[str, Any], list[str]]] = []
        again = True
        while again:
            again = False
            for trigger in sorted(self._triggers.values(), key=lambda t: (t["position"], t["id"])):
                if not trigger["active"] or trigger["id"] in fired:
                    continue
                if not self._conditions_match(trigger["conditions"], ticket, previous, context):
                    continue
                fired.add(trigger["id"])
                changed = False
                for action in trigger["actions"]:
                    if action["field"] == "notification_webhook":
                        notifications.append((trigger, action["value"]))
                    else:
                        new_events = self._apply_trigger_action(ticket, trigger, action, actor_id)
                        events.extend(new_events)
                        changed = changed or bool(new_events)
                if changed:
                    again = True
                    break
        deliveries = []
        for trigger, (webhook_id, template) in notifications:
            webhook = self._webhooks.get(webhook_id)
            if webhook is None or webhook["status"] != "active":
                continue
            body = self._render_template(
                template, ticket, actor_id, json_escape=webhook["request_format"] == "json"
            )
            deliveries.append(
                {
                    "webhook_id": webhook_id,
                    "invocation_id": str(next(self._invocation_ids)),
                    "ticket_id": ticket["id"],
                    "trigger_id": trigger["id"],
                    "body": body,
                }
            )
            events.append(
                {
                    "id": next(self._event_ids),
                    "type": "WebhookNotification",
                    "webhook_id": webhook_id,
                    "via": {
                        "channel": "rule",
                        "source": {"id": trigger["id"], "title": trigger["title"], "type": "trigger"},
                    },
                }
            )
        return deliveries

    # -- placeholders ------------------------------------------------------------------------------

    def _placeholders(self, ticket: Mapping[str, Any], actor_id: int) -> dict[str, str]:
        def text(value: Any) -> str:
            return "" if value is None else str(value)

        requester = self._users.get(ticket["requester_id"]) or {}
        org = self._orgs.get(ticket["organization_id"]) if ticket["organization_id"] else None
        group = self._groups.get(ticket["group_id"]) if ticket["group_id"] else None
        assignee = self._users.get(ticket["assignee_id"]) if ticket["assignee_id"] else None
        actor = self._users.get(actor_id) or {}
        name = text(requester.get("name"))
        channel = ticket["via"]["channel"]
        values = {
            "ticket.id": text(ticket["id"]),
            "ticket.external_id": text(ticket["external_id"]),
            "ticket.title": text(ticket["subject"]),
            "ticket.description": text(ticket["description"]),
            "ticket.status": STATUS_LABELS.get(ticket["status"], text(ticket["status"])),
            "ticket.priority": text(ticket["priority"]).capitalize(),
            "ticket.ticket_type": text(ticket["type"]).capitalize(),
            "ticket.tags": " ".join(ticket["tags"]),
            "ticket.via": VIA_LABELS.get(channel, channel.capitalize()),
            "ticket.url": f"{self._base_url or 'http://127.0.0.1'}/agent/tickets/{ticket['id']}",
            "ticket.created_at_with_timestamp": text(iso(ticket["created_at"])),
            "ticket.updated_at_with_timestamp": text(iso(ticket["updated_at"])),
            "ticket.requester.id": text(requester.get("id")),
            "ticket.requester.email": text(requester.get("email")),
            "ticket.requester.name": name,
            "ticket.requester.first_name": name.split(" ")[0] if name else "",
            "ticket.requester.last_name": name.split(" ", 1)[1] if " " in name else "",
            "ticket.requester.external_id": text(requester.get("external_id")),
            "ticket.organization.id": text(org["id"]) if org else "",
            "ticket.organization.name": text(org["name"]) if org else "",
            "ticket.organization.external_id": text(org["external_id"]) if org else "",
            "ticket.group.id": text(group["id"]) if group else "",
            "ticket.group.name": text(group["name"]) if group else "",
            "ticket.assignee.id": text(assignee["id"]) if assignee else "",
            "ticket.assignee.email": text(assignee["email"]) if assignee else "",
            "ticket.assignee.name": text(assignee["name"]) if assignee else "",
            "current_user.id": text(actor.get("id")),
            "current_user.email": text(actor.get("email")),
            "current_user.name": text(actor.get("name")),
        }
        values["ticket.link"] = values["ticket.url"]
        values["ticket.requester_id"] = values["ticket.requester.id"]
        values["ticket.organization_id"] = values["ticket.organization.id"]
        return values

    def _render_template(
        self, template: str, ticket: Mapping[str, Any], actor_id: int, *, json_escape: bool
    ) -> str:
        """Replace {{placeholders}} with text; unknown ones become empty. For JSON webhooks the text is
        JSON-escaped so a quote in a subject cannot break the body (sandbox choice, see package doc)."""
        return fill_placeholders(template, self._placeholders(ticket, actor_id), json_escape=json_escape)

    # -- webhook delivery: signed, 10 s timeout, retried on errors, 409, 429 and 5xx with a fresh
    # signature and the same invocation id ----------------------------------------------------------

    def _delivery_target(self, delivery: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return self._webhooks.get(delivery["webhook_id"])

    def _webhook_request(
        self, webhook: Mapping[str, Any], delivery: Mapping[str, Any], body: bytes
    ) -> tuple[str, str, dict[str, str]]:
        timestamp = iso(self._now()) or ""
        headers = {
            "Content-Type": WEBHOOK_FORMATS[webhook["request_format"]],
            "User-Agent": "Zendesk Webhook",
            "x-zendesk-account-id": str(self.account_id),
            "x-zendesk-webhook-id": webhook["id"],
            "x-zendesk-webhook-invocation-id": delivery["invocation_id"],
            "x-zendesk-webhook-signature-timestamp": timestamp,
            "x-zendesk-webhook-signature": sign(webhook["_secret"], body, timestamp),
        }
        headers.update(webhook.get("custom_headers") or {})
        headers.update(_auth_headers(webhook.get("authentication")))
        return webhook["http_method"], webhook["endpoint"], headers

    def _retry_delivery(self, status: int | None, error: str | None) -> bool:
        return error is not None or status in (409, 429) or (status is not None and status >= 500)


def _auth_headers(auth: Mapping[str, Any] | None) -> dict[str, str]:
    if not auth:
        return {}
    data = auth["data"]
    if auth["type"] == "basic_auth":
        pair = base64.b64encode(f"{data['username']}:{data['password']}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    if auth["type"] == "bearer_token":
        return {"Authorization": f"Bearer {data['token']}"}
    return {str(data["name"]): str(data["value"])}
