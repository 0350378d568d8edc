"""What the worker and re-routing decided for each ticket, and the reads over those decisions."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from integration.core.models import Assignment, Decision, DecisionRecord
from integration.store.connection import Connection, _json


class DecisionsStore(Connection):
    """The decisions table."""

    def record_decision(
        self,
        ticket_key: str,
        *,
        event_id: int | None,
        customer_key: str | None,
        outcome: str,
        decision: Decision | None,
        segments: dict[str, Assignment],
        response: dict[str, Any] | None,
        received_at: float | None,
        decided_at: float,
        model_digest: str | None = None,
    ) -> None:
        row = {
            "ticket_key": ticket_key,
            "event_id": event_id,
            "customer_key": customer_key,
            "outcome": outcome,
            "priority": decision.priority if decision else None,
            "sla": decision.sla if decision else None,
            "group_name": decision.group if decision else None,
            "tags": _json(list(decision.tags) if decision else []),
            "note": decision.note if decision else "",
            "reasons": _json(list(decision.reasons) if decision else []),
            "segments": _json(
                {d: {"label": a.label, "reasons": list(a.reasons)} for d, a in segments.items()}
            ),
            "response": _json(response) if response is not None else None,
            "received_at": received_at,
            "decided_at": decided_at,
            "model_digest": model_digest,
        }
        columns = list(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "ticket_key")
        with self.transaction() as db:
            # A "skipped" record never replaces one that says what was written: a second look at a
            # ticket (a replay, a worker that took over an expired lease) finds our own marker and
            # skips, and must not erase the record of the write that put it there.
            db.conn.execute(
                f"INSERT INTO decisions ({', '.join(columns)}) "  # noqa: S608 - fixed column names
                f"VALUES ({', '.join(':' + c for c in columns)}) "
                f"ON CONFLICT (ticket_key) DO UPDATE SET {updates} "
                "WHERE excluded.outcome != 'skipped' OR decisions.outcome NOT IN ('applied', 'rerouted')",
                row,
            )

    def get_decision(self, ticket_key: str) -> DecisionRecord | None:
        rows = list(self.db.query("SELECT * FROM decisions WHERE ticket_key = ?", [ticket_key]))
        return self._decision(rows[0]) if rows else None

    def list_decisions(self, limit: int = 100) -> list[DecisionRecord]:
        return [
            self._decision(row)
            for row in self.db.query("SELECT * FROM decisions ORDER BY decided_at DESC LIMIT ?", [limit])
        ]

    @staticmethod
    def _decision(row: dict[str, Any]) -> DecisionRecord:
        return DecisionRecord(
            ticket_key=row["ticket_key"],
            event_id=row["event_id"],
            customer_key=row["customer_key"],
            outcome=row["outcome"],
            priority=row["priority"],
            sla=row["sla"],
            group_name=row["group_name"],
            tags=tuple(json.loads(row["tags"])),
            note=row["note"],
            reasons=tuple(json.loads(row["reasons"])),
            segments=json.loads(row["segments"]),
            response=json.loads(row["response"]) if row["response"] else None,
            received_at=row["received_at"],
            decided_at=row["decided_at"],
            model_digest=row["model_digest"],
        )

    def decisions_for_ticket_id(self, external_id: str) -> list[DecisionRecord]:
        """Decisions on the ticket with this id in any source (or this exact ticket key)."""
        return [
            self._decision(row)
            for row in self.db.query(
                "SELECT * FROM decisions WHERE ticket_key = ? OR ticket_key LIKE ? ESCAPE '\\' "
                "ORDER BY decided_at DESC",
                [external_id, "%:ticket:" + external_id.replace("%", "\\%").replace("_", "\\_")],
            )
        ]

    def decided_slas(self, ticket_keys: Iterable[str]) -> dict[str, str | None]:
        """The SLA tierdesk applied to each of these tickets it routed."""
        keys = list(dict.fromkeys(ticket_keys))
        out: dict[str, str | None] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, sla in self.db.conn.execute(
                "SELECT ticket_key, sla FROM decisions "  # noqa: S608 - placeholders only
                f"WHERE outcome = 'applied' AND ticket_key IN ({marks})",
                chunk,
            ):
                out[key] = sla
        return out

    def decision_outcomes(self) -> dict[str, int]:
        """Tickets per outcome of their decision (applied, skipped, rerouted): one count for the admin
        and the demo alike."""
        return {
            row[0]: int(row[1])
            for row in self.db.conn.execute("SELECT outcome, count(*) FROM decisions GROUP BY outcome")
        }

    def open_routed_tickets(self, customer_keys: list[str]) -> list[tuple[str, str, str]]:
        """(ticket key, external id, requester key) of open tickets we routed, for these customers."""
        out: list[tuple[str, str, str]] = []
        for start in range(0, len(customer_keys), 500):
            chunk = customer_keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            out += [
                (row[0], row[1], row[2])
                for row in self.db.conn.execute(
                    "SELECT t.key, t.external_id, t.requester_key FROM tickets t "  # noqa: S608
                    "JOIN decisions d ON d.ticket_key = t.key AND d.outcome IN ('applied', 'rerouted') "
                    f"WHERE t.requester_key IN ({marks}) "
                    "AND coalesce(t.status, 'open') IN ('new', 'open', 'pending', 'hold') ORDER BY t.key",
                    chunk,
                )
            ]
        return out

    def prune_decisions(self, decided_before: float, batch: int = 5_000) -> int:
        """Delete decisions made before the given time, except those of tickets still open (re-routing
        and the worker's "already routed" check read them)."""
        return self._delete_batches(
            "decisions",
            "decided_at < ? AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.key = decisions.ticket_key "
            "AND coalesce(t.status, 'open') IN ('new', 'open', 'pending', 'hold'))",
            (decided_before,),
            batch,
        )
