"""HubSpot records as ours: contacts, companies and closed-won deals (purchases).

Our segment property is read back as a record's "tags", so a push diffs against what the CRM holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from integration.core.models import Customer, Organization, Purchase

NAME = "hubspot"
DEFAULT_PROPERTY = "tierdesk_segment"


def millis(value: Any) -> int | None:
    """Epoch milliseconds from a HubSpot date value (ISO-8601 text, or ms digits)."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _time(value: Any) -> datetime | None:
    ms = millis(value)
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


def _number(value: Any) -> float | int | None:
    if value in (None, ""):
        return None
    try:
        number = float(str(value).replace(",", ""))
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _segment_values(props: Mapping[str, Any], segment_property: str) -> tuple[str, ...]:
    """Our multi-select property as the CRM holds it: the record's "tags", so pushes diff against it."""
    value = _text(props.get(segment_property))
    return tuple(v for v in value.split(";") if v) if value else ()


def to_customer(contact: Mapping[str, Any], segment_property: str = DEFAULT_PROPERTY) -> Customer:
    props = contact.get("properties") or {}
    name = " ".join(p for p in (props.get("firstname"), props.get("lastname")) if p) or None
    company = props.get("associatedcompanyid")
    return Customer(
        source=NAME,
        external_id=str(contact["id"]),
        email=_text(props.get("email")),
        name=name,
        organization_id=str(_number(company)) if _number(company) is not None else None,
        tags=_segment_values(props, segment_property),
        created_at=_time(props.get("createdate")),
        updated_at=_time(props.get("lastmodifieddate")),
        attributes={"lifecyclestage": _text(props.get("lifecyclestage"))},
    )


def to_organization(company: Mapping[str, Any], segment_property: str = DEFAULT_PROPERTY) -> Organization:
    props = company.get("properties") or {}
    domain = _text(props.get("domain"))
    return Organization(
        source=NAME,
        external_id=str(company["id"]),
        name=_text(props.get("name")),
        domains=(domain,) if domain else (),
        tags=_segment_values(props, segment_property),
        created_at=_time(props.get("createdate")),
        updated_at=_time(props.get("hs_lastmodifieddate")),
        attributes={
            "lifecyclestage": _text(props.get("lifecyclestage")),
            "industry": _text(props.get("industry")),
            "employees": _number(props.get("numberofemployees")),
        },
    )


def to_purchase(
    deal: Mapping[str, Any], contacts: Sequence[str], companies: Sequence[str], won_stages: frozenset[str]
) -> Purchase:
    props = deal.get("properties") or {}
    closed_won = props.get("hs_is_closed_won")
    won = (
        str(closed_won).lower() == "true"
        if closed_won not in (None, "")
        else props.get("dealstage") in won_stages
    )
    amount = _number(props.get("amount"))
    return Purchase(
        source=NAME,
        external_id=str(deal["id"]),
        amount=float(amount) if amount is not None else 0.0,
        closed_at=_time(props.get("closedate")),
        won=won and amount is not None,
        customer_ids=tuple(contacts),
        organization_ids=tuple(companies),
    )
