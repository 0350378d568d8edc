"""Webhook authentication for the helpdesks other than Zendesk: pure functions over the raw body.

Each check either returns None or raises `WebhookRejected(reason, message, status=401)` with one of a few
stable reasons, so the gate can log a named event per failure:

- ``missing_signature``: the header that should carry the proof is absent or empty;
- ``bad_signature``: present but malformed or not matching (never says which part was wrong);
- ``bad_timestamp``: a timestamp header that is not what the scheme says it is;
- ``stale_timestamp``: signed correctly but outside the freshness window (a replay or a far-future clock).

Every comparison goes through `hmac.compare_digest` on bytes, never `==` on strings. Header names are looked
up case-insensitively (the gate passes them lower-cased; a plain dict from a test or a script may not).
The messages never contain a secret, a computed signature or the header value we were given.

Schemes (from the helpdesk API research notes, sections 2.6, 3.4, 4, 5):

- HubSpot v3 (`verify_hubspot_v3`): base64(HMAC-SHA256(client secret, method + uri + body + timestamp)),
  timestamp in epoch milliseconds, window 5 minutes. The uri is the full URL HubSpot called
  (``https://host/path?query``) -- behind a proxy, pass the public URL, not the one the app server saw.
  URL decoding: HubSpot's docs list exactly twelve escapes to decode before signing (``%3A : %2F / %3F ?
  %40 @ %21 ! %24 $ %27 ' %28 ( %29 ) %2A * %2C , %3B ;``; the ``?`` that starts the query is already
  literal). We decode those and only those, with hex in either case, and leave every other escape
  (``%20``, ``%25``, ``%2B``...) and ``+`` as sent. A full unquote, as some third-party examples do, would
  also turn ``%25`` into ``%`` and ``%2B`` into ``+``, which HubSpot does not document; if real deliveries
  ever disagree, this one table is the place to change.
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
import re
from collections.abc import Mapping

from connectors.base import WebhookRejected

HUBSPOT_SIGNATURE_HEADER = "x-hubspot-signature-v3"
HUBSPOT_TIMESTAMP_HEADER = "x-hubspot-request-timestamp"
HUB_SIGNATURE_HEADER = "x-hub-signature"
SHARED_SECRET_HEADER = "x-tierdesk-secret"  # noqa: S105 - a header name, not a secret
HUBSPOT_TOLERANCE = 300.0

# HubSpot's documented table of escapes to decode in the request URI before signing; nothing else.
_HUBSPOT_DECODE = {
    "%3a": ":",
    "%2f": "/",
    "%3f": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2a": "*",
    "%2c": ",",
    "%3b": ";",
}
_HUBSPOT_ESCAPE = re.compile("|".join(_HUBSPOT_DECODE), re.IGNORECASE)
_MILLIS = re.compile(r"[0-9]{1,15}")  # 15 digits reach the year 33658; longer is nonsense, not a time


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that is cheap when the gate has already lower-cased the names."""
    name = name.lower()
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name:
                return candidate
    return value


def _require(secret: str, what: str) -> bytes:
    if not secret:
        raise ValueError(f"{what} must not be empty: an empty key would let anyone sign")
    return secret.encode()


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of two header-ish strings; digests first, so length does not leak either."""
    a = hashlib.sha256(given.encode("utf-8", "replace")).digest()
    b = hashlib.sha256(expected.encode("utf-8", "replace")).digest()
    return hmac.compare_digest(a, b)


# -- HubSpot v3 ------------------------------------------------------------------------------------


def hubspot_uri(uri: str) -> str:
    """The URI as HubSpot signs it: its documented escapes decoded, every other byte as sent."""
    return _HUBSPOT_ESCAPE.sub(lambda m: _HUBSPOT_DECODE[m.group(0).lower()], uri)


def sign_hubspot_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """The value HubSpot puts in X-HubSpot-Signature-v3 (useful for tests and the sandbox)."""
    message = method.upper().encode() + hubspot_uri(uri).encode() + body + timestamp.encode()
    digest = hmac.new(_require(secret, "HubSpot client secret"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_hubspot_v3(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float,
    tolerance: float = HUBSPOT_TOLERANCE,
) -> None:
    """Raise WebhookRejected unless HubSpot signed this exact request within `tolerance` seconds of `now`.

    Order: headers present -> timestamp well-formed -> signature -> freshness. The signature is checked
    before freshness so an unauthenticated caller learns nothing about our clock.
    """
    key = _require(secret, "HubSpot client secret")
    signature = _header(headers, HUBSPOT_SIGNATURE_HEADER)
    timestamp = _header(headers, HUBSPOT_TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise WebhookRejected("missing_signature", "missing HubSpot v3 signature or timestamp header")
    if not _MILLIS.fullmatch(timestamp):
        raise WebhookRejected("bad_timestamp", "HubSpot timestamp is not epoch milliseconds")
    message = method.upper().encode() + hubspot_uri(uri).encode() + body + timestamp.encode()
    expected = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest())
    # compare the text, not the decoded bytes: base64 ignores the last character's spare bits, so
    # decoding would accept several spellings of one signature
    if not hmac.compare_digest(signature.encode("utf-8", "replace"), expected):
        raise WebhookRejected("bad_signature", "HubSpot signature does not match")
    if abs(now * 1000.0 - int(timestamp)) > tolerance * 1000.0:
        raise WebhookRejected("stale_timestamp", "HubSpot timestamp outside the allowed window")


# -- Intercom and Zammad: X-Hub-Signature: sha1=<hex> -------------------------------------------------


def sign_hub_sha1(secret: str, body: bytes) -> str:
    """The X-Hub-Signature value Intercom and Zammad send: 'sha1=' + lowercase hex HMAC-SHA1(body)."""
    key = _require(secret, "webhook secret")
    return "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()


def verify_hub_signature_sha1(
    secret: str, body: bytes, headers: Mapping[str, str], header: str = HUB_SIGNATURE_HEADER
) -> None:
    """Raise WebhookRejected unless `header` carries sha1=<hex HMAC-SHA1(secret, body)>.

    There is no timestamp in this scheme: a replayed delivery verifies, and only delivery-id dedupe
    (Zammad X-Zammad-Delivery, Intercom notification id) stops it being processed twice.
    """
    key = _require(secret, "webhook secret")
    value = _header(headers, header)
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
    _require(expected, "shared secret")
    value = _header(headers, header)
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
    _require(password, "basic-auth password")
    if not user or ":" in user:
        raise ValueError("basic-auth user must be non-empty and contain no ':' (RFC 7617)")
    value = _header(headers, "authorization")
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
