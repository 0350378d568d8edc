"""Storage: the only package that knows table names and writes SQL.

``Store`` (store/sqlite.py) is one object with every persistence method, composed from one class per
concern, each in its own module and each owning its tables and their SQL:

    connection.py        Connection: per-thread connections, the write lock, transactions, the health probe,
                         the file's permissions; the value helpers (_iso, _dt, _json, _like_literal). The
                         only module that knows it is SQLite (PRAGMAs, sqlite3, sqlite_utils, file handling).
    migrations.py        MIGRATIONS, the schema, and MigrationsStore, which applies them at start.
    records.py           RecordsStore: customers, organizations, purchases; search; the tags each one holds.
    tickets.py           TicketsStore: tickets and the ticket history counted per customer.
    columns.py           ColumnsStore: the column-by-column reads a recompute makes of the population.
    segments.py          SegmentsStore: labels, their change history (re-routing, drift) and fitted models.
    queue.py             QueueStore: the event queue's statements and the inbox offsets.
    decisions.py         DecisionsStore: what was decided per ticket, and the reads over it.
    sync_state.py        SyncStateStore: cursors (saved with their records: save_batch) and stream runs.
    jobs.py              JobsStore: named locks, scheduled job runs, the outbound rate budget.
    identity.py          IdentityStore: identity links, overlays and conflicts.
    mapping_versions.py  MappingVersionsStore: published mapping versions and admins' drafts.
    admin.py             AdminStore: the sign-in throttle.

Every concern class builds on ``Connection`` and nothing else (SyncStateStore also on the two record
classes it writes through), so each is a seam: a second backend (PostgreSQL) is a second implementation
of the same classes, say integration/store/postgres/ with its own connection base (a pool, an advisory
lock in place of the flock), its own migrations and one class per concern with the same methods, composed
into its own Store beside sqlite.py; callers keep calling the same methods and choose the backend where
the runtime opens the store. The records the store hands back (Event, DecisionRecord, MappingVersion and
the rest) are plain data in integration/core/models.py, shared by both.
"""

from __future__ import annotations

# The store's records, importable from here as before the split; new code imports them from core.models.
from integration.core.models import DecisionRecord, Event, MappingVersion
from integration.store.migrations import MIGRATIONS
from integration.store.sqlite import Store

__all__ = ["MIGRATIONS", "DecisionRecord", "Event", "MappingVersion", "Store"]
