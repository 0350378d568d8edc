"""HubSpot's properties API (v3) and associations API (v4)."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from flask import Response

from sandbox.base import route
from sandbox.hubspot.common import (
    ASSOCIATION_BATCH_MAX,
    ASSOCIATION_TYPE_IDS,
    HubSpotError,
    invalid,
    iso_ms,
    prop,
)
from sandbox.hubspot.routes.http import HubSpotHttp


class PropertyRoutes(HubSpotHttp):
    """/crm/v3/properties/{type}[/{name}] and /crm/v4/associations/{from}/{to}/batch/read."""

    # -- properties ------------------------------------------------------------------------------------

    @route("/crm/v3/properties/<object_type>", "GET")
    def _list_properties(self, object_type: str) -> Response:
        object_type = self._type(object_type)
        with self._lock:
            return self._json({"results": deepcopy(list(self._properties[object_type].values()))})

    @route("/crm/v3/properties/<object_type>/<name>", "GET")
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
            raise invalid("options must be an array")
        options = []
        for i, option in enumerate(raw):
            if not isinstance(option, dict) or not option.get("value") or not option.get("label"):
                raise invalid(f"option {i} needs a label and a value")
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
            raise invalid("option values must be unique")
        return options

    @route("/crm/v3/properties/<object_type>", "POST")
    def _create_property(self, object_type: str) -> Response:
        object_type = self._type(object_type)
        body = self._body()
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise invalid(f"missing required fields: {', '.join(missing)}")
        if body["type"] == "enumeration" and body["fieldType"] not in (
            "select",
            "radio",
            "checkbox",
            "booleancheckbox",
        ):
            raise invalid(f"fieldType {body['fieldType']} does not fit an enumeration")
        with self._lock:
            if body["name"] in self._properties[object_type]:
                raise HubSpotError(409, f"A property named '{body['name']}' already exists.", "CONFLICT")
            definition = prop(
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

    @route("/crm/v3/properties/<object_type>/<name>", "PATCH")
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
                raise invalid(f"{name} is a HubSpot-defined property and cannot be changed here")
            for key in ("label", "description", "groupName"):
                if key in body:
                    found[key] = str(body[key])
            if "options" in body:
                found["options"] = self._checked_options(body["options"])
            return self._json(deepcopy(found))

    # -- associations (v4) ---------------------------------------------------------------------------

    @route("/crm/v4/associations/<from_type>/<to_type>/batch/read", "POST")
    def _read_associations(self, from_type: str, to_type: str) -> Response:
        from_type, to_type = self._type(from_type), self._type(to_type)
        if (from_type, to_type) not in self._associations:
            raise invalid(f"no associations between {from_type} and {to_type}")
        inputs = self._body().get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise invalid("inputs must be a non-empty array")
        if len(inputs) > ASSOCIATION_BATCH_MAX:
            raise invalid(f"Batch input limit exceeded: at most {ASSOCIATION_BATCH_MAX} inputs")
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
