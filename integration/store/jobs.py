"""What processes share to take turns: named locks, scheduled job runs and the outbound rate budget."""

from __future__ import annotations

import json
import time
from typing import Any

from integration.store.connection import Connection, _json

RATE_WINDOW = 60  # seconds: the outbound rate budget is a sliding minute


class JobsStore(Connection):
    """The locks, job_runs and rate_budget tables."""

    def acquire_lock(self, name: str, owner: str, ttl: float, now: float | None = None) -> bool:
        """Take or renew a named lock unless another owner holds an unexpired one."""
        now = time.time() if now is None else now
        with self.transaction() as db:
            cur = db.conn.execute(
                "INSERT INTO locks (name, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "expires_at = excluded.expires_at "
                "WHERE locks.owner = excluded.owner OR locks.expires_at < ?",
                (name, owner, now + ttl, now),
            )
            return cur.rowcount == 1

    def release_lock(self, name: str, owner: str) -> None:
        with self.transaction() as db:
            db.conn.execute("DELETE FROM locks WHERE name = ? AND owner = ?", (name, owner))

    def start_job_run(self, job: str, owner: str, now: float) -> int:
        with self.transaction() as db:
            cur = db.conn.execute(
                "INSERT INTO job_runs (job, owner, started_at) VALUES (?, ?, ?)", (job, owner, now)
            )
            return int(cur.lastrowid or 0)

    def finish_job_run(
        self, run_id: int, status: str, counts: dict[str, Any], api_calls: int, error: str | None, now: float
    ) -> None:
        with self.transaction() as db:
            db.conn.execute(
                "UPDATE job_runs SET finished_at = ?, status = ?, counts = ?, api_calls = ?, error = ? "
                "WHERE id = ?",
                (now, status, _json(counts), api_calls, error, run_id),
            )

    def list_job_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = list(self.db.query("SELECT * FROM job_runs ORDER BY id DESC LIMIT ?", [limit]))
        for row in rows:
            row["counts"] = json.loads(row["counts"])
        return rows

    def prune_job_runs(self, before: float, batch: int = 5_000) -> int:
        """Delete job runs that finished before the given time, and runs still marked running that
        started before it (their process died: a job's lock lasts minutes, not days)."""
        return self._delete_batches(
            "job_runs",
            "(status != 'running' AND finished_at < ?) OR (status = 'running' AND started_at < ?)",
            (before, before),
            batch,
        )

    def take_rate_token(self, name: str, per_minute: int, now: float) -> float:
        """A one-minute sliding window shared by all processes; returns seconds to wait (0: go now).

        Windows are wall-clock seconds, so that every process counts in one frame; a clock that steps
        back would leave calls dated in the future, blocking the budget for as long as the step. They
        are taken as made now (what they were: recent calls), so the wait never exceeds the window. The
        transaction is three indexed statements; the wait is worked out after it, without the lock.
        """
        second = int(now)
        args = {"name": name, "second": second, "limit": per_minute, "window": RATE_WINDOW}
        with self.transaction() as db:
            ahead = db.conn.execute(
                "SELECT count(*) FROM rate_budget WHERE name = :name AND second > :second", args
            ).fetchone()[0]
            if ahead:  # the clock stepped back: fold those calls into this second
                (calls,) = db.conn.execute(
                    "SELECT sum(count) FROM rate_budget WHERE name = :name AND second >= :second", args
                ).fetchone()
                db.conn.execute("DELETE FROM rate_budget WHERE name = :name AND second >= :second", args)
                db.conn.execute(
                    "INSERT INTO rate_budget (name, second, count) VALUES (:name, :second, :calls)",
                    {**args, "calls": calls},
                )
            db.conn.execute(
                "DELETE FROM rate_budget WHERE name = :name AND second <= :second - :window", args
            )
            taken = db.conn.execute(
                "INSERT INTO rate_budget (name, second, count) SELECT :name, :second, 1 "
                "WHERE (SELECT coalesce(sum(count), 0) FROM rate_budget WHERE name = :name) < :limit "
                "ON CONFLICT (name, second) DO UPDATE SET count = count + 1",
                args,
            ).rowcount
        if taken:
            return 0.0
        (oldest,) = self.db.conn.execute(
            "SELECT min(second) FROM rate_budget WHERE name = ?", (name,)
        ).fetchone()
        if oldest is None:
            return 0.01  # the window emptied meanwhile: ask again at once
        return min(float(RATE_WINDOW), max(0.01, oldest + RATE_WINDOW - now))
