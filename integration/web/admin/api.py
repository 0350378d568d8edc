"""The admin's JSON API under /api (docs/api.md): the same work as the pages, for scripts and tools.

Every call needs ``Authorization: Bearer <TIERDESK_ADMIN_TOKEN>``; without a configured token the API
answers 503. Errors are JSON ``{"error": code, "message": text}`` (mapping errors add line, key and
reason).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

from integration.runtime import Runtime, text_digest
from integration.web.admin import auth, mappings, reports, whatif

bp = Blueprint("admin_api", __name__, url_prefix="/api")

PROBLEM_STATUS = {
    "invalid_mapping": 422,
    "unknown_group": 422,
    "unchanged": 409,
    "not_found": 404,
    "helpdesk_unavailable": 503,
}


def _rt() -> Runtime:
    return current_app.extensions["tierdesk"]


def error(status: int, code: str, message: str, **extra: Any) -> Response:
    """Every API error has the same shape: a stable code for programs and a sentence for people."""
    response = jsonify(error=code, message=message, **extra)
    response.status_code = status
    return response


def _problem(problem: mappings.Problem) -> Response:
    body = problem.to_dict()
    code = body.pop("error")
    message = body.pop("message")
    return error(PROBLEM_STATUS.get(code, 422), code, message, **body)


def _body() -> dict[str, Any]:
    """The request's JSON object; anything else (not JSON, nested past what json can read) is a 400."""
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except RecursionError:
        raise _BadRequest("the body is nested too deeply to read") from None
    except ValueError as e:  # not JSON, not UTF-8, or an integer past Python's 4,300 digits
        why = "a number in it has too many digits" if "digits" in str(e) else str(e)[:120]
        raise _BadRequest(f"the body is not JSON ({why})") from None
    if not isinstance(data, dict):
        raise _BadRequest("the body must be a JSON object")
    return data


class _BadRequest(Exception):
    pass


@bp.errorhandler(_BadRequest)
def bad_request(e: _BadRequest) -> ResponseReturnValue:
    return error(400, "bad_request", str(e))


@bp.before_request
def gate() -> ResponseReturnValue | None:
    runtime = _rt()
    if not runtime.settings.admin_token:
        return error(503, "admin_api_off", "the admin API is off: set TIERDESK_ADMIN_TOKEN to turn it on")
    header = request.headers.get("Authorization", "")
    g.api_identity = auth.bearer_identity(runtime.settings, header)
    if g.api_identity is None:
        # Only bad tokens count, per address, and the valid token was checked first: password failures
        # on the pages, or someone else's guesses from a shared address, never lock the API out.
        failures: auth.Failures = current_app.extensions["tierdesk.admin.failures"]
        key = failures.token_key(request.remote_addr or "-")
        wait = failures.blocked(key) if header else 0.0
        if wait:
            response = error(
                429, "too_many_failures", "too many bad tokens from this address; wait and retry"
            )
            response.headers["Retry-After"] = str(int(wait))
            return response
        if header:  # a guess, not a forgotten header: count it
            failures.add(key)
        response = error(401, "unauthorized", "send the admin token as 'Authorization: Bearer <token>'")
        response.headers["WWW-Authenticate"] = 'Bearer realm="tierdesk admin"'
        return response
    runtime.refresh_mapping()
    return None


@bp.after_request
def no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _author(body: dict[str, Any]) -> str:
    """Who publishes: the identity the credentials prove, never a name the caller writes in the body."""
    if "author" in body:
        raise _BadRequest(
            "'author' is not accepted: a version's author is who the credentials say "
            f"({g.api_identity!r} for the API token); say who asked for the change in 'note'"
        )
    return str(g.api_identity)


def _text(body: dict[str, Any], required: bool = True) -> str | None:
    text = body.get("text")
    if text is None and not required:
        return None
    if not isinstance(text, str):
        raise _BadRequest("give the mapping's YAML text as a string in 'text'")
    return text.replace("\r\n", "\n")


# -- mapping -----------------------------------------------------------------------------------------


@bp.get("/mapping")
def active_mapping() -> ResponseReturnValue:
    version = _rt().store.active_mapping_version()
    if version is None:
        return error(404, "not_found", "no mapping version is recorded")
    return jsonify(
        {**mappings.version_dict(version, text=True), "refit": mappings.refit_status(_rt()).to_dict()}
    )


@bp.get("/mapping/versions")
def versions() -> ResponseReturnValue:
    return jsonify(versions=[mappings.version_dict(v) for v in _rt().store.mapping_versions()])


@bp.get("/mapping/versions/<int:version_id>")
def version(version_id: int) -> ResponseReturnValue:
    store = _rt().store
    found = store.get_mapping_version(version_id)
    if found is None:
        return error(404, "not_found", f"there is no mapping version {version_id}")
    body = mappings.version_dict(found, text=True)
    previous = mappings.previous_version(_rt(), found)
    body["previous_id"] = previous.id if previous else None
    body["diff"] = (
        "\n".join(
            line
            for _, line in mappings.diff(
                previous.text, found.text, f"version {previous.id}", f"version {found.id}"
            )
        )
        if previous
        else None
    )
    return jsonify(body)


@bp.post("/mapping/validate")
def validate() -> ResponseReturnValue:
    text = _text(_body())
    assert text is not None  # noqa: S101 - required
    parsed, problem = mappings.validate(text)
    if parsed is not None:
        problem = mappings.check_groups(_rt(), parsed, text)
    if problem is not None:
        return _problem(problem)
    return jsonify(
        valid=True,
        digest=text_digest(text),
        dimensions=list(parsed.dimension_names) if parsed else [],
        groups=sorted(parsed.groups) if parsed else [],
        slas=sorted(parsed.slas) if parsed else [],
    )


@bp.post("/mapping/versions")
def publish() -> ResponseReturnValue:
    body = _body()
    text = _text(body)
    assert text is not None  # noqa: S101 - required
    note = body.get("note") if isinstance(body.get("note"), str) else ""
    published, problem = mappings.publish(_rt(), text, _author(body), note, source="api")
    if problem is not None:
        return _problem(problem)
    assert published is not None  # noqa: S101
    return jsonify({**mappings.version_dict(published), "refit": mappings.refit_status(_rt()).to_dict()}), 201


@bp.post("/mapping/versions/<int:version_id>/rollback")
def rollback(version_id: int) -> ResponseReturnValue:
    body = _body()
    note = body.get("note") if isinstance(body.get("note"), str) else ""
    published, problem = mappings.rollback(_rt(), version_id, _author(body), note, source="api")
    if problem is not None:
        return _problem(problem)
    assert published is not None  # noqa: S101
    return jsonify({**mappings.version_dict(published), "refit": mappings.refit_status(_rt()).to_dict()}), 201


# -- preview and simulate ----------------------------------------------------------------------------


def _scenarios(
    body: dict[str, Any],
) -> tuple[tuple[str, whatif.Scenario], tuple[str, whatif.Scenario] | None]:
    """The active mapping, and the draft the body carries (``text``) or an earlier ``version``."""
    runtime = _rt()
    active_version = runtime.store.active_mapping_version()
    active = (
        f"active (version {active_version.id if active_version else '?'})",
        whatif.scenario(runtime.store, runtime.mapping, runtime.mapping_digest),
    )
    text = _text(body, required=False)
    if text is not None:
        parsed, problem = mappings.validate(text)
        if problem is not None or parsed is None:
            raise _ProblemError(problem or mappings.Problem("invalid mapping"))
        return active, ("draft", whatif.scenario(runtime.store, parsed, text_digest(text)))
    if body.get("version") is not None:
        try:
            wanted = int(body["version"])
        except (TypeError, ValueError) as e:
            raise _BadRequest("'version' must be a mapping version id") from e
        found = runtime.store.get_mapping_version(wanted)
        if found is None:
            raise _ProblemError(mappings.Problem(f"there is no mapping version {wanted}", error="not_found"))
        parsed, problem = mappings.validate(found.text, f"mapping version {found.id}")
        if problem is not None or parsed is None:
            raise _ProblemError(problem or mappings.Problem("invalid mapping"))
        return active, (f"version {found.id}", whatif.scenario(runtime.store, parsed, found.digest))
    return active, None


class _ProblemError(Exception):
    def __init__(self, problem: mappings.Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


@bp.errorhandler(_ProblemError)
def problem_error(e: _ProblemError) -> ResponseReturnValue:
    return _problem(e.problem)


@bp.get("/customers")
def customers() -> ResponseReturnValue:
    q = request.args.get("q", "")
    limit = max(1, min(100, request.args.get("limit", default=20, type=int) or 20))
    found = _rt().store.search_customers(q, limit=limit)
    return jsonify(customers=[whatif.customer_dict(c) for c in found])


@bp.post("/preview")
def preview() -> ResponseReturnValue:
    body = _body()
    store = _rt().store
    active, draft = _scenarios(body)
    scenarios = [active, draft] if draft else [active]
    if body.get("customer"):
        probe = str(body["customer"])
        customer = store.get_customer(probe) or next(
            (
                c
                for c in store.search_customers(probe, limit=5)
                if probe in (c.external_id, c.key) or (c.email or "").lower() == probe.lower()
            ),
            None,
        )
        if customer is None:
            return error(404, "not_found", f"no stored customer matches {probe!r}")
        return jsonify(whatif.preview(store, scenarios, customer=customer))
    ticket = body.get("ticket")
    if ticket is None:
        raise _BadRequest("give 'customer' (key, id or email) or 'ticket' (a helpdesk ticket object)")
    try:
        parsed = whatif.read_ticket(ticket if isinstance(ticket, str) else _json_text(ticket))
    except whatif.TicketInputError as e:
        raise _BadRequest(str(e)) from e
    return jsonify(whatif.preview(store, scenarios, ticket=parsed))


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value)
    except RecursionError:
        raise _BadRequest("the ticket is nested too deeply to read") from None


@bp.post("/simulate")
def simulate() -> ResponseReturnValue:
    body = _body()
    try:
        days = int(body.get("days", 30))
    except (TypeError, ValueError) as e:
        raise _BadRequest("'days' must be a number of days") from e
    if not 1 <= days <= 365:
        raise _BadRequest("'days' must be between 1 and 365")
    active, candidate = _scenarios(body)
    if candidate is None:
        raise _BadRequest("give the draft mapping as 'text', or an earlier 'version' id, to compare")
    return jsonify(whatif.simulate(_rt().store, active, candidate, days))


# -- decisions, segments, service, queue -------------------------------------------------------------


@bp.get("/decisions")
def decisions() -> ResponseReturnValue:
    limit = max(1, min(500, request.args.get("limit", default=50, type=int) or 50))
    runtime = _rt()
    return jsonify(
        decisions=reports.recent_decisions(runtime.store, limit, runtime.mapping.dimension_names),
        outcomes=runtime.store.decision_outcomes(),
    )


@bp.get("/decisions/<path:ticket_id>")
def decision(ticket_id: str) -> ResponseReturnValue:
    runtime = _rt()
    try:
        found = reports.lookup_decision(
            runtime.store, ticket_id, runtime.mapping.dimension_names, tuple(runtime.connectors)
        )
    except ValueError as e:
        raise _BadRequest(str(e)) from e
    if not found:
        return error(404, "not_found", f"tierdesk knows no ticket {ticket_id!r}")
    return jsonify(tickets=found)


@bp.get("/segments")
def segments() -> ResponseReturnValue:
    runtime = _rt()
    active = whatif.scenario(runtime.store, runtime.mapping, runtime.mapping_digest)
    return jsonify(
        dimensions=reports.distribution(runtime.store, runtime.mapping), quality=reports.quality(active)
    )


def _dimension(value: str | None) -> str:
    names = _rt().mapping.dimension_names
    if value is None and names:
        return names[0]
    if value not in names:
        raise _BadRequest(f"unknown dimension {value!r} (dimensions: {', '.join(names)})")
    return value


@bp.get("/segments/<dimension>/drift")
def drift(dimension: str) -> ResponseReturnValue:
    days = request.args.get("days", default=90, type=int) or 90
    if not 2 <= days <= 730:
        raise _BadRequest("'days' must be between 2 and 730")
    return jsonify(reports.drift(_rt().store, _rt().mapping, _dimension(dimension), days))


def _date(name: str, default: date) -> date:
    raw = request.args.get(name)
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as e:
        raise _BadRequest(f"'{name}' must be a date like 2024-05-31") from e


@bp.get("/service")
def service() -> ResponseReturnValue:
    until = _date("to", datetime.now(UTC).date())
    since = _date("from", until - timedelta(days=89))
    if since > until:
        raise _BadRequest("'from' is after 'to'")
    runtime = _rt()
    return jsonify(
        reports.service(
            runtime.store,
            runtime.mapping,
            _dimension(request.args.get("dimension")),
            datetime.combine(since, datetime.min.time(), UTC),
            datetime.combine(until + timedelta(days=1), datetime.min.time(), UTC),
        )
    )


@bp.get("/queue")
def queue() -> ResponseReturnValue:
    limit = max(1, min(1000, request.args.get("limit", default=100, type=int) or 100))
    return jsonify(reports.queue(_rt().store, limit))


@bp.post("/queue/<int:event_id>/replay")
def replay(event_id: int) -> ResponseReturnValue:
    if not _rt().queue.replay(event_id):
        return error(404, "not_found", f"event {event_id} does not exist or is done")
    return jsonify(replayed=[event_id])


@bp.post("/queue/replay")
def replay_dead() -> ResponseReturnValue:
    body = _body()
    filters = {k: body.get(k) for k in ("source", "error", "ticket")}
    if any(v is not None and not isinstance(v, str) for v in filters.values()):
        raise _BadRequest("'source', 'error' and 'ticket' are text filters")
    ids = _rt().queue.replay_matching(
        source=filters["source"], error_contains=filters["error"], ticket_id=filters["ticket"]
    )
    return jsonify(replayed=ids)
