"""HubSpot's CRM objects API (v3): list, read, create, update and batch-update contacts, companies and
deals."""

from __future__ import annotations

from typing import Any

from flask import Response, request

from sandbox.base import route
from sandbox.hubspot.common import BATCH_MAX, LIST_LIMIT_MAX, invalid, iso_ms, not_found
from sandbox.hubspot.routes.http import HubSpotHttp


class ObjectRoutes(HubSpotHttp):
    """/crm/v3/objects/{type}[/{id}] and /crm/v3/objects/{type}/batch/update."""

    @route("/crm/v3/objects/<object_type>", "GET")
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

    @route("/crm/v3/objects/<object_type>/<object_id>", "GET")
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
                    raise not_found(object_type, object_id)
                record = matches[0]
            else:
                record = self._object_or_404(object_type, object_id)
            return self._json(self._render(object_type, record, wanted))

    @route("/crm/v3/objects/<object_type>", "POST")
    def _create(self, object_type: str) -> Response:
        object_type = self._type(object_type)
        body = self._body()
        created = self.add(object_type, body.get("properties") or {}, check_unique=True)
        return self._json(created, 201)

    @route("/crm/v3/objects/<object_type>/<object_id>", "PATCH")
    def _patch(self, object_type: str, object_id: str) -> Response:
        object_type = self._type(object_type)
        return self._json(self.update(object_type, object_id, self._body().get("properties") or {}))

    @route("/crm/v3/objects/<object_type>/batch/update", "POST")
    def _batch_update(self, object_type: str) -> Response:
        object_type = self._type(object_type)
        inputs = self._body().get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise invalid("inputs must be a non-empty array")
        if len(inputs) > BATCH_MAX:
            raise invalid(f"Batch input limit exceeded: at most {BATCH_MAX} inputs, got {len(inputs)}")
        started = iso_ms(self._now())
        with self._lock:
            checked = []
            for item in inputs:
                if not isinstance(item, dict) or "id" not in item:
                    raise invalid("every input needs an id and properties")
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
