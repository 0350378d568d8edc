"""Where each connector's pulls stand: cursors, saved with the records they cover, and stream runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from integration.core.models import Customer, Organization, Purchase, Ticket
from integration.store.connection import _iso
from integration.store.records import RecordsStore
from integration.store.tickets import TicketsStore


class SyncStateStore(RecordsStore, TicketsStore):
    """The sync_cursors table; save_batch writes records through RecordsStore and TicketsStore."""

    def get_cursor(self, connector: str, stream: str) -> str | None:
        rows = list(
            self.db.query(
                "SELECT cursor FROM sync_cursors WHERE connector = ? AND stream = ?",
                [connector, stream],
            )
        )
        return rows[0]["cursor"] if rows else None

    def save_batch(
        self,
        connector: str,
        stream: str,
        records: list[Customer] | list[Organization] | list[Ticket] | list[Purchase],
        cursor: str | None,
    ) -> None:
        """Records and the cursor that covers them land in one transaction, so a crash resumes cleanly."""
        writer = {
            "users": self.upsert_customers,
            "organizations": self.upsert_organizations,
            "tickets": self.upsert_tickets,
            "purchases": self.upsert_purchases,
        }[stream]
        with self.transaction() as db:
            writer(records)  # type: ignore[arg-type]
            db.conn.execute(
                "INSERT INTO sync_cursors (connector, stream, cursor, records, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (connector, stream) DO UPDATE SET "
                "cursor = excluded.cursor, records = records + excluded.records, "
                "updated_at = excluded.updated_at",
                (connector, stream, cursor, len(records), _iso(datetime.now(UTC))),
            )

    def reset_cursors(self, connector: str) -> None:
        with self.transaction() as db:
            db.conn.execute("DELETE FROM sync_cursors WHERE connector = ?", [connector])

    def clear_cursors(self, connector: str) -> None:
        """Forget where a connector's pulls stopped (a full pull), keeping their run history."""
        with self.transaction() as db:
            db.conn.execute("UPDATE sync_cursors SET cursor = NULL WHERE connector = ?", [connector])

    def cursors(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM sync_cursors ORDER BY connector, stream"))

    def start_stream(self, connector: str, stream: str, now: datetime) -> None:
        """Mark a stream's pull as running (its state survives a crash as 'running' with no finish)."""
        with self.transaction() as db:
            db.conn.execute(
                "INSERT INTO sync_cursors (connector, stream, cursor, updated_at, status, started_at) "
                "VALUES (?, ?, NULL, ?, 'running', ?) ON CONFLICT (connector, stream) DO UPDATE SET "
                "status = 'running', started_at = excluded.started_at",
                (connector, stream, _iso(now), _iso(now)),
            )

    def finish_stream(
        self, connector: str, stream: str, records: int, now: datetime, error: str | None = None
    ) -> None:
        """Record how a stream's pull ended: its count, and the error that stopped it if any."""
        with self.transaction() as db:
            db.conn.execute(
                "UPDATE sync_cursors SET status = ?, finished_at = ?, last_records = ?, runs = runs + 1, "
                "failures = failures + ?, last_error = ? WHERE connector = ? AND stream = ?",
                ("error" if error else "ok", _iso(now), records, 1 if error else 0, error, connector, stream),
            )

    def sync_state(self, connector: str | None = None) -> list[dict[str, Any]]:
        """Cursor, last run, counts and last error of every stream (or one connector's)."""
        sql = "SELECT * FROM sync_cursors"
        params: list[Any] = []
        if connector:
            sql += " WHERE connector = ?"
            params.append(connector)
        return list(self.db.query(sql + " ORDER BY connector, stream", params))
