"""Tickets: what the sources and the worker store of them, and the ticket history counted per customer."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from integration.core import keys
from integration.core.models import Ticket, TicketStats
from integration.store.connection import Connection, _iso, _json


class TicketsStore(Connection):
    """The tickets table."""

    def upsert_tickets(self, tickets: Iterable[Ticket]) -> int:
        rows = [
            {
                "key": t.key,
                "source": t.source,
                "external_id": t.external_id,
                "requester_key": keys.user(t.source, t.requester_id) if t.requester_id else None,
                "organization_key": keys.org(t.source, t.organization_id) if t.organization_id else None,
                "subject": t.subject,
                "status": t.status,
                "priority": t.priority,
                "group_id": t.group_id,
                "tags": _json(list(t.tags)),
                "satisfaction": t.satisfaction,
                "reopens": t.reopens,
                "created_at": _iso(t.created_at),
                "updated_at": _iso(t.updated_at),
                "first_response_minutes": t.first_response_minutes,
                "resolution_minutes": t.resolution_minutes,
                "solved_at": _iso(t.solved_at),
            }
            for t in tickets
        ]
        with self.transaction() as db:
            db["tickets"].upsert_all(rows, pk="key")
        return len(rows)

    def record_arrival(self, ticket: Ticket) -> bool:
        """Store a ticket the worker is routing unless the store has it already, so the requester's
        ticket counts include it from its arrival, as the next sync's will. A stored row (synced, with
        its metrics) is left alone. True when it was new."""
        with self.transaction() as db:
            if db.conn.execute("SELECT 1 FROM tickets WHERE key = ?", (ticket.key,)).fetchone():
                return False
            self.upsert_tickets([ticket])  # nested: the same transaction
        return True

    _STATS_SQL = """
        SELECT requester_key,
               sum(created_at >= :d30) AS tickets_30d,
               sum(created_at >= :d90) AS tickets_90d,
               sum(created_at >= :d365) AS tickets_365d,
               count(*) AS tickets_total,
               sum(CASE WHEN created_at >= :d90 THEN reopens ELSE 0 END) AS reopened_90d,
               sum(satisfaction = 'good') AS csat_good,
               sum(satisfaction = 'bad') AS csat_bad,
               sum(created_at >= :d365 AND status IN ('solved', 'closed')) AS tickets_solved_365d
        FROM tickets
        WHERE requester_key IS NOT NULL AND coalesce(status, '') != 'deleted' {where}
        GROUP BY requester_key
    """  # a deleted ticket (spam, a mistake) counts for nothing: not volume, not CSAT, not cost to serve

    def ticket_stats(self, now: datetime, customer_key: str | None = None) -> dict[str, TicketStats]:
        """Ticket history per requester, counted in SQL so a recompute never loads every ticket."""
        params: dict[str, Any] = {
            "d30": _iso(now - timedelta(days=30)),
            "d90": _iso(now - timedelta(days=90)),
            "d365": _iso(now - timedelta(days=365)),
        }
        where = ""
        if customer_key is not None:
            where = "AND requester_key = :key"
            params["key"] = customer_key
        stats = {}
        for row in self.db.query(self._STATS_SQL.format(where=where), params):
            key = row.pop("requester_key")
            stats[key] = TicketStats(**{k: int(v or 0) for k, v in row.items()})
        return stats

    def ticket_stat_rows(self, now: datetime, organization_key: str | None = None) -> list[tuple[Any, ...]]:
        """(customer key, tickets_30d, tickets_90d, tickets_365d, tickets_total, reopened_90d, csat_good,
        csat_bad, tickets_solved_365d) per requester, counted in SQL; customers without tickets have no
        row."""
        params: dict[str, Any] = {
            "d30": _iso(now - timedelta(days=30)),
            "d90": _iso(now - timedelta(days=90)),
            "d365": _iso(now - timedelta(days=365)),
        }
        where = ""
        if organization_key is not None:
            where = "AND requester_key IN (SELECT key FROM customers WHERE organization_key = :org)"
            params["org"] = organization_key
        sql = self._STATS_SQL.format(where=where)
        return [
            tuple(int(v or 0) if i else v for i, v in enumerate(row))
            for row in self.db.conn.execute(sql, params)
        ]

    _TICKET_COLUMNS = (
        "key, source, external_id, requester_key, organization_key, subject, status, priority, group_id, "
        "tags, satisfaction, reopens, created_at, updated_at, first_response_minutes, resolution_minutes, "
        "solved_at"
    )

    @staticmethod
    def _ticket_row(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "tags": json.loads(row["tags"] or "[]")}

    def tickets_created_between(
        self, since: datetime, until: datetime, limit: int = 50_000
    ) -> list[dict[str, Any]]:
        """Stored tickets created in [since, until), oldest first, as plain rows (tags decoded)."""
        sql = (
            f"SELECT {self._TICKET_COLUMNS} FROM tickets "  # noqa: S608 - a fixed column list
            "WHERE created_at >= ? AND created_at < ? AND coalesce(status, '') != 'deleted' "
            "ORDER BY created_at, key LIMIT ?"
        )
        return [self._ticket_row(row) for row in self.db.query(sql, [_iso(since), _iso(until), limit])]

    def ticket_rows(self, external_id: str) -> list[dict[str, Any]]:
        """The stored ticket(s) with this id in any source, or with this exact key."""
        sql = (
            f"SELECT {self._TICKET_COLUMNS} FROM tickets "  # noqa: S608 - a fixed column list
            "WHERE key = ? OR external_id = ? ORDER BY key"
        )
        return [self._ticket_row(row) for row in self.db.query(sql, [external_id, external_id])]
