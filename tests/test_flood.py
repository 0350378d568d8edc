"""A bounded flood of hostile deliveries against the real server: gunicorn as the Procfile runs it.

Forged and replayed signatures, broken JSON, oversized and lying bodies, odd content types, unknown sources
and wrong methods, from a small thread pool for a few seconds, on loopback. Every answer must be a JSON 4xx
(never a 5xx, never a dropped connection), nothing may reach the queue, the server must still take a good
delivery afterwards, and its logs must never contain the webhook secret.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from integration.inbox import Inbox
from integration.store import Store
from sandbox.zendesk import ZendeskSandbox
from tests.support import EMAIL, TOKEN, free_port, signed_headers

BIN = Path(sys.executable).parent
SECRET = "flood-secret-Zx81-do-not-log"  # distinctive, so a leak into the logs cannot hide
MAX_BODY = 256 * 1024
REQUESTS = 1500
THREADS = 8
FLOOD_SECONDS = 20.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("gunicorn", path=str(BIN)), reason="gunicorn not installed"),
]


@dataclass
class Server:
    url: str
    host: str
    port: int
    db: Path
    stderr: Path
    stdout: Path


@pytest.fixture
def server(tmp_path: Path, sandbox: ZendeskSandbox) -> Iterator[Server]:
    """gunicorn with the Procfile's worker model, stderr and stdout each captured to a file."""
    port = free_port()
    env = {
        **os.environ,
        "TIERDESK_DB": str(tmp_path / "tierdesk.db"),
        "TIERDESK_LOG_LEVEL": "DEBUG",  # accepted deliveries log at DEBUG; check those lines too
        "TIERDESK_ZENDESK_URL": sandbox.base_url,
        "TIERDESK_ZENDESK_EMAIL": EMAIL,
        "TIERDESK_ZENDESK_TOKEN": TOKEN,
        "TIERDESK_ZENDESK_WEBHOOK_SECRET": SECRET,
    }
    args = [
        str(BIN / "gunicorn"),
        "--workers",
        "2",
        "--threads",
        "4",
        "--bind",
        f"127.0.0.1:{port}",
        "--access-logfile",
        "-",
        "integration.web.app:create_app()",
    ]
    stdout, stderr = tmp_path / "web.out", tmp_path / "web.err"
    with stdout.open("w") as out, stderr.open("w") as err:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=err)  # noqa: S603
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 15
            while True:
                try:
                    if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except requests.RequestException:  # not listening yet, or a worker still importing
                    pass
                assert proc.poll() is None, stderr.read_text()[-2000:]
                assert time.monotonic() < deadline, "gunicorn did not come up"
                time.sleep(0.1)
            yield Server(url, "127.0.0.1", port, tmp_path / "tierdesk.db", stderr, stdout)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the hostile deliveries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    kind: str
    status: int
    body: bytes


def _stamp(delta: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ticket(n: int) -> bytes:
    return json.dumps({"ticket": {"id": str(1000 + n), "requester_id": "5"}}).encode()


def _via_requests(server: Server, kind: str, method: str, path: str, **kwargs: object) -> Answer:
    response = requests.request(method, f"{server.url}{path}", timeout=10, **kwargs)  # type: ignore[arg-type]
    return Answer(kind, response.status_code, response.content)


def _via_socket(server: Server, kind: str, head: bytes, body: bytes, half_close: bool = False) -> Answer:
    """Raw HTTP for requests that no well-behaved client library will send (a lying Content-Length)."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        raw = b""
        while chunk := sock.recv(65536):  # the request said Connection: close, so EOF ends the answer
            raw += chunk
    header, _, rest = raw.partition(b"\r\n\r\n")
    status = int(header.split(b" ")[1])
    return Answer(kind, status, rest)


def _raw_head(server: Server, body_headers: dict[str, str], length: int | None) -> bytes:
    """Request line and headers; length None means Transfer-Encoding: chunked."""
    lines = [
        "POST /webhooks/zendesk HTTP/1.1",
        f"Host: {server.host}:{server.port}",
        "Connection: close",
        "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}",
        *(f"{k}: {v}" for k, v in body_headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _cases(server: Server) -> list[Callable[[int], Answer]]:
    """One factory per kind of hostile request; the flood cycles through them."""
    wh = "/webhooks/zendesk"
    big = b'{"ticket": {"id": "1", "pad": "' + b"x" * (MAX_BODY + 1024) + b'"}}'

    def forged(n: int) -> Answer:
        body = _ticket(n)
        return _via_requests(
            server, "forged", "POST", wh, data=body, headers=signed_headers(body, secret="guess")
        )

    def tampered(n: int) -> Answer:
        body = _ticket(n)
        headers = signed_headers(body, secret=SECRET)
        return _via_requests(
            server, "tampered", "POST", wh, data=body.replace(b'"5"', b'"6"'), headers=headers
        )

    def unsigned(n: int) -> Answer:
        return _via_requests(server, "unsigned", "POST", wh, json={"ticket": {"id": str(n)}})

    def garbage_signature(n: int) -> Answer:
        headers = {
            **signed_headers(_ticket(n), secret=SECRET),
            "x-zendesk-webhook-signature": "%%%not-base64",
        }
        return _via_requests(server, "garbage_signature", "POST", wh, data=_ticket(n), headers=headers)

    def replayed(n: int) -> Answer:  # a real delivery captured ten minutes ago and sent again
        body = _ticket(n)
        headers = signed_headers(body, secret=SECRET, timestamp=_stamp(timedelta(minutes=-10)))
        return _via_requests(server, "replayed", "POST", wh, data=body, headers=headers)

    def future(n: int) -> Answer:
        body = _ticket(n)
        headers = signed_headers(body, secret=SECRET, timestamp=_stamp(timedelta(hours=1)))
        return _via_requests(server, "future", "POST", wh, data=body, headers=headers)

    def bad_timestamp(n: int) -> Answer:
        body = _ticket(n)
        headers = signed_headers(body, secret=SECRET, timestamp="yesterday-ish")
        return _via_requests(server, "bad_timestamp", "POST", wh, data=body, headers=headers)

    def malformed(n: int) -> Answer:
        body = [b'{"ticket": {"id": "1"', b"\xff\xfe{}", b"nul\x00l", b"[" * 5000, b'{"ticket": "1"}'][n % 5]
        return _via_requests(
            server, "malformed", "POST", wh, data=body, headers=signed_headers(body, secret=SECRET)
        )

    def not_numeric(n: int) -> Answer:
        body = json.dumps({"ticket": {"id": ["{{ticket.id}}", "-1", "1.5", "²", ""][n % 5]}}).encode()
        return _via_requests(
            server, "not_numeric", "POST", wh, data=body, headers=signed_headers(body, secret=SECRET)
        )

    def empty(n: int) -> Answer:
        headers = signed_headers(b"", secret=SECRET) if n % 2 else {}
        return _via_requests(server, "empty", "POST", wh, data=b"", headers=headers)

    def oversized(n: int) -> Answer:
        return _via_requests(
            server, "oversized", "POST", wh, data=big, headers=signed_headers(big, secret=SECRET)
        )

    def chunked_oversized(n: int) -> Answer:  # no Content-Length: the size is only known by reading
        headers = signed_headers(big, secret=SECRET)
        chunks = iter([big[i : i + 65536] for i in range(0, len(big), 65536)])
        return _via_requests(server, "chunked_oversized", "POST", wh, data=chunks, headers=headers)

    def chunked_forged(n: int) -> Answer:
        body = _ticket(n)
        headers = signed_headers(body, secret="guess")
        return _via_requests(
            server, "chunked_forged", "POST", wh, data=iter([body[:10], body[10:]]), headers=headers
        )

    def lying_length_huge(n: int) -> Answer:  # claims 10 MB, sends a few bytes
        body = _ticket(n)
        head = _raw_head(server, signed_headers(body, secret=SECRET), 10 * 1024 * 1024)
        return _via_socket(server, "lying_length_huge", head, body, half_close=True)

    def lying_length_short(n: int) -> Answer:  # claims more than it sends, then stops sending
        body = _ticket(n)
        head = _raw_head(server, signed_headers(body, secret=SECRET), len(body) + 500)
        return _via_socket(server, "lying_length_short", head, body, half_close=True)

    def chunked_truncated(n: int) -> Answer:  # chunks that stop before the final zero-length chunk
        body = _ticket(n)
        head = _raw_head(server, signed_headers(body, secret=SECRET), None)
        return _via_socket(
            server, "chunked_truncated", head, b"%x\r\n%s\r\n" % (len(body), body), half_close=True
        )

    def wrong_content_type(n: int) -> Answer:  # signed, so the raw bytes reach the parser untouched
        body, kind = [
            (b"ticket%5Bid%5D=5", "application/x-www-form-urlencoded"),
            (
                b"--x\r\nContent-Disposition: form-data; name=id\r\n\r\n5\r\n--x--\r\n",
                "multipart/form-data; boundary=x",
            ),
            (b"<ticket><id>5</id></ticket>", "application/xml"),
            (b"id=5", "text/plain"),
        ][n % 4]
        headers = {**signed_headers(body, secret=SECRET), "Content-Type": kind}
        return _via_requests(server, "wrong_content_type", "POST", wh, data=body, headers=headers)

    def unknown_source(n: int) -> Answer:
        body = _ticket(n)
        path = ["/webhooks/nosuch", "/webhooks/ZENDESK", "/webhooks/" + "x" * 300][n % 3]
        return _via_requests(
            server, "unknown_source", "POST", path, data=body, headers=signed_headers(body, secret=SECRET)
        )

    def wrong_method(n: int) -> Answer:
        method = ["GET", "PUT", "DELETE", "PATCH"][n % 4]
        return _via_requests(server, "wrong_method", method, wh, data=_ticket(n))

    # oversized bodies are expensive to send: one in every 70 requests, not one in 19
    common = [
        forged,
        tampered,
        unsigned,
        garbage_signature,
        replayed,
        future,
        bad_timestamp,
        malformed,
        not_numeric,
        empty,
        chunked_forged,
        lying_length_huge,
        lying_length_short,
        chunked_truncated,
        wrong_content_type,
        unknown_source,
        wrong_method,
    ]
    return common * 4 + [oversized, chunked_oversized]


EXPECTED = {
    "forged": {401},
    "tampered": {401},
    "unsigned": {401},
    "garbage_signature": {401},
    "replayed": {401},
    "future": {401},
    "bad_timestamp": {401},
    "malformed": {400},
    "not_numeric": {400},
    "empty": {400, 401},
    "oversized": {413},
    "chunked_oversized": {413},
    "chunked_forged": {401},
    "lying_length_huge": {413},
    "lying_length_short": {400},
    "chunked_truncated": {400},
    "wrong_content_type": {400},
    "unknown_source": {404},
    "wrong_method": {405},
}


def _queued(db: Path) -> int:
    """Deliveries the server acknowledged, once moved from its inbox into the queue as a worker would."""
    store = Store(db)
    try:
        while Inbox(f"{db}.inbox").drain(store, settle=0).more:
            pass
        return sum(store.queue_counts().values())
    finally:
        store.close()


def test_flood_of_hostile_deliveries_is_refused_and_the_server_survives(server: Server) -> None:
    cases = _cases(server)
    answers: list[Answer] = []
    failures: list[str] = []
    started = time.monotonic()
    deadline = started + FLOOD_SECONDS

    def one(n: int) -> Answer | str:
        case = cases[n % len(cases)]
        if time.monotonic() > deadline:
            return "skipped: flood deadline"
        try:
            return case(n)
        except (OSError, requests.RequestException) as e:  # a reset, a refused or dropped connection
            return f"{case.__name__} #{n}: {type(e).__name__}: {e}"

    with ThreadPoolExecutor(THREADS) as pool:
        for result in pool.map(one, range(REQUESTS)):
            if isinstance(result, Answer):
                answers.append(result)
            else:
                failures.append(result)
    elapsed = time.monotonic() - started

    assert not failures, failures[:10]
    assert len(answers) == REQUESTS, f"only {len(answers)} answered in {elapsed:.1f}s"
    wrong = [(a.kind, a.status, a.body[:200]) for a in answers if a.status not in EXPECTED[a.kind]]
    assert not wrong, wrong[:10]
    for answer in answers:
        payload = json.loads(answer.body)  # every refusal is JSON, even those Flask or werkzeug raised
        assert isinstance(payload, dict), (answer.kind, answer.body[:200])
        assert payload.get("error"), (answer.kind, payload)
        assert payload.get("message"), (answer.kind, payload)
    kinds = Counter(a.kind for a in answers)
    assert set(kinds) == set(EXPECTED), kinds

    # nothing hostile was queued
    assert _queued(server.db) == 0

    # and the server still takes real deliveries
    for n in range(5):
        body = _ticket(10_000 + n)
        response = requests.post(
            f"{server.url}/webhooks/zendesk",
            data=body,
            headers=signed_headers(body, secret=SECRET),
            timeout=10,
        )
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "queued"
    assert _queued(server.db) == 5

    # the logs name the rejections and never contain the secret (nor a signature computed from it)
    stderr = server.stderr.read_text()
    stdout = server.stdout.read_text()
    assert "zendesk.webhook.bad_signature" in stderr
    assert "zendesk.webhook.stale_timestamp" in stderr
    assert "zendesk.webhook.accepted" in stderr
    for text in (stderr, stdout):
        assert SECRET not in text
        assert "Traceback" not in text
