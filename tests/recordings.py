"""Real Zendesk responses (shared/recordings/zendesk) served back over loopback HTTP, for connector tests.

Why: the sandbox is ours, so the connector and its sandbox could agree with each other and both be wrong
about Zendesk. The recordings are what Zendesk's production servers answered (zenpy's Betamax cassettes,
see the README next to them): users without email, deleted users and tickets, emoji group names, per-record
job errors without a ``success`` key. `Replay` serves them on loopback so the connector's real HTTP client
parses the real bodies; nothing of ours is mocked.

The recordings are reference data outside the project (``../shared`` from the repository root); they are
read from there, never copied in. `RECORDINGS` is None when they are absent, and the tests skip.

How a request finds its recorded answer: by method, path (zenpy asked for ``/tickets/1.json``, we ask for
``/tickets/1``) and query, compared as a set of parameters, with two allowances. ``include`` is ignored
(zenpy never asked for the ``metric_sets`` sideload, so those bodies simply lack it), and ``per_page=1000``
equals no ``per_page`` (it is the exports' default, and zenpy sent none). A request recorded several times
(a job polled until it completes) gets the recorded answers in order, then the last one again.
``GET /job_statuses/show_many?ids=a,b`` is answered from the recorded ``GET /job_statuses/{id}`` of each
id, in the documented ``{"job_statuses": [...]}`` envelope: zenpy polled one job at a time, tierdesk polls
its jobs together, and the job objects are the same. A request with no recording gets a 501 and is listed
in `unmatched`.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

_SHARED = Path(__file__).resolve().parents[2] / "shared" / "recordings" / "zendesk"
RECORDINGS: Path | None = _SHARED if _SHARED.is_dir() else None
MISSING = f"Zendesk recordings not found at {_SHARED} (shared/recordings/zendesk beside the repository)"

IGNORED_PARAMS = frozenset({"include"})
DEFAULT_PER_PAGE = "1000"


@dataclass(frozen=True)
class Interaction:
    """One recorded request and Zendesk's answer, the body decoded (base64, gzip) to the bytes it sent."""

    method: str
    path: str
    query: frozenset[tuple[str, str]]
    status: int
    content_type: str
    body: bytes
    request_body: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


def _normal_query(pairs: list[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    return frozenset(
        (k, v)
        for k, v in pairs
        if k not in IGNORED_PARAMS and not (k == "per_page" and v == DEFAULT_PER_PAGE)
    )


def _body(response: dict[str, Any]) -> bytes:
    body = response.get("body") or {}
    raw = (
        base64.b64decode(body["base64_string"])
        if "base64_string" in body
        else body.get("string", "").encode()
    )
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    encoding = headers.get("content-encoding")
    if isinstance(encoding, list):
        encoding = ",".join(encoding)
    return gzip.decompress(raw) if raw and encoding and "gzip" in encoding else raw


def _header(response: dict[str, Any], name: str) -> str:
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name:
            return value[0] if isinstance(value, list) else str(value)
    return ""


def cassette(name: str) -> list[Interaction]:
    """Every interaction of one zenpy cassette (file name without the folder), in recorded order."""
    if RECORDINGS is None:
        raise FileNotFoundError(MISSING)
    data = json.loads((RECORDINGS / "zenpy" / name).read_text(encoding="utf-8"))
    out = []
    for item in data["http_interactions"]:
        request, response = item["request"], item["response"]
        url = urlsplit(request["uri"])
        out.append(
            Interaction(
                method=request["method"].upper(),
                path=url.path.removesuffix(".json"),
                query=_normal_query(parse_qsl(url.query, keep_blank_values=True)),
                status=int(response["status"]["code"]),
                content_type=_header(response, "content-type") or "application/json; charset=utf-8",
                body=_body(response),
                request_body=(request.get("body") or {}).get("string", ""),
            )
        )
    return out


def documented_example(name: str, path: str) -> Interaction:
    """A response from Zendesk's own documentation (zendesk-docs/), answering GET `path` (any query)."""
    if RECORDINGS is None:
        raise FileNotFoundError(MISSING)
    data = json.loads((RECORDINGS / "zendesk-docs" / name).read_text(encoding="utf-8"))
    return Interaction(
        "GET", path, frozenset(), int(data["status"]), "application/json", json.dumps(data["body"]).encode()
    )


@dataclass
class Replay:
    """A loopback server answering with recorded responses; `url` is its base URL once started."""

    interactions: list[Interaction]
    any_query: frozenset[str] = frozenset()  # paths answered whatever their query (documentation examples)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, query) received
    unmatched: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._answers: dict[tuple[str, str, frozenset[tuple[str, str]]], deque[Interaction]] = {}
        for item in self.interactions:
            self._answers.setdefault((item.method, item.path, item.query), deque()).append(item)
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Replay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, method: str, path: str, query: frozenset[tuple[str, str]]) -> Interaction | None:
        if path in self.any_query:
            query = frozenset()
        queue = self._answers.get((method, path, query))
        if not queue:
            return None
        return queue.popleft() if len(queue) > 1 else queue[0]

    def _job_statuses(self, ids: str) -> Response | None:
        jobs = []
        for job_id in filter(None, ids.split(",")):
            recorded = self._next("GET", f"/api/v2/job_statuses/{job_id}", frozenset())
            if recorded is None:
                return None
            jobs.append(recorded.json()["job_status"])
        return Response(json.dumps({"job_statuses": jobs}), 200, content_type="application/json")

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        request.get_data()  # read the body so the connection stays usable
        query_text = request.query_string.decode()
        query = _normal_query(parse_qsl(query_text, keep_blank_values=True))
        with self._lock:
            self.requests.append((request.method, request.path, query_text))
            response: Response | None
            if request.method == "GET" and request.path == "/api/v2/job_statuses/show_many":
                response = self._job_statuses(request.args.get("ids", ""))
            else:
                recorded = self._next(request.method, request.path, query)
                response = (
                    None
                    if recorded is None
                    else Response(recorded.body, recorded.status, content_type=recorded.content_type)
                )
            if response is None:
                self.unmatched.append(f"{request.method} {request.path}?{query_text}")
                body = {"error": "NotRecorded", "description": "no recorded response for this request"}
                response = Response(json.dumps(body), 501, content_type="application/json")
        return response(environ, start_response)
