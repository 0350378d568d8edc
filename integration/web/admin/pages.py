"""Admin pages under /admin: server-rendered, small, keyboard-usable; every form carries a CSRF token.

Every view runs behind ``gate``: the admin must be configured, POSTs must carry the session's CSRF
token, and everything but the sign-in page needs a signed-in session. Static files (CSS, JS, the
chart library) are public: they hold no data.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta
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
from integration.runtime import Runtime, text_digest
from integration.web.admin import auth, mappings, reports, whatif

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


# -- mapping -----------------------------------------------------------------------------------------


def _author() -> str:
    return str(g.admin_user)


def _active() -> MappingVersion:
    version = _rt().store.active_mapping_version()
    assert version is not None  # noqa: S101 - the runtime records one at start
    return version


@bp.get("/mapping")
def mapping() -> ResponseReturnValue:
    store = _rt().store
    draft = store.mapping_draft(_author())
    return render_template(
        "mapping.html",
        active=_active(),
        versions=store.mapping_versions(),
        draft=draft,
        mapping_obj=_rt().mapping,
        refit=mappings.refit_status(_rt()),
    )


@bp.route("/mapping/edit", methods=["GET", "POST"])
def mapping_edit() -> ResponseReturnValue:
    runtime = _rt()
    store = runtime.store
    active = _active()
    problem: mappings.Problem | None = None
    checked = False
    if request.method == "GET":
        draft = store.mapping_draft(_author())
        text = draft[0] if draft and request.args.get("from") != "active" else active.text
        return render_template("mapping_edit.html", text=text, active=active, draft=draft, problem=None)
    text = request.form.get("text", "").replace("\r\n", "\n")
    action = request.form.get("action", "check")
    if action == "discard":
        store.delete_mapping_draft(_author())
        flash("Draft discarded: the editor shows the active version.")
        return redirect(url_for("admin.mapping_edit"))
    store.save_mapping_draft(_author(), text)
    if action == "publish":
        version, problem = mappings.publish(runtime, text, _author(), request.form.get("note", ""))
        if version is not None:
            store.delete_mapping_draft(_author())
            flash(
                f"Published version {version.id}: it routes new tickets now. Everyone's segments are "
                "recomputed for it in the background; the Mapping page says when that is done."
            )
            return redirect(url_for("admin.mapping_version", version_id=version.id))
    else:
        parsed, problem = mappings.validate(text)
        if parsed is not None:
            problem = mappings.check_groups(runtime, parsed, text)
        checked = problem is None
    return render_template(
        "mapping_edit.html",
        text=text,
        active=active,
        draft=store.mapping_draft(_author()),
        problem=problem,
        excerpt=mappings.excerpt(text, problem.line if problem else None),
        checked=checked,
        note=request.form.get("note", ""),
    ), (422 if problem and problem.error != "unchanged" else 200)


@bp.get("/mapping/versions/<int:version_id>")
def mapping_version(version_id: int) -> ResponseReturnValue:
    store = _rt().store
    version = store.get_mapping_version(version_id)
    if version is None:
        return _error_page(404, "No such version", f"There is no mapping version {version_id}.")
    against_id = request.args.get("against", type=int)
    against = (
        store.get_mapping_version(against_id) if against_id else mappings.previous_version(_rt(), version)
    )
    lines = (
        mappings.diff(against.text, version.text, f"version {against.id}", f"version {version.id}")
        if against
        else []
    )
    return render_template(
        "mapping_version.html",
        version=version,
        against=against,
        diff=lines,
        versions=store.mapping_versions(),
        active=_active(),
    )


@bp.get("/mapping/versions/<int:version_id>.yaml")
def mapping_download(version_id: int) -> ResponseReturnValue:
    version = _rt().store.get_mapping_version(version_id)
    if version is None:
        return _error_page(404, "No such version", f"There is no mapping version {version_id}.")
    return Response(
        version.text,
        mimetype="application/yaml",
        headers={"Content-Disposition": f'attachment; filename="mapping-v{version.id}.yaml"'},
    )


@bp.post("/mapping/versions/<int:version_id>/rollback")
def mapping_rollback(version_id: int) -> ResponseReturnValue:
    version, problem = mappings.rollback(_rt(), version_id, _author(), request.form.get("note", ""))
    if problem is not None:
        flash(f"Roll back refused: {problem.message}", "error")
        return redirect(url_for("admin.mapping_version", version_id=version_id))
    assert version is not None  # noqa: S101
    flash(
        f"Rolled back: version {version.id} (the text of version {version_id}) routes new tickets now; "
        "segments are recomputed for it in the background."
    )
    return redirect(url_for("admin.mapping_version", version_id=version.id))


# -- preview and simulate ----------------------------------------------------------------------------


def _active_scenario() -> tuple[str, whatif.Scenario]:
    runtime = _rt()
    version = _active()
    return f"active (version {version.id})", whatif.scenario(
        runtime.store, runtime.mapping, runtime.mapping_digest
    )


def _draft_scenario() -> tuple[tuple[str, whatif.Scenario] | None, mappings.Problem | None, bool]:
    """(scenario, problem, has a draft) for the signed-in admin's saved draft."""
    store = _rt().store
    draft = store.mapping_draft(_author())
    if draft is None:
        return None, None, False
    parsed, problem = mappings.validate(draft[0])
    if parsed is None:
        return None, problem, True
    return ("your draft", whatif.scenario(store, parsed, text_digest(draft[0]))), None, True


def _version_scenario(version_id: int) -> tuple[tuple[str, whatif.Scenario] | None, mappings.Problem | None]:
    version = _rt().store.get_mapping_version(version_id)
    if version is None:
        return None, mappings.Problem(f"there is no mapping version {version_id}", error="not_found")
    parsed, problem = mappings.validate(version.text, f"mapping version {version.id}")
    if parsed is None:
        return None, problem
    return (f"version {version.id}", whatif.scenario(_rt().store, parsed, version.digest)), None


@bp.route("/preview", methods=["GET", "POST"])
def preview() -> ResponseReturnValue:
    store = _rt().store
    q = request.args.get("q", "").strip()
    matches = store.search_customers(q, limit=25) if q else []
    draft, draft_problem, has_draft = _draft_scenario()
    default_mode = "both" if draft else "active"
    mode = request.values.get("mapping", default_mode)
    if mode not in ("active", "draft", "both") or (mode != "active" and draft is None):
        mode = "active"
    scenarios = []
    if mode in ("active", "both"):
        scenarios.append(_active_scenario())
    if mode in ("draft", "both") and draft is not None:
        scenarios.append(draft)
    result = None
    ticket_error = None
    ticket_text = ""
    key = request.args.get("customer")
    if request.method == "POST":
        ticket_text = request.form.get("ticket", "")
        try:
            ticket = whatif.read_ticket(ticket_text)
        except whatif.TicketInputError as e:
            ticket_error = str(e)
        else:
            result = whatif.preview(store, scenarios, ticket=ticket)
    elif key:
        customer = store.get_customer(key)
        if customer is None:
            return _error_page(404, "No such customer", f"There is no stored customer {key}.")
        result = whatif.preview(store, scenarios, customer=customer)
    if len(matches) == 1 and not key and request.method == "GET":
        return redirect(url_for("admin.preview", customer=matches[0].key, mapping=mode, q=q))
    return render_template(
        "preview.html",
        q=q,
        matches=matches,
        result=result,
        mode=mode,
        has_draft=has_draft,
        draft_ok=draft is not None,
        draft_problem=draft_problem,
        ticket_text=ticket_text,
        ticket_error=ticket_error,
    ), (400 if ticket_error else 200)


def _bars(title: str, categories: list[str], series: list[tuple[str, list[float | None]]], unit: str) -> dict:
    return {
        "type": "bars",
        "title": title,
        "categories": categories,
        "series": [{"label": label, "values": values} for label, values in series],
        "unit": unit,
    }


@bp.get("/simulate")
def simulate() -> ResponseReturnValue:
    days = max(1, min(365, request.args.get("days", default=30, type=int) or 30))
    draft, draft_problem, has_draft = _draft_scenario()
    versions = _rt().store.mapping_versions()
    others = [v for v in versions if not v.active]
    # without a draft, the newest earlier version is the natural thing to compare with
    choice = request.args.get("mapping", "draft" if has_draft else str(others[0].id) if others else "")
    candidate, problem = None, None
    if choice == "draft":
        candidate, problem = draft, draft_problem
    elif choice.isdigit():
        candidate, problem = _version_scenario(int(choice))
    result = None
    charts = []
    if candidate is not None and request.args.get("run"):
        result = whatif.simulate(_rt().store, _active_scenario(), candidate, days)
        for name, rows in result["counts"].items():
            charts.append(
                _bars(
                    f"Tickets by {'SLA' if name == 'sla' else name}: before and after",
                    [r["value"] for r in rows],
                    [("before", [r["before"] for r in rows]), ("after", [r["after"] for r in rows])],
                    "tickets",
                )
            )
    return render_template(
        "simulate.html",
        days=days,
        choice=choice,
        versions=versions,
        others=others,
        has_draft=has_draft,
        draft_ok=draft is not None,
        problem=problem,
        result=result,
        charts=charts,
        active=_active(),
    )


# -- decisions ---------------------------------------------------------------------------------------


@bp.get("/decisions")
def decisions() -> ResponseReturnValue:
    ticket = request.args.get("ticket", "").strip()
    problem = None
    if ticket:
        try:
            return redirect(url_for("admin.decision", ticket_id=reports.ticket_query(ticket)))
        except ValueError as e:
            problem = str(e)
    runtime = _rt()
    page = render_template(
        "decisions.html",
        recent=reports.recent_decisions(runtime.store, 50, runtime.mapping.dimension_names),
        outcomes=runtime.store.decision_outcomes(),
        problem=problem,
        ticket=ticket,
    )
    return page, (400 if problem else 200)


@bp.get("/decisions/<path:ticket_id>")
def decision(ticket_id: str) -> ResponseReturnValue:
    runtime = _rt()
    try:
        found = reports.lookup_decision(
            runtime.store, ticket_id, runtime.mapping.dimension_names, tuple(runtime.connectors)
        )
    except ValueError as e:
        return render_template("decision.html", ticket_id=ticket_id, found=[], problem=str(e)), 400
    status = 200 if found else 404
    return render_template("decision.html", ticket_id=ticket_id, found=found, problem=None), status


# -- segments and service ----------------------------------------------------------------------------


def _dimension() -> str:
    """The dimension asked for, else the first computed one (hand-kept lists rarely drift)."""
    mapping = _rt().mapping
    chosen = request.args.get("dimension", "")
    if chosen in mapping.dimension_names:
        return chosen
    computed = [dim.name for dim in mapping.segments if dim.method != "manual"]
    return (computed or list(mapping.dimension_names) or [""])[0]


@bp.get("/segments")
def segments() -> ResponseReturnValue:
    runtime = _rt()
    days = max(2, min(730, request.args.get("days", default=90, type=int) or 90))
    dimension = _dimension()
    drift = reports.drift(runtime.store, runtime.mapping, dimension, days)
    # the chart starts at the first recorded day: before it nobody's labels are known, and counting
    # backwards from today would show everyone as "(none)"
    starts = drift["history_starts"]
    first = drift["days"].index(starts) if starts and starts in drift["days"] else 0
    x = [int(datetime.fromisoformat(d).replace(tzinfo=UTC).timestamp()) for d in drift["days"][first:]]
    chart = {
        "type": "lines",
        "title": f"Customers per {dimension} label, end of each day",
        "x": x,
        "series": [{**series, "values": series["values"][first:]} for series in drift["series"]],
        "unit": "customers",
    }
    distribution = reports.distribution(runtime.store, runtime.mapping)
    return render_template(
        "segments.html",
        customers=runtime.store.customer_count(),
        segmented=sum(row["customers"] for row in distribution[0]["labels"]) if distribution else 0,
        distribution=distribution,
        quality=reports.quality(_active_scenario()[1]),
        drift=drift,
        drift_chart=chart,
        dimension=dimension,
        dimensions=runtime.mapping.dimension_names,
        days=days,
    )


def _date_arg(name: str, default: date) -> date:
    raw = request.args.get(name, "")
    try:
        return date.fromisoformat(raw) if raw else default
    except ValueError:
        return default


@bp.get("/service")
def service() -> ResponseReturnValue:
    runtime = _rt()
    today = datetime.now(UTC).date()
    until = _date_arg("to", today)
    since = _date_arg("from", until - timedelta(days=89))
    if since > until:
        since, until = until, since
    dimension = _dimension()
    report = reports.service(
        runtime.store,
        runtime.mapping,
        dimension,
        datetime.combine(since, datetime.min.time(), UTC),
        datetime.combine(until + timedelta(days=1), datetime.min.time(), UTC),
    )
    labels = [r["label"] for r in report["rows"]]

    def hours(key: str) -> list[float | None]:
        return [None if r[key] is None else round(r[key] / 60, 2) for r in report["rows"]]

    def percent(key: str) -> list[float | None]:
        return [None if r[key] is None else round(r[key] * 100, 1) for r in report["rows"]]

    charts = [
        _bars(
            "Median first response and resolution (hours)",
            labels,
            [("first response", hours("first_response_median")), ("resolution", hours("resolution_median"))],
            "h",
        ),
        _bars(
            "CSAT and SLA breach rate (%)",
            labels,
            [("CSAT", percent("csat")), ("SLA breach", percent("sla_breach_rate"))],
            "%",
        ),
    ]
    return render_template(
        "service.html",
        report=report,
        charts=charts,
        dimension=dimension,
        dimensions=runtime.mapping.dimension_names,
        since=since.isoformat(),
        until=until.isoformat(),
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
