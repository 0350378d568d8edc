"""The SQLite store: every concern class composed over one SQLite file."""

from __future__ import annotations

from pathlib import Path

from integration.store.admin import AdminStore
from integration.store.columns import ColumnsStore
from integration.store.decisions import DecisionsStore
from integration.store.identity import IdentityStore
from integration.store.jobs import JobsStore
from integration.store.mapping_versions import MappingVersionsStore
from integration.store.migrations import MigrationsStore
from integration.store.queue import QueueStore
from integration.store.segments import SegmentsStore
from integration.store.sync_state import SyncStateStore


class Store(
    MigrationsStore,
    SyncStateStore,  # with RecordsStore and TicketsStore, which save_batch writes through
    ColumnsStore,
    SegmentsStore,
    QueueStore,
    DecisionsStore,
    JobsStore,
    IdentityStore,
    MappingVersionsStore,
    AdminStore,
):
    """All persistence for one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self._migrate()
