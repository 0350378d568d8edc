"""The HubSpot sandbox's constants, built-in property definitions, date formats and error shapes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from copy import deepcopy
from datetime import UTC, datetime
from typing import Any

OBJECT_TYPES = ("contacts", "companies", "deals")
MODIFIED = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "deals": (
        "amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
        "hs_object_id", "pipeline",
    ),
}  # fmt: skip
LIST_LIMIT_MAX = 100
SEARCH_LIMIT_MAX = 200
SEARCH_CAP = 10_000
BATCH_MAX = 100
ASSOCIATION_BATCH_MAX = 1000
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
OPERATORS = frozenset(
    {
        "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
        "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
    }
)  # fmt: skip
ASSOCIATION_TYPE_IDS = {  # HubSpot-defined association type ids, from -> to
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("deals", "companies"): 5,
    ("companies", "deals"): 6,
    ("contacts", "companies"): 1,
    ("companies", "contacts"): 2,
}
WON_STAGES = frozenset({"closedwon"})
FIRST_IDS = {"contacts": 101, "companies": 5001, "deals": 90001}


def prop(name: str, label: str, kind: str, field: str, group: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": kind,
        "fieldType": field,
        "groupName": group,
        "description": "",
        "options": [],
        "hidden": False,
        "formField": False,
        "hubspotDefined": True,
        **extra,
    }


def _options(values: Iterable[str]) -> list[dict[str, Any]]:
    return [
        {"label": v.title(), "value": v, "displayOrder": i, "hidden": False} for i, v in enumerate(values)
    ]


LIFECYCLE = (
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer",
    "evangelist", "other",
)  # fmt: skip
DEAL_STAGES = (
    "appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
    "contractsent", "closedwon", "closedlost",
)  # fmt: skip


def builtin_properties() -> dict[str, dict[str, dict[str, Any]]]:
    common = {
        "hs_object_id": prop("hs_object_id", "Record ID", "number", "number", "info"),
        "createdate": prop("createdate", "Create Date", "datetime", "date", "info"),
    }
    contacts = {
        **deepcopy(common),
        "email": prop("email", "Email", "string", "text", "contactinformation", hasUniqueValue=True),
        "firstname": prop("firstname", "First Name", "string", "text", "contactinformation"),
        "lastname": prop("lastname", "Last Name", "string", "text", "contactinformation"),
        "lastmodifieddate": prop("lastmodifieddate", "Last Modified Date", "datetime", "date", "info"),
        "lifecyclestage": prop(
            "lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "contactinformation",
            options=_options(LIFECYCLE),
        ),
        "associatedcompanyid": prop(
            "associatedcompanyid", "Primary Associated Company ID", "number", "number", "contactinformation"
        ),
        "company": prop("company", "Company Name", "string", "text", "contactinformation"),
    }  # fmt: skip
    companies = {
        **deepcopy(common),
        "name": prop("name", "Name", "string", "text", "companyinformation"),
        "domain": prop("domain", "Company Domain Name", "string", "text", "companyinformation"),
        "industry": prop("industry", "Industry", "string", "text", "companyinformation"),
        "numberofemployees": prop(
            "numberofemployees", "Employees", "number", "number", "companyinformation"
        ),
        "hs_lastmodifieddate": prop("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "info"),
        "lifecyclestage": prop(
            "lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "companyinformation",
            options=_options(LIFECYCLE),
        ),
    }  # fmt: skip
    deals = {
        **deepcopy(common),
        "dealname": prop("dealname", "Deal Name", "string", "text", "dealinformation"),
        "amount": prop("amount", "Amount", "number", "number", "dealinformation"),
        "closedate": prop("closedate", "Close Date", "datetime", "date", "dealinformation"),
        "pipeline": prop("pipeline", "Pipeline", "enumeration", "select", "dealinformation",
                          options=_options(("default",))),
        "dealstage": prop("dealstage", "Deal Stage", "enumeration", "radio", "dealinformation",
                           options=_options(DEAL_STAGES)),
        "hs_is_closed_won": prop(
            "hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox", "dealinformation",
            calculated=True,
        ),
        "hs_lastmodifieddate": prop("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "info"),
    }  # fmt: skip
    return {"contacts": contacts, "companies": companies, "deals": deals}


def iso_ms(value: datetime) -> str:
    """HubSpot's datetime text: UTC with milliseconds."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def to_ms(value: Any) -> int | None:
    """Epoch milliseconds from a HubSpot date value (ms digits or ISO-8601 text); None if it is neither."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


class HubSpotError(Exception):
    def __init__(self, status: int, message: str, category: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": category,
            **extra,
        }


def invalid(message: str, **extra: Any) -> HubSpotError:
    return HubSpotError(400, message, "VALIDATION_ERROR", **extra)


def not_found(object_type: str, object_id: str) -> HubSpotError:
    return HubSpotError(404, f"Object not found.  objectId are usually numeric. ({object_type} {object_id})",
                        "OBJECT_NOT_FOUND")  # fmt: skip
