"""HubSpot CRM: client calls (connector.py), records (records.py) and webhook signatures (webhooks.py).
The names callers use are importable from here."""

from connectors.hubspot.connector import (
    BATCH_SIZE,
    DEFAULT_URL,
    LOOKBACK_MS,
    OBJECTS,
    PAGE_SIZE,
    PROPERTIES,
    SEARCH_CAP,
    STREAMS,
    WON_STAGES,
    HubSpotConnector,
    rate_limit_wait,
)
from connectors.hubspot.records import (
    DEFAULT_PROPERTY,
    NAME,
    to_customer,
    to_organization,
    to_purchase,
)
from connectors.hubspot.webhooks import hubspot_uri, sign_hubspot_v3, verify_hubspot_v3

__all__ = [
    "BATCH_SIZE",
    "DEFAULT_PROPERTY",
    "DEFAULT_URL",
    "LOOKBACK_MS",
    "NAME",
    "OBJECTS",
    "PAGE_SIZE",
    "PROPERTIES",
    "SEARCH_CAP",
    "STREAMS",
    "WON_STAGES",
    "HubSpotConnector",
    "hubspot_uri",
    "rate_limit_wait",
    "sign_hubspot_v3",
    "to_customer",
    "to_organization",
    "to_purchase",
    "verify_hubspot_v3",
]
