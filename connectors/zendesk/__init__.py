"""Zendesk Support: client calls (connector.py), records (records.py), webhooks (webhooks.py) and the
Zendesk-side setup (setup.py). The names callers use are importable from here."""

from connectors.zendesk.connector import (
    BATCH_SIZE,
    EXPORT_PAGE_SIZE,
    JOB_TIMEOUT,
    JOB_WAVE,
    START_TIME_LAG,
    UnknownGroup,
    ZendeskConnector,
)
from connectors.zendesk.records import (
    CUSTOMER_ROLE,
    NAME,
    is_customer,
    job_failures,
    to_customer,
    to_organization,
    to_ticket,
    written_records,
)
from connectors.zendesk.webhooks import (
    INVOCATION_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TRIGGER_BODY,
    parse_event,
    replay_key,
    sign,
    verify_signature,
)

__all__ = [
    "BATCH_SIZE",
    "CUSTOMER_ROLE",
    "EXPORT_PAGE_SIZE",
    "INVOCATION_HEADER",
    "JOB_TIMEOUT",
    "JOB_WAVE",
    "NAME",
    "SIGNATURE_HEADER",
    "START_TIME_LAG",
    "TIMESTAMP_HEADER",
    "TRIGGER_BODY",
    "UnknownGroup",
    "ZendeskConnector",
    "is_customer",
    "job_failures",
    "parse_event",
    "replay_key",
    "sign",
    "to_customer",
    "to_organization",
    "to_ticket",
    "verify_signature",
    "written_records",
]
