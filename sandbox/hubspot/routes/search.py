"""HubSpot's CRM search API: filter groups, one sort, `after` paging and the 10,000-result cap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response

from sandbox.base import route
from sandbox.hubspot.common import (
    MAX_FILTER_GROUPS,
    MAX_FILTERS,
    MAX_FILTERS_PER_GROUP,
    OPERATORS,
    SEARCH_LIMIT_MAX,
    invalid,
    to_ms,
)
from sandbox.hubspot.routes.http import HubSpotHttp


class SearchRoutes(HubSpotHttp):
    """POST /crm/v3/objects/{type}/search."""

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
            raise invalid(f"at most {MAX_FILTER_GROUPS} filterGroups are allowed")
        out = []
        total = 0
        for group in groups:
            filters = group.get("filters") if isinstance(group, dict) else None
            if not isinstance(filters, list) or len(filters) > MAX_FILTERS_PER_GROUP:
                raise invalid(f"each filterGroup needs a filters array of at most {MAX_FILTERS_PER_GROUP}")
            total += len(filters)
            for flt in filters:
                if not isinstance(flt, dict) or flt.get("operator") not in OPERATORS:
                    raise invalid(f"unknown filter operator in {flt!r}")
                if flt.get("propertyName") not in self._properties[object_type]:
                    raise invalid(f'Property "{flt.get("propertyName")}" does not exist on {object_type}')
            out.append(filters)
        if total > MAX_FILTERS:
            raise invalid(f"at most {MAX_FILTERS} filters are allowed in all")
        return out

    def _sort(self, object_type: str, body: Mapping[str, Any]) -> tuple[str, bool] | None:
        sorts = body.get("sorts") or []
        if not sorts:
            return None
        if len(sorts) > 1:
            raise invalid("only one sort is allowed")
        sort = sorts[0]
        if isinstance(sort, str):
            name, descending = sort.lstrip("-"), sort.startswith("-")
        elif isinstance(sort, dict):
            name = sort.get("propertyName", "")
            descending = str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING"
        else:
            raise invalid("sorts must be property names or {propertyName, direction}")
        if name not in self._properties[object_type]:
            raise invalid(f'Property "{name}" does not exist on {object_type}')
        return name, descending

    @route("/crm/v3/objects/<object_type>/search", "POST")
    def _search(self, object_type: str) -> Response:
        object_type = self._type(object_type)
        body = self._body()
        limit = self._limit(body.get("limit"), 10, SEARCH_LIMIT_MAX)
        after = self._after(body.get("after"))
        if after >= self.search_cap or after + limit > self.search_cap:
            raise invalid(
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
