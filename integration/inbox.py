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
- Work in proportion to the batch: each file is read forward from its offset a chunk at a time and the
  files are merged by received time, so a batch reads and parses about the lines it moves, not the whole
  backlog (bench/inbox.py). A probe reads one line per writing process, never every file.
- Private: the directory is created 0700 and each file 0600.

A file is written by one process only and held with an flock while it may grow. A file whose lock is
free is sealed (its process rotated away from it, exited or was killed): once moved, it is deleted.
"""

from __future__ import annotations

import fcntl
import heapq
import json
import logging
import os
import secrets
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
READ_CHUNK = 256 << 10  # bytes read from a file at a time while a batch fills
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


def _writer(name: str) -> str:
    """The writer of a file named <time_ns>-<pid>.<writer>-<seq>.jsonl (one Inbox in one process): its
    lines follow on from its earlier files' lines, in received order."""
    parts = name.split("-")
    return parts[1] if len(parts) > 2 else name


def _parse(raw: bytes, name: str, end: int) -> Line:
    received, source, delivery, ticket_key, payload = json.loads(raw)
    return Line(float(received), str(source), str(delivery), str(ticket_key), payload, name, end)


def _sealed(fd: int) -> bool:
    """True when no process holds the file open for writing (its writer's flock is free)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


class _Reader:
    """One inbox file read forward from an offset, a chunk at a time, one movable line at a time."""

    def __init__(self, path: Path, start: int, cutoff: float) -> None:
        self.name = path.name
        self.cutoff = cutoff
        self.scanned = start  # offset just past the last line handed out (or skipped as unreadable)
        self.waiting: float | None = None  # received time of a line still settling, where reading stopped
        self.exhausted = False
        self._buf = b""
        self._buf_at = start  # file offset of _buf[0]
        self._fd: int | None = None
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.sealed, self.size, self.exhausted = True, start, True
            return
        self.sealed = _sealed(self._fd)  # looked at before reading: a sealed file gets no more lines
        self.size = os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _fill(self) -> bool:
        """Read the next chunk (up to the size seen at open); False at the end."""
        at = self._buf_at + len(self._buf)
        if self._fd is None or at >= self.size:
            return False
        data = os.pread(self._fd, min(READ_CHUNK, self.size - at), at)
        if not data:
            return False
        keep = self.scanned - self._buf_at  # what was handed out is not needed again
        self._buf = self._buf[keep:] + data
        self._buf_at = self.scanned
        return True

    def next(self) -> Line | None:
        """The next line to move; None at the end of what is there, or at a line still settling."""
        while not self.exhausted:
            rel = self.scanned - self._buf_at
            cut = self._buf.find(b"\n", rel)
            if cut < 0:
                if self._fill():
                    continue
                if self.sealed and rel < len(self._buf):  # torn by a crash mid-write; nothing follows
                    log.warning("inbox.torn_line", extra={"file": self.name, "offset": self.scanned})
                    self.scanned = self._buf_at + len(self._buf)
                self.exhausted = True  # (unsealed: a line being written; it is read next time)
                return None
            end = self._buf_at + cut + 1
            try:
                line = _parse(self._buf[rel:cut], self.name, end)
            except (ValueError, TypeError):
                log.error("inbox.bad_line", extra={"file": self.name, "offset": self.scanned})
                self.scanned = end
                continue
            if not self.sealed and line.received_at > self.cutoff:
                self.waiting = line.received_at
                self.exhausted = True
                return None
            self.scanned = end
            return line
        return None


class _Chain:
    """One writing process's files, oldest first: its lines go on from one file into the next, so only
    the file it is in is open, and a chain stops at a file its process may still append to."""

    def __init__(self, directory: Path, names: list[str], offsets: dict[str, int], cutoff: float) -> None:
        self.directory = directory
        self.offsets = offsets
        self.cutoff = cutoff
        self.unread = list(reversed(names))  # popped oldest first
        self.read: list[_Reader] = []  # files read to their end (closed)
        self.current: _Reader | None = None

    def next(self) -> Line | None:
        while True:
            if self.current is None:
                if not self.unread:
                    return None
                name = self.unread.pop()
                self.current = _Reader(self.directory / name, self.offsets.get(name, 0), self.cutoff)
            if (line := self.current.next()) is not None:
                return line
            if not self.current.sealed or self.current.waiting is not None:
                return None  # its process may still append here: its later files wait for next time
            self.current.close()
            self.read.append(self.current)
            self.current = None

    def close(self) -> None:
        if self.current is not None:
            self.current.close()


class Inbox:
    def __init__(self, directory: str | Path, rotate_bytes: int = ROTATE_BYTES) -> None:
        self.directory = Path(directory)
        self.rotate_bytes = rotate_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self._size = 0
        self._seq = 0
        self._writer_id = ""
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

    def _mkdir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def writable(self) -> bool:
        """Whether this process can add a file to the inbox (the webhook path's one requirement)."""
        target = self.directory
        while not target.exists() and target.parent != target:
            target = target.parent  # not made yet: the first append creates it where its parent is
        return target.is_dir() and os.access(target, os.W_OK | os.X_OK)

    def _open(self) -> int:
        self._seal()
        self._mkdir()
        if self._pid != os.getpid():  # new, or forked: a writer of its own
            self._writer_id = f"{os.getpid()}.{secrets.token_hex(3)}"
        self._seq += 1
        name = f"{time.time_ns():020d}-{self._writer_id}-{self._seq}"
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
        except (FileNotFoundError, NotADirectoryError):
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
            self._mkdir()
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
            by_writer: dict[str, list[str]] = {}
            for name in names:
                by_writer.setdefault(_writer(name), []).append(name)
            chains = [_Chain(self.directory, own, offsets, now - settle) for own in by_writer.values()]
            try:
                lines, ends, finished = self._merge(chains, result, settle)
            finally:
                for chain in chains:
                    chain.close()
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

    @staticmethod
    def _merge(
        chains: list[_Chain], result: Drained, settle: float
    ) -> tuple[list[Line], dict[str, int], list[str]]:
        """Up to MOVE_BATCH lines, oldest first across the writers (each one's own order kept);
        (lines, each file's new offset, sealed files read to their end)."""
        heap: list[tuple[float, int, Line]] = []
        for index, chain in enumerate(chains):
            if (line := chain.next()) is not None:
                heap.append((line.received_at, index, line))
        heapq.heapify(heap)
        lines: list[Line] = []
        ends: dict[str, int] = {}
        while heap and len(lines) < MOVE_BATCH:
            _, index, line = heapq.heappop(heap)
            lines.append(line)
            ends[line.file] = line.end
            if (following := chains[index].next()) is not None:
                heapq.heappush(heap, (following.received_at, index, following))
        result.more = bool(heap)
        pending = {index for _, index, _ in heap}
        finished: list[str] = []
        for index, chain in enumerate(chains):
            readers = list(chain.read)
            if chain.current is not None:
                if chain.current.waiting is not None:
                    due = chain.current.waiting + settle
                    result.next_due = due if result.next_due is None else min(result.next_due, due)
                if index not in pending:  # else its next line is left for the next batch
                    readers.append(chain.current)
            for reader in readers:
                ends[reader.name] = reader.scanned  # read to where it stops, unreadable lines included
                if reader.sealed and reader.waiting is None:
                    finished.append(reader.name)
        return lines, ends, finished

    def backlog(self, offsets: dict[str, int]) -> tuple[int, int, float | None]:
        """(files, bytes not yet moved, received time of the oldest line not yet moved).

        Sizes come from the directory listing; only each writing process's oldest file with lines left
        is opened, for its first line: a process's lines are in received order across its files.
        """
        try:
            entries = sorted(
                (e.name, e.stat().st_size) for e in os.scandir(self.directory) if e.name.endswith(SUFFIX)
            )
        except (FileNotFoundError, NotADirectoryError):
            return 0, 0, None
        unmoved = 0
        firsts: dict[str, tuple[str, int]] = {}
        for name, size in entries:
            start = offsets.get(name, 0)
            if size > start:
                unmoved += size - start
                firsts.setdefault(_writer(name), (name, start))
        oldest: float | None = None
        for name, start in firsts.values():
            received = self._first_time(name, start)
            if received is not None:
                oldest = received if oldest is None else min(oldest, received)
        return len(entries), unmoved, oldest

    def _first_time(self, name: str, start: int) -> float | None:
        try:
            fd = os.open(self.directory / name, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            data = os.pread(fd, READ_CHUNK, start)
        finally:
            os.close(fd)
        cut = data.find(b"\n")
        if cut < 0:
            return None
        try:
            return _parse(data[:cut], name, start + cut + 1).received_at
        except (ValueError, TypeError):
            return None
