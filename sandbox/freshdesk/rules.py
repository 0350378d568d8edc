"""Freshdesk automation rules with a "Trigger webhook" action: configuring them (Freshdesk has no API for
this; an admin builds them by hand), filling their JSON templates, and delivering the webhooks:
unsigned, with the rule's headers and auth, retried on connection errors and 5xx."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sandbox.base import WEBHOOK_METHODS, fill_placeholders
from sandbox.freshdesk.common import PRIORITIES, SOURCES, STATUSES, iso
from sandbox.freshdesk.state import FreshdeskState


class FreshdeskRules(FreshdeskState):
    """The account's "ticket is created" rules and their webhooks."""

    def add_automation_rule(
        self,
        url: str,
        body: str,
        *,
        name: str = "Trigger webhook on ticket creation",
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
        api_key: str | None = None,
        active: bool = True,
    ) -> dict[str, Any]:
        """Configure a "ticket is created" rule whose action triggers a webhook; returns the rule.

        Freshdesk has no API for this: an admin builds the rule in Admin > Workflows > Automations.
        The body is a JSON template whose {{placeholders}} are filled per ticket.
        """
        method = method.upper()
        if method not in WEBHOOK_METHODS:
            raise ValueError(f"method must be one of {', '.join(WEBHOOK_METHODS)}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("url must be an absolute http(s) URL")
        if basic_auth and api_key:
            raise ValueError("give basic_auth or api_key, not both")
        if not isinstance(body, str):
            raise ValueError("body must be a string (a JSON template)")
        with self._lock:
            rule = {
                "id": next(self._rule_ids),
                "name": name,
                "event": "ticket_created",
                "active": bool(active),
                "url": url,
                "method": method,
                "encoding": "json",
                "body": body,
                "headers": dict(headers or {}),
                "auth": {"username": basic_auth[0], "password": basic_auth[1]}
                if basic_auth
                else ({"username": api_key, "password": "X"} if api_key else None),
                "created_at": self._now(),
            }
            self._rules[rule["id"]] = rule
            return self._render_rule(rule)

    def automation_rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._render_rule(r) for r in self._rules.values()]

    def remove_automation_rule(self, rule_id: int) -> None:
        with self._lock:
            self._rules.pop(rule_id, None)

    @staticmethod
    def _render_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
        """A rule as the admin screen shows it: header names and auth user, never their secrets."""
        out = {k: v for k, v in rule.items() if k not in ("headers", "auth", "created_at")}
        out["header_names"] = sorted(rule["headers"])
        api_key_auth = bool(rule["auth"]) and rule["auth"]["password"] == "X"  # noqa: S105 - Freshdesk's convention
        out["auth_username"] = rule["auth"]["username"] if rule["auth"] and not api_key_auth else None
        out["created_at"] = iso(rule["created_at"])
        return out

    # -- placeholders ------------------------------------------------------------------------------

    def _placeholders(self, ticket: Mapping[str, Any]) -> dict[str, str]:
        def text(value: Any) -> str:
            if value is None:
                return ""
            return iso(value) or "" if isinstance(value, datetime) else str(value)

        contact = self._contacts.get(ticket["requester_id"]) or {}
        company = self._companies.get(ticket["company_id"]) if ticket["company_id"] else None
        group = self._groups.get(ticket["group_id"]) if ticket["group_id"] else None
        agent = self._agents.get(ticket["responder_id"]) if ticket["responder_id"] else None
        url = f"{self._base_url or 'http://127.0.0.1'}/a/tickets/{ticket['id']}"
        values = {
            "ticket.id": text(ticket["id"]),
            "ticket.subject": text(ticket["subject"]),
            "ticket.description": text(ticket["description_text"]),
            "ticket.url": url,
            "ticket.status": STATUSES.get(ticket["status"], text(ticket["status"])),
            "ticket.priority": PRIORITIES.get(ticket["priority"], text(ticket["priority"])),
            "ticket.source": SOURCES.get(ticket["source"], text(ticket["source"])),
            "ticket.ticket_type": text(ticket["type"]),
            "ticket.tags": ", ".join(ticket["tags"]),
            "ticket.due_by_time": text(ticket["due_by"]),
            "ticket.fr_due_by_time": text(ticket["fr_due_by"]),
            "ticket.created_at": text(ticket["created_at"]),
            "ticket.group.id": text(group["id"]) if group else "",
            "ticket.group.name": text(group["name"]) if group else "",
            "ticket.agent.name": text(agent["contact"]["name"]) if agent else "",
            "ticket.agent.email": text(agent["contact"]["email"]) if agent else "",
            "ticket.contact.id": text(contact.get("id")),
            "ticket.contact.name": text(contact.get("name")),
            "ticket.contact.email": text(contact.get("email")),
            "ticket.company.id": text(company["id"]) if company else "",
            "ticket.company.name": text(company["name"]) if company else "",
        }
        for key in ("id", "name", "email"):
            values[f"ticket.requester.{key}"] = values[f"ticket.contact.{key}"]
        values["ticket.portal_url"] = values["ticket.url"]
        return values

    def render_template(self, template: str, ticket_id: int) -> str:
        """Fill a rule's JSON template for one ticket (values JSON-escaped; unknown placeholders empty)."""
        with self._lock:
            values = self._placeholders(self._tickets[ticket_id])
        return fill_placeholders(template, values)

    def _rule_deliveries(self, ticket: Mapping[str, Any]) -> list[dict[str, Any]]:
        values = self._placeholders(ticket)
        deliveries = []
        for rule in sorted(self._rules.values(), key=lambda r: r["id"]):
            if not rule["active"]:
                continue
            deliveries.append(
                {
                    "delivery_id": next(self._delivery_ids),
                    "rule_id": rule["id"],
                    "ticket_id": ticket["id"],
                    "body": fill_placeholders(rule["body"], values),
                }
            )
        return deliveries

    # -- webhook delivery --------------------------------------------------------------------------

    def _delivery_target(self, delivery: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return self._rules.get(delivery["rule_id"])

    def _webhook_request(
        self, rule: Mapping[str, Any], delivery: Mapping[str, Any], body: bytes
    ) -> tuple[str, str, dict[str, str]]:
        headers = {"Content-Type": "application/json", "User-Agent": "Freshdesk"}
        headers.update(rule["headers"])
        if rule["auth"]:
            pair = f"{rule['auth']['username']}:{rule['auth']['password']}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return rule["method"], rule["url"], headers

    def _retry_delivery(self, status: int | None, error: str | None) -> bool:
        return error is not None or (status is not None and status >= 500)
