"""Sign-in for the admin: a session cookie for pages, a bearer token for the API, CSRF tokens on forms.

Why no Flask-Login or Flask-WTF: there is one admin account from the environment and one kind of form
check, each a few lines here, and every comparison of a secret goes through ``hmac.compare_digest``.

* Pages: ``TIERDESK_ADMIN_USER`` signs in with ``TIERDESK_ADMIN_PASSWORD`` (or the admin token). The
  session is Flask's signed cookie (``TIERDESK_SECRET_KEY``), HttpOnly, SameSite=Lax, scoped to /admin,
  Secure when the request came over HTTPS, valid for 12 hours. It carries a fingerprint of the
  credentials, so changing the password or token signs everyone out.
* CSRF: every session gets a random token; every POST must send it back (hidden field ``csrf_token``
  or header ``X-CSRF-Token``), the login form included.
* API: ``Authorization: Bearer <TIERDESK_ADMIN_TOKEN>``. Browsers never add that header by themselves,
  so the API needs no CSRF token, and it never looks at the cookie.
* Throttling, kept in the store so every process counts together: 10 wrong passwords for one user name
  from one address within 5 minutes give that user name at that address 429 until they age out; other
  user names and addresses are not affected. Bad API tokens count per address, and only against bad
  tokens: the valid token is checked first and never refused. The address is the TCP peer, or with
  ``TIERDESK_PROXY_HOPS`` set, the client the trusted proxies name in X-Forwarded-For (app.py).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta

from flask import Flask, Request, request, session
from flask.sessions import SecureCookieSessionInterface

from integration.settings import Settings
from integration.store import Store

SESSION_COOKIE = "tierdesk_admin"
SESSION_LIFETIME = timedelta(hours=12)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
MAX_FAILURES = 10
FAILURE_WINDOW = 300.0
API_IDENTITY = "api"  # the author of what the API token publishes


class _Sessions(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the admin is reached over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure or forwarded == "https"


def init_app(app: Flask) -> None:
    settings: Settings = app.extensions["tierdesk"].settings
    key = settings.secret_key
    if not key and settings.insecure_dev:
        key = secrets.token_hex(32)  # sessions end with the process; development only
    if key:
        app.secret_key = key
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/admin",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.session_interface = _Sessions()
    app.extensions["tierdesk.admin.failures"] = Failures(app.extensions["tierdesk"].store)


def pages_problem(settings: Settings, has_key: bool) -> str | None:
    """Why the admin pages cannot be served, or None when they can."""
    if not (settings.admin_password or settings.admin_token):
        return "The admin is off: set TIERDESK_ADMIN_PASSWORD (and TIERDESK_SECRET_KEY) to turn it on."
    if not has_key:
        return (
            "TIERDESK_SECRET_KEY is not set: sessions cannot be signed, so the admin pages stay closed. "
            "Set it to a long random value (or TIERDESK_INSECURE_DEV=1 for local development only)."
        )
    return None


def _equal(given: str, expected: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), (expected or "").encode())


def check_password(settings: Settings, user: str, password: str) -> bool:
    """The admin user with the admin password or the admin token; every part is compared in full."""
    user_ok = _equal(user, settings.admin_user)
    password_ok = _equal(password, settings.admin_password)
    token_ok = _equal(password, settings.admin_token)
    return user_ok and (password_ok or token_ok)


def check_bearer(settings: Settings, header: str) -> bool:
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and _equal(given.strip(), settings.admin_token)


def bearer_identity(settings: Settings, header: str) -> str | None:
    """Who an Authorization header proves to be (what the API records as a version's author), or None.

    There is one API token, so one identity; a name in a request body proves nothing.
    """
    return API_IDENTITY if check_bearer(settings, header) else None


def fingerprint(settings: Settings, secret_key: str) -> str:
    """Changes whenever the admin's credentials do, so old sessions stop working."""
    material = "\0".join((settings.admin_user, settings.admin_password or "", settings.admin_token or ""))
    return hmac.new(secret_key.encode(), material.encode(), hashlib.sha256).hexdigest()[:32]


def sign_in(settings: Settings, secret_key: str, user: str) -> None:
    session.clear()
    session.permanent = True
    session["user"] = user
    session["cred"] = fingerprint(settings, secret_key)
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def signed_in_user(settings: Settings, secret_key: str) -> str | None:
    user = session.get("user")
    if not user or not _equal(session.get("cred", ""), fingerprint(settings, secret_key)):
        return None
    return str(user)


def csrf_token() -> str:
    token = session.get(CSRF_FIELD)
    if not token:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return str(token)


def csrf_ok(req: Request) -> bool:
    expected = session.get(CSRF_FIELD)
    given = req.form.get(CSRF_FIELD) or req.headers.get(CSRF_HEADER) or ""
    return bool(expected) and _equal(given, expected)


class Failures:
    """Failed sign-ins and bad tokens in a sliding window, counted in the store (shared by processes).

    Keys are digests, so the table holds neither addresses nor what someone typed as a user name (a
    password typed into the wrong field, say).
    """

    def __init__(self, store: Store, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW) -> None:
        self.store = store
        self.limit = limit
        self.window = window

    @staticmethod
    def password_key(user: str, address: str) -> str:
        """Passwords are throttled per user name and address: guessing at one never locks out another."""
        return "password:" + hashlib.sha256(f"{user}\0{address}".encode("utf-8", "replace")).hexdigest()[:32]

    @staticmethod
    def token_key(address: str) -> str:
        return "token:" + hashlib.sha256(address.encode("utf-8", "replace")).hexdigest()[:32]

    def blocked(self, key: str) -> float:
        """Seconds until this key may try again (0: now)."""
        return self.store.sign_in_wait(key, self.limit, self.window, time.time())

    def add(self, key: str) -> None:
        self.store.add_sign_in_failure(key, self.window, time.time())

    def clear(self, key: str) -> None:
        """A successful sign-in forgets that user's earlier typos from that address."""
        self.store.clear_sign_in_failures(key)
