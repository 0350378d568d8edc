"""Freshdesk webhooks: Freshdesk signs nothing, so the automation rule proves itself with a secret.

`verify_secret` checks it and `parse_event` reads the ticket reference; `sign` gives the headers our
documented rule sends, for the tests and the sandbox (the signer beside its verifier).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connectors import signatures
from connectors.base import WebhookRejected, json_object, numeric_id
from connectors.freshdesk.records import NAME
from integration.core.models import TicketEvent

SECRET_HEADER = signatures.SHARED_SECRET_HEADER  # x-tierdesk-secret
WEBHOOK_USER = "tierdesk"  # the basic-auth user name the automation rule sends
RULE_HEADER = "x-tierdesk-rule"
DEFAULT_RULE = "ticket_created"

# The JSON body of the automation rule's "Trigger webhook" action (docs/connectors.md). Freshdesk renders
# placeholders as text. tierdesk needs only the ticket id; with the tags the webhook gate can acknowledge
# and ignore a delivery for a ticket that already carries the routed marker.
AUTOMATION_BODY = json.dumps(
    {
        "ticket": {
            "id": "{{ticket.id}}",
            "tags": "{{ticket.tags}}",
            "requester_email": "{{ticket.contact.email}}",
            "priority": "{{ticket.priority}}",
            "status": "{{ticket.status}}",
        }
    },
    indent=2,
)


def sign(secret: str, rule: str = DEFAULT_RULE) -> dict[str, str]:
    """The headers our automation rule sends with each delivery (see setup.py): the shared secret and
    the rule's name, which makes the event id."""
    return {SECRET_HEADER: secret, RULE_HEADER: rule}


def verify_secret(secret: str, headers: Mapping[str, str]) -> None:
    """Raise WebhookRejected unless the delivery carries our shared secret.

    Freshdesk signs nothing, so the automation rule proves itself with what it can send: the secret in the
    X-Tierdesk-Secret custom header, or HTTP basic auth as user "tierdesk" with the secret as password (or,
    with the rule's "API key" option, the secret as user and "X" as password). The comparisons are the
    constant-time ones in connectors.signatures. There is no timestamp, so no freshness check: a repeated
    delivery is caught by the event id (rule + ticket) instead.
    """
    if headers.get(SECRET_HEADER) is not None:
        signatures.verify_shared_secret(secret, headers, SECRET_HEADER)
        return
    if not headers.get("authorization"):
        raise WebhookRejected("missing_signature", "no X-Tierdesk-Secret header and no basic auth")
    try:
        signatures.verify_basic_auth(WEBHOOK_USER, secret, headers)
    except WebhookRejected as first:
        try:
            signatures.verify_basic_auth(secret, "X", headers)
        except (WebhookRejected, ValueError):  # ValueError: a secret with ':' cannot be a basic-auth user
            raise first from None


def _optional_id(value: Any) -> str | None:
    """Placeholders vary by account and plan; an optional id that is not digits is simply absent."""
    text = "" if value is None or isinstance(value, bool) else str(value).strip()
    return text if text.isascii() and text.isdigit() else None


def _tags(value: Any) -> tuple[str, ...]:
    """{{ticket.tags}} renders comma-separated; accept commas, spaces or a JSON list."""
    if isinstance(value, str):
        return tuple(t for t in value.replace(",", " ").split() if t)
    if isinstance(value, list):
        return tuple(str(t) for t in value)
    return ()


def parse_event(headers: Mapping[str, str], body: bytes) -> TicketEvent:
    """Read the ticket reference from our documented rule body or Freshdesk's "simple" webhook body.

    Freshdesk sends no delivery id. A "ticket created" rule fires once per ticket, so the event id is the
    rule's name (the X-Tierdesk-Rule header, default "ticket_created") plus the ticket id: a repeated
    delivery of the same rule for the same ticket is recognised as a duplicate.
    """
    data = json_object(body)
    if isinstance(data.get("ticket"), dict):  # our documented rule body
        ticket = data["ticket"]
        ticket_id = ticket.get("id")
        requester = ticket.get("requester_id")
        company = ticket.get("company_id")
        tags = ticket.get("tags")
    elif isinstance(data.get("freshdesk_webhook"), dict):  # the rule's "simple" content
        ticket = data["freshdesk_webhook"]
        ticket_id = ticket.get("ticket_id")
        requester = ticket.get("ticket_contact_id") or ticket.get("ticket_requester_id")
        company = ticket.get("ticket_company_id")
        tags = ticket.get("ticket_tags")
    else:
        raise WebhookRejected("bad_payload", "body has no 'ticket' object", 400)
    text = numeric_id(ticket_id, "ticket.id", required=True) or ""
    rule = (headers.get(RULE_HEADER) or DEFAULT_RULE).strip()[:100] or DEFAULT_RULE
    return TicketEvent(
        source=NAME,
        event_id=f"{rule}:{text}",
        ticket_id=text,
        requester_id=_optional_id(requester),
        organization_id=_optional_id(company),
        tags=_tags(tags),
    )
