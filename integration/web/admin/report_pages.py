"""Admin report pages: decisions (why a ticket was routed so), segments (distribution, drift, quality)
and the service each segment gets.

Routes are on ``pages.bp``, behind its gate.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from integration.web.admin import reports
from integration.web.admin.pages import _active_scenario, _bars, _rt, bp

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
