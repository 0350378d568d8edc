"""Bulk reads for a recompute over the whole population, column by column.

A recompute reads every customer at once: these queries pick attributes with SQLite's JSON functions and hand
back columns (lists), so Python neither parses JSON nor builds an object per row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from integration.store.connection import Connection


class ColumnsStore(Connection):
    """Columnar reads of customer_population and organization_population."""

    @staticmethod
    def _attribute_picks(attributes: Sequence[str]) -> tuple[str, list[Any]]:
        """Select each attribute with SQLite's JSON functions, so Python parses no JSON per row."""
        picks = "".join(", json_extract(attributes, ?), json_type(attributes, ?)" for _ in attributes)
        paths: list[Any] = []
        for name in attributes:
            paths += [f'$."{name}"', f'$."{name}"']
        return picks, paths

    @staticmethod
    def _json_values(values: list[Any], types: list[Any]) -> list[Any]:
        """json_extract gives 1/0 for true/false and JSON text for lists and objects: undo that."""
        if not any(t in ("true", "false", "array", "object") for t in types):
            return values
        out = []
        for value, kind in zip(values, types, strict=True):
            if kind == "true" or kind == "false":
                out.append(kind == "true")
            elif kind in ("array", "object"):
                out.append(json.loads(value))
            else:
                out.append(value)
        return out

    def customer_columns(
        self, attributes: Sequence[str], organization_key: str | None = None
    ) -> dict[str, Any]:
        """Every customer (or one organization's), column by column, for a recompute.

        Keys ``keys sources external_ids emails tags organization_keys created_at`` (epoch seconds
        or None) and ``attributes``: attribute -> values as sent (None when absent), ordered by key.
        """
        picks, paths = self._attribute_picks(attributes)
        sql = (
            "SELECT key, source, external_id, email, tags, organization_key, unixepoch(created_at)"  # noqa: S608
            f"{picks} FROM customer_population"
        )
        params: list[Any] = list(paths)
        if organization_key is not None:
            sql += " WHERE organization_key = ?"
            params.append(organization_key)
        rows = self.db.conn.execute(sql + " ORDER BY key", params).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [()] * (7 + 2 * len(attributes))
        return {
            "keys": list(columns[0]),
            "sources": list(columns[1]),
            "external_ids": list(columns[2]),
            "emails": list(columns[3]),
            "tags": [() if t == "[]" else tuple(json.loads(t)) for t in columns[4]],
            "organization_keys": list(columns[5]),
            "created_at": list(columns[6]),
            "attributes": {
                name: self._json_values(list(columns[7 + 2 * i]), list(columns[8 + 2 * i]))
                for i, name in enumerate(attributes)
            },
        }

    def organization_columns(
        self, attributes: Sequence[str], keys: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Organizations column by column (all, or those in ``keys``), like customer_columns."""
        picks, paths = self._attribute_picks(attributes)
        sql = (
            "SELECT key, source, external_id, name, domains, tags, unixepoch(created_at)"  # noqa: S608
            f"{picks} FROM organization_population"
        )
        params: list[Any] = list(paths)
        if keys is not None:
            sql += f" WHERE key IN ({','.join('?' * len(keys))})"
            params += list(keys)
        rows = self.db.conn.execute(sql + " ORDER BY key", params).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [()] * (7 + 2 * len(attributes))
        return {
            "keys": list(columns[0]),
            "sources": list(columns[1]),
            "external_ids": list(columns[2]),
            "names": list(columns[3]),
            "domains": [tuple(json.loads(d)) for d in columns[4]],
            "tags": [() if t == "[]" else tuple(json.loads(t)) for t in columns[5]],
            "created_at": list(columns[6]),
            "attributes": {
                name: self._json_values(list(columns[7 + 2 * i]), list(columns[8 + 2 * i]))
                for i, name in enumerate(attributes)
            },
        }
