"""The HubSpot sandbox's portal: records, associations and property definitions in memory.

The direct-access methods here (add, update, get, associate, ...) serve seeding and tests without HTTP;
the routes (routes/) build on this class.
"""

from __future__ import annotations

import itertools
import json
import threading
from abc import abstractmethod
from collections.abc import Callable, Mapping
from copy import deepcopy
from datetime import UTC, datetime
from typing import Any

from flask import Flask

from sandbox.base import QuietHandler, SandboxServer, SlidingWindow
from sandbox.hubspot.common import (
    ASSOCIATION_TYPE_IDS,
    DEFAULT_PROPERTIES,
    FIRST_IDS,
    MODIFIED,
    OBJECT_TYPES,
    SEARCH_CAP,
    WON_STAGES,
    HubSpotError,
    builtin_properties,
    invalid,
    iso_ms,
    not_found,
    to_ms,
)


class HubSpotState(SandboxServer):
    """An in-memory HubSpot portal; HubSpotSandbox (server.py) gives it its HTTP face."""

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
        self._properties = builtin_properties()
        self._ids = {t: itertools.count(FIRST_IDS[t]) for t in OBJECT_TYPES}
        self._rate = SlidingWindow(rate_limit, window_ms / 1000) if rate_limit else None
        self._daily_used = 0
        self._faults: dict[str, int] = {"status": 0, "remaining": 0}
        self._log: list[dict[str, Any]] = []
        self._init_server()
        self.app = self._build_app()

    @abstractmethod
    def _build_app(self) -> Flask:
        """The Flask app that serves the API (routes/http.py)."""

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
            raise not_found(object_type, str(object_id))
        return record

    def _live(self, object_type: str) -> list[dict[str, Any]]:
        return sorted(
            (r for r in self._objects[object_type].values() if not r["archived"]), key=lambda r: int(r["id"])
        )

    def _validated(self, object_type: str, properties: Mapping[str, Any]) -> dict[str, str]:
        """Stringify values like HubSpot and refuse unknown properties and enumeration values."""
        if not isinstance(properties, Mapping):
            raise invalid("properties must be an object")
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
            raise invalid(f"Property values were not valid: {json.dumps(errors)}", errors=errors)
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
