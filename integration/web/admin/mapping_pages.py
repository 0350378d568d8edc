"""Admin pages for the mapping: the active version, the editor and its draft, published versions
(diff, download, roll back), and the preview and simulate pages that try a mapping before it is published.

Routes are on ``pages.bp``, behind its gate.
"""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from integration.runtime import text_digest
from integration.web.admin import mappings, whatif
from integration.web.admin.pages import _active, _active_scenario, _author, _bars, _error_page, _rt, bp

# -- mapping -----------------------------------------------------------------------------------------


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
