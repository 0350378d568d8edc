"""Identity across sources: the links and overlays of a resolution (integration/core/identity.py matches)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from integration.store.connection import Connection, _iso, _json


class IdentityStore(Connection):
    """The identities and identity_conflicts tables."""

    # The identity rules of this process (integration.core.identity.Rules), set by the runtime; pull.pull
    # resolves identities with them after every pull (None: the defaults).
    identity_rules: Any = None

    def has_records_outside(self, sources: Iterable[str]) -> bool:
        """Is there anything to match: a record from another source, or identities from an earlier run?"""
        names = list(sources)
        marks = ",".join("?" * len(names)) or "''"
        for table in ("customers", "organizations"):
            row = self.db.conn.execute(
                f"SELECT 1 FROM {table} WHERE source NOT IN ({marks}) LIMIT 1",  # noqa: S608 - fixed names
                names,
            ).fetchone()
            if row:
                return True
        return self.db.conn.execute("SELECT 1 FROM identities LIMIT 1").fetchone() is not None

    def save_identities(
        self,
        links: Iterable[Any],
        overlays: dict[str, Any],
        conflicts: Iterable[Any],
        now: datetime,
    ) -> None:
        """Replace the identity links, overlays and open conflicts with a new resolution, atomically."""
        stamp = _iso(now)
        rows = []
        for link in links:
            overlay = overlays.get(link.record_key)
            rows.append(
                (
                    link.record_key,
                    link.kind,
                    link.entity_key,
                    link.role,
                    link.rule,
                    link.rank,
                    _json(overlay.high) if overlay and overlay.high else None,
                    _json(overlay.low) if overlay and overlay.low else None,
                    _json(list(overlay.tags)) if overlay and overlay.tags is not None else None,
                    _iso(overlay.created_at) if overlay else None,
                    stamp,
                )
            )
        with self.transaction() as db:
            db.conn.execute("DELETE FROM identities")
            db.conn.executemany("INSERT INTO identities VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.conn.execute("DELETE FROM identity_conflicts")
            db.conn.executemany(
                "INSERT INTO identity_conflicts (kind, code, keys, detail, detected_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(c.kind, c.code, _json(list(c.keys)), c.detail, stamp) for c in conflicts],
            )

    def identity_conflicts(self) -> list[dict[str, Any]]:
        return [
            {**row, "keys": json.loads(row["keys"])}
            for row in self.db.query("SELECT * FROM identity_conflicts ORDER BY kind, id")
        ]

    def identity_links(self, entity_key: str) -> list[dict[str, Any]]:
        """The records of one person or organization, most trusted first (for "why" pages and tests)."""
        return list(
            self.db.query(
                "SELECT record_key, role, rule, rank FROM identities WHERE entity_key = ? "
                "ORDER BY rank, record_key",
                [entity_key],
            )
        )

    def identity_counts(self) -> dict[str, int]:
        """Linked, held and primary records per kind, e.g. {"person linked": 12}."""
        return {
            f"{row[0]} {row[1]}": row[2]
            for row in self.db.conn.execute("SELECT kind, role, count(*) FROM identities GROUP BY kind, role")
        }
