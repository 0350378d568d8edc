"""The webhook gate, over real HTTP: what is accepted, what is refused, and that refusals queue nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import requests

from connectors.base import WebhookRejected
from connectors.zendesk import parse_event, sign, verify_signature
from integration.runtime import Runtime
from integration.settings import Settings, SettingsError
from tests.support import Live, moved, post_webhook, queued_event, signed_headers


def _secret(live: Live) -> str:
    return live.runtime.settings.zendesk_webhook_secret or ""


def _queued(live: Live) -> int:
    moved(live.runtime)
    return sum(live.runtime.store.queue_counts().values())


def test_signed_delivery_is_queued_and_acknowledged(live: Live) -> None:
    response = post_webhook(live.url, {"ticket": {"id": "101", "requester_id": "5"}}, secret=_secret(live))
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    event = queued_event(live.runtime, response)
    assert event.ticket_key == "zendesk:ticket:101"
    assert event.payload["requester_id"] == "5"


def test_duplicate_invocation_is_acknowledged_once(live: Live) -> None:
    body = json.dumps({"ticket": {"id": "102"}}).encode()
    headers = signed_headers(body, secret=_secret(live))
    first = requests.post(f"{live.url}/webhooks/zendesk", data=body, headers=headers, timeout=5)
    again = requests.post(f"{live.url}/webhooks/zendesk", data=body, headers=headers, timeout=5)
    assert (first.status_code, again.status_code) == (202, 202)  # both recorded; the queue keeps one
    assert again.json() == {"status": "queued", "delivery": first.json()["delivery"]}
    assert _queued(live) == 1


def test_a_signed_delivery_replayed_under_a_new_invocation_id_is_queued_once(live: Live) -> None:
    """The invocation id is not signed: a captured delivery sent again inside the freshness window with a
    new id must not route the ticket twice."""
    body = json.dumps({"ticket": {"id": "105"}}).encode()
    headers = signed_headers(body, secret=_secret(live))
    first = requests.post(f"{live.url}/webhooks/zendesk", data=body, headers=headers, timeout=5)
    replays = [
        requests.post(
            f"{live.url}/webhooks/zendesk",
            data=body,
            headers={**headers, "x-zendesk-webhook-invocation-id": f"forged-{n}"},
            timeout=5,
        )
        for n in range(3)
    ]
    assert [r.status_code for r in [first, *replays]] == [202] * 4  # the gate cannot tell; the queue can
    assert _queued(live) == 1
    assert live.runtime.store.find_event("zendesk", "forged-0") is None
    kept = live.runtime.store.find_event("zendesk", first.json()["delivery"])
    assert kept is not None
    assert kept.ticket_key == "zendesk:ticket:105"
    # Zendesk's own retry re-signs with a new timestamp and keeps the invocation id: dropped by the id
    later = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    retry = {
        **signed_headers(body, secret=_secret(live), timestamp=later),
        "x-zendesk-webhook-invocation-id": headers["x-zendesk-webhook-invocation-id"],
    }
    again = requests.post(f"{live.url}/webhooks/zendesk", data=body, headers=retry, timeout=5)
    assert again.status_code == 202
    assert _queued(live) == 1
    # a new delivery of the same ticket (another second, another id) is a delivery of its own
    assert post_webhook(live.url, {"ticket": {"id": "105"}, "n": 2}, secret=_secret(live)).status_code == 202
    assert _queued(live) == 2


def _other_spelling(signature: str) -> str:
    """The same 32 bytes in base64 with the last character's two spare bits set: decodes identically."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    assert signature.endswith("=")
    assert not signature.endswith("==")
    spare = alphabet[alphabet.index(signature[-2]) ^ 0b01]
    return signature[:-2] + spare + "="


def test_only_the_exact_signature_text_is_accepted() -> None:
    import base64

    secret, body, stamp = "s3cret", b'{"ticket": {"id": "7"}}', "2024-05-31T14:02:11Z"
    good = sign(secret, body, stamp)
    alias = _other_spelling(good)
    assert alias != good
    assert base64.b64decode(alias) == base64.b64decode(good)
    then = datetime(2024, 5, 31, 14, 2, 30, tzinfo=UTC).timestamp()
    header = {"x-zendesk-webhook-signature-timestamp": stamp}
    verify_signature(secret, {**header, "x-zendesk-webhook-signature": good}, body, then)
    for spelling in (alias, good.rstrip("="), f" {good}", good.replace("=", "=\n"), good.lower()):
        with pytest.raises(WebhookRejected) as refused:
            verify_signature(secret, {**header, "x-zendesk-webhook-signature": spelling}, body, then)
        assert refused.value.reason == "bad_signature"


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("wrong_secret", 401, "bad_signature"),
        ("stale", 401, "stale_timestamp"),
        ("future", 401, "stale_timestamp"),
        ("no_signature", 401, "missing_signature"),
        ("tampered_body", 401, "bad_signature"),
        ("malformed_json", 400, "malformed_json"),
        ("no_ticket", 400, "bad_payload"),
        ("ticket_id_not_numeric", 400, "bad_payload"),
        ("empty_ticket_id", 400, "bad_payload"),
        ("json_array", 400, "bad_payload"),
    ],
)
def test_bad_deliveries_are_refused_with_json_and_queue_nothing(
    live: Live, case: str, status: int, error: str
) -> None:
    secret = _secret(live)
    body = json.dumps({"ticket": {"id": "103", "requester_id": "5"}}).encode()
    headers = signed_headers(body, secret=secret)
    now = datetime.now(UTC)
    if case == "wrong_secret":
        headers = signed_headers(body, secret="not-the-secret")
    elif case == "stale":
        stamp = (now - timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = signed_headers(body, secret=secret, timestamp=stamp)
    elif case == "future":
        stamp = (now + timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = signed_headers(body, secret=secret, timestamp=stamp)
    elif case == "no_signature":
        headers = {"Content-Type": "application/json"}
    elif case == "tampered_body":
        body = body.replace(b"103", b"104")
    else:
        body = {
            "malformed_json": b'{"ticket": {"id": "103"',
            "no_ticket": b'{"user": {"id": "1"}}',
            "ticket_id_not_numeric": b'{"ticket": {"id": "{{ticket.id}}"}}',
            "empty_ticket_id": b'{"ticket": {"id": ""}}',
            "json_array": b"[1, 2]",
        }[case]
        headers = signed_headers(body, secret=secret)
    response = requests.post(f"{live.url}/webhooks/zendesk", data=body, headers=headers, timeout=5)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["message"]
    assert _queued(live) == 0


def test_oversized_body_is_413(live: Live) -> None:
    body = json.dumps({"ticket": {"id": "1", "pad": "x" * (300 * 1024)}}).encode()
    response = requests.post(
        f"{live.url}/webhooks/zendesk",
        data=body,
        headers=signed_headers(body, secret=_secret(live)),
        timeout=5,
    )
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert _queued(live) == 0


def test_unknown_source_is_404(live: Live) -> None:
    response = requests.post(f"{live.url}/webhooks/nosuchdesk", data=b"{}", timeout=5)
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_source"


def test_zendesk_event_subscription_envelope_is_understood() -> None:
    body = json.dumps(
        {
            "type": "zen:event-type:ticket.created",
            "id": "evt-1",
            "subject": "zen:ticket:77",
            "detail": {"id": "77", "requester_id": "9", "organization_id": None, "tags": ["a"]},
        }
    ).encode()
    event = parse_event({}, body)
    assert (event.ticket_id, event.requester_id, event.event_id, event.tags) == (
        "77",
        "9",
        "evt-1",
        ("a",),
    )


def test_signature_matches_zendesk_formula() -> None:
    # base64(HMAC-SHA256(secret, timestamp + body)), checked against an independent computation
    import base64
    import hashlib
    import hmac

    body, stamp, secret = (
        b'{"say": "hello"}',
        "2021-07-25T10:00:00Z",
        "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==",
    )
    expected = base64.b64encode(hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest())
    assert sign(secret, body, stamp) == expected.decode()
    headers = {
        "x-zendesk-webhook-signature": sign(secret, body, stamp),
        "x-zendesk-webhook-signature-timestamp": stamp,
    }
    then = datetime(2021, 7, 25, 10, 2, tzinfo=UTC).timestamp()
    verify_signature(secret, headers, body, then)
    with pytest.raises(WebhookRejected, match="outside the allowed window"):
        verify_signature(secret, headers, body, then + 600)


def test_refuses_to_start_without_a_webhook_secret(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="TIERDESK_ZENDESK_WEBHOOK_SECRET"):
        Runtime.from_settings(replace(settings, zendesk_webhook_secret=None))
    runtime = Runtime.from_settings(replace(settings, zendesk_webhook_secret=None, insecure_dev=True))
    assert "zendesk" in runtime.connectors


def test_settings_from_environment() -> None:
    settings = Settings.from_env(
        {
            "TIERDESK_DB": "/tmp/x.db",
            "TIERDESK_ZENDESK_URL": "https://acme.zendesk.com",
            "TIERDESK_MAX_ATTEMPTS": "3",
            "TIERDESK_INSECURE_DEV": "true",
        }
    )
    assert (settings.db, settings.zendesk_url, settings.max_attempts, settings.insecure_dev) == (
        "/tmp/x.db",
        "https://acme.zendesk.com",
        3,
        True,
    )
    with pytest.raises(SettingsError, match="TIERDESK_MAX_ATTEMPTS"):
        Settings.from_env({"TIERDESK_MAX_ATTEMPTS": "many"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TIERDESK_WEBHOOK_TOLERANCE", "nan"),  # every comparison with nan is false: no freshness check
        ("TIERDESK_WEBHOOK_TOLERANCE", "inf"),
        ("TIERDESK_WEBHOOK_TOLERANCE", "-300"),
        ("TIERDESK_LEASE_SECONDS", "0"),
        ("TIERDESK_HTTP_ATTEMPTS", "0"),
        ("TIERDESK_MAX_BODY_BYTES", "-1"),
        ("TIERDESK_WORKER_POLL", "nan"),
        ("TIERDESK_SYNC_INTERVAL", "-inf"),
        ("TIERDESK_RETRY_MAX", "0.5"),  # below the default TIERDESK_RETRY_BASE of 2 s
        ("TIERDESK_PROXY_HOPS", "-1"),
    ],
)
def test_numeric_settings_outside_their_range_stop_the_start(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_a_nan_tolerance_cannot_switch_the_freshness_check_off() -> None:
    body, secret = b'{"ticket": {"id": "7"}}', "s3cret"
    stamp = "2021-07-25T10:00:00Z"
    headers = {
        "x-zendesk-webhook-signature": sign(secret, body, stamp),
        "x-zendesk-webhook-signature-timestamp": stamp,
    }
    with pytest.raises(WebhookRejected, match="outside the allowed window"):
        verify_signature(secret, headers, body, datetime.now(UTC).timestamp(), Settings().webhook_tolerance)
    with pytest.raises(SettingsError):
        Settings(webhook_tolerance=float("nan"))
