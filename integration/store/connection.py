"""SQLite connections and transactions: the one place that knows it is SQLite (the backend seam).

One ``Store`` is shared by the web views, the worker threads and the scheduler of a process; each thread gets
its own connection (SQLite connections must not be shared across threads mid-transaction). WAL mode lets
readers run beside the single writer, and the busy timeout makes concurrent writers wait instead of failing.

Every concern class of the store (records, segments, queue...) builds on ``Connection``: it gives them
``db`` (this thread's connection), ``transaction()`` (one writer at a time) and the value helpers below.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

BUSY_TIMEOUT_MS = 10_000
PROBE_TIMEOUT = 1.0  # seconds a health probe's read may wait on SQLite before it gives up


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _dt(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _like_literal(text: str) -> str:
    """``text`` for a LIKE pattern with ``ESCAPE '\\'``: its %, _ and \\ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


_WRITE_LOCKS: dict[tuple[int, str], tuple[threading.Lock, int]] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _create_private(path: str) -> None:
    """Create the database file owner-only (0600) before SQLite does, whatever the umask.

    SQLite gives the -wal and -shm files the database file's own mode, so those follow. An existing file
    keeps its mode; a path we cannot create is left for SQLite to report in its own words.
    """
    if path == ":memory:" or path.startswith("file:"):
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError:  # it exists (the usual case), or SQLite will say why it cannot be opened
        return
    os.close(fd)


@contextmanager
def _write_lock(path: str) -> Iterator[None]:
    """Serialise writers to one database file across threads and processes (see Store.transaction)."""
    key = (os.getpid(), path)  # per process: an flock taken through a descriptor inherited by fork
    with _WRITE_LOCKS_GUARD:  # would be shared with the parent, and exclude nothing
        entry = _WRITE_LOCKS.get(key)
        if entry is None:
            fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            entry = _WRITE_LOCKS[key] = (threading.Lock(), fd)
    thread_lock, fd = entry
    with thread_lock:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


class Connection:
    """Per-thread connections to one SQLite file, its write lock and its health probe."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        _create_private(self.path)
        self._use_wal()

    def _use_wal(self) -> None:
        """Readers run beside the single writer (WAL is a property of the file: set once, it stays)."""
        db = self.db
        if db.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.enable_wal()

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
            # Autocommit at the driver: transactions are always explicit (transaction(), atomic()), and a
            # single statement commits by itself, with no implicit BEGIN or separate COMMIT round trip.
            conn.isolation_level = None
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            db = sqlite_utils.Database(conn)
            self._local.db = db
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
        probe = getattr(self._local, "probe", None)
        if probe is not None:
            probe.close()
            self._local.probe = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction taken up front, one writer at a time.

        Writers queue on a lock (a thread lock inside the process, an flock across processes) instead
        of on SQLite's busy handler, which sleeps 1, 2, 5, 10... ms between tries: under a burst of
        webhooks that sleeping, not the work, was the ack latency. The lock is released the moment the
        holder commits, and the kernel drops it if the holder is killed.
        """
        db = self.db
        if db.conn.in_transaction:
            with db.atomic():
                yield db
            return
        with _write_lock(self.path):
            db.conn.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.rollback()
                raise
            db.conn.execute("COMMIT")

    def probe(self, now: float, timeout: float = PROBE_TIMEOUT) -> dict[str, Any]:
        """What a health check needs, read without the write lock and within `timeout` seconds.

        Readers never queue behind writers in WAL mode, so a long write transaction (a recompute, a
        backlog move) does not hold up the probe. It opens its own connection with a short busy timeout
        for the rare moments SQLite makes even readers wait. `writable`: this process may write the
        database file and create its -wal and -shm beside it (a full or read-only disk shows here).
        """
        directory = os.path.dirname(os.path.abspath(self.path))
        writable = os.access(self.path, os.W_OK) and os.access(directory, os.W_OK)
        try:
            conn = getattr(self._local, "probe", None)
            if conn is None:  # kept per thread: closing the last connection would checkpoint the WAL
                conn = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False)
                conn.execute("PRAGMA query_only = 1")
                self._local.probe = conn
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            counts = dict(conn.execute("SELECT status, count(*) FROM events GROUP BY status").fetchall())
            (oldest,) = conn.execute(
                "SELECT min(received_at) FROM events WHERE status IN ('pending', 'leased')"
            ).fetchone()
            offsets = {str(r[0]): int(r[1]) for r in conn.execute("SELECT file, offset FROM inbox_offsets")}
        except sqlite3.Error as e:
            return {"answering": False, "writable": writable, "error": str(e)}
        return {
            "answering": True,
            "writable": writable,
            "queue": counts,
            "oldest_pending_seconds": None if oldest is None else max(0.0, now - oldest),
            "inbox_offsets": offsets,
        }

    def count(self, table: str) -> int:
        if table not in {
            "customers",
            "organizations",
            "tickets",
            "segments",
            "decisions",
            "events",
        }:
            raise ValueError(f"unknown table {table!r}")
        return self.db[table].count

    def _delete_batches(self, table: str, where: str, params: Sequence[Any], batch: int) -> int:
        """DELETE in transactions of at most `batch` rows, so writers (webhook moves, workers) get the
        write lock between batches however much there is to delete."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        total = 0
        while True:
            with self.transaction() as db:
                deleted = db.conn.execute(
                    f"DELETE FROM {table} WHERE rowid IN "  # noqa: S608 - fixed names from the callers
                    f"(SELECT rowid FROM {table} WHERE {where} LIMIT ?)",
                    [*params, batch],
                ).rowcount
            total += deleted
            if deleted < batch:
                return total
