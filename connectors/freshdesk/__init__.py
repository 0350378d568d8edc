"""Freshdesk: client calls (connector.py, client.py), records (records.py), webhooks (webhooks.py) and
the rule an admin creates by hand (setup.py). The names callers use are importable from here."""

from connectors.freshdesk.connector import (
    CURSOR_OVERLAP,
    EMBEDDED_CONVERSATIONS,
    EPOCH,
    PER_PAGE,
    TICKET_PAGE_LIMIT,
    FreshdeskConnector,
    UnknownGroup,
)
from connectors.freshdesk.records import (
    COMPANY_ATTRIBUTES,
    NAME,
    PRIORITY_FROM_FRESHDESK,
    PRIORITY_TO_FRESHDESK,
    STATUS_FROM_FRESHDESK,
    due_dates,
    merge_tags,
    note_body,
    to_customer,
    to_organization,
    to_ticket,
)
from connectors.freshdesk.webhooks import (
    AUTOMATION_BODY,
    DEFAULT_RULE,
    RULE_HEADER,
    SECRET_HEADER,
    WEBHOOK_USER,
    parse_event,
    sign,
    verify_secret,
)

__all__ = [
    "AUTOMATION_BODY",
    "COMPANY_ATTRIBUTES",
    "CURSOR_OVERLAP",
    "DEFAULT_RULE",
    "EMBEDDED_CONVERSATIONS",
    "EPOCH",
    "NAME",
    "PER_PAGE",
    "PRIORITY_FROM_FRESHDESK",
    "PRIORITY_TO_FRESHDESK",
    "RULE_HEADER",
    "SECRET_HEADER",
    "STATUS_FROM_FRESHDESK",
    "TICKET_PAGE_LIMIT",
    "WEBHOOK_USER",
    "FreshdeskConnector",
    "UnknownGroup",
    "due_dates",
    "merge_tags",
    "note_body",
    "parse_event",
    "sign",
    "to_customer",
    "to_organization",
    "to_ticket",
    "verify_secret",
]
