"""The event queue's statements (its policy lives in integration/queue.py) and the inbox offsets."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from integration.core.models import Event
from integration.store.connection import Connection, _json, _like_literal


class QueueStore(Connection):
    """The events and inbox_offsets tables."""

    def inbox_offsets(self) -> dict[str, int]:
        return {str(r[0]): int(r[1]) for r in self.db.conn.execute("SELECT file, offset FROM inbox_offsets")}

    def add_events(
        self, rows: list[tuple[str, str, str, dict[str, Any], float]], offsets: dict[str, int] | None = None
    ) -> list[int | None]:
        """Insert events (source, delivery, ticket key, payload, received at) and advance inbox files'
        offsets, in one transaction: a batch moved from the inbox goes in once, whatever crashes when.

        Returns each row's new event id, or None for a delivery the queue already had: the same delivery
        id, or the same ``replay_key`` in the payload (a digest of what the sender signed, see
        TicketEvent.replay_key), so a signed delivery replayed under a new, unsigned id is dropped too.
        """
        ids: list[int | None] = []
        with self.transaction() as db:
            for source, event_id, ticket_key, payload, received_at in rows:
                replay_key = payload.get("replay_key")
                row = db.conn.execute(
                    "INSERT INTO events (source, event_id, ticket_key, payload, available_at, received_at, "
                    "replay_key) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                    (
                        source,
                        event_id,
                        ticket_key,
                        _json(payload),
                        received_at,
                        received_at,
                        replay_key if isinstance(replay_key, str) else None,
                    ),
                ).fetchone()
                ids.append(int(row[0]) if row else None)
            now = time.time()
            db.conn.executemany(
                "INSERT INTO inbox_offsets (file, offset, moved_at) VALUES (?, ?, ?) ON CONFLICT (file) "
                "DO UPDATE SET offset = max(offset, excluded.offset), moved_at = excluded.moved_at",
                [(name, end, now) for name, end in (offsets or {}).items()],
            )
        return ids

    def forget_inbox_files(self, names: list[str]) -> None:
        with self.transaction() as db:
            db.conn.executemany("DELETE FROM inbox_offsets WHERE file = ?", [(n,) for n in names])

    _CLAIM_SQL = """
        UPDATE events SET status = 'leased', lease_until = :lease_until, leased_by = :token,
                          attempts = attempts + 1
        WHERE id = (
            SELECT e.id FROM events e
            WHERE ((e.status = 'pending' AND e.available_at <= :now)
                   OR (e.status = 'leased' AND e.lease_until < :now))
              AND NOT EXISTS (
                  SELECT 1 FROM events o
                  WHERE o.ticket_key = e.ticket_key AND o.id < e.id
                    AND o.status IN ('pending', 'leased'))
            ORDER BY e.available_at, e.id
            LIMIT 1
        )
        RETURNING *
    """

    def has_ready(self, now: float) -> bool:
        """A read-only peek, so idle workers can poll often without taking the write lock."""
        row = self.db.conn.execute(
            "SELECT 1 FROM events WHERE (status = 'pending' AND available_at <= ?) "
            "OR (status = 'leased' AND lease_until < ?) LIMIT 1",
            (now, now),
        ).fetchone()
        return row is not None

    def claim(self, token: str, now: float, lease_seconds: float) -> Event | None:
        """Lease the oldest ready event to the claim `token`; one statement, so two workers never get
        the same one. The token must be new for every claim (Queue.claim makes one): it is what every
        later transition of the event checks, so a claim that lost its lease can change nothing.

        Events of one ticket are handed out in arrival order: a later one waits while an earlier
        one is pending or leased.
        """
        with self.transaction() as db:
            cur = db.conn.execute(
                self._CLAIM_SQL, {"now": now, "lease_until": now + lease_seconds, "token": token}
            )
            cols = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return self._event(dict(zip(cols, rows[0], strict=True))) if rows else None

    @staticmethod
    def _event(row: dict[str, Any]) -> Event:
        return Event(
            id=row["id"],
            source=row["source"],
            event_id=row["event_id"],
            ticket_key=row["ticket_key"],
            payload=json.loads(row["payload"]),
            status=row["status"],
            attempts=row["attempts"],
            available_at=row["available_at"],
            received_at=row["received_at"],
            last_error=row["last_error"],
            finished_at=row["finished_at"],
            lease=row["leased_by"] if row["status"] == "leased" else None,
        )

    # Every transition of a leased event names the claim's token and requires the lease to be that
    # claim's still: a worker whose lease ran out and was taken over cannot finish, retry or bury the
    # event under the new holder.
    _HELD = "id = :id AND status = 'leased' AND leased_by = :token"

    def renew_leases(self, claims: dict[int, str], lease_until: float) -> set[int]:
        """Extend the leases of these claims (event id -> token); returns the ids still held."""
        if not claims:
            return set()
        kept: set[int] = set()
        with self.transaction() as db:
            for event_id, token in claims.items():
                cur = db.conn.execute(
                    f"UPDATE events SET lease_until = :until WHERE {self._HELD}",  # noqa: S608 - fixed text
                    {"until": lease_until, "id": event_id, "token": token},
                )
                if cur.rowcount == 1:
                    kept.add(event_id)
        return kept

    def finish_event(self, event_id: int, token: str, now: float) -> bool:
        """Mark done; False when the claim no longer holds the lease."""
        with self.transaction() as db:
            cur = db.conn.execute(
                "UPDATE events SET status = 'done', finished_at = :now, lease_until = NULL, "  # noqa: S608
                f"last_error = NULL WHERE {self._HELD}",
                {"now": now, "id": event_id, "token": token},
            )
            return cur.rowcount == 1

    def retry_event(
        self, event_id: int, token: str, available_at: float, error: str, *, count_attempt: bool = True
    ) -> bool:
        """Back to pending until `available_at`; `count_attempt=False` gives the claim's attempt back
        (a rate-limit deferral is no failure). False when the claim no longer holds the lease."""
        with self.transaction() as db:
            cur = db.conn.execute(
                "UPDATE events SET status = 'pending', available_at = :at, lease_until = NULL, "  # noqa: S608
                "attempts = attempts - :refund, last_error = :error "
                f"WHERE {self._HELD}",
                {
                    "at": available_at,
                    "refund": 0 if count_attempt else 1,
                    "error": error,
                    "id": event_id,
                    "token": token,
                },
            )
            return cur.rowcount == 1

    def dead_event(self, event_id: int, token: str, error: str, now: float) -> bool:
        """Dead-letter; False when the claim no longer holds the lease."""
        with self.transaction() as db:
            cur = db.conn.execute(
                "UPDATE events SET status = 'dead', finished_at = :now, lease_until = NULL, "  # noqa: S608
                f"last_error = :error WHERE {self._HELD}",
                {"now": now, "error": error, "id": event_id, "token": token},
            )
            return cur.rowcount == 1

    def sweep_leases(self, now: float) -> int:
        """Hand events whose worker's lease ran out back to the queue (claims would retake them anyway;
        this makes the queue's state honest for probes and the admin)."""
        with self.transaction() as db:
            cur = db.conn.execute(
                "UPDATE events SET status = 'pending', lease_until = NULL "
                "WHERE status = 'leased' AND lease_until < ?",
                (now,),
            )
            return cur.rowcount

    def replay_event(self, event_id: int, now: float) -> bool:
        """Put a dead (or stuck) event back in line with a fresh attempt budget."""
        with self.transaction() as db:
            cur = db.conn.execute(
                "UPDATE events SET status = 'pending', attempts = 0, available_at = ?, "
                "lease_until = NULL, finished_at = NULL WHERE id = ? AND status != 'done'",
                (now, event_id),
            )
            return cur.rowcount == 1

    def replay_dead(
        self,
        now: float,
        *,
        source: str | None = None,
        error_contains: str | None = None,
        ticket_id: str | None = None,
    ) -> list[int]:
        where, params = ["status = 'dead'"], []
        if source:
            where.append("source = ?")
            params.append(source)
        if error_contains:
            where.append("instr(coalesce(last_error, ''), ?) > 0")
            params.append(error_contains)
        if ticket_id:  # the id is text to match, not a pattern: "%" must not replay every dead event
            where.append("ticket_key LIKE ? ESCAPE '\\'")
            params.append("%:ticket:" + _like_literal(ticket_id))
        with self.transaction() as db:
            clauses = " AND ".join(where)  # fixed strings above; values are bound parameters
            sql = (
                "UPDATE events SET status = 'pending', attempts = 0, available_at = ?, "  # noqa: S608
                f"lease_until = NULL, finished_at = NULL WHERE {clauses} RETURNING id"
            )
            rows = db.conn.execute(sql, [now, *params]).fetchall()
        return sorted(r[0] for r in rows)

    def find_event(self, source: str, delivery: str | None, *, replay_key: str | None = None) -> Event | None:
        """The event of this delivery id, or (``replay_key``) the one a replayed delivery duplicates."""
        column, value = ("replay_key", replay_key) if replay_key is not None else ("event_id", delivery)
        rows = list(
            self.db.query(
                f"SELECT * FROM events WHERE source = ? AND {column} = ?",  # noqa: S608 - fixed names
                [source, value],
            )
        )
        return self._event(rows[0]) if rows else None

    def get_event(self, event_id: int) -> Event | None:
        rows = list(self.db.query("SELECT * FROM events WHERE id = ?", [event_id]))
        return self._event(rows[0]) if rows else None

    def list_events(self, statuses: Iterable[str], limit: int = 100) -> list[Event]:
        wanted = list(statuses)
        marks = ",".join("?" * len(wanted))
        return [
            self._event(row)
            for row in self.db.query(
                f"SELECT * FROM events WHERE status IN ({marks}) ORDER BY id LIMIT ?",  # noqa: S608
                [*wanted, limit],
            )
        ]

    def queue_counts(self) -> dict[str, int]:
        return {
            row["status"]: row["n"]
            for row in self.db.query("SELECT status, count(*) AS n FROM events GROUP BY status")
        }

    def oldest_pending_age(self, now: float) -> float | None:
        row = self.db.conn.execute(
            "SELECT min(received_at) FROM events WHERE status IN ('pending', 'leased')"
        ).fetchone()
        return None if row[0] is None else max(0.0, now - row[0])

    def events_for_ticket(self, ticket_key: str) -> list[Event]:
        return [
            self._event(row)
            for row in self.db.query("SELECT * FROM events WHERE ticket_key = ? ORDER BY id", [ticket_key])
        ]

    def list_events_filtered(
        self, status: str, *, retrying: bool | None = None, limit: int = 100
    ) -> list[Event]:
        """Events of one status; for pending ones, `retrying` picks those that failed before (or not)."""
        sql = "SELECT * FROM events WHERE status = ?"
        if retrying is True:
            sql += " AND attempts > 0"
        elif retrying is False:
            sql += " AND attempts = 0"
        return [self._event(row) for row in self.db.query(sql + " ORDER BY id LIMIT ?", [status, limit])]

    def prune_events(self, status: str, finished_before: float, batch: int = 5_000) -> int:
        """Delete `done` or `dead` events that finished before the given time. Pending and leased
        events are never deleted."""
        if status not in ("done", "dead"):
            raise ValueError(f"only done or dead events are pruned, not {status!r}")
        return self._delete_batches(
            "events", "status = ? AND finished_at < ?", (status, finished_before), batch
        )
