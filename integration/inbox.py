"""Each web process's inbox: an accepted webhook is appended to a file of that process before the 2xx.

Why not insert straight into the events table? With every web process committing to one shared SQLite
file, each webhook paid for cross-process locking: bench/webhooks.py measured under half the rate of a
bare endpoint. An append to a file no other process writes is one write() call. The worker moves the
lines into the events table in batches, one transaction per batch.

What holds:
- Durable once acknowledged: when write() returns, the line is in the kernel's page cache, so a killed
  web process loses nothing. A power cut can lose the last moments, as it can with SQLite's
  synchronous=NORMAL in WAL mode, which the store uses.
- Moved exactly once: the events rows and the files' read offsets commit in one transaction, and the
  events table's unique (source, event_id) drops a delivery already moved from any file.
- Per-ticket order: lines are moved in the order they were received, across all files, once they are
  SETTLE seconds old. That covers a writer that took its timestamp but had not yet written.

A file is written by one process only and held with an flock while it may grow. A file whose lock is
free is sealed (its process rotated away from it, exited or was killed): once moved, it is deleted.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("tierdesk.inbox")

SETTLE = 0.02  # seconds a line waits before moving, so lines from all processes go in received order
ROTATE_BYTES = 8 << 20
MOVE_BATCH = 5000  # lines per transaction: a backlog after an outage moves in steps, not one long lock
SUFFIX = ".jsonl"
UNBORN_AFTER = 60.0  # seconds before an unpublished file with no writer is taken for a crash's leftover
_ENCODE = json.JSONEncoder(
    separators=(",", ":")
).encode  # built once: json.dumps with options builds one a call


@dataclass(frozen=True)
class Line:
    received_at: float
    source: str
    delivery: str
    ticket_key: str
    payload: dict[str, Any]
    file: str
    end: int  # offset just past this line in its file


@dataclass
class Drained:
    moved: list[tuple[Line, int]] = field(default_factory=list)  # (line, new event id)
    duplicates: list[Line] = field(default_factory=list)
    next_due: float | None = None  # when the oldest line still waiting becomes movable
    more: bool = False  # a full batch went: call again


class InboxStore(Protocol):
    def inbox_offsets(self) -> dict[str, int]: ...

    def add_events(
        self, rows: list[tuple[str, str, str, dict[str, Any], float]], offsets: dict[str, int] | None = None
    ) -> list[int | None]: ...

    def forget_inbox_files(self, names: list[str]) -> None: ...


def _sealed(fd: int) -> bool:
    """True when no process holds the file open for writing (its writer's flock is free)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


class Inbox:
    def __init__(self, directory: str | Path, rotate_bytes: int = ROTATE_BYTES) -> None:
        self.directory = Path(directory)
        self.rotate_bytes = rotate_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self._size = 0
        self._seq = 0
        self._move_lock = threading.Lock()
        self._next_sweep = 0.0

    # -- the web side -------------------------------------------------------------------------------

    def append(self, source: str, delivery: str, ticket_key: str, payload: dict[str, Any]) -> float:
        """Record one delivery; returns its received time. Raises OSError when it could not be written."""
        with self._lock:
            fd = self._fd
            if fd is None or self._pid != os.getpid() or self._size >= self.rotate_bytes:
                fd = self._open()
            received_at = time.time()  # taken under the lock: a file's lines are in time order
            data = (_ENCODE([received_at, source, delivery, ticket_key, payload]) + "\n").encode()
            try:
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(f"short write to the inbox: {written} of {len(data)} bytes")
            except OSError:
                self._seal()  # a torn line ends this file; the next delivery starts a new one
                raise
            self._size += written
        return received_at

    def _open(self) -> int:
        self._seal()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq}"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = os.open(self.directory / f"{name}.new", flags, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # held as long as this process may append here
        # Only now does a mover see it: a file it found unlocked would count as sealed and be deleted.
        os.rename(self.directory / f"{name}.new", self.directory / f"{name}{SUFFIX}")
        self._fd, self._pid, self._size = fd, os.getpid(), 0
        return fd

    def _seal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # in a forked child this closes only the child's copy
            self._fd = None

    def close(self) -> None:
        with self._lock:
            self._seal()

    # -- the worker side ----------------------------------------------------------------------------

    def _files(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.directory) if e.name.endswith(SUFFIX))
        except FileNotFoundError:
            return []

    def _sweep_unborn(self, now: float) -> None:
        """Delete files whose writer died between creating and publishing them (they hold no lines)."""
        try:
            entries = [e for e in os.scandir(self.directory) if e.name.endswith(".new")]
        except FileNotFoundError:
            return
        for entry in entries:
            try:
                if now - entry.stat().st_mtime < UNBORN_AFTER:
                    continue
                fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                if _sealed(fd):
                    os.unlink(entry.path)
            finally:
                os.close(fd)

    @contextmanager
    def _mover(self) -> Iterator[bool]:
        """One mover at a time across threads and processes; others skip rather than wait."""
        if not self._move_lock.acquire(blocking=False):
            yield False
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / ".move.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
                yield True
            finally:
                os.close(fd)
        finally:
            self._move_lock.release()

    def drain(self, store: InboxStore, now: float | None = None, settle: float = SETTLE) -> Drained:
        """Move settled lines into the store's events, oldest first, and delete moved sealed files."""
        result = Drained()
        names = self._files()
        if not names:
            return result
        with self._mover() as mine:
            if not mine:
                return result
            now = time.time() if now is None else now
            if now >= self._next_sweep:
                self._next_sweep = now + UNBORN_AFTER
                self._sweep_unborn(time.time())
            offsets = store.inbox_offsets()
            lines: list[Line] = []
            ends: dict[str, int] = {}
            finished: list[str] = []
            for name in names:
                taken, end, sealed, waiting = self._read(name, offsets.get(name, 0), now - settle)
                lines.extend(taken)
                ends[name] = end
                if waiting is not None:
                    due = waiting + settle
                    result.next_due = due if result.next_due is None else min(result.next_due, due)
                if sealed and waiting is None:
                    finished.append(name)
            lines.sort(key=lambda line: line.received_at)  # stable: a file's own order is kept
            if len(lines) > MOVE_BATCH:
                lines, result.more, finished = lines[:MOVE_BATCH], True, []
                ends = {}
                for line in lines:
                    ends[line.file] = line.end
            advanced = {name: end for name, end in ends.items() if end != offsets.get(name, 0)}
            if lines or advanced:
                rows = [(x.source, x.delivery, x.ticket_key, x.payload, x.received_at) for x in lines]
                ids = store.add_events(rows, advanced)
                for line, event_id in zip(lines, ids, strict=True):
                    if event_id is None:
                        result.duplicates.append(line)
                    else:
                        result.moved.append((line, event_id))
            if finished:
                for name in finished:
                    (self.directory / name).unlink(missing_ok=True)
                store.forget_inbox_files(finished)  # after the unlink: a crash between re-reads nothing
        return result

    def _read(self, name: str, start: int, cutoff: float) -> tuple[list[Line], int, bool, float | None]:
        """Lines of one file from `start` received before `cutoff`; (lines, end, sealed, first waiting)."""
        try:
            fd = os.open(self.directory / name, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return [], start, True, None
        try:
            sealed = _sealed(fd)  # looked at before reading: a sealed file gets no more lines
            size = os.fstat(fd).st_size
            data = os.pread(fd, max(0, size - start), start) if size > start else b""
        finally:
            os.close(fd)
        lines: list[Line] = []
        pos = start
        waiting = None
        while pos - start < len(data):
            cut = data.find(b"\n", pos - start)
            if cut < 0:  # no newline yet: a line being written, or torn by a crash mid-write
                if sealed:
                    log.warning("inbox.torn_line", extra={"file": name, "offset": pos})
                    pos = start + len(data)
                break
            raw = data[pos - start : cut]
            end = start + cut + 1
            try:
                received, source, delivery, ticket_key, payload = json.loads(raw)
                line = Line(float(received), str(source), str(delivery), str(ticket_key), payload, name, end)
            except (ValueError, TypeError):
                log.error("inbox.bad_line", extra={"file": name, "offset": pos})
                pos = end
                continue
            if not sealed and line.received_at > cutoff:
                waiting = line.received_at
                break
            lines.append(line)
            pos = end
        return lines, pos, sealed, waiting

    def backlog(self, offsets: dict[str, int]) -> tuple[int, int, float | None]:
        """(files, bytes not yet moved, received time of the oldest line not yet moved)."""
        files = self._files()
        unmoved = 0
        oldest: float | None = None
        for name in files:
            path = self.directory / name
            try:
                size = path.stat().st_size
                start = offsets.get(name, 0)
                if size <= start:
                    continue
                unmoved += size - start
                with path.open("rb") as f:
                    f.seek(start)
                    first = f.readline()
                received = float(json.loads(first)[0])
            except (OSError, ValueError, TypeError, IndexError):
                continue
            oldest = received if oldest is None else min(oldest, received)
        return len(files), unmoved, oldest
