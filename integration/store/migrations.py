"""The schema, as ordered migrations applied at start (each once, in its own transaction).

A migration is never edited once shipped: a change to the schema is a new, higher version.
"""

from __future__ import annotations

from datetime import UTC, datetime

from integration.store.connection import Connection, _iso

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


class MigrationsStore(Connection):
    """Brings a database file up to the newest schema; Store runs it when it opens the file."""

    def _migrate(self) -> None:
        db = self.db
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
