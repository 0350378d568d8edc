"""Signature checks for HubSpot v3, X-Hub-Signature sha1 (Intercom, Zammad) and Freshdesk's shared secrets.

Every expected value is computed here with hmac/hashlib directly, not with the module's own signing helpers,
so a wrong formula cannot agree with itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import Headers

from connectors.base import WebhookRejected
from connectors.hubspot.webhooks import hubspot_uri, sign_hubspot_v3, verify_hubspot_v3
from connectors.signatures import (
    basic_auth,
    sign_hub_sha1,
    verify_basic_auth,
    verify_hub_signature_sha1,
    verify_shared_secret,
)

HS_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
HS_URI = "https://www.example.com/webhook_uri"
HS_BODY = b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"objectId":123}]'
NOW = 1_700_000_000.0  # a whole second, so the millisecond edges below are exact
NOW_MS = int(NOW * 1000)

FAST = settings(max_examples=150, deadline=None)


def _hs_expected(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = (method + uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _hs_headers(
    body: bytes = HS_BODY,
    timestamp: int | str = NOW_MS,
    secret: str = HS_SECRET,
    uri: str = HS_URI,
    method: str = "POST",
) -> dict[str, str]:
    """Headers exactly as HubSpot signs a delivery; override parts to forge one."""
    stamp = str(timestamp)
    return {
        "x-hubspot-signature-v3": _hs_expected(secret, method, uri, body, stamp),
        "x-hubspot-request-timestamp": stamp,
    }


def _reason(excinfo: pytest.ExceptionInfo[WebhookRejected]) -> str:
    assert excinfo.value.status == 401
    assert excinfo.value.message
    return excinfo.value.reason


# -- HubSpot v3 ------------------------------------------------------------------------------------


def test_hubspot_known_vector() -> None:
    headers = _hs_headers()
    assert (
        sign_hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, str(NOW_MS)) == headers["x-hubspot-signature-v3"]
    )
    verify_hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, headers, NOW)


def test_hubspot_fixed_vector() -> None:
    # pinned once from an independent HMAC so a change to either side of the formula shows up as a diff
    digest = hmac.new(b"secret", b"POSThttps://h.example/hook?a=1{}1700000000000", hashlib.sha256).digest()
    assert sign_hubspot_v3("secret", "POST", "https://h.example/hook?a=1", b"{}", "1700000000000") == (
        base64.b64encode(digest).decode()
    )


def test_hubspot_uri_decodes_exactly_the_documented_escapes() -> None:
    raw = "https://h.example/hook%3Fx?cb=https%3A%2F%2Fa.example%2Fp%40q%21%24%27%28%29%2a%2c%3b&s=a%20b%25c%2Bd+e"
    assert hubspot_uri(raw) == "https://h.example/hook?x?cb=https://a.example/p@q!$'()*,;&s=a%20b%25c%2Bd+e"
    # HubSpot signs the decoded form; we are handed the URL as it arrived
    decoded = hubspot_uri(raw)
    headers = _hs_headers(uri=decoded)
    verify_hubspot_v3(HS_SECRET, "POST", raw, HS_BODY, headers, NOW)
    verify_hubspot_v3(HS_SECRET, "POST", decoded, HS_BODY, headers, NOW)
    with pytest.raises(WebhookRejected) as e:  # a full unquote of %20 would not be what HubSpot signed
        verify_hubspot_v3(HS_SECRET, "POST", raw.replace("%20", " "), HS_BODY, headers, NOW)
    assert _reason(e) == "bad_signature"


@pytest.mark.parametrize(
    ("age_ms", "ok"),
    [
        (0, True),
        (300_000, True),  # exactly five minutes old
        (300_001, False),
        (-300_000, True),  # five minutes ahead (clock skew)
        (-300_001, False),  # far future
        (86_400_000, False),  # a day-old replay
    ],
)
def test_hubspot_tolerance_edges(age_ms: int, ok: bool) -> None:
    headers = _hs_headers(timestamp=NOW_MS - age_ms)
    if ok:
        verify_hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, headers, NOW)
    else:
        with pytest.raises(WebhookRejected) as e:
            verify_hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, headers, NOW)
        assert _reason(e) == "stale_timestamp"


def test_hubspot_custom_tolerance() -> None:
    headers = _hs_headers(timestamp=NOW_MS - 61_000)
    verify_hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, headers, NOW)
    with pytest.raises(WebhookRejected, match="outside the allowed window"):
        verify_hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, headers, NOW, tolerance=60)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no_headers", "missing_signature"),
        ("no_timestamp", "missing_signature"),
        ("empty_signature", "missing_signature"),
        ("seconds_not_ms_but_signed", "stale_timestamp"),
        ("iso_timestamp", "bad_timestamp"),
        ("negative_timestamp", "bad_timestamp"),
        ("float_timestamp", "bad_timestamp"),
        ("huge_timestamp", "bad_timestamp"),
        ("wrong_secret", "bad_signature"),
        ("not_base64", "bad_signature"),
        ("non_ascii_signature", "bad_signature"),
        ("tampered_body", "bad_signature"),
        ("other_uri", "bad_signature"),
        ("other_method", "bad_signature"),
        ("hex_instead_of_base64", "bad_signature"),
    ],
)
def test_hubspot_failures(case: str, reason: str) -> None:
    headers = _hs_headers()
    body, uri, method = HS_BODY, HS_URI, "POST"
    if case == "no_headers":
        headers = {}
    elif case == "no_timestamp":
        del headers["x-hubspot-request-timestamp"]
    elif case == "empty_signature":
        headers["x-hubspot-signature-v3"] = ""
    elif case == "seconds_not_ms_but_signed":
        headers = _hs_headers(timestamp=int(NOW))
    elif case == "iso_timestamp":
        headers["x-hubspot-request-timestamp"] = "2023-11-14T22:13:20Z"
    elif case == "negative_timestamp":
        headers["x-hubspot-request-timestamp"] = "-1"
    elif case == "float_timestamp":
        headers["x-hubspot-request-timestamp"] = f"{NOW_MS}.0"
    elif case == "huge_timestamp":
        headers = _hs_headers(timestamp="9" * 40)
    elif case == "wrong_secret":
        headers = _hs_headers(secret="not-the-secret")
    elif case == "not_base64":
        headers["x-hubspot-signature-v3"] = "!!!not base64!!!"
    elif case == "non_ascii_signature":
        headers["x-hubspot-signature-v3"] = "ü" * 44
    elif case == "tampered_body":
        body = HS_BODY.replace(b"123", b"124")
    elif case == "other_uri":
        uri = HS_URI + "?x=1"
    elif case == "other_method":
        method = "PUT"
    elif case == "hex_instead_of_base64":
        message = ("POST" + HS_URI).encode() + HS_BODY + str(NOW_MS).encode()
        headers["x-hubspot-signature-v3"] = hmac.new(HS_SECRET.encode(), message, hashlib.sha256).hexdigest()
    with pytest.raises(WebhookRejected) as e:
        verify_hubspot_v3(HS_SECRET, method, uri, body, headers, NOW)
    assert _reason(e) == reason


def test_hubspot_messages_never_echo_secrets_or_signatures() -> None:
    headers = _hs_headers(secret="wrong-secret-value")
    with pytest.raises(WebhookRejected) as e:
        verify_hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, headers, NOW)
    text = f"{e.value} {e.value.message} {e.value.reason}"
    assert HS_SECRET not in text
    assert headers["x-hubspot-signature-v3"] not in text
    assert _hs_expected(HS_SECRET, "POST", HS_URI, HS_BODY, str(NOW_MS)) not in text


@pytest.mark.parametrize(
    "make",
    [
        lambda h: {k.upper(): v for k, v in h.items()},
        lambda h: {
            "X-HubSpot-Signature-v3": h["x-hubspot-signature-v3"],
            "X-HubSpot-Request-Timestamp": h["x-hubspot-request-timestamp"],
        },
        lambda h: Headers(list(h.items())),
        lambda h: h,  # lower-cased, as the gate passes them
    ],
    ids=["upper", "mixed", "werkzeug", "lower"],
)
def test_hubspot_header_names_are_case_insensitive(make: object) -> None:
    verify_hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, make(_hs_headers()), NOW)  # type: ignore[operator]


def test_hubspot_method_case_does_not_matter() -> None:
    verify_hubspot_v3(HS_SECRET, "post", HS_URI, HS_BODY, _hs_headers(), NOW)


# -- X-Hub-Signature: sha1 (Intercom, Zammad) ---------------------------------------------------------


def _sha1_header(secret: str, body: bytes) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def test_sha1_known_vector() -> None:
    body = b'{"type":"notification_event","id":"notif_1","topic":"ticket.created"}'
    value = _sha1_header("client-secret", body)
    assert sign_hub_sha1("client-secret", body) == value
    verify_hub_signature_sha1("client-secret", body, {"x-hub-signature": value})
    # pinned: HMAC-SHA1("key", "The quick brown fox jumps over the lazy dog"), the RFC 2104 / Wikipedia vector
    assert sign_hub_sha1("key", b"The quick brown fox jumps over the lazy dog") == (
        "sha1=de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "missing_signature"),
        ("", "missing_signature"),
        ("de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9", "bad_signature"),  # no sha1= prefix
        ("sha256=de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9", "bad_signature"),
        ("sha1=DE7C9B85B8B78AA6BC8A7A36F70A90701C9DB4D9", "bad_signature"),  # the schemes send lowercase
        ("sha1=de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d", "bad_signature"),  # truncated
        ("sha1=de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d90", "bad_signature"),  # extended
        ("sha1=ü", "bad_signature"),
        ("sha1=", "bad_signature"),
    ],
)
def test_sha1_failures(value: str | None, reason: str) -> None:
    body = b"The quick brown fox jumps over the lazy dog"
    headers = {} if value is None else {"x-hub-signature": value}
    with pytest.raises(WebhookRejected) as e:
        verify_hub_signature_sha1("key", body, headers)
    assert _reason(e) == reason


def test_sha1_header_name_is_configurable_and_case_insensitive() -> None:
    body = b'{"ticket":{"id":1}}'
    value = _sha1_header("zammad-token", body)
    verify_hub_signature_sha1("zammad-token", body, {"X-Hub-Signature": value})
    verify_hub_signature_sha1("zammad-token", body, Headers([("X-HUB-SIGNATURE", value)]))
    verify_hub_signature_sha1("zammad-token", body, {"x-other-signature": value}, header="X-Other-Signature")
    with pytest.raises(WebhookRejected) as e:
        verify_hub_signature_sha1(
            "zammad-token", body, {"x-hub-signature": value}, header="x-other-signature"
        )
    assert _reason(e) == "missing_signature"


def test_sha1_replay_verifies_so_dedupe_must_catch_it() -> None:
    # documented behaviour, pinned: no timestamp in this scheme, an old capture still verifies
    body = b'{"id":"notif_1"}'
    verify_hub_signature_sha1("s", body, {"x-hub-signature": _sha1_header("s", body)})
    verify_hub_signature_sha1("s", body, {"x-hub-signature": _sha1_header("s", body)})


def test_sha1_wrong_secret() -> None:
    body = b"{}"
    with pytest.raises(WebhookRejected) as e:
        verify_hub_signature_sha1("right", body, {"x-hub-signature": _sha1_header("wrong", body)})
    assert _reason(e) == "bad_signature"


# -- Freshdesk: shared secret and basic auth ----------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing_signature"),
        ({"x-tierdesk-secret": ""}, "missing_signature"),
        ({"x-tierdesk-secret": "wrong"}, "bad_signature"),
        ({"x-tierdesk-secret": "s3cret-value-"}, "bad_signature"),
        ({"x-tierdesk-secret": "s3cret-valu"}, "bad_signature"),
        ({"x-tierdesk-secret": "S3CRET-VALUE"}, "bad_signature"),
        ({"x-tierdesk-secret": "s3cret-välue"}, "bad_signature"),
        ({"authorization": "s3cret-value"}, "missing_signature"),
    ],
)
def test_shared_secret_failures(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(WebhookRejected) as e:
        verify_shared_secret("s3cret-value", headers)
    assert _reason(e) == reason
    assert "s3cret-value" not in e.value.message


def test_shared_secret_accepts_any_header_case() -> None:
    verify_shared_secret("s3cret-value", {"x-tierdesk-secret": "s3cret-value"})
    verify_shared_secret("s3cret-value", {"X-Tierdesk-Secret": "s3cret-value"})
    verify_shared_secret("s3cret-value", Headers([("X-TIERDESK-SECRET", "s3cret-value")]))
    verify_shared_secret("s3cret-value", {"x-fd-token": "s3cret-value"}, header="X-FD-Token")


def _basic(raw: bytes) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(raw).decode()}


def test_basic_auth_accepts_exact_credentials() -> None:
    verify_basic_auth("freshdesk", "pa:ss wörd", _basic("freshdesk:pa:ss wörd".encode()))
    verify_basic_auth("freshdesk", "pw", {"Authorization": basic_auth("freshdesk", "pw")})
    verify_basic_auth(
        "freshdesk", "pw", {"authorization": "basic " + base64.b64encode(b"freshdesk:pw").decode()}
    )
    assert basic_auth("freshdesk", "pw") == "Basic " + base64.b64encode(b"freshdesk:pw").decode()


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing_signature"),
        ({"authorization": ""}, "missing_signature"),
        ({"authorization": "Bearer abc"}, "bad_signature"),
        ({"authorization": "Basic"}, "bad_signature"),
        ({"authorization": "Basic !!!"}, "bad_signature"),
        ({"authorization": "Basic ü"}, "bad_signature"),
        (_basic(b"freshdesk:wrong"), "bad_signature"),
        (_basic(b"other:pw"), "bad_signature"),
        (_basic(b"freshdesk"), "bad_signature"),
        (_basic(b"freshdesk:pw "), "bad_signature"),
        (_basic(b"freshdesk:"), "bad_signature"),
        (_basic(b":pw"), "bad_signature"),
    ],
)
def test_basic_auth_failures(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(WebhookRejected) as e:
        verify_basic_auth("freshdesk", "pw", headers)
    assert _reason(e) == reason


@pytest.mark.parametrize(
    "call",
    [
        lambda: verify_hubspot_v3("", "POST", HS_URI, b"", _hs_headers(secret="x"), NOW),
        lambda: verify_hub_signature_sha1("", b"", {"x-hub-signature": "sha1=00"}),
        lambda: verify_shared_secret("", {"x-tierdesk-secret": ""}),
        lambda: verify_basic_auth("u", "", _basic(b"u:")),
        lambda: verify_basic_auth("", "p", _basic(b":p")),
        lambda: verify_basic_auth("a:b", "p", _basic(b"a:b:p")),
    ],
)
def test_an_empty_secret_is_a_programming_error_not_an_open_door(call: object) -> None:
    with pytest.raises(ValueError, match="must"):
        call()  # type: ignore[operator]


# -- properties: signed verifies, any changed byte fails ---------------------------------------------

secrets = st.text(min_size=1, max_size=64)
bodies = st.binary(max_size=512)


def _flip(data: st.DataObject, raw: bytes) -> bytes:
    """`raw` with exactly one byte changed."""
    i = data.draw(st.integers(0, len(raw) - 1), label="index")
    delta = data.draw(st.integers(1, 255), label="xor")
    return raw[:i] + bytes([raw[i] ^ delta]) + raw[i + 1 :]


def _flip_text(data: st.DataObject, text: str) -> str:
    """`text` with exactly one character replaced by a different one (any code point)."""
    i = data.draw(st.integers(0, len(text) - 1), label="index")
    other = data.draw(st.characters(codec="utf-8").filter(lambda c: c != text[i]), label="char")
    return text[:i] + other + text[i + 1 :]


@FAST
@given(
    secret=secrets,
    body=bodies,
    now=st.integers(1_000, 4_000_000_000),
    skew_ms=st.integers(-300_000, 300_000),
    path=st.text(alphabet="abcxyz/%3AF2?=&", max_size=30),
    data=st.data(),
)
def test_hubspot_property(
    secret: str, body: bytes, now: int, skew_ms: int, path: str, data: st.DataObject
) -> None:
    stamp = str(now * 1000 + skew_ms)
    uri = "https://app.example/" + path
    signature = _hs_expected(secret, "POST", hubspot_uri(uri), body, stamp)
    headers = {"x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": stamp}
    verify_hubspot_v3(secret, "POST", uri, body, headers, float(now))

    part = data.draw(st.sampled_from(["body", "signature", "timestamp"]))
    if part == "body":
        body = _flip(data, body) if body else b"\x00"
    elif part == "signature":
        headers["x-hubspot-signature-v3"] = _flip_text(data, signature)
    else:
        headers["x-hubspot-request-timestamp"] = _flip_text(data, stamp)
    with pytest.raises(WebhookRejected) as e:
        verify_hubspot_v3(secret, "POST", uri, body, headers, float(now))
    assert _reason(e) in {"bad_signature", "bad_timestamp", "missing_signature"}


@FAST
@given(secret=secrets, body=bodies, data=st.data())
def test_sha1_property(secret: str, body: bytes, data: st.DataObject) -> None:
    value = _sha1_header(secret, body)
    verify_hub_signature_sha1(secret, body, {"x-hub-signature": value})
    if data.draw(st.booleans(), label="tamper body"):
        body = _flip(data, body) if body else b"\x00"
    else:
        value = _flip_text(data, value)
    with pytest.raises(WebhookRejected) as e:
        verify_hub_signature_sha1(secret, body, {"x-hub-signature": value})
    assert _reason(e) in {"bad_signature", "missing_signature"}


@FAST
@given(secret=secrets, data=st.data())
def test_shared_secret_property(secret: str, data: st.DataObject) -> None:
    verify_shared_secret(secret, {"x-tierdesk-secret": secret})
    with pytest.raises(WebhookRejected):
        verify_shared_secret(secret, {"x-tierdesk-secret": _flip_text(data, secret)})


@FAST
@given(
    user=st.text(min_size=1, max_size=20).filter(lambda u: ":" not in u),
    password=st.text(min_size=1, max_size=40),
    data=st.data(),
)
def test_basic_auth_property(user: str, password: str, data: st.DataObject) -> None:
    raw = f"{user}:{password}".encode()
    verify_basic_auth(user, password, _basic(raw))
    with pytest.raises(WebhookRejected):
        verify_basic_auth(user, password, _basic(_flip(data, raw)))
