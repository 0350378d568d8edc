"""Admin pages under /admin: server-rendered, small, keyboard-usable; every form carries a CSRF token.

Every view runs behind ``gate``: the admin must be configured, POSTs must carry the session's CSRF
token, and everything but the sign-in page needs a signed-in session. Static files (CSS, JS, the
chart library) are public: they hold no data.

The pages are split by group: this module holds the blueprint, its gate and template helpers, sign-in,
the overview and the queue, and the helpers the groups share; ``mapping_pages`` holds the mapping, its
versions, preview and simulate; ``report_pages`` the decisions, segments and service reports. Their
routes are registered on ``bp`` when init_app imports them.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from integration.core.mapping import format_minutes
from integration.core.models import MappingVersion
from integration.runtime import Runtime
from integration.web.admin import auth, reports, whatif

log = logging.getLogger("tierdesk.admin")
bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.static"})
NAV = (
    ("admin.overview", "Overview"),
    ("admin.mapping", "Mapping"),
    ("admin.preview", "Preview"),
    ("admin.simulate", "Simulate"),
    ("admin.decisions", "Decisions"),
    ("admin.segments", "Segments"),
    ("admin.service", "Service"),
    ("admin.queue", "Queue"),
)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _rt() -> Runtime:
    return current_app.extensions["tierdesk"]


def _error_page(status: int, title: str, message: str) -> ResponseReturnValue:
    return render_template("error.html", title=title, message=message), status


@bp.before_request
def gate() -> ResponseReturnValue | None:
    if request.endpoint == "admin.static":
        return None
    runtime = _rt()
    problem = auth.pages_problem(runtime.settings, bool(current_app.secret_key))
    if problem is not None:
        return _error_page(503, "Admin unavailable", problem)
    if request.method not in SAFE_METHODS and not auth.csrf_ok(request):
        return _error_page(
            400,
            "Form expired",
            "This form was not sent from this admin session (its CSRF token is missing or wrong). "
            "Reload the page and try again.",
        )
    user = auth.signed_in_user(runtime.settings, str(current_app.secret_key))
    g.admin_user = user
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if user is None:
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("admin.login", next=target))
    runtime.refresh_mapping()
    return None


@bp.after_request
def headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "admin.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_context_processor
def template_helpers() -> dict[str, Any]:
    return {"nav": NAV, "csrf_token": auth.csrf_token, "admin_user": lambda: g.get("admin_user")}


@bp.app_template_filter("minutes")
def minutes_filter(value: float | None) -> str:
    if value is None:
        return "–"
    return format_minutes(round(value)) if value >= 1 else "<1m"


@bp.app_template_filter("pct")
def pct_filter(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


@bp.app_template_filter("when")
def when_filter(value: str | float | None) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _safe_next(target: str | None) -> str:
    """Only our own admin paths: never an open redirect, never a header broken by CR/LF (a 500).

    Control characters (tabs and line breaks among them) and backslashes are refused outright: browsers
    read ``/admin\\..`` or a path with a tab in ways of their own, and no path of ours needs them.
    """
    if (
        target
        and target.startswith("/admin")
        and not target.startswith("//")
        and target.isprintable()
        and "\\" not in target
    ):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("admin.overview")


# -- shared by the page groups -----------------------------------------------------------------------


def _author() -> str:
    return str(g.admin_user)


def _active() -> MappingVersion:
    version = _rt().store.active_mapping_version()
    assert version is not None  # noqa: S101 - the runtime records one at start
    return version


def _active_scenario() -> tuple[str, whatif.Scenario]:
    runtime = _rt()
    version = _active()
    return f"active (version {version.id})", whatif.scenario(
        runtime.store, runtime.mapping, runtime.mapping_digest
    )


def _bars(title: str, categories: list[str], series: list[tuple[str, list[float | None]]], unit: str) -> dict:
    return {
        "type": "bars",
        "title": title,
        "categories": categories,
        "series": [{"label": label, "values": values} for label, values in series],
        "unit": unit,
    }


# -- sign-in -----------------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    runtime = _rt()
    failures: auth.Failures = current_app.extensions["tierdesk.admin.failures"]
    target = request.values.get("next")
    if request.method == "GET":
        if g.admin_user:
            return redirect(_safe_next(target))
        return render_template("login.html", next=target, user=runtime.settings.admin_user)
    address = request.remote_addr or "-"  # the client the trusted proxies name (TIERDESK_PROXY_HOPS)
    user = request.form.get("user", "")
    key = failures.password_key(user, address)
    wait = failures.blocked(key)
    if wait:
        log.warning("admin.login_throttled", extra={"remote": address})
        message = f"Too many failed sign-ins as this user from your address; try again in {int(wait)} s."
        return render_template("login.html", next=target, error=message, user=user), 429
    if not auth.check_password(runtime.settings, user, request.form.get("password", "")):
        failures.add(key)
        log.warning("admin.login_failed", extra={"remote": address})
        return render_template("login.html", next=target, error="Wrong user or password.", user=user), 401
    failures.clear(key)
    auth.sign_in(runtime.settings, str(current_app.secret_key), user)
    log.info("admin.signed_in", extra={"user": user, "remote": address})
    return redirect(_safe_next(target))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("admin.login"))


# -- overview ----------------------------------------------------------------------------------------


@bp.get("/")
def overview() -> ResponseReturnValue:
    runtime = _rt()
    store = runtime.store
    _, unmoved, waiting = runtime.queue.backlog(time.time())
    return render_template(
        "overview.html",
        counts={
            "customers": store.customer_count(),  # the segments' population, as every report counts it
            **{name: store.count(name) for name in ("tickets", "decisions")},
        },
        queue=store.queue_counts(),
        unmoved=unmoved,
        waiting=waiting if unmoved else None,
        active=store.active_mapping_version(),
        recent=reports.recent_decisions(store, 8),
        **reports.connector_names(runtime.connectors),
    )


# -- queue -------------------------------------------------------------------------------------------


@bp.get("/queue")
def queue() -> ResponseReturnValue:
    return render_template("queue.html", queue=reports.queue(_rt().store))


@bp.post("/queue/<int:event_id>/replay")
def queue_replay(event_id: int) -> ResponseReturnValue:
    if _rt().queue.replay(event_id):
        flash(f"Event {event_id} is queued again; a worker picks it up within moments.")
    else:
        flash(f"Event {event_id} cannot be replayed: it does not exist or is done.", "error")
    return redirect(url_for("admin.queue"))


@bp.post("/queue/replay-dead")
def queue_replay_dead() -> ResponseReturnValue:
    ids = _rt().queue.replay_matching(error_contains=request.form.get("error") or None)
    flash(f"{len(ids)} dead event(s) queued again." if ids else "No dead event matched.")
    return redirect(url_for("admin.queue"))


@bp.get("/<path:rest>")
def not_found(rest: str) -> ResponseReturnValue:
    return _error_page(404, "Not found", f"There is no admin page /admin/{rest}.")
