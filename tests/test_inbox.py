"""The web processes' inbox files and their move into the queue (integration/inbox.py)."""

from __future__ import annotations

import fcntl
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from integration import inbox as inbox_module
from integration.inbox import Inbox
from integration.store import Store
from tests.support import wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "tierdesk.db")


def _inbox(store: Store, **kwargs: Any) -> Inbox:
    return Inbox(Path(f"{store.path}.inbox"), **kwargs)


def _tickets(store: Store) -> list[str]:
    rows = store.db.query("SELECT ticket_key FROM events ORDER BY id")
    return [r["ticket_key"].rsplit(":", 1)[1] for r in rows]


def test_lines_from_every_process_move_in_received_order(store: Store) -> None:
    first, second = _inbox(store), _inbox(store)  # two writers, as two web processes
    for n in range(6):
        (first if n % 2 else second).append("zendesk", f"d{n}", f"zendesk:ticket:{n}", {"n": n})
    drained = first.drain(store, settle=0)
    assert [line.delivery for line, _ in drained.moved] == [f"d{n}" for n in range(6)]
    assert _tickets(store) == [str(n) for n in range(6)]
    assert store.find_event("zendesk", "d3").payload == {"n": 3}
    assert first.drain(store, settle=0).moved == []  # offsets remembered: nothing moves twice


def test_a_fresh_line_waits_until_it_has_settled(store: Store) -> None:
    inbox = _inbox(store)
    received = inbox.append("zendesk", "d1", "zendesk:ticket:1", {})
    early = inbox.drain(store, now=received + 0.005, settle=0.02)
    assert early.moved == []
    assert early.next_due == pytest.approx(received + 0.02)
    assert store.queue_counts() == {}
    late = inbox.drain(store, now=received + 0.03, settle=0.02)
    assert len(late.moved) == 1


def test_a_repeated_delivery_is_kept_once(store: Store) -> None:
    first, second = _inbox(store), _inbox(store)
    first.append("zendesk", "same", "zendesk:ticket:1", {})
    second.append("zendesk", "same", "zendesk:ticket:1", {})
    drained = first.drain(store, settle=0)
    assert len(drained.moved) == 1
    assert [line.delivery for line in drained.duplicates] == ["same"]
    first.append("zendesk", "same", "zendesk:ticket:1", {})  # and again, after it was moved
    assert [line.delivery for line in first.drain(store, settle=0).duplicates] == ["same"]
    assert store.queue_counts() == {"pending": 1}


def test_sealed_files_are_deleted_once_moved_and_the_active_one_stays(store: Store) -> None:
    inbox = _inbox(store, rotate_bytes=200)  # every couple of lines starts a new file
    for n in range(10):
        inbox.append("zendesk", f"d{n}", f"zendesk:ticket:{n}", {"pad": "x" * 50})
    assert len(list(inbox.directory.glob("*.jsonl"))) > 3
    inbox.drain(store, settle=0)
    assert _tickets(store) == [str(n) for n in range(10)]
    left = list(inbox.directory.glob("*.jsonl"))
    assert len(left) == 1  # the file still being written
    assert set(store.inbox_offsets()) == {left[0].name}
    inbox.close()
    inbox.drain(store, settle=0)
    assert list(inbox.directory.glob("*.jsonl")) == []
    assert store.inbox_offsets() == {}


def test_a_torn_or_garbled_line_is_skipped_and_the_rest_moves(store: Store) -> None:
    inbox = _inbox(store)
    inbox.append("zendesk", "d1", "zendesk:ticket:1", {})
    path = next(inbox.directory.glob("*.jsonl"))
    with path.open("ab") as f:
        f.write(b"not json\n")
    inbox.append("zendesk", "d2", "zendesk:ticket:2", {})
    with path.open("ab") as f:
        f.write(b'[1700000000.0, "zendesk", "d3", "zendesk:tic')  # the writer died mid-line
    inbox.close()
    inbox.drain(store, settle=0)
    assert _tickets(store) == ["1", "2"]
    assert not path.exists()


def test_a_move_that_fails_commits_nothing_and_the_next_one_moves_all(store: Store) -> None:
    inbox = _inbox(store)
    for n in range(3):
        inbox.append("zendesk", f"d{n}", f"zendesk:ticket:{n}", {})

    class Failing:
        def inbox_offsets(self) -> dict[str, int]:
            return store.inbox_offsets()

        def add_events(self, rows: list, offsets: dict[str, int] | None = None) -> list[int | None]:
            with store.transaction() as db:  # the rows go in, then the process dies before the commit
                for source, delivery, key, payload, received in rows:
                    db.conn.execute(
                        "INSERT INTO events (source, event_id, ticket_key, payload, available_at, "
                        "received_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (source, delivery, key, json.dumps(payload), received, received),
                    )
                raise OSError("killed mid-move")

        def forget_inbox_files(self, names: list[str]) -> None:
            store.forget_inbox_files(names)

    with pytest.raises(OSError, match="killed"):
        inbox.drain(Failing(), settle=0)  # type: ignore[arg-type]
    assert store.queue_counts() == {}
    assert len(inbox.drain(store, settle=0).moved) == 3
    assert store.queue_counts() == {"pending": 3}


def test_a_large_backlog_moves_in_batches_without_losing_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox_module, "MOVE_BATCH", 4)
    first, second = _inbox(store), _inbox(store)
    for n in range(11):
        (first if n % 3 else second).append("zendesk", f"d{n}", f"zendesk:ticket:{n}", {})
    rounds = 1
    while first.drain(store, settle=0).more:
        rounds += 1
    assert rounds == 3
    assert _tickets(store) == [str(n) for n in range(11)]


def _unlocked(path: Path) -> bool:
    """No process holds `path`'s writer lock: the drain will treat the file as sealed."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops the lock if we took it
    return True


WRITER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from integration.inbox import Inbox
inbox = Inbox(sys.argv[1])
for n in range(500):
    inbox.append("zendesk", f"k{n}", f"zendesk:ticket:{n}", {"n": n})
print("written", flush=True)
time.sleep(60)
"""


def test_a_killed_web_process_loses_nothing_it_acknowledged(store: Store) -> None:
    inbox = _inbox(store)
    writer = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", WRITER, str(inbox.directory), str(ROOT)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "written"
    inbox.drain(store, settle=0)
    assert len(list(inbox.directory.glob("*.jsonl"))) == 1  # its writer is alive: kept
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    (written,) = inbox.directory.glob("*.jsonl")
    wait_for(lambda: _unlocked(written), "the killed writer's lock on its file to be released", 5)
    inbox.drain(store, settle=0)
    assert store.queue_counts() == {"pending": 500}
    assert list(inbox.directory.glob("*.jsonl")) == []  # the dead writer's file, moved and gone


def test_the_gate_answers_503_when_the_inbox_cannot_be_written(tmp_path: Path, settings: Any) -> None:
    from integration.runtime import Runtime
    from integration.web.app import create_app
    from tests.support import signed_headers

    runtime = Runtime.from_settings(settings)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    runtime.queue.inbox = Inbox(blocker / "inbox")
    client = create_app(runtime=runtime).test_client()
    body = b'{"ticket": {"id": "7"}}'
    response = client.post("/webhooks/zendesk", data=body, headers=signed_headers(body))
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"
    runtime.queue.inbox = Inbox(tmp_path / "inbox")  # the disk is back: the helpdesk's retry lands
    again = client.post("/webhooks/zendesk", data=body, headers=signed_headers(body))
    assert again.status_code == 202


def test_a_file_its_writer_never_published_is_swept(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = _inbox(store)
    inbox.append("zendesk", "d1", "zendesk:ticket:1", {})
    unborn = inbox.directory / "00000000000000000001-4242-1.new"  # its writer died before the rename
    unborn.write_bytes(b"")
    inbox.drain(store, settle=0)
    assert unborn.exists()  # young: its writer may be between creating and publishing it
    monkeypatch.setattr(inbox_module, "UNBORN_AFTER", 0.0)
    inbox._next_sweep = 0.0
    inbox.append("zendesk", "d2", "zendesk:ticket:2", {})
    inbox.drain(store, settle=0)
    assert not unborn.exists()
    assert store.queue_counts() == {"pending": 2}


def test_writers_rotating_files_move_in_received_order_batch_after_batch(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox_module, "MOVE_BATCH", 7)
    writers = [_inbox(store, rotate_bytes=300) for _ in range(3)]  # three web processes, each rotating
    for n in range(60):
        writers[(n * 7) % 3].append("zendesk", f"d{n}", f"zendesk:ticket:{n}", {"pad": "x" * 40})
    assert len(list(writers[0].directory.glob("*.jsonl"))) > 10
    batches = 1
    while writers[0].drain(store, settle=0).more:
        batches += 1
    assert batches == 9  # 60 lines, 7 at a time
    assert _tickets(store) == [str(n) for n in range(60)]
    assert len(list(writers[0].directory.glob("*.jsonl"))) == 3  # each writer's open file stays
    for writer in writers:
        writer.close()
    writers[0].drain(store, settle=0)
    assert list(writers[0].directory.glob("*.jsonl")) == []
    assert store.inbox_offsets() == {}


def test_a_batch_reads_about_what_it_moves_not_the_whole_backlog(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = _inbox(store)
    for n in range(5000):
        inbox.append("zendesk", f"d{n}", f"zendesk:ticket:{n}", {"n": n})
    backlog = sum(p.stat().st_size for p in inbox.directory.glob("*.jsonl"))
    monkeypatch.setattr(inbox_module, "MOVE_BATCH", 100)
    monkeypatch.setattr(inbox_module, "READ_CHUNK", 4096)
    read: list[int] = []
    pread = os.pread

    def counting(fd: int, n: int, offset: int) -> bytes:
        data = pread(fd, n, offset)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", counting)
    assert inbox.drain(store, settle=0).more
    first = sum(read)
    assert first < backlog / 20  # a batch of 100 lines reads about 100 lines (and a chunk), not 5,000
    while inbox.drain(store, settle=0).more:
        pass
    assert sum(read) < backlog * 1.5  # the whole backlog is read about once
    assert store.queue_counts() == {"pending": 5000}


def test_the_backlog_probe_opens_one_file_per_writer(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _inbox(store, rotate_bytes=200), _inbox(store, rotate_bytes=200)
    received = [
        (first if n % 2 else second).append("zendesk", f"d{n}", f"zendesk:ticket:{n}", {"pad": "x" * 50})
        for n in range(40)
    ]
    files = list(first.directory.glob("*.jsonl"))
    assert len(files) >= 20
    opened: list[str] = []

    def counting(real: Any) -> Any:
        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            if str(path).startswith(str(first.directory)):
                opened.append(str(path))
            return real(path, *args, **kwargs)

        return wrapper

    def watch() -> None:
        opened.clear()
        monkeypatch.setattr(os, "open", counting(os.open))
        monkeypatch.setattr(io, "open", counting(io.open))  # what Path.open and open() call

    watch()
    count, unmoved, oldest = first.backlog(store.inbox_offsets())
    monkeypatch.undo()
    assert (count, unmoved, oldest) == (len(files), sum(p.stat().st_size for p in files), received[0])
    assert len(opened) == 2  # the oldest file of each of the two writers, nothing else
    while first.drain(store, settle=0).more:
        pass
    watch()
    assert first.backlog(store.inbox_offsets())[1:] == (0, None)
    monkeypatch.undo()
    assert opened == []
