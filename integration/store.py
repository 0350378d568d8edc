"""SQLite storage: the only module that knows table names and writes SQL.

One ``Store`` is shared by the web views, the worker threads and the scheduler of a process; each thread gets
its own connection (SQLite connections must not be shared across threads mid-transaction). WAL mode lets
readers run beside the single writer, and the busy timeout makes concurrent writers wait instead of failing.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from integration.core import keys
from integration.core.models import (
    Assignment,
    Customer,
    Decision,
    Organization,
    Purchase,
    Ticket,
    TicketStats,
)

BUSY_TIMEOUT_MS = 10_000
PROBE_TIMEOUT = 1.0  # seconds a health probe's read may wait on SQLite before it gives up
RATE_WINDOW = 60  # seconds: the outbound rate budget is a sliding minute


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


# Ordered migrations: each runs once, in its own transaction, and is recorded in schema_migrations.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE organizations (
            key TEXT PRIMARY KEY, source TEXT NOT NULL, external_id TEXT NOT NULL, name TEXT,
            domains TEXT NOT NULL DEFAULT '[]', tags TEXT NOT NULL DEFAULT '[]',
            attributes TEXT NOT NULL DEFAULT '{}', created_at TEXT, updated_at TEXT, synced_at TEXT
        );
        CREATE TABLE customers (
            key TEXT PRIMARY KEY, source TEXT NOT NULL, external_id TEXT NOT NULL, email TEXT, name TEXT,
            organization_key TEXT, tags TEXT NOT NULL DEFAULT '[]', attributes TEXT NOT NULL DEFAULT '{}',
            created_at TEXT, updated_at TEXT, synced_at TEXT
        );
        CREATE INDEX customers_email ON customers (lower(email));
        CREATE INDEX customers_org ON customers (organization_key);
        CREATE TABLE tickets (
            key TEXT PRIMARY KEY, source TEXT NOT NULL, external_id TEXT NOT NULL, requester_key TEXT,
            organization_key TEXT, subject TEXT, status TEXT, priority TEXT, group_id TEXT,
            tags TEXT NOT NULL DEFAULT '[]', satisfaction TEXT, reopens INTEGER NOT NULL DEFAULT 0,
            created_at TEXT, updated_at TEXT
        );
        CREATE INDEX tickets_requester ON tickets (requester_key, created_at);
        CREATE TABLE segments (
            customer_key TEXT NOT NULL, dimension TEXT NOT NULL, label TEXT, reasons TEXT NOT NULL,
            computed_at TEXT NOT NULL, PRIMARY KEY (customer_key, dimension)
        );
        CREATE INDEX segments_dimension ON segments (dimension, label);
        CREATE TABLE segment_changes (
            id INTEGER PRIMARY KEY, customer_key TEXT NOT NULL, dimension TEXT NOT NULL,
            from_label TEXT, to_label TEXT, reasons TEXT NOT NULL, changed_at TEXT NOT NULL
        );
        CREATE INDEX segment_changes_customer ON segment_changes (customer_key, changed_at);
        CREATE TABLE models (
            name TEXT PRIMARY KEY, data TEXT NOT NULL, computed_at TEXT NOT NULL
        );
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, event_id TEXT NOT NULL,
            ticket_key TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0, available_at REAL NOT NULL, lease_until REAL,
            leased_by TEXT, last_error TEXT, received_at REAL NOT NULL, finished_at REAL,
            UNIQUE (source, event_id)
        );
        CREATE INDEX events_ready ON events (status, available_at);
        CREATE INDEX events_ticket ON events (ticket_key, status);
        CREATE TABLE decisions (
            ticket_key TEXT PRIMARY KEY, event_id INTEGER, customer_key TEXT, outcome TEXT NOT NULL,
            priority TEXT, sla TEXT, group_name TEXT, tags TEXT NOT NULL DEFAULT '[]',
            note TEXT NOT NULL DEFAULT '', reasons TEXT NOT NULL DEFAULT '[]',
            segments TEXT NOT NULL DEFAULT '{}', response TEXT, received_at REAL, decided_at REAL NOT NULL
        );
        CREATE TABLE sync_cursors (
            connector TEXT NOT NULL, stream TEXT NOT NULL, cursor TEXT, records INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL, PRIMARY KEY (connector, stream)
        );
        CREATE TABLE locks (
            name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL
        );
        """,
    ),
]


MIGRATIONS.append(
    (
        2,
        """
        CREATE TABLE rate_budget (
            name TEXT NOT NULL, second INTEGER NOT NULL, count INTEGER NOT NULL,
            PRIMARY KEY (name, second)
        );
        """,
    )
)

# Sync state per stream, purchases (CRM deals, billing rows) and identity across sources (identity.py).
# The *_merged views lay each record's identity overlay over its own values; *_population keeps one row per
# customer (records linked into another person's record, or held back by a conflict, drop out) and points
# each customer at its organization's main record.
MIGRATIONS.append(
    (
        3,
        """
        ALTER TABLE sync_cursors ADD COLUMN status TEXT;
        ALTER TABLE sync_cursors ADD COLUMN started_at TEXT;
        ALTER TABLE sync_cursors ADD COLUMN finished_at TEXT;
        ALTER TABLE sync_cursors ADD COLUMN last_records INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sync_cursors ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sync_cursors ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sync_cursors ADD COLUMN last_error TEXT;
        CREATE TABLE purchases (
            key TEXT NOT NULL, party_key TEXT NOT NULL, source TEXT NOT NULL, amount REAL NOT NULL,
            closed_at TEXT, synced_at TEXT NOT NULL, PRIMARY KEY (key, party_key)
        );
        CREATE INDEX purchases_party ON purchases (party_key, closed_at);
        CREATE INDEX purchases_source ON purchases (source);
        CREATE TABLE identities (
            record_key TEXT PRIMARY KEY, kind TEXT NOT NULL, entity_key TEXT NOT NULL, role TEXT NOT NULL,
            rule TEXT NOT NULL, rank INTEGER NOT NULL, high TEXT, low TEXT, tags TEXT, created_at TEXT,
            resolved_at TEXT NOT NULL
        );
        CREATE INDEX identities_entity ON identities (entity_key);
        CREATE TABLE identity_conflicts (
            id INTEGER PRIMARY KEY, kind TEXT NOT NULL, code TEXT NOT NULL, keys TEXT NOT NULL,
            detail TEXT NOT NULL, detected_at TEXT NOT NULL
        );
        CREATE VIEW customers_merged AS
        SELECT c.key, c.source, c.external_id, c.email, c.name, c.organization_key,
               coalesce(i.tags, c.tags) AS tags,
               CASE WHEN i.record_key IS NULL THEN c.attributes
                    ELSE json_patch(json_patch(coalesce(i.low, '{}'), c.attributes), coalesce(i.high, '{}'))
               END AS attributes,
               CASE WHEN i.created_at IS NOT NULL AND (c.created_at IS NULL OR i.created_at < c.created_at)
                    THEN i.created_at ELSE c.created_at END AS created_at,
               c.updated_at, c.synced_at, i.role AS role, i.entity_key AS entity_key
        FROM customers c LEFT JOIN identities i ON i.record_key = c.key;
        CREATE VIEW customer_population AS
        SELECT m.key, m.source, m.external_id, m.email, m.name,
               coalesce(oi.entity_key, m.organization_key) AS organization_key,
               m.tags, m.attributes, m.created_at, m.updated_at, m.synced_at, m.role, m.entity_key
        FROM customers_merged m
        LEFT JOIN identities oi ON oi.record_key = m.organization_key AND oi.role != 'held'
        WHERE m.role IS NULL OR m.role = 'primary';
        CREATE VIEW organizations_merged AS
        SELECT o.key, o.source, o.external_id, o.name, o.domains, coalesce(i.tags, o.tags) AS tags,
               CASE WHEN i.record_key IS NULL THEN o.attributes
                    ELSE json_patch(json_patch(coalesce(i.low, '{}'), o.attributes), coalesce(i.high, '{}'))
               END AS attributes,
               CASE WHEN i.created_at IS NOT NULL AND (o.created_at IS NULL OR i.created_at < o.created_at)
                    THEN i.created_at ELSE o.created_at END AS created_at,
               o.updated_at, o.synced_at, i.role AS role, i.entity_key AS entity_key
        FROM organizations o LEFT JOIN identities i ON i.record_key = o.key;
        CREATE VIEW organization_population AS
        SELECT * FROM organizations_merged WHERE role IS NULL OR role = 'primary';
        """,
    )
)

# Segments of organizations, for dimensions with `level: organization` (their users' rows stay in segments).
MIGRATIONS.append(
    (
        4,
        """
        CREATE TABLE organization_segments (
            organization_key TEXT NOT NULL, dimension TEXT NOT NULL, label TEXT, reasons TEXT NOT NULL,
            computed_at TEXT NOT NULL, PRIMARY KEY (organization_key, dimension)
        );
        """,
    )
)


# Scheduled job runs, for `tierdesk jobs` (their locks live in `locks`).
MIGRATIONS.append(
    (
        7,
        """
        CREATE TABLE job_runs (
            id INTEGER PRIMARY KEY, job TEXT NOT NULL, owner TEXT NOT NULL, started_at REAL NOT NULL,
            finished_at REAL, status TEXT NOT NULL DEFAULT 'running', counts TEXT NOT NULL DEFAULT '{}',
            api_calls INTEGER NOT NULL DEFAULT 0, error TEXT
        );
        CREATE INDEX job_runs_job ON job_runs (job, started_at);
        """,
    )
)


# How far the worker has moved each web process's inbox file into events (see integration/inbox.py).
MIGRATIONS.append(
    (
        8,
        """
        CREATE TABLE inbox_offsets (
            file TEXT PRIMARY KEY, offset INTEGER NOT NULL, moved_at REAL NOT NULL
        );
        """,
    )
)


# Replays: a signed delivery carries a digest of what was signed (TicketEvent.replay_key); the queue keeps
# one event per source and digest, so a captured delivery sent again under a new delivery id is dropped.
MIGRATIONS.append(
    (
        9,
        """
        ALTER TABLE events ADD COLUMN replay_key TEXT;
        CREATE UNIQUE INDEX events_replay ON events (source, replay_key) WHERE replay_key IS NOT NULL;
        """,
    )
)


# Failed admin sign-ins and bad API tokens, one row each, kept as long as the throttle's window: shared by
# every process (a per-process counter let each gunicorn worker be guessed at separately).
MIGRATIONS.append(
    (
        10,
        """
        CREATE TABLE sign_in_failures (key TEXT NOT NULL, at REAL NOT NULL);
        CREATE INDEX sign_in_failures_key ON sign_in_failures (key, at);
        CREATE INDEX sign_in_failures_at ON sign_in_failures (at);
        """,
    )
)


# Admin: every published mapping version (one active at a time), each admin's draft, and the service
# measures of tickets (the helpdesk's ticket metrics) for the "service per segment" page.
MIGRATIONS.append(
    (
        6,
        """
        CREATE TABLE mapping_versions (
            id INTEGER PRIMARY KEY AUTOINCREMENT, digest TEXT NOT NULL, text TEXT NOT NULL,
            author TEXT NOT NULL, note TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 0
        );
        CREATE UNIQUE INDEX mapping_versions_one_active ON mapping_versions (active) WHERE active = 1;
        CREATE TABLE mapping_drafts (
            author TEXT PRIMARY KEY, text TEXT NOT NULL, updated_at TEXT NOT NULL
        );
        ALTER TABLE tickets ADD COLUMN first_response_minutes REAL;
        ALTER TABLE tickets ADD COLUMN resolution_minutes REAL;
        ALTER TABLE tickets ADD COLUMN solved_at TEXT;
        CREATE INDEX tickets_created ON tickets (created_at);
        """,
    )
)

# Inactive people (deleted, suspended or blocked at their helpdesk) stay stored for their tickets' sake but
# are no customers: the population, and so every recompute, cut-off and tag push, leaves them out
# (docs/mapping.md, "Who counts"). The views are those of migration 3 plus the `active` column.
MIGRATIONS.append(
    (
        11,
        """
        ALTER TABLE customers ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
        DROP VIEW customer_population;
        DROP VIEW customers_merged;
        CREATE VIEW customers_merged AS
        SELECT c.key, c.source, c.external_id, c.email, c.name, c.organization_key,
               coalesce(i.tags, c.tags) AS tags,
               CASE WHEN i.record_key IS NULL THEN c.attributes
                    ELSE json_patch(json_patch(coalesce(i.low, '{}'), c.attributes), coalesce(i.high, '{}'))
               END AS attributes,
               CASE WHEN i.created_at IS NOT NULL AND (c.created_at IS NULL OR i.created_at < c.created_at)
                    THEN i.created_at ELSE c.created_at END AS created_at,
               c.updated_at, c.synced_at, i.role AS role, i.entity_key AS entity_key, c.active
        FROM customers c LEFT JOIN identities i ON i.record_key = c.key;
        CREATE VIEW customer_population AS
        SELECT m.key, m.source, m.external_id, m.email, m.name,
               coalesce(oi.entity_key, m.organization_key) AS organization_key,
               m.tags, m.attributes, m.created_at, m.updated_at, m.synced_at, m.role, m.entity_key, m.active
        FROM customers_merged m
        LEFT JOIN identities oi ON oi.record_key = m.organization_key AND oi.role != 'held'
        WHERE (m.role IS NULL OR m.role = 'primary') AND m.active = 1;
        """,
    )
)

# The model version a decision's segments came from: the digest of the mapping the population cut-offs
# were fitted for (segment_service.py); after a publish it is the previous version's until the refit ran.
MIGRATIONS.append((12, "ALTER TABLE decisions ADD COLUMN model_digest TEXT;"))


@dataclass(frozen=True)
class Event:
    """A queued webhook event as the worker sees it."""

    id: int
    source: str
    event_id: str
    ticket_key: str
    payload: dict[str, Any]
    status: str
    attempts: int
    available_at: float
    received_at: float
    last_error: str | None
    finished_at: float | None
    lease: str | None = None  # the claim's token while leased: every transition must present it


@dataclass(frozen=True)
class DecisionRecord:
    ticket_key: str
    event_id: int | None
    customer_key: str | None
    outcome: str  # applied | skipped | rerouted
    priority: str | None
    sla: str | None
    group_name: str | None
    tags: tuple[str, ...]
    note: str
    reasons: tuple[str, ...]
    segments: dict[str, Any]
    response: dict[str, Any] | None
    received_at: float | None
    decided_at: float
    model_digest: str | None = None  # mapping digest of the model the segments came from (none: no customer)

    @property
    def latency_ms(self) -> float | None:
        """Webhook received -> decided. None for a re-route: no webhook started it, the scheduler did."""
        if self.received_at is None or self.outcome == "rerouted":
            return None
        return (self.decided_at - self.received_at) * 1000


@dataclass(frozen=True)
class MappingVersion:
    """One published mapping: the YAML text as it was, who published it, when and why."""

    id: int
    digest: str
    text: str
    author: str  # "file" when adopted from TIERDESK_MAPPINGS at start
    note: str
    source: str  # the file it came from, or "admin" / "api"
    created_at: str
    active: bool


class Store:
    """All persistence for one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        _create_private(self.path)
        self._migrate()

    # -- connections and transactions -------------------------------------------------------------

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

    def _migrate(self) -> None:
        db = self.db
        if db.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.enable_wal()
        with self.transaction():
            db.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in db.conn.execute("SELECT version FROM schema_migrations")}
            for version, script in sorted(MIGRATIONS):
                if version in done:
                    continue
                for statement in filter(str.strip, script.split(";")):
                    db.conn.execute(statement)
                db.conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, _iso(datetime.now(UTC))),
                )

    def schema_version(self) -> int:
        row = self.db.conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

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

    # -- customers, organizations, tickets ----------------------------------------------------------

    def upsert_customers(self, customers: Iterable[Customer]) -> int:
        now = _iso(datetime.now(UTC))
        rows = [
            {
                "key": c.key,
                "source": c.source,
                "external_id": c.external_id,
                "email": c.email,
                "name": c.name,
                "organization_key": c.organization_key,
                "tags": _json(list(c.tags)),
                "attributes": _json(dict(c.attributes)),
                "created_at": _iso(c.created_at),
                "updated_at": _iso(c.updated_at),
                "synced_at": now,
                "active": int(c.active),
            }
            for c in customers
        ]
        with self.transaction() as db:
            db["customers"].upsert_all(rows, pk="key")
        return len(rows)

    def upsert_organizations(self, organizations: Iterable[Organization]) -> int:
        now = _iso(datetime.now(UTC))
        rows = [
            {
                "key": o.key,
                "source": o.source,
                "external_id": o.external_id,
                "name": o.name,
                "domains": _json(list(o.domains)),
                "tags": _json(list(o.tags)),
                "attributes": _json(dict(o.attributes)),
                "created_at": _iso(o.created_at),
                "updated_at": _iso(o.updated_at),
                "synced_at": now,
            }
            for o in organizations
        ]
        with self.transaction() as db:
            db["organizations"].upsert_all(rows, pk="key")
        return len(rows)

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

    @staticmethod
    def _customer(row: dict[str, Any]) -> Customer:
        org_key = row["organization_key"]
        return Customer(
            source=row["source"],
            external_id=row["external_id"],
            email=row["email"],
            name=row["name"],
            organization_id=keys.external_id(org_key) if org_key else None,
            tags=tuple(json.loads(row["tags"])),
            created_at=_dt(row["created_at"]),
            updated_at=_dt(row["updated_at"]),
            attributes=json.loads(row["attributes"]),
            active=bool(row["active"]),
        )

    @staticmethod
    def _organization(row: dict[str, Any]) -> Organization:
        return Organization(
            source=row["source"],
            external_id=row["external_id"],
            name=row["name"],
            domains=tuple(json.loads(row["domains"])),
            tags=tuple(json.loads(row["tags"])),
            created_at=_dt(row["created_at"]),
            updated_at=_dt(row["updated_at"]),
            attributes=json.loads(row["attributes"]),
        )

    def get_customer(self, key: str) -> Customer | None:
        rows = list(self.db.query("SELECT * FROM customers_merged WHERE key = ?", [key]))
        return self._customer(rows[0]) if rows else None

    def get_organization(self, key: str) -> Organization | None:
        rows = list(self.db.query("SELECT * FROM organizations_merged WHERE key = ?", [key]))
        return self._organization(rows[0]) if rows else None

    def iter_customers(self) -> Iterator[Customer]:
        for row in self.db.query(
            "SELECT * FROM customers_merged WHERE (role IS NULL OR role = 'primary') AND active = 1 "
            "ORDER BY key"
        ):
            yield self._customer(row)

    def organizations_by_key(self) -> dict[str, Organization]:
        return {
            row["key"]: self._organization(row) for row in self.db.query("SELECT * FROM organizations_merged")
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

    def customer_counts(self) -> dict[str, int]:
        """Customers per source, as segments count them: one row per person (docs/architecture.md,
        "Identity"); CRM and file records linked into another record, or held back by a conflict, are
        not customers of their own."""
        return {
            row[0]: int(row[1])
            for row in self.db.conn.execute(
                "SELECT source, count(*) FROM customer_population GROUP BY source"
            )
        }

    def customer_count(self) -> int:
        """The number every report calls "customers" (see customer_counts)."""
        return sum(self.customer_counts().values())

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

    # -- segments -----------------------------------------------------------------------------------

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

    # -- sync cursors -------------------------------------------------------------------------------

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

    def cursors(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM sync_cursors ORDER BY connector, stream"))

    # -- event queue --------------------------------------------------------------------------------

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

    # -- decisions ----------------------------------------------------------------------------------

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

    # -- outbound rate budget -----------------------------------------------------------------------

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

    # -- admin sign-in throttle ----------------------------------------------------------------------

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

    # -- scheduled jobs, tag push and re-routing ------------------------------------------------------

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

    def tag_state(self, kind: str) -> list[tuple[str, str, str, tuple[str, ...], dict[str, str | None]]]:
        """(key, source, external id, tags the source holds, {dimension: label}) for users or organizations.

        A CRM record linked to a helpdesk customer carries that person's (or organization's) labels.
        Inactive people are left out: they are no customers, and a write to them is wasted.
        """
        table, segments, key_column = {
            "users": ("customers", "segments", "customer_key"),
            "organizations": ("organizations", "organization_segments", "organization_key"),
        }[kind]
        labels: dict[str, dict[str, str | None]] = {}
        for row in self.db.conn.execute(
            f"SELECT {key_column}, dimension, label FROM {segments}"  # noqa: S608 - fixed names above
        ):
            labels.setdefault(row[0], {})[row[1]] = row[2]
        return [
            (row[0], row[1], row[2], tuple(json.loads(row[3])), labels.get(row[4], {}))
            for row in self.db.conn.execute(
                "SELECT r.key, r.source, r.external_id, r.tags, "  # noqa: S608 - fixed names above
                "CASE WHEN i.role IN ('primary', 'linked') THEN i.entity_key ELSE r.key END "
                f"FROM {table} r LEFT JOIN identities i ON i.record_key = r.key "
                f"{'WHERE r.active = 1 ' if table == 'customers' else ''}ORDER BY r.key"
            )
        ]

    def set_tags(self, kind: str, tags: dict[str, tuple[str, ...]]) -> None:
        """Record what the helpdesk now holds after a push, so the next diff starts from it."""
        table = {"users": "customers", "organizations": "organizations"}[kind]
        with self.transaction() as db:
            db.conn.executemany(
                f"UPDATE {table} SET tags = ? WHERE key = ?",  # noqa: S608 - fixed names above
                [(_json(list(v)), k) for k, v in tags.items()],
            )

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

    # -- locks --------------------------------------------------------------------------------------

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

    # -- bulk segment reads and writes (recompute over the whole population) -------------------------

    @staticmethod
    def _attribute_picks(attributes: Sequence[str]) -> tuple[str, list[Any]]:
        """Select each attribute with SQLite's JSON functions, so Python parses no JSON per row."""
        picks = "".join(", json_extract(attributes, ?), json_type(attributes, ?)" for _ in attributes)
        paths: list[Any] = []
        for name in attributes:
            paths += [f'$."{name}"', f'$."{name}"']
        return picks, paths

    @staticmethod
    def _json_values(values: list[Any], types: list[Any]) -> list[Any]:
        """json_extract gives 1/0 for true/false and JSON text for lists and objects: undo that."""
        if not any(t in ("true", "false", "array", "object") for t in types):
            return values
        out = []
        for value, kind in zip(values, types, strict=True):
            if kind == "true" or kind == "false":
                out.append(kind == "true")
            elif kind in ("array", "object"):
                out.append(json.loads(value))
            else:
                out.append(value)
        return out

    def customer_columns(
        self, attributes: Sequence[str], organization_key: str | None = None
    ) -> dict[str, Any]:
        """Every customer (or one organization's), column by column, for a recompute.

        Keys ``keys sources external_ids emails tags organization_keys created_at`` (epoch seconds
        or None) and ``attributes``: attribute -> values as sent (None when absent), ordered by key.
        """
        picks, paths = self._attribute_picks(attributes)
        sql = (
            "SELECT key, source, external_id, email, tags, organization_key, unixepoch(created_at)"  # noqa: S608
            f"{picks} FROM customer_population"
        )
        params: list[Any] = list(paths)
        if organization_key is not None:
            sql += " WHERE organization_key = ?"
            params.append(organization_key)
        rows = self.db.conn.execute(sql + " ORDER BY key", params).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [()] * (7 + 2 * len(attributes))
        return {
            "keys": list(columns[0]),
            "sources": list(columns[1]),
            "external_ids": list(columns[2]),
            "emails": list(columns[3]),
            "tags": [() if t == "[]" else tuple(json.loads(t)) for t in columns[4]],
            "organization_keys": list(columns[5]),
            "created_at": list(columns[6]),
            "attributes": {
                name: self._json_values(list(columns[7 + 2 * i]), list(columns[8 + 2 * i]))
                for i, name in enumerate(attributes)
            },
        }

    def organization_columns(
        self, attributes: Sequence[str], keys: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Organizations column by column (all, or those in ``keys``), like customer_columns."""
        picks, paths = self._attribute_picks(attributes)
        sql = (
            "SELECT key, source, external_id, name, domains, tags, unixepoch(created_at)"  # noqa: S608
            f"{picks} FROM organization_population"
        )
        params: list[Any] = list(paths)
        if keys is not None:
            sql += f" WHERE key IN ({','.join('?' * len(keys))})"
            params += list(keys)
        rows = self.db.conn.execute(sql + " ORDER BY key", params).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [()] * (7 + 2 * len(attributes))
        return {
            "keys": list(columns[0]),
            "sources": list(columns[1]),
            "external_ids": list(columns[2]),
            "names": list(columns[3]),
            "domains": [tuple(json.loads(d)) for d in columns[4]],
            "tags": [() if t == "[]" else tuple(json.loads(t)) for t in columns[5]],
            "created_at": list(columns[6]),
            "attributes": {
                name: self._json_values(list(columns[7 + 2 * i]), list(columns[8 + 2 * i]))
                for i, name in enumerate(attributes)
            },
        }

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

    # -- purchases, sync state and identity (integration/identity.py holds the matching logic) ------

    # The identity rules of this process (integration.core.identity.Rules), set by the runtime; sync.pull
    # resolves identities with them after every pull (None: the defaults).
    identity_rules: Any = None

    def upsert_purchases(self, purchases: Iterable[Purchase]) -> int:
        """Replace each purchase's rows: one per customer or organization it counts for.

        A purchase that is no longer won (a deal reopened or lost) or has no amount is forgotten.
        """
        now = _iso(datetime.now(UTC))
        items = list(purchases)
        rows = [
            (p.key, party, p.source, float(p.amount), _iso(p.closed_at), now)
            for p in items
            if p.won and p.amount is not None
            for party in dict.fromkeys(p.party_keys)
        ]
        with self.transaction() as db:
            db.conn.executemany("DELETE FROM purchases WHERE key = ?", [(p.key,) for p in items])
            db.conn.executemany(
                "INSERT INTO purchases (key, party_key, source, amount, closed_at, synced_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(items)

    _SWEEP_SQL = {
        stream: f"DELETE FROM {table} WHERE source = ? AND key NOT IN (SELECT key FROM temp.keep)"  # noqa: S608
        for stream, table in (
            ("users", "customers"),
            ("organizations", "organizations"),
            ("purchases", "purchases"),
        )
    }

    def sweep(self, source: str, stream: str, keep: Iterable[str]) -> int:
        """After a complete pull of a snapshot (a CSV file, a full CRM pull), forget what it no longer has."""
        sql = self._SWEEP_SQL.get(stream)
        if sql is None:
            return 0
        with self.transaction() as db:
            conn = db.conn
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS keep (key TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM temp.keep")
            conn.executemany("INSERT OR IGNORE INTO temp.keep VALUES (?)", ((k,) for k in keep))
            removed = conn.execute(sql, (source,)).rowcount
            conn.execute("DELETE FROM temp.keep")
        return removed

    def purchase_totals(self, now: datetime) -> dict[str, dict[str, float | int]]:
        """revenue_12m, lifetime_value, purchases_12m and last_purchase_days per customer/organization key."""
        since = _iso(now - timedelta(days=365))
        out: dict[str, dict[str, float | int]] = {}
        for party, revenue, lifetime, count, last in self.db.conn.execute(
            "SELECT party_key, sum(CASE WHEN closed_at >= ? THEN amount ELSE 0 END), sum(amount), "
            "sum(closed_at >= ?), max(closed_at) FROM purchases GROUP BY party_key",
            (since, since),
        ):
            totals: dict[str, float | int] = {
                "revenue_12m": round(revenue, 2),
                "lifetime_value": round(lifetime, 2),
                "purchases_12m": int(count or 0),
            }
            last_at = _dt(last)
            if last_at is not None:
                totals["last_purchase_days"] = max(0, (now - last_at).days)
            out[party] = totals
        return out

    def source_records(self) -> tuple[list[Customer], list[Organization]]:
        """Every stored customer and organization as its source sent it (no identity overlay)."""
        return (
            [self._customer(row) for row in self.db.query("SELECT * FROM customers ORDER BY key")],
            [self._organization(row) for row in self.db.query("SELECT * FROM organizations ORDER BY key")],
        )

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

    def clear_cursors(self, connector: str) -> None:
        """Forget where a connector's pulls stopped (a full pull), keeping their run history."""
        with self.transaction() as db:
            db.conn.execute("UPDATE sync_cursors SET cursor = NULL WHERE connector = ?", [connector])

    def sync_state(self, connector: str | None = None) -> list[dict[str, Any]]:
        """Cursor, last run, counts and last error of every stream (or one connector's)."""
        sql = "SELECT * FROM sync_cursors"
        params: list[Any] = []
        if connector:
            sql += " WHERE connector = ?"
            params.append(connector)
        return list(self.db.query(sql + " ORDER BY connector, stream", params))

    # -- admin: mapping versions and drafts ---------------------------------------------------------

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

    # -- admin: reads for preview, simulate, decisions and reports ----------------------------------

    def search_customers(self, query: str, limit: int = 20) -> list[Customer]:
        """Customers whose id, key or external id is `query`, or whose email or name contains it.

        One result per customer, merged as segments see them: a CRM record linked into a helpdesk user
        finds that user (once, however many of the person's records match); held records find nobody.
        """
        text = query.strip()
        if not text:
            return []
        like = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.db.query(
            "WITH hits AS ("
            " SELECT CASE WHEN i.role = 'linked' THEN i.entity_key ELSE c.key END AS key,"
            " (c.key = :q OR c.external_id = :q OR lower(c.email) = lower(:q)) AS exact"
            " FROM customers c LEFT JOIN identities i ON i.record_key = c.key"
            " WHERE (i.role IS NULL OR i.role != 'held')"
            " AND (c.key = :q OR c.external_id = :q OR lower(c.email) = lower(:q)"
            " OR lower(c.email) LIKE :like ESCAPE '\\' OR lower(c.name) LIKE :like ESCAPE '\\'))"
            " SELECT p.* FROM customer_population p"
            " JOIN (SELECT key, max(exact) AS exact FROM hits GROUP BY key) h ON h.key = p.key"
            " ORDER BY h.exact DESC, p.email, p.key LIMIT :limit",
            {"q": text, "like": like, "limit": limit},
        )
        return [self._customer(row) for row in rows]

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

    # -- retention (the `prune` job, docs/operations.md) ----------------------------------------------

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

    def prune_events(self, status: str, finished_before: float, batch: int = 5_000) -> int:
        """Delete `done` or `dead` events that finished before the given time. Pending and leased
        events are never deleted."""
        if status not in ("done", "dead"):
            raise ValueError(f"only done or dead events are pruned, not {status!r}")
        return self._delete_batches(
            "events", "status = ? AND finished_at < ?", (status, finished_before), batch
        )

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

    def prune_segment_changes(self, changed_before: datetime, up_to: int, batch: int = 5_000) -> int:
        """Delete label changes recorded before the given time with an id at most `up_to` (the re-route
        bookmark: changes not yet re-routed stay)."""
        return self._delete_batches(
            "segment_changes", "changed_at < ? AND id <= ?", (_iso(changed_before), up_to), batch
        )

    def prune_job_runs(self, before: float, batch: int = 5_000) -> int:
        """Delete job runs that finished before the given time, and runs still marked running that
        started before it (their process died: a job's lock lasts minutes, not days)."""
        return self._delete_batches(
            "job_runs",
            "(status != 'running' AND finished_at < ?) OR (status = 'running' AND started_at < ?)",
            (before, before),
            batch,
        )
