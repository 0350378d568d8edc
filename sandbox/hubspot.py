"""A local, API-compatible stand-in for the parts of HubSpot's CRM API tierdesk uses, over loopback HTTP.

Why it exists: the HubSpot connector's tests and the demo must drive real HTTP (bearer auth, the search
API's filters, sorting, `after` paging and its 10,000-result cap, batch updates with partial errors,
custom properties, associations, rate limiting without Retry-After) without a HubSpot account. Paths,
bodies and error shapes follow HubSpot's public v3/v4 API (shared/reference/helpdesk-apis.md section 3);
where HubSpot's behaviour is unstated, the choice is marked below.

What it serves (base URL = the sandbox's; HubSpot's is https://api.hubapi.com):

- ``GET  /crm/v3/objects/{contacts|companies|deals}``: list, ``limit`` <= 100, ``after``, ``properties``.
- ``GET|PATCH /crm/v3/objects/{type}/{id}`` (``idProperty=email`` for contacts); ``POST`` creates.
  Contact emails are unique, case-insensitively (409 with the existing id), as in HubSpot.
- ``POST /crm/v3/objects/{type}/search``: ``filterGroups`` (ORed; filters inside ANDed; at most 5 groups,
  10 filters per group, 25 in all), operators EQ NEQ LT LTE GT GTE BETWEEN IN NOT_IN HAS_PROPERTY
  NOT_HAS_PROPERTY CONTAINS_TOKEN NOT_CONTAINS_TOKEN, one sort, ``limit`` <= 200, ``after``. A page whose
  ``after`` reaches 10,000 is refused with 400, like HubSpot; ``total`` counts every match. Dates compare
  as epoch milliseconds (filter values may be ms or ISO-8601).
- ``POST /crm/v3/objects/{type}/batch/update``: at most 100 inputs (400 above); unknown properties or
  enumeration values refuse the whole batch with 400 (choice); unknown ids give 207 with ``errors``.
- ``GET|POST /crm/v3/properties/{type}``, ``GET|PATCH /crm/v3/properties/{type}/{name}``. Enumeration
  properties only accept their options' values (checkbox values are ``;``-separated).
- ``POST /crm/v4/associations/{from}/{to}/batch/read`` (deals -> contacts/companies and back). Unknown ids
  come back in ``errors`` with 207; known ids without associations have an empty ``to`` (choice).
- Contacts' primary company is the ``associatedcompanyid`` property (HubSpot maintains it).
- Auth: ``Authorization: Bearer <private app token>``, else 401 INVALID_AUTHENTICATION.
- Rate limit (off unless asked for): a rolling window of ``rate_limit`` requests per ``window_ms``. Every
  API answer carries X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds and -Daily/-Daily-Remaining;
  a 429 has the same headers and no Retry-After. (HubSpot may omit the headers on search: choice.)
- ``lastmodifieddate`` (contacts) and ``hs_lastmodifieddate`` (companies, deals) move on every write; deals
  get the calculated ``hs_is_closed_won``. Property values are strings, dates ISO-8601 with milliseconds.
"""

from __future__ import annotations

import hmac
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from copy import deepcopy
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from sandbox.base import QuietHandler, SandboxServer, SlidingWindow

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


def _prop(name: str, label: str, kind: str, field: str, group: str, **extra: Any) -> dict[str, Any]:
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


def _builtin_properties() -> dict[str, dict[str, dict[str, Any]]]:
    common = {
        "hs_object_id": _prop("hs_object_id", "Record ID", "number", "number", "info"),
        "createdate": _prop("createdate", "Create Date", "datetime", "date", "info"),
    }
    contacts = {
        **deepcopy(common),
        "email": _prop("email", "Email", "string", "text", "contactinformation", hasUniqueValue=True),
        "firstname": _prop("firstname", "First Name", "string", "text", "contactinformation"),
        "lastname": _prop("lastname", "Last Name", "string", "text", "contactinformation"),
        "lastmodifieddate": _prop("lastmodifieddate", "Last Modified Date", "datetime", "date", "info"),
        "lifecyclestage": _prop(
            "lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "contactinformation",
            options=_options(LIFECYCLE),
        ),
        "associatedcompanyid": _prop(
            "associatedcompanyid", "Primary Associated Company ID", "number", "number", "contactinformation"
        ),
        "company": _prop("company", "Company Name", "string", "text", "contactinformation"),
    }  # fmt: skip
    companies = {
        **deepcopy(common),
        "name": _prop("name", "Name", "string", "text", "companyinformation"),
        "domain": _prop("domain", "Company Domain Name", "string", "text", "companyinformation"),
        "industry": _prop("industry", "Industry", "string", "text", "companyinformation"),
        "numberofemployees": _prop(
            "numberofemployees", "Employees", "number", "number", "companyinformation"
        ),
        "hs_lastmodifieddate": _prop("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "info"),
        "lifecyclestage": _prop(
            "lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "companyinformation",
            options=_options(LIFECYCLE),
        ),
    }  # fmt: skip
    deals = {
        **deepcopy(common),
        "dealname": _prop("dealname", "Deal Name", "string", "text", "dealinformation"),
        "amount": _prop("amount", "Amount", "number", "number", "dealinformation"),
        "closedate": _prop("closedate", "Close Date", "datetime", "date", "dealinformation"),
        "pipeline": _prop("pipeline", "Pipeline", "enumeration", "select", "dealinformation",
                          options=_options(("default",))),
        "dealstage": _prop("dealstage", "Deal Stage", "enumeration", "radio", "dealinformation",
                           options=_options(DEAL_STAGES)),
        "hs_is_closed_won": _prop(
            "hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox", "dealinformation",
            calculated=True,
        ),
        "hs_lastmodifieddate": _prop("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "info"),
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


def _invalid(message: str, **extra: Any) -> HubSpotError:
    return HubSpotError(400, message, "VALIDATION_ERROR", **extra)


def _not_found(object_type: str, object_id: str) -> HubSpotError:
    return HubSpotError(404, f"Object not found.  objectId are usually numeric. ({object_type} {object_id})",
                        "OBJECT_NOT_FOUND")  # fmt: skip


class HubSpotSandbox(SandboxServer):
    """An in-memory HubSpot portal with an HTTP face; the module docstring says what it serves."""

    thread_name = "hs-sandbox"
    request_handler = QuietHandler
    json_content_type = "application/json;charset=utf-8"

    def __init__(
        self,
        token: str = "sandbox-hubspot-token",  # noqa: S107 - a documented sandbox default, not a secret
        *,
        rate_limit: int | None = None,
        window_ms: int = 10_000,
        daily_limit: int = 250_000,
        search_cap: int = SEARCH_CAP,
    ) -> None:
        self.token = token
        self.search_cap = search_cap  # lower it in tests to reach the cap without 10,000 records
        self.window_ms = window_ms
        self.daily_limit = daily_limit
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._lock = threading.RLock()
        self._objects: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in OBJECT_TYPES}
        self._associations: dict[tuple[str, str], dict[str, list[str]]] = {
            k: {} for k in ASSOCIATION_TYPE_IDS
        }
        self._properties = _builtin_properties()
        self._ids = {t: itertools.count(FIRST_IDS[t]) for t in OBJECT_TYPES}
        self._rate = SlidingWindow(rate_limit, window_ms / 1000) if rate_limit else None
        self._daily_used = 0
        self._faults: dict[str, int] = {"status": 0, "remaining": 0}
        self._log: list[dict[str, Any]] = []
        self._init_server()
        self.app = self._build_app()

    # -- test and demo controls --------------------------------------------------------------------

    def inject_faults(self, status: int, count: int) -> None:
        """Answer the next `count` API requests with `status` (a 429 carries rate-limit headers only)."""
        with self._lock:
            self._faults = {"status": int(status), "remaining": max(0, int(count))}

    @property
    def request_log(self) -> list[dict[str, Any]]:
        """method, path, query, body (decoded JSON or None) and status of every API request answered."""
        with self._lock:
            return deepcopy(self._log)

    def clear_request_log(self) -> None:
        with self._lock:
            self._log.clear()

    # -- direct access for seeding and tests (no HTTP) ----------------------------------------------

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC)

    def add(
        self,
        object_type: str,
        properties: Mapping[str, Any],
        *,
        created_at: datetime | None = None,
        modified_at: datetime | None = None,
        check_unique: bool = False,
    ) -> dict[str, Any]:
        """Create a record as HubSpot stores it; seeding may set its dates and skip the email check."""
        with self._lock:
            values = self._validated(object_type, properties)
            if check_unique:
                self._check_unique_email(object_type, values)
            object_id = str(next(self._ids[object_type]))
            created = created_at or self._now()
            record = {
                "id": object_id,
                "properties": {k: v for k, v in values.items() if v != ""},
                "createdAt": created,
                "updatedAt": modified_at or created,
                "archived": False,
            }
            record["properties"]["hs_object_id"] = object_id
            record["properties"]["createdate"] = iso_ms(created)
            self._objects[object_type][object_id] = record
            self._calculated(object_type, record)
            self._touch(object_type, record, modified_at or created)
            return self._render(object_type, record, None)

    def update(self, object_type: str, object_id: str, properties: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            record = self._object_or_404(object_type, object_id)
            self._write(object_type, record, self._validated(object_type, properties))
            return self._render(object_type, record, None)

    def get(self, object_type: str, object_id: str) -> dict[str, Any]:
        """A record with all its properties."""
        with self._lock:
            record = self._object_or_404(object_type, object_id)
            return self._render(object_type, record, list(record["properties"]))

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """Link two records both ways (a deal to a contact or company, a contact to a company)."""
        with self._lock:
            self._object_or_404(from_type, from_id)
            self._object_or_404(to_type, to_id)
            for (a, ida), (b, idb) in (
                ((from_type, from_id), (to_type, to_id)),
                ((to_type, to_id), (from_type, from_id)),
            ):
                links = self._associations[(a, b)].setdefault(ida, [])
                if idb not in links:
                    links.append(idb)
            if {from_type, to_type} == {"contacts", "companies"}:
                contact = from_id if from_type == "contacts" else to_id
                company = to_id if to_type == "companies" else from_id
                record = self._objects["contacts"][contact]
                if not record["properties"].get("associatedcompanyid"):
                    self._write("contacts", record, {"associatedcompanyid": company})

    def archive(self, object_type: str, object_id: str) -> None:
        with self._lock:
            self._object_or_404(object_type, object_id)["archived"] = True

    def property(self, object_type: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._properties[object_type].get(name)
            return deepcopy(found) if found else None

    def count(self, object_type: str) -> int:
        with self._lock:
            return sum(1 for r in self._objects[object_type].values() if not r["archived"])

    # -- records -----------------------------------------------------------------------------------

    def _object_or_404(self, object_type: str, object_id: str) -> dict[str, Any]:
        record = self._objects[object_type].get(str(object_id))
        if record is None or record["archived"]:
            raise _not_found(object_type, str(object_id))
        return record

    def _validated(self, object_type: str, properties: Mapping[str, Any]) -> dict[str, str]:
        """Stringify values like HubSpot and refuse unknown properties and enumeration values."""
        if not isinstance(properties, Mapping):
            raise _invalid("properties must be an object")
        out: dict[str, str] = {}
        errors = []
        for name, value in properties.items():
            definition = self._properties[object_type].get(name)
            if definition is None:
                errors.append(
                    {"message": f'Property "{name}" does not exist', "code": "PROPERTY_DOESNT_EXIST",
                     "context": {"propertyName": [name]}}
                )  # fmt: skip
                continue
            if definition.get("calculated") or name in ("hs_object_id", "createdate", MODIFIED[object_type]):
                errors.append({"message": f'"{name}" is a read only property', "code": "READ_ONLY_VALUE"})
                continue
            text = (
                ""
                if value is None
                else ("true" if value is True else "false" if value is False else str(value))
            )
            if definition["type"] == "enumeration" and text:
                allowed = {o["value"] for o in definition["options"]}
                given = text.split(";") if definition["fieldType"] == "checkbox" else [text]
                bad = [v for v in given if v not in allowed]
                if bad:
                    errors.append(
                        {"message": f"{bad[0]!r} was not one of the allowed options: {sorted(allowed)}",
                         "code": "INVALID_OPTION", "context": {"propertyName": [name]}}
                    )  # fmt: skip
                    continue
            if definition["type"] == "number" and text:
                try:
                    float(text)
                except ValueError:
                    errors.append({"message": f"{text!r} is not a valid number", "code": "INVALID_INTEGER"})
                    continue
            if definition["type"] in ("datetime", "date") and text:
                ms = to_ms(text)
                if ms is None:
                    errors.append({"message": f"{text!r} is not a valid date", "code": "INVALID_DATE"})
                    continue
                text = iso_ms(datetime.fromtimestamp(ms / 1000, UTC))
            out[name] = text
        if errors:
            raise _invalid(f"Property values were not valid: {json.dumps(errors)}", errors=errors)
        return out

    def _check_unique_email(self, object_type: str, values: Mapping[str, str]) -> None:
        if object_type != "contacts" or not values.get("email"):
            return
        wanted = values["email"].casefold()
        for record in self._objects["contacts"].values():
            if not record["archived"] and record["properties"].get("email", "").casefold() == wanted:
                raise HubSpotError(409, f"Contact already exists. Existing ID: {record['id']}", "CONFLICT")

    def _calculated(self, object_type: str, record: dict[str, Any]) -> None:
        if object_type == "deals":
            won = record["properties"].get("dealstage") in WON_STAGES
            record["properties"]["hs_is_closed_won"] = "true" if won else "false"

    def _touch(self, object_type: str, record: dict[str, Any], when: datetime) -> None:
        record["updatedAt"] = when
        record["properties"][MODIFIED[object_type]] = iso_ms(when)

    def _write(self, object_type: str, record: dict[str, Any], values: Mapping[str, str]) -> None:
        for name, value in values.items():
            if value == "":
                record["properties"].pop(
                    name, None
                )  # "Properties values can be cleared by passing an empty string."
            else:
                record["properties"][name] = value
        self._calculated(object_type, record)
        self._touch(object_type, record, self._now())

    def _render(
        self, object_type: str, record: Mapping[str, Any], wanted: list[str] | None
    ) -> dict[str, Any]:
        names = list(DEFAULT_PROPERTIES[object_type]) if wanted is None else list(wanted)
        for always in ("hs_object_id", "createdate", MODIFIED[object_type]):
            if always not in names:
                names.append(always)
        props = record["properties"]
        return {
            "id": record["id"],
            "properties": {n: props.get(n) for n in names if n in self._properties[object_type]},
            "createdAt": iso_ms(record["createdAt"]),
            "updatedAt": iso_ms(record["updatedAt"]),
            "archived": record["archived"],
        }

    # -- the Flask app -----------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = self._new_app("hubspot_sandbox")
        app.register_error_handler(HubSpotError, self._hubspot_error)
        app.register_error_handler(HTTPException, self._http_error)
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("/crm/v3/objects/<object_type>", "GET", self._list),
            ("/crm/v3/objects/<object_type>", "POST", self._create),
            ("/crm/v3/objects/<object_type>/search", "POST", self._search),
            ("/crm/v3/objects/<object_type>/batch/update", "POST", self._batch_update),
            ("/crm/v3/objects/<object_type>/<object_id>", "GET", self._show),
            ("/crm/v3/objects/<object_type>/<object_id>", "PATCH", self._patch),
            ("/crm/v3/properties/<object_type>", "GET", self._list_properties),
            ("/crm/v3/properties/<object_type>", "POST", self._create_property),
            ("/crm/v3/properties/<object_type>/<name>", "GET", self._show_property),
            ("/crm/v3/properties/<object_type>/<name>", "PATCH", self._patch_property),
            ("/crm/v4/associations/<from_type>/<to_type>/batch/read", "POST", self._read_associations),
        ]
        self._add_routes(app, routes)
        return app

    def _rate_headers(self, now: float) -> dict[str, str]:
        headers = {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self._daily_used)),
        }
        if self._rate is not None:
            headers.update(
                {
                    "X-HubSpot-RateLimit-Max": str(self._rate.limit),
                    "X-HubSpot-RateLimit-Remaining": str(self._rate.remaining(now)),
                    "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.window_ms),
                }
            )
        return headers

    def _rate_limited(self, now: float) -> Response:
        response = self._json(
            {
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()),
                "policyName": "TEN_SECONDLY_ROLLING",
            },
            429,
        )
        response.headers.update(self._rate_headers(now))
        if self._rate is None:  # an injected 429 still says which window to wait for
            response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(self.window_ms)
            response.headers["X-HubSpot-RateLimit-Remaining"] = "0"
        return response

    def _before_request(self) -> Response | None:
        request.get_data(cache=True)
        now = time.monotonic()
        with self._lock:
            if self._faults["remaining"] > 0:
                self._faults["remaining"] -= 1
                status = self._faults["status"]
                if status == 429:
                    return self._rate_limited(now)
                return self._json(
                    {
                        "status": "error",
                        "message": "Injected fault",
                        "category": "INTERNAL_ERROR",
                        "correlationId": str(uuid.uuid4()),
                    },
                    status,
                )
            if self._rate is not None and not self._rate.admit(now)[0]:
                return self._rate_limited(now)
            self._daily_used += 1
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self.token.encode()):
            return self._json(
                {
                    "status": "error",
                    "message": "Authentication credentials not found. This API supports OAuth 2.0 "
                    "authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                    "correlationId": str(uuid.uuid4()),
                    "category": "INVALID_AUTHENTICATION",
                },
                401,
            )
        return None

    def _after_request(self, response: Response) -> Response:
        if response.status_code != 429:
            response.headers.update(self._rate_headers(time.monotonic()))
        try:
            body = json.loads(request.get_data(cache=True) or b"null")
        except ValueError:
            body = None
        with self._lock:
            self._log.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "query": request.query_string.decode("utf-8", "replace"),
                    "body": body,
                    "status": response.status_code,
                }
            )
        return response

    def _hubspot_error(self, error: HubSpotError) -> Response:
        return self._json(error.body, error.status)

    def _http_error(self, error: HTTPException) -> Response:
        status = error.code or 500
        category = "OBJECT_NOT_FOUND" if status == 404 else "VALIDATION_ERROR"
        return self._json(
            {"status": "error", "message": error.description or error.name, "category": category,
             "correlationId": str(uuid.uuid4())},
            status,
        )  # fmt: skip

    # -- request helpers -----------------------------------------------------------------------------

    @staticmethod
    def _body() -> dict[str, Any]:
        try:
            data = json.loads(request.get_data(cache=True) or b"{}")
        except ValueError as e:
            raise _invalid("Invalid input JSON on line 1: the body is not JSON") from e
        if not isinstance(data, dict):
            raise _invalid("Invalid input JSON: expected an object")
        return data

    @staticmethod
    def _type(object_type: str) -> str:
        if object_type not in OBJECT_TYPES:
            raise HubSpotError(400, f"Unable to infer object type from: {object_type}", "VALIDATION_ERROR")
        return object_type

    @staticmethod
    def _limit(raw: Any, default: int, maximum: int) -> int:
        try:
            limit = int(raw) if raw not in (None, "") else default
        except (TypeError, ValueError) as e:
            raise _invalid(f"limit must be an integer, got {raw!r}") from e
        if limit < 1 or limit > maximum:
            raise _invalid(f"limit must be between 1 and {maximum}, got {limit}")
        return limit

    @staticmethod
    def _after(raw: Any) -> int:
        if raw in (None, ""):
            return 0
        try:
            after = int(str(raw))
        except ValueError as e:
            raise _invalid(f"after must be a paging cursor returned by the API, got {raw!r}") from e
        if after < 0:
            raise _invalid("after must not be negative")
        return after

    def _wanted(self, object_type: str, raw: Any) -> list[str] | None:
        if raw in (None, "", []):
            return None
        names = raw.split(",") if isinstance(raw, str) else list(raw)
        return [n.strip() for n in names if n.strip()]

    # -- objects -------------------------------------------------------------------------------------

    def _live(self, object_type: str) -> list[dict[str, Any]]:
        return sorted(
            (r for r in self._objects[object_type].values() if not r["archived"]), key=lambda r: int(r["id"])
        )

    def _list(self, object_type: str) -> Response:
        object_type = self._type(object_type)
        limit = self._limit(request.args.get("limit"), 10, LIST_LIMIT_MAX)
        after = self._after(request.args.get("after"))
        wanted = self._wanted(object_type, request.args.get("properties"))
        with self._lock:
            records = self._live(object_type)
            page = records[after : after + limit]
            body: dict[str, Any] = {"results": [self._render(object_type, r, wanted) for r in page]}
        if after + limit < len(records):
            nxt = str(after + limit)
            body["paging"] = {"next": {"after": nxt, "link": f"{request.base_url}?after={nxt}&limit={limit}"}}
        return self._json(body)

    def _show(self, object_type: str, object_id: str) -> Response:
        object_type = self._type(object_type)
        wanted = self._wanted(object_type, request.args.get("properties"))
        id_property = request.args.get("idProperty")
        with self._lock:
            if id_property:
                matches = [
                    r
                    for r in self._live(object_type)
                    if str(r["properties"].get(id_property, "")).casefold() == object_id.casefold()
                ]
                if not matches:
                    raise _not_found(object_type, object_id)
                record = matches[0]
            else:
                record = self._object_or_404(object_type, object_id)
            return self._json(self._render(object_type, record, wanted))

    def _create(self, object_type: str) -> Response:
        object_type = self._type(object_type)
        body = self._body()
        created = self.add(object_type, body.get("properties") or {}, check_unique=True)
        return self._json(created, 201)

    def _patch(self, object_type: str, object_id: str) -> Response:
        object_type = self._type(object_type)
        return self._json(self.update(object_type, object_id, self._body().get("properties") or {}))

    def _batch_update(self, object_type: str) -> Response:
        object_type = self._type(object_type)
        inputs = self._body().get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise _invalid("inputs must be a non-empty array")
        if len(inputs) > BATCH_MAX:
            raise _invalid(f"Batch input limit exceeded: at most {BATCH_MAX} inputs, got {len(inputs)}")
        started = iso_ms(self._now())
        with self._lock:
            checked = []
            for item in inputs:
                if not isinstance(item, dict) or "id" not in item:
                    raise _invalid("every input needs an id and properties")
                checked.append((str(item["id"]), self._validated(object_type, item.get("properties") or {})))
            results, missing = [], []
            for object_id, values in checked:
                record = self._objects[object_type].get(object_id)
                if record is None or record["archived"]:
                    missing.append(object_id)
                    continue
                self._write(object_type, record, values)
                results.append(self._render(object_type, record, list(values) or None))
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": iso_ms(self._now()),
        }
        if missing:
            body["numErrors"] = 1
            body["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some "
                    + object_type
                    + " objects, they may be deleted or not exist.",
                    "context": {"ids": missing},
                }
            ]
            return self._json(body, 207)
        return self._json(body)

    # -- search ------------------------------------------------------------------------------------------

    def _comparable(self, object_type: str, name: str, value: Any) -> Any:
        definition = self._properties[object_type].get(name) or {}
        kind = definition.get("type")
        if value is None:
            return None
        if kind in ("datetime", "date"):
            return to_ms(value)
        if kind == "number":
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
        return str(value).casefold()

    def _matches(self, object_type: str, record: Mapping[str, Any], flt: Mapping[str, Any]) -> bool:
        name = flt["propertyName"]
        operator = flt["operator"]
        raw = record["properties"].get(name)
        have = self._comparable(object_type, name, raw)
        if operator == "HAS_PROPERTY":
            return raw not in (None, "")
        if operator == "NOT_HAS_PROPERTY":
            return raw in (None, "")
        if operator in ("IN", "NOT_IN"):
            values = {self._comparable(object_type, name, v) for v in flt.get("values") or []}
            return (have in values) == (operator == "IN")
        if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            token = str(flt.get("value", "")).casefold().strip("*")
            found = token in str(raw or "").casefold()
            return found == (operator == "CONTAINS_TOKEN")
        want = self._comparable(object_type, name, flt.get("value"))
        if operator == "NEQ":
            return have != want
        if have is None or want is None:
            return False
        try:
            if operator == "EQ":
                return bool(have == want)
            if operator == "LT":
                return bool(have < want)
            if operator == "LTE":
                return bool(have <= want)
            if operator == "GT":
                return bool(have > want)
            if operator == "GTE":
                return bool(have >= want)
            if operator == "BETWEEN":
                high = self._comparable(object_type, name, flt.get("highValue"))
                return high is not None and bool(want <= have <= high)
        except TypeError:
            return False
        return False

    def _check_search(self, object_type: str, body: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
        groups = body.get("filterGroups") or []
        if not isinstance(groups, list) or len(groups) > MAX_FILTER_GROUPS:
            raise _invalid(f"at most {MAX_FILTER_GROUPS} filterGroups are allowed")
        out = []
        total = 0
        for group in groups:
            filters = group.get("filters") if isinstance(group, dict) else None
            if not isinstance(filters, list) or len(filters) > MAX_FILTERS_PER_GROUP:
                raise _invalid(f"each filterGroup needs a filters array of at most {MAX_FILTERS_PER_GROUP}")
            total += len(filters)
            for flt in filters:
                if not isinstance(flt, dict) or flt.get("operator") not in OPERATORS:
                    raise _invalid(f"unknown filter operator in {flt!r}")
                if flt.get("propertyName") not in self._properties[object_type]:
                    raise _invalid(f'Property "{flt.get("propertyName")}" does not exist on {object_type}')
            out.append(filters)
        if total > MAX_FILTERS:
            raise _invalid(f"at most {MAX_FILTERS} filters are allowed in all")
        return out

    def _sort(self, object_type: str, body: Mapping[str, Any]) -> tuple[str, bool] | None:
        sorts = body.get("sorts") or []
        if not sorts:
            return None
        if len(sorts) > 1:
            raise _invalid("only one sort is allowed")
        sort = sorts[0]
        if isinstance(sort, str):
            name, descending = sort.lstrip("-"), sort.startswith("-")
        elif isinstance(sort, dict):
            name = sort.get("propertyName", "")
            descending = str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING"
        else:
            raise _invalid("sorts must be property names or {propertyName, direction}")
        if name not in self._properties[object_type]:
            raise _invalid(f'Property "{name}" does not exist on {object_type}')
        return name, descending

    def _search(self, object_type: str) -> Response:
        object_type = self._type(object_type)
        body = self._body()
        limit = self._limit(body.get("limit"), 10, SEARCH_LIMIT_MAX)
        after = self._after(body.get("after"))
        if after >= self.search_cap or after + limit > self.search_cap:
            raise _invalid(
                f"The search API returns at most {self.search_cap} results for a query: after={after} with "
                f"limit={limit} goes past it. Narrow the query (e.g. by date) instead of paging further."
            )
        groups = self._check_search(object_type, body)
        sort = self._sort(object_type, body)
        query = str(body.get("query") or "").casefold()
        wanted = self._wanted(object_type, body.get("properties"))
        with self._lock:
            records = [
                r
                for r in self._live(object_type)
                if (not groups or any(all(self._matches(object_type, r, f) for f in g) for g in groups))
                and (not query or any(query in str(v).casefold() for v in r["properties"].values()))
            ]
            if sort is not None:
                name, descending = sort
                present = [r for r in records if r["properties"].get(name) not in (None, "")]
                absent = [r for r in records if r["properties"].get(name) in (None, "")]
                present.sort(
                    key=lambda r: (self._comparable(object_type, name, r["properties"][name]), int(r["id"])),
                    reverse=descending,
                )
                records = present + absent
            page = records[after : after + limit]
            result: dict[str, Any] = {
                "total": len(records),
                "results": [self._render(object_type, r, wanted) for r in page],
            }
        if after + limit < len(records):
            result["paging"] = {"next": {"after": str(after + limit)}}
        return self._json(result)

    # -- properties ------------------------------------------------------------------------------------

    def _list_properties(self, object_type: str) -> Response:
        object_type = self._type(object_type)
        with self._lock:
            return self._json({"results": deepcopy(list(self._properties[object_type].values()))})

    def _show_property(self, object_type: str, name: str) -> Response:
        object_type = self._type(object_type)
        with self._lock:
            found = self._properties[object_type].get(name)
            if found is None:
                raise HubSpotError(
                    404, f"Unable to find property {name} on {object_type}", "OBJECT_NOT_FOUND"
                )
            return self._json(deepcopy(found))

    @staticmethod
    def _checked_options(raw: Any) -> list[dict[str, Any]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise _invalid("options must be an array")
        options = []
        for i, option in enumerate(raw):
            if not isinstance(option, dict) or not option.get("value") or not option.get("label"):
                raise _invalid(f"option {i} needs a label and a value")
            options.append(
                {
                    "label": str(option["label"]),
                    "value": str(option["value"]),
                    "displayOrder": int(option.get("displayOrder", i)),
                    "hidden": bool(option.get("hidden", False)),
                }
            )
        values = [o["value"] for o in options]
        if len(set(values)) != len(values):
            raise _invalid("option values must be unique")
        return options

    def _create_property(self, object_type: str) -> Response:
        object_type = self._type(object_type)
        body = self._body()
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise _invalid(f"missing required fields: {', '.join(missing)}")
        if body["type"] == "enumeration" and body["fieldType"] not in (
            "select",
            "radio",
            "checkbox",
            "booleancheckbox",
        ):
            raise _invalid(f"fieldType {body['fieldType']} does not fit an enumeration")
        with self._lock:
            if body["name"] in self._properties[object_type]:
                raise HubSpotError(409, f"A property named '{body['name']}' already exists.", "CONFLICT")
            definition = _prop(
                str(body["name"]),
                str(body["label"]),
                str(body["type"]),
                str(body["fieldType"]),
                str(body["groupName"]),
                options=self._checked_options(body.get("options")),
                description=str(body.get("description") or ""),
                hubspotDefined=False,
            )
            self._properties[object_type][definition["name"]] = definition
            return self._json(deepcopy(definition), 201)

    def _patch_property(self, object_type: str, name: str) -> Response:
        object_type = self._type(object_type)
        body = self._body()
        with self._lock:
            found = self._properties[object_type].get(name)
            if found is None:
                raise HubSpotError(
                    404, f"Unable to find property {name} on {object_type}", "OBJECT_NOT_FOUND"
                )
            if found.get("hubspotDefined"):
                raise _invalid(f"{name} is a HubSpot-defined property and cannot be changed here")
            for key in ("label", "description", "groupName"):
                if key in body:
                    found[key] = str(body[key])
            if "options" in body:
                found["options"] = self._checked_options(body["options"])
            return self._json(deepcopy(found))

    # -- associations (v4) ---------------------------------------------------------------------------

    def _read_associations(self, from_type: str, to_type: str) -> Response:
        from_type, to_type = self._type(from_type), self._type(to_type)
        if (from_type, to_type) not in self._associations:
            raise _invalid(f"no associations between {from_type} and {to_type}")
        inputs = self._body().get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise _invalid("inputs must be a non-empty array")
        if len(inputs) > ASSOCIATION_BATCH_MAX:
            raise _invalid(f"Batch input limit exceeded: at most {ASSOCIATION_BATCH_MAX} inputs")
        started = iso_ms(self._now())
        type_id = ASSOCIATION_TYPE_IDS[(from_type, to_type)]
        results, missing = [], []
        with self._lock:
            for item in inputs:
                object_id = str(item.get("id")) if isinstance(item, dict) else ""
                record = self._objects[from_type].get(object_id)
                if record is None or record["archived"]:
                    missing.append(object_id)
                    continue
                results.append(
                    {
                        "from": {"id": object_id},
                        "to": [
                            {
                                "toObjectId": int(to_id),
                                "associationTypes": [
                                    {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}
                                ],
                            }
                            for to_id in self._associations[(from_type, to_type)].get(object_id, [])
                            if not self._objects[to_type][to_id]["archived"]
                        ],
                    }
                )
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": iso_ms(self._now()),
        }
        if missing:
            body["numErrors"] = len(missing)
            body["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"No {from_type} with id {object_id}",
                    "context": {"fromObjectId": [object_id]},
                }
                for object_id in missing
            ]
            return self._json(body, 207)
        return self._json(body)
