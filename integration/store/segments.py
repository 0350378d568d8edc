"""Segment labels of customers and organizations, their change history, and the fitted models."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from integration.core.models import Assignment
from integration.store.connection import Connection, _iso, _json


class SegmentsStore(Connection):
    """The segments, organization_segments, segment_changes and models tables."""

    def save_segments(self, assignments: dict[str, dict[str, Assignment]], now: datetime) -> int:
        """Store the current assignments and record every label change; returns the number of changes."""
        stamp = _iso(now)
        keys = list(assignments)
        changes = 0
        with self.transaction() as db:
            current: dict[tuple[str, str], str | None] = {}
            for chunk_start in range(0, len(keys), 500):
                chunk = keys[chunk_start : chunk_start + 500]
                marks = ",".join("?" * len(chunk))
                for row in db.conn.execute(
                    f"SELECT customer_key, dimension, label FROM segments "  # noqa: S608
                    f"WHERE customer_key IN ({marks})",
                    chunk,
                ):
                    current[(row[0], row[1])] = row[2]
            rows, history = [], []
            for customer_key, dims in assignments.items():
                for dimension, a in dims.items():
                    rows.append(
                        {
                            "customer_key": customer_key,
                            "dimension": dimension,
                            "label": a.label,
                            "reasons": _json(list(a.reasons)),
                            "computed_at": stamp,
                        }
                    )
                    before = current.get((customer_key, dimension), "\0missing")
                    if before != a.label and not (before == "\0missing" and a.label is None):
                        history.append(
                            {
                                "customer_key": customer_key,
                                "dimension": dimension,
                                "from_label": None if before == "\0missing" else before,
                                "to_label": a.label,
                                "reasons": _json(list(a.reasons)),
                                "changed_at": stamp,
                            }
                        )
            db["segments"].upsert_all(rows, pk=("customer_key", "dimension"))
            if history:
                db["segment_changes"].insert_all(history)
            changes = len(history)
        return changes

    def segments_for(self, customer_key: str) -> dict[str, Assignment]:
        return {
            row["dimension"]: Assignment(row["dimension"], row["label"], tuple(json.loads(row["reasons"])))
            for row in self.db.query(
                "SELECT * FROM segments WHERE customer_key = ? ORDER BY rowid", [customer_key]
            )
        }

    def segment_distribution(self) -> dict[str, dict[str | None, int]]:
        """Customers per stored label; only customers (customer_counts): a record that has since been
        linked into another one, or held back, keeps its old rows but is nobody's count."""
        out: dict[str, dict[str | None, int]] = {}
        for row in self.db.query(
            "SELECT s.dimension, s.label, count(*) AS n FROM segments s "
            "WHERE s.customer_key IN (SELECT key FROM customer_population) "
            "GROUP BY s.dimension, s.label ORDER BY s.dimension, n DESC"
        ):
            out.setdefault(row["dimension"], {})[row["label"]] = row["n"]
        return out

    def customers_by_segment(self) -> dict[tuple[str, str], list[str]]:
        """Customer keys per (dimension, label), for sampling and reports."""
        out: dict[tuple[str, str], list[str]] = {}
        for row in self.db.query(
            "SELECT dimension, label, customer_key FROM segments WHERE label IS NOT NULL "
            "ORDER BY dimension, label, customer_key"
        ):
            out.setdefault((row["dimension"], row["label"]), []).append(row["customer_key"])
        return out

    def replace_segments(self, rows: Iterable[tuple[str, str, str | None, str]], now: datetime) -> int:
        """Store (customer key, dimension, label, reasons JSON) for many customers in one transaction,
        recording every label change in segment_changes (in SQL, not per row); returns the changes."""
        stamp = _iso(now)
        with self.transaction() as db:
            conn = db.conn
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS new_segments "
                "(customer_key TEXT NOT NULL, dimension TEXT NOT NULL, label TEXT, reasons TEXT NOT NULL)"
            )
            conn.execute("DELETE FROM new_segments")
            conn.executemany("INSERT INTO new_segments VALUES (?, ?, ?, ?)", rows)
            changes = conn.execute(
                "INSERT INTO segment_changes "
                "(customer_key, dimension, from_label, to_label, reasons, changed_at) "
                "SELECT n.customer_key, n.dimension, s.label, n.label, n.reasons, ? "
                "FROM new_segments n LEFT JOIN segments s "
                "ON s.customer_key = n.customer_key AND s.dimension = n.dimension "
                "WHERE (s.customer_key IS NULL AND n.label IS NOT NULL) "
                "OR (s.customer_key IS NOT NULL AND s.label IS NOT n.label)",
                (stamp,),
            ).rowcount
            conn.execute(
                "INSERT INTO segments (customer_key, dimension, label, reasons, computed_at) "
                "SELECT customer_key, dimension, label, reasons, ? FROM new_segments WHERE true "
                "ON CONFLICT (customer_key, dimension) DO UPDATE SET label = excluded.label, "
                "reasons = excluded.reasons, computed_at = excluded.computed_at",
                (stamp,),
            )
            conn.execute("DELETE FROM new_segments")
            # someone deleted or suspended since the last recompute is no customer: no labels left behind
            conn.execute(
                "DELETE FROM segments WHERE customer_key IN (SELECT key FROM customers WHERE active = 0)"
            )
        return changes

    def save_organization_segments(
        self, assignments: dict[str, dict[str, Assignment]], now: datetime
    ) -> None:
        """The current labels of organizations in organization-level dimensions."""
        stamp = _iso(now)
        rows = [
            (org_key, dim, a.label, _json(list(a.reasons)), stamp)
            for org_key, dims in assignments.items()
            for dim, a in dims.items()
        ]
        with self.transaction() as db:
            db.conn.executemany(
                "INSERT INTO organization_segments "
                "(organization_key, dimension, label, reasons, computed_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (organization_key, dimension) DO UPDATE SET "
                "label = excluded.label, reasons = excluded.reasons, computed_at = excluded.computed_at",
                rows,
            )

    def organization_segments(self, organization_key: str) -> dict[str, Assignment]:
        return {
            row[0]: Assignment(row[0], row[1], tuple(json.loads(row[2])))
            for row in self.db.conn.execute(
                "SELECT dimension, label, reasons FROM organization_segments WHERE organization_key = ? "
                "ORDER BY rowid",
                (organization_key,),
            )
        }

    def save_model(self, name: str, data: dict[str, Any], now: datetime) -> None:
        with self.transaction() as db:
            db["models"].upsert({"name": name, "data": _json(data), "computed_at": _iso(now)}, pk="name")

    def load_model(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT data FROM models WHERE name = ?", [name]))
        return json.loads(rows[0]["data"]) if rows else None

    def model_digest(self, name: str) -> tuple[str | None, str] | None:
        """(digest of the mapping a model was fitted for, when it was fitted), without reading the model:
        the scheduler asks every few seconds whether a published mapping still needs its refit."""
        row = self.db.conn.execute(
            "SELECT json_extract(data, '$.digest'), computed_at FROM models WHERE name = ?", (name,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    # -- the change history: re-routing's bookmark, drift reports and retention ----------------------

    def last_segment_change(self) -> int:
        """A bookmark in the change history: changes after it belong to the next recompute."""
        return int(self.db.conn.execute("SELECT coalesce(max(id), 0) FROM segment_changes").fetchone()[0])

    def customers_changed_since(self, bookmark: int) -> list[str]:
        """Customers with segment changes after `bookmark`. A first label counts too: the re-route
        compares each ticket's labels with the ones it was routed with, which needs no older history
        (so pruning segment_changes cannot hide a change)."""
        return [
            row[0]
            for row in self.db.conn.execute(
                "SELECT DISTINCT customer_key FROM segment_changes WHERE id > ? ORDER BY customer_key",
                (bookmark,),
            )
        ]

    def segment_changes_since(
        self, customer_key: str, bookmark: int
    ) -> list[tuple[str, str | None, str | None]]:
        """(dimension, from, to) of one customer's changes after `bookmark`."""
        return [
            (row[0], row[1], row[2])
            for row in self.db.conn.execute(
                "SELECT dimension, from_label, to_label FROM segment_changes "
                "WHERE customer_key = ? AND id > ? ORDER BY id",
                (customer_key, bookmark),
            )
        ]

    def segment_history_start(self, dimension: str) -> str | None:
        """The day the first stored label change of a dimension was recorded: drift before it is unknown."""
        row = self.db.conn.execute(
            "SELECT substr(changed_at, 1, 10) FROM segment_changes WHERE dimension = ? ORDER BY id LIMIT 1",
            (dimension,),
        ).fetchone()
        return row[0] if row else None

    def segment_change_counts(
        self, dimension: str, since: datetime
    ) -> list[tuple[str, str | None, str | None, int]]:
        """(day, from label, to label, customers) for every label change in one dimension since `since`."""
        return [
            (row[0], row[1], row[2], int(row[3]))
            for row in self.db.conn.execute(
                "SELECT substr(changed_at, 1, 10) AS day, from_label, to_label, count(*) "
                "FROM segment_changes WHERE dimension = ? AND changed_at >= ? "
                "GROUP BY day, from_label, to_label ORDER BY day",
                (dimension, _iso(since)),
            )
        ]

    def segment_labels(self, customer_keys: Iterable[str]) -> dict[str, dict[str, str | None]]:
        """Stored labels (dimension -> label) of the given customers."""
        keys = list(dict.fromkeys(customer_keys))
        out: dict[str, dict[str, str | None]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, dimension, label in self.db.conn.execute(
                f"SELECT customer_key, dimension, label FROM segments WHERE customer_key IN ({marks})",  # noqa: S608
                chunk,
            ):
                out.setdefault(key, {})[dimension] = label
        return out

    def prune_segment_changes(self, changed_before: datetime, up_to: int, batch: int = 5_000) -> int:
        """Delete label changes recorded before the given time with an id at most `up_to` (the re-route
        bookmark: changes not yet re-routed stay)."""
        return self._delete_batches(
            "segment_changes", "changed_at < ? AND id <= ?", (_iso(changed_before), up_to), batch
        )
