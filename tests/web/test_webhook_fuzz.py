"""Hypothesis fuzz of the Zendesk webhook parser and of the gate behind a valid signature.

The signature keeps strangers out, but anything Zendesk (or whoever holds the secret) sends still reaches
the parser: it must answer every body with a 4xx or a queued event, never a crash. The gate is driven
through Flask's test client here for speed; the real HTTP path is covered by test_webhooks and test_flood.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import event as note_branch
from hypothesis import strategies as st

from connectors.base import WebhookRejected
from connectors.zendesk import parse_event
from integration.runtime import Runtime
from integration.settings import Settings
from integration.web.app import create_app
from tests.support import EMAIL, SECRET, TOKEN, moved, signed_headers

DIGITS = re.compile(r"[0-9]+")
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies -----------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and Infinity included: json.dumps writes them and json.loads reads them back
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

# the ways a ticket id turns up: proper ids, placeholders left unrendered, look-alike digits, junk
id_values = st.one_of(
    st.integers(min_value=0, max_value=10**15),
    st.integers(min_value=0, max_value=10**15).map(str),
    st.integers(min_value=0, max_value=10**6).map(lambda n: f"  {n}\n"),
    st.integers(max_value=-1),
    st.sampled_from(
        ["", " ", "{{ticket.id}}", "1.0", "1e3", "0x10", "+1", "1 2", "²", "١٢", "１２", "12\x00"]
    ),
    st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=4),
    json_values,
)

ticket_objects = st.fixed_dictionaries(
    {"id": id_values},
    optional={
        "requester_id": id_values,
        "organization_id": id_values,
        "requester": st.fixed_dictionaries({"id": id_values}) | json_values,
        "organization": st.fixed_dictionaries({"id": id_values}) | json_values,
        "tags": st.text() | st.lists(json_values, max_size=4) | json_values,
        "priority": json_values,
    },
)

trigger_bodies = st.fixed_dictionaries({"ticket": ticket_objects | json_values})

envelopes = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["zen:event-type:ticket.created", "zen:event-type:ticket", "other"])
        | json_values,
        "detail": ticket_objects | json_values,
    },
    optional={"id": st.text() | json_values, "subject": json_values},
)

json_bodies = st.one_of(trigger_bodies, envelopes, json_values).map(lambda v: json.dumps(v).encode())
surrogate_bodies = st.sampled_from(
    [
        b'{"type": "zen:event-type:ticket.created", "id": "\\ud800", "detail": {"id": "5"}}',
        b'{"ticket": {"id": "5", "tags": ["\\udfff"]}}',
        b'{"ticket": {"id": "\\ud800"}}',
    ]
)
deep_bodies = st.integers(min_value=900, max_value=60_000).flatmap(
    lambda n: st.sampled_from([b"[" * n, b'{"a":' * n, b"[" * n + b"]" * n])
)
any_bodies = st.one_of(st.binary(max_size=300), json_bodies, surrogate_bodies, deep_bodies)

# well-formed deliveries: the gate must take every one of these
good_ids = st.integers(min_value=1, max_value=10**12).map(str) | st.integers(min_value=1, max_value=10**12)
good_bodies = st.one_of(
    st.fixed_dictionaries(
        {
            "ticket": st.fixed_dictionaries(
                {"id": good_ids}, optional={"requester_id": good_ids, "tags": st.text()}
            )
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("zen:event-type:ticket.created"), "detail": st.fixed_dictionaries({"id": good_ids})},
        optional={"id": st.text(max_size=30)},
    ),
)


def _named_id(body: bytes) -> str | None:
    """The raw id the body names for a ticket, if any (an oracle kept independent of parse_event)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    ticket = data.get("ticket") if isinstance(data.get("ticket"), dict) else data.get("detail")
    if not isinstance(ticket, dict) or isinstance(ticket.get("id"), bool):
        return None
    return str(ticket.get("id")).strip()


# -- (a) the parser alone -----------------------------------------------------------------------------


def _check_parse(headers: dict[str, str], body: bytes) -> None:
    try:
        event = parse_event(headers, body)
    except WebhookRejected as e:
        rejected = e
    else:
        rejected = None
    if rejected is not None:
        assert rejected.status == 400, (rejected.reason, rejected.message)
        assert rejected.reason in {"malformed_json", "bad_payload"}
        assert rejected.message
        return
    assert DIGITS.fullmatch(event.ticket_id), event.ticket_id
    assert event.ticket_id == _named_id(body)
    for other in (event.requester_id, event.organization_id):
        assert other is None or DIGITS.fullmatch(other), other
    assert isinstance(event.event_id, str)
    assert 0 < len(event.event_id) <= 200
    assert all(isinstance(t, str) for t in event.tags)


@FUZZ
@given(body=any_bodies, invocation=st.none() | st.text(max_size=20))
@example(body=b"[" * 100_000, invocation=None)
@example(body='{"ticket": {"id": "²"}}'.encode(), invocation=None)
@example(body='{"ticket": {"id": "١٢"}}'.encode(), invocation=None)
def test_parse_event_only_ever_rejects_with_400(body: bytes, invocation: str | None) -> None:
    headers = {} if invocation is None else {"x-zendesk-webhook-invocation-id": invocation}
    _check_parse(headers, body)


@FUZZ
@given(value=json_values)
def test_parse_event_with_arbitrary_json_values(value: Any) -> None:
    _check_parse({}, json.dumps(value).encode())


@FUZZ
@given(value=good_bodies)
def test_parse_event_accepts_every_well_formed_body(value: dict[str, Any]) -> None:
    event = parse_event({}, json.dumps(value).encode())
    assert event.ticket_id == _named_id(json.dumps(value).encode())


# -- (b) the gate, behind a valid signature ---------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlaskClient, Runtime]]:
    """One app for every example: the gate never calls Zendesk, so the URL only has to be configured."""
    db = Path(tmp_path_factory.mktemp("fuzz")) / "tierdesk.db"
    settings_ = Settings(
        db=str(db),
        zendesk_url="http://127.0.0.1:9",
        zendesk_email=EMAIL,
        zendesk_token=TOKEN,
        zendesk_webhook_secret=SECRET,
    )
    runtime = Runtime.from_settings(settings_)
    app = create_app(runtime=runtime)
    app.testing = True  # an exception in the gate fails the test with its traceback, not a bare 500
    yield app.test_client(), runtime
    runtime.store.close()


def _queued(runtime: Runtime) -> int:
    moved(runtime)
    return sum(runtime.store.queue_counts().values())


def _post(client: FlaskClient, body: bytes, invocation: bool = True) -> tuple[Any, dict[str, str]]:
    headers = signed_headers(body)
    if not invocation:
        del headers["x-zendesk-webhook-invocation-id"]
    return client.post("/webhooks/zendesk", data=body, headers=headers), headers


@FUZZ
@given(body=any_bodies, invocation=st.booleans())
@example(
    body=b'{"type": "zen:event-type:ticket.created", "id": "\\ud800", "detail": {"id": "5"}}',
    invocation=False,
)
@example(body=b"[" * 100_000, invocation=True)
def test_gate_never_5xx_and_queues_only_numeric_ids(
    client: tuple[FlaskClient, Runtime], body: bytes, invocation: bool
) -> None:
    http, runtime = client
    before = _queued(runtime)
    posted_at = time.time()
    response, headers = _post(http, body, invocation)
    note_branch(f"status {response.status_code}")  # --hypothesis-show-statistics: how often each branch ran
    assert response.status_code < 500
    data = response.get_json()
    assert isinstance(data, dict), response.data[:200]
    if response.status_code == 202:
        moved(runtime)
        event = runtime.store.find_event("zendesk", data["delivery"])
        if event is None:  # the same body signed in the same second before: a replay, kept once
            key = parse_event(headers, body).replay_key
            event = runtime.store.find_event("zendesk", None, replay_key=key)
        assert event is not None
        repeat = event.received_at < posted_at  # a delivery seen before: recorded, kept once
        assert _queued(runtime) == before + (0 if repeat else 1)
        ticket_id = event.ticket_key.removeprefix("zendesk:ticket:")
        assert DIGITS.fullmatch(ticket_id)
        assert ticket_id == _named_id(body)
    else:
        assert _queued(runtime) == before
        if response.status_code >= 400:
            assert response.status_code in (400, 413), data
            assert data["error"]
            assert data["message"]
        else:  # our own routed tag echoed back
            assert response.status_code == 200
            assert data["status"] == "ignored"


@FUZZ
@given(value=good_bodies)
def test_gate_accepts_every_well_formed_delivery(
    client: tuple[FlaskClient, Runtime], value: dict[str, Any]
) -> None:
    http, runtime = client
    body = json.dumps(value).encode()
    response, headers = _post(http, body)
    assert response.status_code == 202, response.get_json()
    moved(runtime)
    event = runtime.store.find_event("zendesk", response.get_json()["delivery"]) or runtime.store.find_event(
        "zendesk", None, replay_key=parse_event(headers, body).replay_key
    )
    assert event is not None
    assert event.ticket_key == f"zendesk:ticket:{_named_id(body)}"


def test_gate_unsigned_fuzz_is_always_401(client: tuple[FlaskClient, Runtime]) -> None:
    """Without the signature nothing reaches the parser, whatever the body: spot-check a few shapes."""
    http, runtime = client
    before = _queued(runtime)
    for body in (b"", b"{}", b'{"ticket": {"id": "1"}}', b"[" * 50_000, bytes(range(256))):
        headers = signed_headers(body, secret="not-the-secret")
        response = http.post("/webhooks/zendesk", data=body, headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"] == "bad_signature"
    assert _queued(runtime) == before


@FUZZ
@given(body=any_bodies)
@example(body=b"[" * 100_000)
@example(body='{"ticket": {"id": "²"}}'.encode())
def test_freshdesk_parser_only_ever_rejects_with_400(body: bytes) -> None:
    """The Freshdesk gate shares the JSON and id rules: the same bodies never crash it either."""
    from connectors import freshdesk

    try:
        event = freshdesk.parse_event({}, body)
    except WebhookRejected as e:
        rejected = e
    else:
        rejected = None
    if rejected is not None:
        assert rejected.status == 400
        return
    assert DIGITS.fullmatch(event.ticket_id), event.ticket_id
