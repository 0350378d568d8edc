"""Published mapping versions (one active at a time) and each admin's draft."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from integration.core.models import MappingVersion
from integration.store.connection import Connection, _iso

if TYPE_CHECKING:
    import sqlite_utils


class MappingVersionsStore(Connection):
    """The mapping_versions and mapping_drafts tables."""

    @staticmethod
    def _mapping_version(row: dict[str, Any]) -> MappingVersion:
        return MappingVersion(
            id=row["id"],
            digest=row["digest"],
            text=row["text"],
            author=row["author"],
            note=row["note"],
            source=row["source"],
            created_at=row["created_at"],
            active=bool(row["active"]),
        )

    def _insert_mapping_version(
        self, db: sqlite_utils.Database, text: str, digest: str, author: str, note: str, source: str
    ) -> int:
        db.conn.execute("UPDATE mapping_versions SET active = 0 WHERE active = 1")
        cur = db.conn.execute(
            "INSERT INTO mapping_versions (digest, text, author, note, source, created_at, active) "
            "VALUES (?, ?, ?, ?, ?, ?, 1)",
            (digest, text, author, note, source, _iso(datetime.now(UTC))),
        )
        return int(cur.lastrowid or 0)

    def adopt_mapping_file(self, text: str, digest: str, source: str) -> MappingVersion:
        """At start: make the mapping file the active version when it is new or changed since it was last
        adopted; an unchanged file leaves a version an admin published since then active. Returns the
        active version."""
        with self.transaction() as db:
            active = db.conn.execute("SELECT digest FROM mapping_versions WHERE active = 1").fetchone()
            last_file = db.conn.execute(
                "SELECT digest FROM mapping_versions WHERE author = 'file' ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if active is None or (active[0] != digest and (last_file is None or last_file[0] != digest)):
                self._insert_mapping_version(
                    db, text, digest, "file", "adopted from the mapping file", source
                )
        version = self.active_mapping_version()
        assert version is not None  # noqa: S101 - one was just made active or already was
        return version

    def publish_mapping_version(
        self, text: str, digest: str, author: str, note: str, source: str
    ) -> MappingVersion:
        """Record a validated mapping as the new active version (the caller validates)."""
        with self.transaction() as db:
            version_id = self._insert_mapping_version(db, text, digest, author, note, source)
        version = self.get_mapping_version(version_id)
        assert version is not None  # noqa: S101 - just inserted
        return version

    def active_mapping_digest(self) -> str | None:
        """A cheap read every process makes before routing, to notice a publish by another process."""
        row = self.db.conn.execute("SELECT digest FROM mapping_versions WHERE active = 1").fetchone()
        return row[0] if row else None

    def active_mapping_version(self) -> MappingVersion | None:
        rows = list(self.db.query("SELECT * FROM mapping_versions WHERE active = 1"))
        return self._mapping_version(rows[0]) if rows else None

    def get_mapping_version(self, version_id: int) -> MappingVersion | None:
        rows = list(self.db.query("SELECT * FROM mapping_versions WHERE id = ?", [version_id]))
        return self._mapping_version(rows[0]) if rows else None

    def mapping_versions(self, limit: int = 200) -> list[MappingVersion]:
        """Newest first."""
        return [
            self._mapping_version(row)
            for row in self.db.query("SELECT * FROM mapping_versions ORDER BY id DESC LIMIT ?", [limit])
        ]

    def save_mapping_draft(self, author: str, text: str) -> None:
        with self.transaction() as db:
            db.conn.execute(
                "INSERT INTO mapping_drafts (author, text, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (author) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
                (author, text, _iso(datetime.now(UTC))),
            )

    def mapping_draft(self, author: str) -> tuple[str, str] | None:
        """(text, updated_at) of an admin's draft, if they have one."""
        row = self.db.conn.execute(
            "SELECT text, updated_at FROM mapping_drafts WHERE author = ?", (author,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def delete_mapping_draft(self, author: str) -> None:
        with self.transaction() as db:
            db.conn.execute("DELETE FROM mapping_drafts WHERE author = ?", (author,))
