"""HubSpot webhook signatures (v3), the verifier with its signer beside it (for tests and the sandbox).

HubSpot is a pull-only source in tierdesk today (no webhook route takes its deliveries); the scheme is
kept here, tested, for when one does. From the helpdesk API research notes, section 2.6:

`verify_hubspot_v3`: base64(HMAC-SHA256(client secret, method + uri + body + timestamp)),
timestamp in epoch milliseconds, window 5 minutes. The uri is the full URL HubSpot called
(``https://host/path?query``) -- behind a proxy, pass the public URL, not the one the app server saw.
URL decoding: HubSpot's docs list exactly twelve escapes to decode before signing (``%3A : %2F / %3F ?
%40 @ %21 ! %24 $ %27 ' %28 ( %29 ) %2A * %2C , %3B ;``; the ``?`` that starts the query is already
literal). We decode those and only those, with hex in either case, and leave every other escape
(``%20``, ``%25``, ``%2B``...) and ``+`` as sent. A full unquote, as some third-party examples do, would
also turn ``%25`` into ``%`` and ``%2B`` into ``+``, which HubSpot does not document; if real deliveries
ever disagree, this one table is the place to change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping

from connectors.base import WebhookRejected
from connectors.signatures import header_value, require_key

HUBSPOT_SIGNATURE_HEADER = "x-hubspot-signature-v3"
HUBSPOT_TIMESTAMP_HEADER = "x-hubspot-request-timestamp"
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


# -- HubSpot v3 ------------------------------------------------------------------------------------


def hubspot_uri(uri: str) -> str:
    """The URI as HubSpot signs it: its documented escapes decoded, every other byte as sent."""
    return _HUBSPOT_ESCAPE.sub(lambda m: _HUBSPOT_DECODE[m.group(0).lower()], uri)


def sign_hubspot_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """The value HubSpot puts in X-HubSpot-Signature-v3 (useful for tests and the sandbox)."""
    message = method.upper().encode() + hubspot_uri(uri).encode() + body + timestamp.encode()
    digest = hmac.new(require_key(secret, "HubSpot client secret"), message, hashlib.sha256).digest()
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
    key = require_key(secret, "HubSpot client secret")
    signature = header_value(headers, HUBSPOT_SIGNATURE_HEADER)
    timestamp = header_value(headers, HUBSPOT_TIMESTAMP_HEADER)
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
