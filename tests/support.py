"""What tests share besides fixtures: signing deliveries, waiting for a condition, settings and commands.

Fixtures live in conftest.py; everything a test module would otherwise import from another test module
lives here, so no test file depends on another one. The groups below: the sandbox credentials and the
Zendesk request recorders; signing and posting webhooks; waiting; the queue and inbox; a live tierdesk;
settings, environments, ports and the `tierdesk` command; the admin's sign-in; generated conditions.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import requests
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import strategies as st

from connectors.zendesk import ZendeskConnector, sign
from integration.core.models import Event
from integration.runtime import Runtime
from integration.settings import Settings
from sandbox.base import SeedSummary
from sandbox.zendesk import ZendeskSandbox
from tests.contract import Recorder

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# -- the Zendesk sandbox's credentials, and the request recorder of each `sandbox` fixture --------------

SECRET = "test-webhook-secret-not-real"
EMAIL = "agent@example.com"
TOKEN = "sandbox-token-not-real"

# The request recorder of each `sandbox` fixture, for the Zendesk contract check in conftest.py.
RECORDERS: weakref.WeakKeyDictionary[ZendeskSandbox, Recorder] = weakref.WeakKeyDictionary()


# -- signing and posting Zendesk deliveries -----------------------------------------------------------------


def signed_headers(body: bytes, secret: str = SECRET, timestamp: str | None = None) -> dict:
    """Headers exactly as Zendesk signs a delivery; override parts to forge one."""
    timestamp = timestamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Content-Type": "application/json",
        "x-zendesk-webhook-signature": sign(secret, body, timestamp),
        "x-zendesk-webhook-signature-timestamp": timestamp,
        "x-zendesk-webhook-invocation-id": f"inv-{time.monotonic_ns()}",
    }


def post_webhook(
    url: str, payload: dict | bytes, secret: str = SECRET, timestamp: str | None = None
) -> requests.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = signed_headers(body, secret, timestamp)
    return requests.post(f"{url}/webhooks/zendesk", data=body, headers=headers, timeout=10)


# -- waiting for something observable ----------------------------------------------------------------------


def wait_for(
    condition: Callable[[], T],
    what: str,
    timeout: float = 10.0,
    *,
    interval: float = 0.05,
    state: Callable[[], object] | None = None,
) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    Why not a sleep: a fixed sleep is too long on an idle machine and too short on a loaded one, and the
    assertion after it fails without saying what never happened. This waits only as long as needed and
    fails naming what it waited for and, with `state`, what the system looked like at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            seen = f"; {state()}" if state is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{seen}")
        time.sleep(interval)


# -- the inbox and the queue --------------------------------------------------------------------------------


def moved(runtime: Runtime) -> None:
    """Move every accepted delivery from the inbox into the queue now, as a worker does once they settle."""
    while runtime.queue.inbox.drain(runtime.store, settle=0).more:
        pass


def inbox_lines(runtime: Runtime) -> int:
    """Deliveries acknowledged and still waiting in the inbox to be moved into the queue."""
    offsets = runtime.store.inbox_offsets()
    lines = 0
    for path in runtime.queue.inbox.directory.glob("*.jsonl"):
        lines += path.read_bytes()[offsets.get(path.name, 0) :].count(b"\n")
    return lines


def queued_event(runtime: Runtime, response: requests.Response, source: str = "zendesk") -> Event:
    """The queue's event for an acknowledged delivery (the 202 names the delivery)."""
    moved(runtime)
    event = runtime.store.find_event(source, response.json()["delivery"])
    assert event is not None, f"delivery {response.json()['delivery']} not in the queue"
    return event


def idle(runtime: Runtime) -> bool:
    """Every acknowledged delivery is in the queue and no event is waiting or being worked on."""
    counts = runtime.store.queue_counts()
    return inbox_lines(runtime) == 0 and not counts.get("pending") and not counts.get("leased")


def wait_idle(runtime: Runtime, timeout: float = 15.0) -> None:
    """Wait until the workers have processed everything acknowledged so far (see `idle`).

    What "nothing more happened" tests wait on: once idle, whatever a delivery would have caused has been
    done, so the assertions after it hold for good rather than for the length of a sleep.
    """
    wait_for(
        lambda: idle(runtime),
        "the inbox moved and the queue worked off",
        timeout,
        state=lambda: f"inbox {inbox_lines(runtime)} lines, queue {runtime.store.queue_counts()}",
    )


# -- tierdesk serving on loopback (the `live` fixture) -------------------------------------------------------


@dataclass
class Live:
    """tierdesk serving on loopback, with the sandbox's trigger pointing at it."""

    runtime: Runtime
    url: str
    sandbox: ZendeskSandbox
    zendesk: ZendeskConnector
    stop: threading.Event

    def start_workers(self, count: int = 2) -> None:
        from integration.cli.processes import start_workers

        self.stop.clear()
        start_workers(self.runtime, self.stop, count)

    def wait_for_decisions(self, ticket_ids: list[str], timeout: float = 15.0) -> None:
        wait_for_decisions(self.runtime, "zendesk", ticket_ids, timeout)


def wait_for_decisions(runtime: Runtime, source: str, ticket_ids: list[str], timeout: float = 15.0) -> None:
    """Wait until every one of the source's tickets has a decision recorded (routed, or skipped)."""
    keys = [f"{source}:ticket:{t}" for t in ticket_ids]
    store = runtime.store
    wait_for(
        lambda: all(store.get_decision(k) for k in keys),
        f"decisions for {source} tickets {ticket_ids}",
        timeout,
        state=lambda: (
            f"not routed: {[k for k in keys if not store.get_decision(k)]}; queue {store.queue_counts()}"
        ),
    )


# -- settings, environments, ports and the `tierdesk` command ------------------------------------------------


def fast_settings(db: str | Path, **changes: Any) -> Settings:
    """Settings for a test: the database at `db`, retries and backoff short enough to run in a test."""
    return Settings(
        db=str(db),
        http_attempts=3,
        http_backoff=0.01,
        max_attempts=4,
        retry_base=0.05,
        retry_max=0.2,
        lease_seconds=5,
        **changes,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a `tierdesk` command needs to see what `settings` describe (Zendesk only)."""
    return {
        "TIERDESK_DB": settings.db,
        "TIERDESK_MAPPINGS": settings.mappings,
        "TIERDESK_ZENDESK_URL": settings.zendesk_url or "",
        "TIERDESK_ZENDESK_EMAIL": settings.zendesk_email or "",
        "TIERDESK_ZENDESK_TOKEN": settings.zendesk_token or "",
        "TIERDESK_ZENDESK_WEBHOOK_SECRET": settings.zendesk_webhook_secret or "",
        "TIERDESK_LOG_LEVEL": "ERROR",
    }


def run_tierdesk(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The installed `tierdesk` command in its own process, with only the environment given (and PATH)."""
    script = BIN / "tierdesk"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "integration.cli.commands"]
    return subprocess.run(  # noqa: S603 - our own command
        [*command, *args],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    """A loopback port nothing listens on right now (for a server started in another process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 15.0) -> None:
    """Wait until `url` answers 200: a server in another process is up."""

    def up() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:  # not up yet, or too busy booting to answer
            return False

    wait_for(up, f"{url} to come up", timeout, interval=0.1)


# -- the admin: a signed-in client over Flask's test client (the `admin` fixture) ----------------------------

PASSWORD = "admin-test-password"
ADMIN_TOKEN = "admin-test-token"
SECRET_KEY = "admin-test-secret-key-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class AdminApp:
    runtime: Runtime
    app: Flask
    client: FlaskClient
    summary: SeedSummary
    sandbox: ZendeskSandbox

    def api(self, method: str, path: str, json: Any = None) -> Any:
        return self.client.open(path, method=method, json=json, headers=BEARER)


def admin_settings(settings: Settings, **changes: Any) -> Settings:
    return replace(
        settings, admin_password=PASSWORD, admin_token=ADMIN_TOKEN, secret_key=SECRET_KEY, **changes
    )


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(client: FlaskClient, password: str = PASSWORD) -> Any:
    token = csrf(client.get("/admin/login").get_data(as_text=True))
    return client.post("/admin/login", data={"user": "admin", "password": password, "csrf_token": token})


def edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


# -- generated conditions for the condition language (the mapping's and the segment engine's tests) ---------

# A generated condition is a tuple tree; render() writes it as text, reference() is an
# independent evaluator of the documented semantics.

NAMES = ("a", "b", "c_1")
OPS = ("<", "<=", ">", ">=", "==", "!=")


def _number_literal():
    ints = st.integers(-20, 20).map(lambda n: (n, str(n)))
    decimals = st.integers(-200, 200).map(lambda n: (n / 10, f"{n / 10:.1f}"))
    durations = st.tuples(st.integers(0, 4), st.sampled_from("dwy")).map(
        lambda t: (t[0] * {"d": 1, "w": 7, "y": 365}[t[1]], f"{t[0]}{t[1]}")
    )
    big = st.integers(0, 3_000_000).map(lambda n: (n, f"{n:_}"))
    return st.one_of(ints, decimals, durations, big)


literals = st.one_of(
    _number_literal(),
    st.sampled_from(["p", "q", "it's"]).map(lambda s: (s, "'" + s.replace("'", "\\'") + "'")),
    st.booleans().map(lambda b: (b, "true" if b else "false")),
).map(lambda lit: ("lit", *lit))
names = st.sampled_from(NAMES).map(lambda n: ("name", n))
operands = st.one_of(names, literals)

atoms = st.one_of(
    st.tuples(st.just("cmp"), st.sampled_from(OPS), operands, operands),
    st.tuples(st.just("in"), names, st.lists(literals, max_size=3), st.booleans()),
    st.tuples(st.just("between"), names, operands, operands),
    st.tuples(st.just("missing"), names, st.booleans()),
    st.tuples(st.just("truth"), names),
)
conditions = st.recursive(
    atoms,
    lambda children: st.one_of(
        st.tuples(st.just("not"), children),
        st.tuples(st.just("and"), st.lists(children, min_size=2, max_size=3)),
        st.tuples(st.just("or"), st.lists(children, min_size=2, max_size=3)),
        st.tuples(st.just("paren"), children),
    ),
    max_leaves=8,
)
values = st.one_of(
    st.none(),
    st.integers(-30, 3_000_000),
    st.floats(-40, 40),
    st.just(math.nan),
    st.sampled_from(["p", "q", "it's"]),
    st.booleans(),
)
feature_sets = st.fixed_dictionaries({}, optional={name: values for name in NAMES})

PRECEDENCE = {"or": 1, "and": 2, "not": 3}


def render(node: tuple, parent: int = 0) -> str:
    kind = node[0]
    if kind == "lit":
        return node[2]
    if kind == "name":
        return node[1]
    if kind == "cmp":
        return f"{render(node[2])} {node[1]} {render(node[3])}"
    if kind == "in":
        items = ", ".join(render(item) for item in node[2])
        return f"{render(node[1])} {'not in' if node[3] else 'in'} [{items}]"
    if kind == "between":
        return f"{render(node[1])} between {render(node[2])} and {render(node[3])}"
    if kind == "missing":
        return f"{render(node[1])} is {'present' if node[2] else 'missing'}"
    if kind == "truth":
        return render(node[1])
    if kind == "paren":
        return f"({render(node[1])})"
    own = PRECEDENCE[kind]
    if kind == "not":
        text = "not " + render(node[1], own)
    else:
        text = f" {kind} ".join(render(part, own + 1) for part in node[1])
    return f"({text})" if own < parent else text


def _value(operand: tuple, features: dict[str, Any]) -> Any:
    return operand[1] if operand[0] == "lit" else features.get(operand[1])


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number" if math.isfinite(value) else None
    if isinstance(value, str):
        return "string"
    return None


def _cmp(op: str, left: Any, right: Any) -> bool:
    kl, kr = _kind(left), _kind(right)
    if kl is None or kr is None:
        return False
    if op == "==":
        return kl == kr and left == right
    if op == "!=":
        return not (kl == kr and left == right)
    if kl != kr or kl == "bool":
        return False
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def reference(node: tuple, features: dict[str, Any]) -> bool:
    kind = node[0]
    if kind == "cmp":
        return _cmp(node[1], _value(node[2], features), _value(node[3], features))
    if kind == "in":
        value = _value(node[1], features)
        if _kind(value) is None:
            return False
        found = any(_cmp("==", value, _value(item, features)) for item in node[2])
        return found != node[3]
    if kind == "between":
        value = _value(node[1], features)
        low, high = _value(node[2], features), _value(node[3], features)
        return _cmp(">=", value, low) and _cmp("<=", value, high)
    if kind == "missing":
        return (_kind(_value(node[1], features)) is None) != node[2]
    if kind == "truth":
        value = _value(node[1], features)
        return _kind(value) is not None and bool(value)
    if kind == "paren":
        return reference(node[1], features)
    if kind == "not":
        return not reference(node[1], features)
    if kind == "and":
        return all(reference(part, features) for part in node[1])
    return any(reference(part, features) for part in node[1])
