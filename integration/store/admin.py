"""What only the admin keeps: failed sign-ins and bad API tokens, for the throttle every process shares."""

from __future__ import annotations

from integration.store.connection import Connection


class AdminStore(Connection):
    """The sign_in_failures table."""

    def sign_in_wait(self, key: str, limit: int, window: float, now: float) -> float:
        """Seconds until ``key`` may try again after ``limit`` failures within ``window`` (0: now).

        A read, so a throttled caller costs no write lock. Wall-clock times (every process must agree);
        a failure stamped in the future (the clock stepped back) counts as recent, and no wait is longer
        than the window.
        """
        count, oldest = self.db.conn.execute(
            "SELECT count(*), min(at) FROM sign_in_failures WHERE key = ? AND at > ?", (key, now - window)
        ).fetchone()
        if count < limit:
            return 0.0
        return min(window, max(1.0, oldest + window - now))

    def add_sign_in_failure(self, key: str, window: float, now: float) -> None:
        """Record one failure, forgetting every failure (of any key) outside the window around now."""
        with self.transaction() as db:
            db.conn.execute(
                "DELETE FROM sign_in_failures WHERE at <= ? OR at > ?", (now - window, now + window)
            )
            db.conn.execute("INSERT INTO sign_in_failures (key, at) VALUES (?, ?)", (key, now))

    def clear_sign_in_failures(self, key: str) -> None:
        with self.transaction() as db:
            db.conn.execute("DELETE FROM sign_in_failures WHERE key = ?", (key,))
