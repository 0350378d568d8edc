"""Contract check: every Zendesk API request seen in the suite must match Zendesk's own OpenAPI description.

Why: the sandbox is ours, so a connector and its sandbox could drift away from Zendesk together and every
test would still pass. Validating each request the sandbox receives against the vendor's description
(shared/specs/zendesk, read-only reference data) catches that drift.

How: `Recorder.attach(box)` registers an after-request hook on a sandbox before it starts; it keeps the
method, path, query, JSON body and auth scheme of every /api/v2 request. `Contract.check(recorded)`
validates them with openapi-core and returns one line per violation. The spec is loaded once per session
(the YAML parse is the slow part); validation itself takes about a millisecond per request.

Loading notes (from the spec's README): the YAML 1.1 "=" scalar needs a constructor, `servers` is replaced
with [{"url": "/"}] so local paths match, and spec validation is off because the vendor file has small
defects. Violations caused by those defects are listed in SPEC_DEFECTS and ignored.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml

SPEC_PATH = (
    Path(__file__).resolve().parents[2] / "shared" / "specs" / "zendesk" / "zendesk-support-oas.subset.yaml"
)

# Not part of the subset: the Webhooks API is a separate Zendesk API, users/me is simply not included.
EXCLUDED_PREFIXES = ("/api/v2/webhooks",)
EXCLUDED_PATHS = frozenset({"/api/v2/users/me"})


@dataclass(frozen=True)
class Defect:
    """An error the vendor description gets wrong: ignored for this method and path (and query, if given)."""

    method: str
    template: str
    error: str
    query_has: str = ""
    why: str = ""


SPEC_DEFECTS: tuple[Defect, ...] = (
    Defect(
        "GET",
        "/api/v2/groups",
        "MissingRequiredParameter(name='user_id', location='path')",
        why="declares a user_id path parameter its path does not have (named in the spec's README)",
    ),
    *(
        Defect(
            "GET",
            f"/api/v2/incremental/{stream}/cursor",
            "MissingRequiredParameter(name='start_time', location='query')",
            query_has="cursor=",
            why="start_time is required on every request, but Zendesk's docs page with ?cursor= alone "
            "and the after_url the export returns carries no start_time",
        )
        for stream in ("users", "tickets")
    ),
)


@dataclass(frozen=True)
class Recorded:
    """One API request as the sandbox received it."""

    method: str
    path: str
    query: str
    body: bytes
    content_type: str | None
    auth_scheme: str | None  # "Basic", "Bearer" or None; the credentials themselves are never kept

    def describe(self) -> str:
        return f"{self.method} {self.path}{'?' + self.query if self.query else ''}"


class Recorder:
    """Collects the /api/v2 requests one sandbox receives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []

    def attach(self, box: Any) -> Recorder:
        """Hook into a ZendeskSandbox's Flask app; call before the sandbox starts serving."""
        from flask import request

        def record(response: Any) -> Any:
            path = request.environ.get("sandbox.original_path", request.path)
            if path.startswith("/api/v2/") and not _excluded(path):
                header = request.headers.get("Authorization", "")
                entry = Recorded(
                    method=request.method,
                    path=path,
                    query=request.query_string.decode("utf-8", "replace"),
                    body=request.get_data(cache=True),
                    content_type=request.content_type,
                    auth_scheme=header.split(" ", 1)[0] if header else None,
                )
                with self._lock:
                    self.requests.append(entry)
            return response

        box.app.after_request(record)
        return self

    def take(self) -> list[Recorded]:
        with self._lock:
            taken, self.requests = self.requests, []
        return taken


def _excluded(path: str) -> bool:
    plain = path.removesuffix(".json")
    return plain in EXCLUDED_PATHS or plain.startswith(EXCLUDED_PREFIXES)


class _SpecLoader(yaml.SafeLoader):
    """Safe loading plus the YAML 1.1 "=" scalar the vendor file uses."""


_SpecLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))

_PLACEHOLDER_AUTH = {
    "Basic": "Basic " + base64.b64encode(b"contract@example.com/token:placeholder").decode(),
    "Bearer": "Bearer placeholder",
}


class Contract:
    """The Zendesk OpenAPI subset, ready to validate recorded requests."""

    _instance: Contract | None = None
    _instance_lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        from openapi_core import Config, OpenAPI

        spec = yaml.load(path.read_text(encoding="utf-8"), Loader=_SpecLoader)  # noqa: S506 - SafeLoader subclass
        spec["servers"] = [{"url": "/"}]
        self.path = path
        self.api = OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))
        self.templates = sorted(spec["paths"], key=lambda p: (p.count("{"), p))
        self.validated = 0
        self.defects_ignored = 0
        self._seen: dict[tuple[Any, ...], tuple[list[str], int]] = {}  # identical requests: validated once

    @classmethod
    def load(cls) -> Contract | None:
        """The session's contract, or None when the spec file is not there (CI clones shared/ beside us)."""
        with cls._instance_lock:
            if cls._instance is None and SPEC_PATH.exists():
                cls._instance = cls(SPEC_PATH)
            return cls._instance

    def _template(self, path: str) -> str:
        """The spec path a concrete path matches (literal paths win over templated ones)."""
        parts = path.removesuffix(".json").split("/")
        for template in self.templates:
            pattern = template.split("/")
            if len(pattern) == len(parts) and all(
                p == q or (p.startswith("{") and p.endswith("}")) for p, q in zip(pattern, parts, strict=True)
            ):
                return template
        return path

    def errors(self, recorded: Recorded) -> list[str]:
        """Why this request does not match the spec (empty when it does)."""
        # numeric ids validate alike, so GET /tickets/7 and /tickets/8 share one result
        shape = "/".join("0" if part.isdigit() else part for part in recorded.path.split("/"))
        key = (
            recorded.method,
            shape,
            recorded.query,
            recorded.body,
            recorded.content_type,
            recorded.auth_scheme,
        )
        if key not in self._seen:
            self._seen[key] = self._validate(recorded)
        problems, defects = self._seen[key]
        self.validated += 1
        self.defects_ignored += defects
        return list(problems)

    def _validate(self, recorded: Recorded) -> tuple[list[str], int]:
        from openapi_core.testing import MockRequest
        from werkzeug.datastructures import ImmutableMultiDict

        headers = {"Authorization": _PLACEHOLDER_AUTH.get(recorded.auth_scheme or "", "")}
        if not recorded.auth_scheme:
            headers = {}
        request = MockRequest(
            "http://localhost",
            recorded.method,
            recorded.path.removesuffix(".json"),
            headers=headers,
            data=recorded.body or None,
            content_type=(recorded.content_type or "application/json").split(";")[0].strip(),
        )
        request.parameters.query = ImmutableMultiDict(parse_qsl(recorded.query, keep_blank_values=True))
        template = self._template(recorded.path)
        problems, defects = [], 0
        for error in self.api.iter_request_errors(request):
            text = _explain(error)
            if any(
                d.method == recorded.method
                and d.template == template
                and d.error in text
                and d.query_has in recorded.query
                for d in SPEC_DEFECTS
            ):
                defects += 1
                continue
            problems.append(text)
        return problems, defects

    def check(self, recorded: list[Recorded]) -> list[str]:
        """One line per request that breaks the contract, naming the request and the spec's complaint."""
        lines = []
        for entry in recorded:
            for problem in self.errors(entry):
                body = entry.body.decode("utf-8", "replace")[:300]
                lines.append(f"{entry.describe()} {body}\n    -> {problem}")
        return lines


def _explain(error: BaseException) -> str:
    """The validator's error with its schema causes, which carry the useful part."""
    parts = [repr(error)]
    seen = {id(error)}
    cause = error.__cause__ or error.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            parts.extend(
                f"{'/'.join(str(p) for p in e.absolute_path) or '(body)'}: {e.message}" for e in schema_errors
            )
        else:
            parts.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    return "; ".join(parts)
