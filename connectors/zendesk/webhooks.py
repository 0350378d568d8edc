"""Zendesk webhooks: pure functions over the raw body.

Zendesk signs each delivery: base64(HMAC-SHA256(secret, timestamp + raw body)). `sign` is the signer,
beside its verifier, for the tests and the sandbox (as stripe-python keeps generate_signature_header next
to verify_header).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.base import WebhookRejected, json_object, numeric_id
from connectors.zendesk.records import NAME
from integration.core.models import TicketEvent

SIGNATURE_HEADER = "x-zendesk-webhook-signature"
TIMESTAMP_HEADER = "x-zendesk-webhook-signature-timestamp"
INVOCATION_HEADER = "x-zendesk-webhook-invocation-id"


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
