"""Webhook authentication schemes shared by several vendors: pure functions over the raw body.

A scheme of one vendor lives in that vendor's package (Zendesk's and HubSpot's `webhooks.py`); the ones here
serve several: the X-Hub-Signature of Intercom and Zammad, and the shared secret or basic auth of helpdesks
that sign nothing (Freshdesk).

Each check either returns None or raises `WebhookRejected(reason, message, status=401)` with one of a few
stable reasons, so the gate can log a named event per failure:

- ``missing_signature``: the header that should carry the proof is absent or empty;
- ``bad_signature``: present but malformed or not matching (never says which part was wrong);
- ``bad_timestamp``: a timestamp header that is not what the scheme says it is;
- ``stale_timestamp``: signed correctly but outside the freshness window (a replay or a far-future clock).

Every comparison goes through `hmac.compare_digest` on bytes, never `==` on strings. Header names are looked
up case-insensitively (the gate passes them lower-cased; a plain dict from a test or a script may not).
The messages never contain a secret, a computed signature or the header value we were given.

Schemes (from the helpdesk API research notes, sections 3.4, 4, 5; HubSpot v3, section 2.6, is in
connectors/hubspot/webhooks.py):

- Intercom and Zammad (`verify_hub_signature_sha1`): ``X-Hub-Signature: sha1=<lowercase hex
  HMAC-SHA1(secret, raw body)>``. Neither sends a timestamp, so a captured delivery verifies forever: replay
  protection for these sources MUST come from delivery-id dedupe in the queue (Zammad: the
  ``X-Zammad-Delivery`` header; Intercom: the notification ``id`` in the JSON body), which the queue's
  unique event id already gives once a connector maps that id to `TicketEvent.event_id`.
- Freshdesk signs nothing (`verify_shared_secret`, `verify_basic_auth`): the automation rule sends a secret
  header or basic-auth credentials we configured. These prove only that the caller knows the secret; there
  is no body integrity and no freshness, so dedupe on ticket id plus rule, and keep the endpoint on HTTPS.

An empty secret is a programming error (ValueError), never "accept everything": the settings layer refuses
to start without one unless the explicit insecure-development flag is set, and then the connector skips the
check itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from connectors.base import WebhookRejected

HUB_SIGNATURE_HEADER = "x-hub-signature"
SHARED_SECRET_HEADER = "x-tierdesk-secret"  # noqa: S105 - a header name, not a secret


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that is cheap when the gate has already lower-cased the names."""
    name = name.lower()
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name:
                return candidate
    return value


def require_key(secret: str, what: str) -> bytes:
    if not secret:
        raise ValueError(f"{what} must not be empty: an empty key would let anyone sign")
    return secret.encode()


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of two header-ish strings; digests first, so length does not leak either."""
    a = hashlib.sha256(given.encode("utf-8", "replace")).digest()
    b = hashlib.sha256(expected.encode("utf-8", "replace")).digest()
    return hmac.compare_digest(a, b)


# -- Intercom and Zammad: X-Hub-Signature: sha1=<hex> -------------------------------------------------


def sign_hub_sha1(secret: str, body: bytes) -> str:
    """The X-Hub-Signature value Intercom and Zammad send: 'sha1=' + lowercase hex HMAC-SHA1(body)."""
    key = require_key(secret, "webhook secret")
    return "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()


def verify_hub_signature_sha1(
    secret: str, body: bytes, headers: Mapping[str, str], header: str = HUB_SIGNATURE_HEADER
) -> None:
    """Raise WebhookRejected unless `header` carries sha1=<hex HMAC-SHA1(secret, body)>.

    There is no timestamp in this scheme: a replayed delivery verifies, and only delivery-id dedupe
    (Zammad X-Zammad-Delivery, Intercom notification id) stops it being processed twice.
    """
    key = require_key(secret, "webhook secret")
    value = header_value(headers, header)
    if not value:
        raise WebhookRejected("missing_signature", f"missing {header} header")
    if not value.startswith("sha1="):
        raise WebhookRejected("bad_signature", f"{header} must be sha1=<hex>")
    expected = hmac.new(key, body, hashlib.sha1).hexdigest()
    # bytes, not str: compare_digest refuses non-ASCII str, and a header can carry any latin-1 byte
    if not hmac.compare_digest(value[5:].encode("utf-8", "replace"), expected.encode()):
        raise WebhookRejected("bad_signature", f"{header} does not match")


# -- Freshdesk: nothing is signed ---------------------------------------------------------------------


def verify_shared_secret(
    expected: str, headers: Mapping[str, str], header: str = SHARED_SECRET_HEADER
) -> None:
    """Raise WebhookRejected unless `header` equals the shared secret we gave the helpdesk rule."""
    require_key(expected, "shared secret")
    value = header_value(headers, header)
    if not value:
        raise WebhookRejected("missing_signature", f"missing {header} header")
    if not _same(value, expected):
        raise WebhookRejected("bad_signature", f"{header} does not match")


def basic_auth(user: str, password: str) -> str:
    """The Authorization header value for these credentials (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def verify_basic_auth(user: str, password: str, headers: Mapping[str, str]) -> None:
    """Raise WebhookRejected unless Authorization is Basic with exactly these credentials.

    The whole decoded 'user:password' is compared at once, so neither part can be probed separately.
    """
    require_key(password, "basic-auth password")
    if not user or ":" in user:
        raise ValueError("basic-auth user must be non-empty and contain no ':' (RFC 7617)")
    value = header_value(headers, "authorization")
    if not value:
        raise WebhookRejected("missing_signature", "missing Authorization header")
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() != "basic" or not credentials.strip():
        raise WebhookRejected("bad_signature", "Authorization must use the Basic scheme")
    try:
        given = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise WebhookRejected("bad_signature", "Basic credentials are not base64") from e
    a = hashlib.sha256(given).digest()
    b = hashlib.sha256(f"{user}:{password}".encode()).digest()
    if not hmac.compare_digest(a, b):
        raise WebhookRejected("bad_signature", "Basic credentials do not match")
