"""One export file as a pull-only source; the file's digest is the cursor.

Why a whole file at once: an export is a snapshot. Every row is checked before anything is stored (the
errors name file, line and column: ``billing.csv:17: column revenue: 'abc' is not a number``), the file's
digest is the cursor (the same file again changes nothing), and after a changed file is imported, records
it no longer has are forgotten (sync.pull sweeps snapshot sources).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from connectors.base import Batch, Source
from connectors.csvfile.records import parse
from connectors.csvfile.spec import STREAMS, CsvError, FileSpec

BATCH_SIZE = 1000


class CsvFileConnector(Source):
    """One export file as a pull-only source; the file's digest is the cursor."""

    pull_only = True
    snapshot = True  # sync.pull forgets records a newer version of the file no longer has
    http = None  # a file: no API calls

    def __init__(self, spec: FileSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.streams = STREAMS[spec.kind]

    def _read(self) -> bytes:
        try:
            return self.spec.path.read_bytes()
        except OSError as e:
            raise CsvError(f"{self.spec.path}: cannot read the export ({e.strerror})") from e

    def cursor_for(self, data: bytes) -> str:
        return f"{hashlib.sha256(data).hexdigest()[:32]}:{self.spec.digest}"

    def estimate(self, stream: str, cursor: str | None) -> int | None:
        data = self._read()
        if cursor == self.cursor_for(data):
            return 0
        return max(0, data.count(b"\n") - (1 if self.spec.path.suffix.lower() == ".csv" else 0))

    def pull(self, stream: str, cursor: str | None) -> Iterator[Batch]:
        """Nothing when the file is unchanged since `cursor`; else every record of `stream` in it."""
        if stream not in self.streams:
            raise ValueError(f"{self.name} ({self.spec.kind}) has no stream {stream!r}")
        data = self._read()
        digest = self.cursor_for(data)
        if cursor == digest:
            return
        parsed = parse(self.spec, data)
        records: list[Any] = {
            "users": parsed.customers,
            "organizations": parsed.organizations,
            "purchases": parsed.purchases,
        }[stream]
        if not records:
            yield Batch(stream, [], digest)
            return
        for start in range(0, len(records), BATCH_SIZE):
            chunk = records[start : start + BATCH_SIZE]
            done = start + BATCH_SIZE >= len(records)
            yield Batch(stream, chunk, digest if done else cursor)  # a crash midway imports it all again
