"""The admin without a browser: sign-in, CSRF and the bearer token; the JSON API; mapping versions.

Flask's test client against a tierdesk synced over real HTTP from the seeded Zendesk sandbox (the
`sandbox` fixture, so every Zendesk request here is checked against Zendesk's OpenAPI description too).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from connectors.zendesk import ZendeskConnector
from integration import scheduler, segment_service
from integration.core.models import TicketEvent
from integration.runtime import Runtime, text_digest
from integration.web.admin import mappings
from integration.web.app import create_app
from integration.worker import Worker
from sandbox.zendesk import ZendeskSandbox
from tests.support import (
    ADMIN_TOKEN,
    BEARER,
    EMAIL,
    PASSWORD,
    ROOT,
    SECRET_KEY,
    TOKEN,
    AdminApp,
    csrf,
    edit,
    sign_in,
    wait_for,
)


def _route(runtime: Runtime, ticket_id: str, delivery: str) -> None:
    runtime.queue.put(TicketEvent("zendesk", delivery, ticket_id), {"ticket_id": ticket_id})
    worker = Worker(runtime, name="api-test")
    while (event := runtime.queue.claim(worker.name)) is not None:
        worker.process(event)


# -- sign-in, sessions, CSRF, bearer token -------------------------------------------------------------


def _page_paths(app: Flask) -> list[str]:
    paths = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or "GET" not in (rule.methods or ()):
            continue
        if rule.endpoint in ("admin.login", "admin.static"):
            continue
        paths.append(re.sub(r"<(?:\w+:)?(\w+)>", "1", rule.rule))
    return paths


def test_every_admin_page_and_api_call_needs_signing_in(admin: AdminApp) -> None:
    paths = _page_paths(admin.app)
    assert len(paths) >= 10
    for path in paths:
        response = admin.client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/admin/login"), path
    for rule in admin.app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            method = next(m for m in sorted(rule.methods or ()) if m not in ("HEAD", "OPTIONS"))
            path = re.sub(r"<(?:\w+:)?(\w+)>", "1", rule.rule)
            response = admin.client.open(path, method=method, json={})
            assert response.status_code == 401, (method, path)
            assert response.json["error"] == "unauthorized"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_token_is_refused_and_the_right_one_works(admin: AdminApp) -> None:
    wrong = admin.client.get("/api/mapping", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert "Bearer" in wrong.json["message"]
    basic = admin.client.get("/api/mapping", headers={"Authorization": f"Basic {ADMIN_TOKEN}"})
    assert basic.status_code == 401
    right = admin.api("GET", "/api/mapping")
    assert right.status_code == 200
    assert right.json["active"] is True
    assert right.headers["Cache-Control"] == "no-store"


def test_sign_in_sets_a_strict_session_cookie_and_sign_out_ends_it(admin: AdminApp) -> None:
    client = admin.client
    refused = sign_in(client, "wrong")
    assert refused.status_code == 401
    assert "Wrong user or password" in refused.get_data(as_text=True)
    signed = sign_in(client)
    assert signed.status_code == 302
    cookie = next(c for c in signed.headers.getlist("Set-Cookie") if c.startswith("tierdesk_admin="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/admin" in cookie
    assert "Expires=" in cookie  # twelve hours, then the signed cookie is refused
    overview = client.get("/admin/")
    assert overview.status_code == 200
    assert overview.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert overview.headers["X-Frame-Options"] == "DENY"
    token = csrf(overview.get_data(as_text=True))
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/").status_code == 302


def test_the_admin_token_also_signs_in_and_the_next_page_must_be_ours(admin: AdminApp) -> None:
    token = csrf(admin.client.get("/admin/login").get_data(as_text=True))
    response = admin.client.post(
        "/admin/login",
        data={"user": "admin", "password": ADMIN_TOKEN, "csrf_token": token, "next": "//evil.example/x"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_every_form_needs_the_csrf_token(admin: AdminApp) -> None:
    client = admin.client
    no_token = client.post("/admin/login", data={"user": "admin", "password": PASSWORD})
    assert no_token.status_code == 400
    assert "CSRF" in no_token.get_data(as_text=True)
    sign_in(client)
    text = admin.runtime.store.active_mapping_version().text
    forged = client.post(
        "/admin/mapping/edit", data={"text": text + "\n# changed\n", "action": "publish", "csrf_token": "x"}
    )
    assert forged.status_code == 400
    assert admin.runtime.store.active_mapping_version().id == 1
    dead = client.post("/admin/queue/replay-dead", data={})
    assert dead.status_code == 400


def test_changing_the_password_signs_everyone_out(admin: AdminApp) -> None:
    sign_in(admin.client)
    assert admin.client.get("/admin/").status_code == 200
    rotated = replace(admin.runtime.settings, admin_password="a-new-password")
    other = create_app(runtime=replace(admin.runtime, settings=rotated))
    client = other.test_client()
    cookie = admin.client.get_cookie("tierdesk_admin", path="/admin")
    assert cookie is not None
    client.set_cookie("tierdesk_admin", cookie.value, path="/admin")  # the same browser, after the change
    assert client.get("/admin/").status_code == 302


def test_repeated_failed_sign_ins_are_slowed_down(admin: AdminApp) -> None:
    for _ in range(10):
        assert sign_in(admin.client, "wrong").status_code == 401
    assert sign_in(admin.client).status_code == 429


def _sign_in_as(client: FlaskClient, user: str, password: str, **headers: str) -> int:
    token = csrf(client.get("/admin/login", headers=headers).get_data(as_text=True))
    data = {"user": user, "password": password, "csrf_token": token}
    return client.post("/admin/login", data=data, headers=headers).status_code


def _client_at(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_wrong_passwords_lock_out_only_that_user_at_that_address(admin: AdminApp) -> None:
    attacker = _client_at(admin.app, "198.51.100.7")
    tries = [_sign_in_as(attacker, "admin", f"guess-{n}") for n in range(12)]
    assert tries == [401] * 10 + [429] * 2
    assert _sign_in_as(attacker, "admin", PASSWORD) == 429  # the right password too, from there
    assert _sign_in_as(attacker, "ops", "guess") == 401  # another user name: its own count
    assert _sign_in_as(_client_at(admin.app, "198.51.100.8"), "admin", PASSWORD) == 302  # the real admin
    # the API token works from the very address that guessed passwords
    assert attacker.get("/api/mapping", headers=BEARER).status_code == 200
    # bad tokens are throttled per address; the valid token never is
    bad = [attacker.get("/api/mapping", headers={"Authorization": f"Bearer x{n}"}) for n in range(12)]
    assert [r.status_code for r in bad] == [401] * 10 + [429] * 2
    assert int(bad[-1].headers["Retry-After"]) > 0
    assert attacker.get("/api/mapping", headers=BEARER).status_code == 200
    assert (
        _client_at(admin.app, "198.51.100.9")
        .get("/api/mapping", headers={"Authorization": "Bearer y"})
        .status_code
        == 401
    )


def test_a_successful_sign_in_forgets_earlier_typos(admin: AdminApp) -> None:
    client = _client_at(admin.app, "198.51.100.10")
    assert [_sign_in_as(client, "admin", "typo") for _ in range(9)] == [401] * 9
    assert _sign_in_as(client, "admin", PASSWORD) == 302
    later = _client_at(admin.app, "198.51.100.10")  # signed out, say, the next morning
    assert [_sign_in_as(later, "admin", "typo") for _ in range(9)] == [401] * 9


def test_the_sign_in_throttle_is_shared_by_every_process(admin: AdminApp) -> None:
    """gunicorn runs several processes: guesses spread over them must count together."""
    settings = admin.runtime.settings
    env = {
        **os.environ,
        "TIERDESK_DB": settings.db,
        "TIERDESK_ZENDESK_URL": settings.zendesk_url or "",
        "TIERDESK_ZENDESK_EMAIL": settings.zendesk_email or "",
        "TIERDESK_ZENDESK_TOKEN": settings.zendesk_token or "",
        "TIERDESK_ZENDESK_WEBHOOK_SECRET": settings.zendesk_webhook_secret or "",
        "TIERDESK_ADMIN_PASSWORD": PASSWORD,
        "TIERDESK_SECRET_KEY": SECRET_KEY,
        "TIERDESK_LOG_LEVEL": "ERROR",
    }
    other_process = """
import re
from integration.web.app import create_app
client = create_app().test_client()
client.environ_base["REMOTE_ADDR"] = "198.51.100.20"
for n in range(10):
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    data = {"user": "admin", "password": f"guess-{n}", "csrf_token": token}
    print(client.post("/admin/login", data=data).status_code)
"""
    done = subprocess.run(  # noqa: S603 - a fixed program under this interpreter
        [sys.executable, "-c", other_process], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["401"] * 10
    here = _client_at(admin.app, "198.51.100.20")
    assert _sign_in_as(here, "admin", PASSWORD) == 429
    another = create_app(runtime=Runtime.from_settings(settings))  # a third process, as it were
    assert _sign_in_as(_client_at(another, "198.51.100.20"), "admin", PASSWORD) == 429
    assert _sign_in_as(_client_at(another, "198.51.100.21"), "admin", PASSWORD) == 302


@pytest.mark.parametrize("hops", [0, 1])
def test_behind_a_configured_proxy_the_client_address_comes_from_x_forwarded_for(
    admin: AdminApp, hops: int
) -> None:
    app = create_app(
        runtime=replace(admin.runtime, settings=replace(admin.runtime.settings, proxy_hops=hops))
    )
    proxy = _client_at(app, "10.0.0.2")  # every request arrives from the proxy
    guesser = {"X-Forwarded-For": "203.0.113.7"}
    assert [_sign_in_as(proxy, "admin", "guess", **guesser) for _ in range(10)] == [401] * 10
    real_admin = _sign_in_as(
        _client_at(app, "10.0.0.2"), "admin", PASSWORD, **{"X-Forwarded-For": "203.0.113.8"}
    )
    # with the proxy configured each client has its own count; without it, everyone shares the proxy's
    assert real_admin == (302 if hops else 429)
    spoofed = {"X-Forwarded-For": "192.0.2.1, 203.0.113.7"}  # a client cannot pick its own address
    assert _sign_in_as(proxy, "admin", PASSWORD, **spoofed) == 429


@pytest.mark.parametrize(
    ("changes", "status", "says"),
    [
        ({"secret_key": None}, 503, "TIERDESK_SECRET_KEY"),
        ({"admin_password": None, "admin_token": None}, 503, "TIERDESK_ADMIN_PASSWORD"),
    ],
)
def test_the_admin_stays_closed_without_its_settings(
    admin: AdminApp, changes: dict[str, Any], status: int, says: str
) -> None:
    app = create_app(runtime=replace(admin.runtime, settings=replace(admin.runtime.settings, **changes)))
    response = app.test_client().get("/admin/login")
    assert response.status_code == status
    assert says in response.get_data(as_text=True)


def test_the_api_is_off_without_a_token(admin: AdminApp) -> None:
    app = create_app(
        runtime=replace(admin.runtime, settings=replace(admin.runtime.settings, admin_token=None))
    )
    response = app.test_client().get("/api/mapping", headers=BEARER)
    assert response.status_code == 503
    assert response.json["error"] == "admin_api_off"


def test_insecure_dev_serves_pages_without_a_secret_key(admin: AdminApp) -> None:
    settings = replace(admin.runtime.settings, secret_key=None, insecure_dev=True)
    client = create_app(runtime=replace(admin.runtime, settings=settings)).test_client()
    assert sign_in(client).status_code == 302
    assert client.get("/admin/queue").status_code == 200


# -- mapping versions ----------------------------------------------------------------------------------


def test_validate_names_line_key_and_reason(admin: AdminApp) -> None:
    text = admin.runtime.store.active_mapping_version().text
    broken = edit(text, "revenue_12m: 0.4", "revenue_12m: lots")
    line = next(i for i, row in enumerate(broken.splitlines(), start=1) if "revenue_12m: lots" in row)
    response = admin.api("POST", "/api/mapping/validate", {"text": broken})
    assert response.status_code == 422
    assert response.json["error"] == "invalid_mapping"
    assert response.json["line"] == line
    assert response.json["key"] == "segments.tier.weights.revenue_12m"
    assert "number" in response.json["reason"]
    assert admin.api("POST", "/api/mapping/versions", {"text": broken}).status_code == 422
    ok = admin.api("POST", "/api/mapping/validate", {"text": text})
    assert ok.status_code == 200
    assert ok.json["valid"] is True
    assert "Key Accounts" in ok.json["groups"]


def test_a_group_the_helpdesk_lacks_is_refused_at_its_line(admin: AdminApp) -> None:
    text = admin.runtime.store.active_mapping_version().text
    draft = edit(text, 'set: {group: "Onboarding"}', 'set: {group: "No Such Team"}')
    response = admin.api("POST", "/api/mapping/versions", {"text": draft, "note": "typo"})
    assert response.status_code == 422
    assert response.json["error"] == "unknown_group"
    assert "No Such Team" in response.json["message"]
    assert draft.splitlines()[response.json["line"] - 1].strip() == 'set: {group: "No Such Team"}'
    assert admin.runtime.store.active_mapping_version().id == 1


def test_publish_reaches_every_process_and_rollback_adds_a_version(admin: AdminApp) -> None:
    rt = admin.runtime
    other = Runtime.from_settings(rt.settings)  # another process: a worker, say
    original = rt.store.active_mapping_version()
    draft = edit(original.text, 'set: {group: "Onboarding"}', 'set: {priority: urgent, group: "Onboarding"}')
    published = admin.api("POST", "/api/mapping/versions", {"text": draft, "note": "rush new ones"})
    assert published.status_code == 201
    assert published.json == {
        **published.json,
        "id": 2,
        "author": "api",
        "note": "rush new ones",
        "active": True,
    }
    assert rt.mapping_digest == published.json["digest"]  # this process switched at once
    assert other.mapping_digest == original.digest
    assert other.refresh_mapping() is True  # the other before its next event
    assert other.mapping_digest == published.json["digest"]
    assert other.mapping.routing[-1].sets.priority == "urgent"
    again = admin.api("POST", "/api/mapping/versions", {"text": draft})
    assert again.status_code == 409
    listed = admin.api("GET", "/api/mapping/versions").json["versions"]
    assert [v["id"] for v in listed] == [2, 1]
    detail = admin.api("GET", "/api/mapping/versions/2").json
    assert "+    set: {priority: urgent" in detail["diff"]
    back = admin.api("POST", "/api/mapping/versions/1/rollback", {"note": "too noisy"})
    assert back.status_code == 201
    assert back.json["id"] == 3
    assert back.json["note"] == "roll back to version 1: too noisy"
    assert rt.store.active_mapping_version().text == original.text
    assert rt.mapping_digest == original.digest
    assert admin.api("POST", "/api/mapping/versions/99/rollback").status_code == 404
    other.store.close()


def _tier_a(runtime: Runtime) -> int:
    return runtime.store.segment_distribution()["tier"].get("A", 0)


def test_publish_only_stores_the_version_and_the_refit_job_recomputes_segments(admin: AdminApp) -> None:
    rt = admin.runtime
    original = rt.store.active_mapping_version()
    a_before = _tier_a(rt)
    draft = edit(original.text, "A: 7", "A: 6")  # a lower cut-off for tier A: more customers in it
    published = admin.api("POST", "/api/mapping/versions", {"text": draft, "note": "wider A"})
    assert published.status_code == 201
    assert published.json["refit"]["status"] == "pending"
    assert rt.mapping_digest == published.json["digest"]  # routes with the new version at once
    # ... but nobody's segments were recomputed inside the request
    assert rt.store.model_digest(segment_service.MODEL)[0] == original.digest
    assert _tier_a(rt) == a_before
    assert admin.api("GET", "/api/mapping").json["refit"] == {
        "status": "pending",
        "version": 2,
        "fitted_at": rt.store.model_digest(segment_service.MODEL)[1],
    }
    sign_in(admin.client)
    assert 'data-refit="pending"' in admin.client.get("/admin/mapping").get_data(as_text=True)

    counts = scheduler.refit_if_pending(rt)  # the scheduler's look: the job runs under the sync lock
    assert counts is not None
    assert counts["customers"] == rt.store.count("customers")
    assert counts["digest"] == published.json["digest"]
    assert rt.store.model_digest(segment_service.MODEL)[0] == published.json["digest"]
    assert _tier_a(rt) > a_before
    assert admin.api("GET", "/api/mapping").json["refit"]["status"] == "done"
    assert 'data-refit="done"' in admin.client.get("/admin/mapping").get_data(as_text=True)
    (run,) = [r for r in rt.store.list_job_runs() if r["job"] == "refit"]
    assert run["status"] == "done"
    assert scheduler.refit_if_pending(rt) is None  # nothing to do: no run, one read
    assert len([r for r in rt.store.list_job_runs() if r["job"] == "refit"]) == 1


def test_the_refit_waits_while_a_sync_holds_the_lock(admin: AdminApp) -> None:
    rt = admin.runtime
    draft = edit(rt.store.active_mapping_version().text, "A: 7", "A: 6")
    assert admin.api("POST", "/api/mapping/versions", {"text": draft}).status_code == 201
    assert rt.store.acquire_lock(scheduler.lock_name("sync"), "another-scheduler", 60)
    assert scheduler.refit_if_pending(rt) is None
    assert admin.api("GET", "/api/mapping").json["refit"]["status"] == "pending"
    rt.store.release_lock(scheduler.lock_name("sync"), "another-scheduler")
    assert scheduler.refit_if_pending(rt) is not None
    assert admin.api("GET", "/api/mapping").json["refit"]["status"] == "done"


def test_a_version_this_process_cannot_read_is_not_refitted_over_and_over(admin: AdminApp) -> None:
    """Published by a tierdesk whose validation differed (a deploy in progress): fitting the old mapping
    would leave the refit pending and run a full recompute every few seconds."""
    rt = admin.runtime
    unreadable = rt.store.active_mapping_version().text + "\ntags: {routed: vip}\n"
    rt.store.publish_mapping_version(unreadable, text_digest(unreadable), "file", "older code", "x.yaml")
    for _ in range(3):
        assert scheduler.refit_if_pending(rt) is None
    assert [r for r in rt.store.list_job_runs() if r["job"] == "refit"] == []
    assert mappings.refit_status(rt).status == "pending"


def test_a_running_scheduler_refits_a_published_version_within_its_interval(admin: AdminApp) -> None:
    process = Runtime.from_settings(replace(admin.runtime.settings, refit_interval=0.2))  # the scheduler's
    jobs = scheduler.build(process, blocking=False)
    for name in ("sync", "recompute", "sweep"):  # only the refit job, so it is the one that does it
        jobs.remove_job(name)
    jobs.start()
    try:
        draft = edit(admin.runtime.store.active_mapping_version().text, "A: 7", "A: 6")
        published = admin.api("POST", "/api/mapping/versions", {"text": draft})
        assert published.json["refit"]["status"] == "pending"
        wait_for(
            lambda: admin.api("GET", "/api/mapping").json["refit"]["status"] == "done",
            "the scheduler's refit job to run",
            15,
            interval=0.1,
        )
        assert process.mapping_digest == published.json["digest"]
    finally:
        jobs.shutdown(wait=True)
        process.store.close()


def test_the_author_of_a_version_is_who_the_credentials_prove(admin: AdminApp) -> None:
    text = admin.runtime.store.active_mapping_version().text
    draft = edit(text, 'set: {group: "Onboarding"}', 'set: {priority: high, group: "Onboarding"}')
    claimed = admin.api("POST", "/api/mapping/versions", {"text": draft, "author": "ceo"})
    assert claimed.status_code == 400
    assert "author" in claimed.json["message"]
    assert admin.runtime.store.active_mapping_version().id == 1  # refused whole: nothing published
    published = admin.api("POST", "/api/mapping/versions", {"text": draft, "note": "asked by ana"})
    assert published.status_code == 201
    assert admin.runtime.store.get_mapping_version(published.json["id"]).author == "api"
    back = admin.api("POST", "/api/mapping/versions/1/rollback", {"author": "ceo"})
    assert back.status_code == 400
    rolled = admin.api("POST", "/api/mapping/versions/1/rollback", {})
    assert rolled.json["author"] == "api"
    assert [v.author for v in admin.runtime.store.mapping_versions()] == ["api", "api", "file"]


def test_a_restart_keeps_the_published_version_unless_the_file_changed(
    admin: AdminApp, tmp_path: Path
) -> None:
    rt = admin.runtime
    text = rt.store.active_mapping_version().text
    draft = edit(text, 'set: {group: "Onboarding"}', 'set: {priority: high, group: "Onboarding"}')
    assert admin.api("POST", "/api/mapping/versions", {"text": draft}).status_code == 201
    restarted = Runtime.from_settings(rt.settings)  # same, unchanged file
    assert restarted.mapping_digest == rt.mapping_digest
    assert restarted.store.active_mapping_version().id == 2
    changed = tmp_path / "deployed.yaml"
    changed.write_text(text + "# deployed with a comment\n")
    deployed = Runtime.from_settings(
        replace(rt.settings, mappings=str(changed))
    )  # a deploy brings a new file
    version = deployed.store.active_mapping_version()
    assert (version.id, version.author, version.source) == (3, "file", str(changed))
    assert rt.refresh_mapping() is True
    restarted.store.close()
    deployed.store.close()


def test_the_editor_shows_the_error_at_its_line_then_publishes(admin: AdminApp) -> None:
    client = admin.client
    sign_in(client)
    page = client.get("/admin/mapping/edit").get_data(as_text=True)
    text = admin.runtime.store.active_mapping_version().text
    broken = edit(text, "B: 5", "B: eleven")
    line = next(i for i, row in enumerate(broken.splitlines(), start=1) if "B: eleven" in row)
    shown = client.post(
        "/admin/mapping/edit", data={"text": broken, "action": "check", "csrf_token": csrf(page)}
    )
    assert shown.status_code == 422
    html = shown.get_data(as_text=True)
    assert f"Line {line}" in html
    assert f'data-error-line="{line}"' in html
    assert re.search(r'class="here"><span class="ln">' + str(line) + r"</span>\s*B: eleven", html)
    assert admin.runtime.store.mapping_draft("admin")[0] == broken  # work is never lost
    fixed = edit(text, "B: 5", "B: 4.5")
    published = client.post(
        "/admin/mapping/edit",
        data={"text": fixed, "action": "publish", "note": "wider B", "csrf_token": csrf(page)},
    )
    assert published.status_code == 302
    version = admin.runtime.store.active_mapping_version()
    assert (version.id, version.author, version.note, version.text) == (2, "admin", "wider B", fixed)
    assert admin.runtime.store.mapping_draft("admin") is None


# -- preview, simulate ---------------------------------------------------------------------------------


def test_preview_a_customer_with_the_active_mapping_and_a_draft(admin: AdminApp) -> None:
    customer = admin.runtime.store.get_customer(f"zendesk:user:{admin.summary.customer_ids[0]}")
    assert customer is not None
    found = admin.api("GET", f"/api/customers?q={customer.email.split('@')[0]}").json["customers"]
    assert customer.key in [c["key"] for c in found]
    text = admin.runtime.store.active_mapping_version().text
    draft = edit(
        text,
        'default: {priority: normal, sla: standard, group: "General"}',
        'default: {priority: low, sla: standard, group: "General"}',
    )
    response = admin.api("POST", "/api/preview", {"customer": customer.email, "text": draft})
    assert response.status_code == 200
    body = response.json
    assert [r["name"] for r in body["results"]] == ["active (version 1)", "draft"]
    active = body["results"][0]
    assert [s["dimension"] for s in active["segments"]] == list(admin.runtime.mapping.dimension_names)
    assert all(s["reasons"] for s in active["segments"] if s["label"])
    assert {"priority", "sla", "group", "tags", "note", "reasons"} <= set(active["decision"])
    if active["decision"]["priority"] == "normal":  # routed by the default: the draft lowers it
        assert "priority" in body["changed"]
        assert body["results"][1]["decision"]["priority"] == "low"


def test_preview_a_pasted_ticket_from_someone_we_never_saw(admin: AdminApp) -> None:
    ticket = {"ticket": {"id": 77, "subject": "Help", "requester": {"email": "boss@vip-customer.example"}}}
    response = admin.api("POST", "/api/preview", {"ticket": ticket})
    assert response.status_code == 200
    body = response.json
    assert body["known"] is False
    vip = next(s for s in body["results"][0]["segments"] if s["dimension"] == "vip")
    assert vip["label"] == "vip"  # the domain list matches, with its reason
    assert body["results"][0]["decision"]["priority"] == "urgent"
    bad = admin.api("POST", "/api/preview", {"ticket": {"subject": "no requester"}})
    assert bad.status_code == 400
    assert "requester" in bad.json["message"]


def test_simulate_counts_before_and_after_and_lists_the_moves(admin: AdminApp) -> None:
    text = admin.runtime.store.active_mapping_version().text
    draft = edit(text, 'set: {group: "Retention"}', 'set: {group: "Retention", priority: urgent}')
    body = admin.api("POST", "/api/simulate", {"text": draft, "days": 365}).json
    assert body["tickets"] > 0
    for name in ("priority", "sla", "group"):
        assert sum(r["before"] for r in body["counts"][name]) == body["tickets"]
        assert sum(r["after"] for r in body["counts"][name]) == body["tickets"]
    assert body["counts"]["sla"] == [{**r, "delta": 0} for r in body["counts"]["sla"]]
    for move in body["moves"]:
        assert move["changed"] == ["priority"]
        assert move["after"]["priority"] == "urgent"
        assert any("routing rule 5" in why for why in move["why"])
    assert body["moved"] == len(body["moves"])
    assert admin.api("POST", "/api/simulate", {"days": 30}).status_code == 400
    assert admin.api("POST", "/api/simulate", {"text": "segments: [", "days": 30}).status_code == 422


def _hostile_drafts(text: str) -> dict[str, str]:
    return {
        "deep": "segments: " + "[" * 5000 + "]" * 5000,
        "digits": edit(text, "revenue_12m: 0.4", "revenue_12m: " + "9" * 5000),
        "date": edit(text, "revenue_12m: 0.4", "revenue_12m: 2024-02-30"),
    }


@pytest.mark.parametrize("case", ["deep", "digits", "date"])
def test_hostile_mappings_get_a_4xx_with_a_message_everywhere(admin: AdminApp, case: str) -> None:
    draft = _hostile_drafts(admin.runtime.store.active_mapping_version().text)[case]
    customer = f"zendesk:user:{admin.summary.customer_ids[0]}"
    for path, body in (
        ("/api/mapping/validate", {"text": draft}),
        ("/api/mapping/versions", {"text": draft}),
        ("/api/preview", {"customer": customer, "text": draft}),
        ("/api/simulate", {"text": draft, "days": 30}),
    ):
        response = admin.api("POST", path, body)
        assert response.status_code == 422, (path, response.get_data(as_text=True)[:300])
        assert response.json["error"] == "invalid_mapping"
        assert response.json["line"] == (1 if case == "deep" else 45)
    assert admin.runtime.store.active_mapping_version().id == 1
    # the same text saved as a draft in the editor is marked invalid; preview and simulate go on without it
    client = admin.client
    sign_in(client)
    page = client.get("/admin/mapping/edit").get_data(as_text=True)
    saved = client.post(
        "/admin/mapping/edit", data={"text": draft, "action": "check", "csrf_token": csrf(page)}
    )
    assert saved.status_code == 422
    assert admin.runtime.store.mapping_draft("admin")[0] == draft  # kept, never lost
    preview = client.get(f"/admin/preview?customer={customer}&mapping=both")
    assert preview.status_code == 200
    html = preview.get_data(as_text=True)
    assert "Your draft does not validate" in html
    assert "active (version 1)" in html
    assert "your draft</th>" not in html
    assert "your draft</h" not in html
    simulate = client.get("/admin/simulate?mapping=draft&run=1")
    assert simulate.status_code == 200
    assert 'class="problem"' in simulate.get_data(as_text=True)
    assert "would move" not in simulate.get_data(as_text=True)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"ticket": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"ticket": {"id": ' + "9" * 5000 + "}}", "too many digits"),
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_unreadable_api_bodies_are_a_400_with_a_message(admin: AdminApp, body: str, says: str) -> None:
    for path in ("/api/preview", "/api/simulate", "/api/mapping/validate"):
        response = admin.client.post(path, data=body, headers={**BEARER, "Content-Type": "application/json"})
        assert response.status_code == 400, (path, response.get_data(as_text=True)[:300])
        assert response.json["error"] == "bad_request"
        assert says in response.json["message"]


def test_a_deeply_nested_ticket_is_a_400_on_the_page_and_in_the_api(admin: AdminApp) -> None:
    deep = '{"ticket": ' + "[" * 5000 + "]" * 5000 + "}"  # past json's recursion, under the body limit
    in_api = admin.api("POST", "/api/preview", {"ticket": deep})
    assert in_api.status_code == 400
    assert "nested too deeply" in in_api.json["message"]
    client = admin.client
    sign_in(client)
    page = client.get("/admin/preview").get_data(as_text=True)
    pasted = client.post("/admin/preview", data={"ticket": deep, "csrf_token": csrf(page)})
    assert pasted.status_code == 400
    assert "nested too deeply" in pasted.get_data(as_text=True)


# -- decisions, queue, segments, service -----------------------------------------------------------------


def test_decision_lookup_says_what_when_why_and_what_the_helpdesk_answered(admin: AdminApp) -> None:
    zendesk = ZendeskConnector(admin.sandbox.base_url, EMAIL, TOKEN)
    ticket = zendesk.create_ticket(str(admin.summary.customer_ids[1]), "Where is my invoice?", "Please")
    _route(admin.runtime, ticket.external_id, "api-test-1")
    body = admin.api("GET", f"/api/decisions/{ticket.external_id}").json
    (item,) = body["tickets"]
    decision = item["decision"]
    assert decision["outcome"] == "applied"
    assert decision["decided_at"]
    assert len(decision["reasons"]) == 3  # one per field: priority, SLA, group
    assert decision["segments"][0]["dimension"] == admin.runtime.mapping.dimension_names[0]
    assert decision["helpdesk_answer"]["ticket_id"] == int(ticket.external_id)
    assert item["events"][0]["status"] == "done"
    missing = admin.api("GET", "/api/decisions/424242")
    assert missing.status_code == 404
    assert missing.json["error"] == "not_found"


def test_dead_events_are_listed_and_replayed(admin: AdminApp) -> None:
    _route(admin.runtime, "424242", "api-test-dead")  # Zendesk has no such ticket: dead at once
    queue = admin.api("GET", "/api/queue").json
    (dead,) = queue["dead"]
    assert "no longer exists" in dead["last_error"]
    replayed = admin.api("POST", f"/api/queue/{dead['id']}/replay")
    assert replayed.json == {"replayed": [dead["id"]]}
    assert admin.runtime.store.get_event(dead["id"]).status == "pending"
    assert admin.api("POST", "/api/queue/9999/replay").status_code == 404
    assert admin.api("POST", "/api/queue/replay", {"error": "nothing like this"}).json == {"replayed": []}


def test_the_dead_letter_ticket_filter_matches_the_id_as_text(admin: AdminApp) -> None:
    for ticket in ("424241", "424242"):
        _route(admin.runtime, ticket, f"api-test-dead-{ticket}")  # no such tickets: dead at once
    dead = {e["ticket"]: e["id"] for e in admin.api("GET", "/api/queue").json["dead"]}
    assert len(dead) == 2
    for pattern in ("%", "42424_", "%2", "\\"):
        replayed = admin.api("POST", "/api/queue/replay", {"ticket": pattern})
        assert replayed.json == {"replayed": []}, pattern
    assert admin.api("POST", "/api/queue/replay", {"ticket": "424242"}).json == {"replayed": [dead["424242"]]}


@pytest.mark.parametrize(
    "target",
    [
        "/admin/\r\nSet-Cookie: x=1",
        "/admin/queue\n",
        "/admin/\t/evil.example",
        "/admin\\..\\evil",
        "//evil.example",
    ],
)
def test_a_next_address_with_line_breaks_or_foreign_parts_goes_to_the_overview(
    admin: AdminApp, target: str
) -> None:
    token = csrf(admin.client.get("/admin/login").get_data(as_text=True))
    response = admin.client.post(
        "/admin/login", data={"user": "admin", "password": PASSWORD, "csrf_token": token, "next": target}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    assert "x=1" not in str(response.headers)
    again = admin.client.get("/admin/login", query_string={"next": target})  # signed in: straight on
    assert (again.status_code, again.headers["Location"]) == (302, "/admin/")
    fine = admin.client.get("/admin/login", query_string={"next": "/admin/queue?status=dead"})
    assert fine.headers["Location"] == "/admin/queue?status=dead"


def test_the_overview_warns_when_acknowledged_webhooks_are_not_being_moved(admin: AdminApp) -> None:
    sign_in(admin.client)
    inbox = admin.runtime.queue.inbox
    inbox.append("zendesk", "waiting-1", "zendesk:ticket:1", {})
    assert "still waiting in the inbox" not in admin.client.get("/admin/").get_data(as_text=True)
    path = next(inbox.directory.glob("*.jsonl"))
    stale = json.dumps([time.time() - 300, "zendesk", "waiting-2", "zendesk:ticket:2", {}])
    path.write_text(stale + "\n")  # as if acknowledged five minutes ago with no worker running since
    page = admin.client.get("/admin/").get_data(as_text=True)
    assert "still waiting in the inbox" in page
    assert "tierdesk worker" in page


def test_segments_distribution_quality_and_drift(admin: AdminApp) -> None:
    body = admin.api("GET", "/api/segments").json
    tier = next(d for d in body["dimensions"] if d["dimension"] == "tier")
    assert sum(row["customers"] for row in tier["labels"]) == admin.summary.customers
    assert body["quality"]["customers"] == admin.summary.customers
    drift = admin.api("GET", "/api/segments/tier/drift?days=30").json
    assert len(drift["days"]) == 30
    now = {row["label"] or "(none)": row["customers"] for row in tier["labels"]}
    for series in drift["series"]:
        assert series["values"][-1] == now.get(series["label"], 0)  # today: the stored counts
        if series["label"] != "(none)":  # before the first recompute (today) nobody had a tier
            assert set(series["values"][:-1]) == {0}
    assert admin.api("GET", "/api/segments/nope/drift").status_code == 400


def test_service_per_segment_from_the_helpdesk_ticket_metrics(admin: AdminApp) -> None:
    rows = list(
        admin.runtime.store.db.query("SELECT * FROM tickets WHERE first_response_minutes IS NOT NULL")
    )
    assert rows, "the ticket export sideloads metric sets"
    assert any(r["resolution_minutes"] is not None and r["solved_at"] for r in rows)
    body = admin.api("GET", "/api/service?dimension=tier&from=2000-01-01").json
    assert body["has_targets"] is True
    assert sum(r["tickets"] for r in body["rows"]) == body["all"]["tickets"] == admin.summary.tickets
    measured = [r for r in body["rows"] if r["first_response_median"] is not None]
    assert measured
    assert all(0 <= r["sla_breach_rate"] <= 1 for r in measured if r["sla_breach_rate"] is not None)
    assert admin.api("GET", "/api/service?from=bad").status_code == 400


def test_service_without_sla_targets_says_so(admin: AdminApp, tmp_path: Path) -> None:
    text = admin.runtime.store.active_mapping_version().text
    start = text.index("slas:")
    end = text.index("tags:", start)
    assert admin.api("POST", "/api/mapping/versions", {"text": text[:start] + text[end:]}).status_code == 201
    body = admin.api("GET", "/api/service?dimension=tier&from=2000-01-01").json
    assert body["has_targets"] is False
    assert all(r["sla_breach_rate"] is None for r in body["rows"])
    sign_in(admin.client)
    assert "no targets" in admin.client.get("/admin/service").get_data(as_text=True)


# -- the API is documented, and its errors are JSON ------------------------------------------------------


def test_every_api_call_is_documented_in_docs_api_md(admin: AdminApp) -> None:
    doc = (ROOT / "docs" / "api.md").read_text()
    for rule in admin.app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            assert f"`{method} {path}`" in doc, f"{method} {path} is not in docs/api.md"


def test_api_errors_are_json_with_a_message(admin: AdminApp) -> None:
    not_json = admin.client.post(
        "/api/mapping/validate", data="[1, 2", headers={**BEARER, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json["message"]
    missing = admin.api("POST", "/api/mapping/validate", {})
    assert missing.status_code == 400
    assert "text" in missing.json["message"]
    unknown = admin.api("GET", "/api/mapping/versions/42")
    assert unknown.status_code == 404
    assert unknown.json["error"] == "not_found"


@pytest.mark.slow
def test_the_demo_ends_with_the_admin_address_and_sign_in() -> None:
    from integration.cli.demo import run

    lines: list[str] = []
    assert run(customers=150, tickets=5, seed=3, echo=lines.append, serve=False) == 0
    admin_line = next(line for line in lines if line.startswith("Admin: "))
    assert re.fullmatch(r"Admin: http://127\.0\.0\.1:\d+/admin/ \(user admin, password \S{8,}\)", admin_line)
    assert any(
        re.match(
            r'Admin API: curl -H "Authorization: Bearer \S{16,}" http://127\.0\.0\.1:\d+/api/segments', x
        )
        for x in lines
    )
    assert "--serve" in lines[-1]


def test_zendesk_metric_sets_give_first_reply_and_resolution_times(sandbox: ZendeskSandbox) -> None:
    """The sandbox keeps a ticket's metric set as agents work it; the connector maps it onto Ticket."""
    zendesk = ZendeskConnector(sandbox.base_url, EMAIL, TOKEN)
    requester = sandbox.add_user("Rita Requester", "rita@example.com")["id"]
    ticket = zendesk.create_ticket(str(requester), "Refund", "Please refund me")
    zendesk.http.put(
        f"/api/v2/tickets/{ticket.external_id}",
        {"ticket": {"status": "solved", "comment": {"body": "Refunded.", "public": True}}},
    )
    pulled = [t for batch in zendesk.pull("tickets", None) for t in batch.records]
    (record,) = [t for t in pulled if t.external_id == ticket.external_id]
    assert record.first_response_minutes is not None
    assert record.resolution_minutes is not None
    assert record.solved_at is not None
    assert record.first_response_minutes <= record.resolution_minutes


def test_a_worker_in_another_process_routes_with_the_published_version(admin: AdminApp) -> None:
    worker_runtime = Runtime.from_settings(admin.runtime.settings)  # started before the publish
    store = admin.runtime.store
    requester = next(
        key
        for key in (f"zendesk:user:{i}" for i in admin.summary.customer_ids)
        if "priority normal: default"
        in admin.api("POST", "/api/preview", {"customer": key}).json["results"][0]["decision"]["reasons"]
    )
    text = store.active_mapping_version().text
    lower = edit(text, "default: {priority: normal,", "default: {priority: low,")
    assert admin.api("POST", "/api/mapping/versions", {"text": lower}).status_code == 201
    zendesk = ZendeskConnector(admin.sandbox.base_url, EMAIL, TOKEN)
    ticket = zendesk.create_ticket(requester.rsplit(":", 1)[1], "Question", "Hello")
    _route(worker_runtime, ticket.external_id, "api-test-after-publish")
    decision = store.get_decision(ticket.key)
    assert decision is not None
    assert decision.priority == "low"
    assert "priority low: default" in decision.reasons
    worker_runtime.store.close()


def test_after_a_publish_webhooks_route_with_the_last_model_until_the_refit_job_runs(
    admin: AdminApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first webhook after a publish does not pay for the whole population: it classifies with the
    last fitted model (and says which), and only the refit job recomputes."""
    rt = admin.runtime
    recomputes: list[str] = []
    recompute = segment_service.recompute

    def counted(*args: Any, **kwargs: Any) -> segment_service.RecomputeReport:
        recomputes.append(args[2])  # the digest it fits for
        return recompute(*args, **kwargs)

    monkeypatch.setattr(segment_service, "recompute", counted)
    original = rt.store.active_mapping_version()
    draft = edit(original.text, "A: 7", "A: 6")
    published = admin.api("POST", "/api/mapping/versions", {"text": draft, "note": "wider A"}).json
    zendesk = ZendeskConnector(admin.sandbox.base_url, EMAIL, TOKEN)
    requesters = [str(i) for i in admin.summary.customer_ids[:2]]

    first = zendesk.create_ticket(requesters[0], "Question", "Hello")
    _route(rt, first.external_id, "after-publish-1")
    decision = rt.store.get_decision(first.key)
    assert decision is not None
    assert decision.outcome == "applied"
    assert decision.model_digest == original.digest  # the model fitted for the previous version
    assert recomputes == []  # no full recompute on the webhook path
    assert rt.store.model_digest(segment_service.MODEL)[0] == original.digest
    assert [r for r in rt.store.list_job_runs() if r["job"] == "refit"] == []
    assert admin.api("GET", "/api/mapping").json["refit"]["status"] == "pending"

    assert scheduler.refit_if_pending(rt) is not None  # the job the scheduler runs within its interval
    assert recomputes == [published["digest"]]
    second = zendesk.create_ticket(requesters[1], "Another question", "Hello")
    _route(rt, second.external_id, "after-publish-2")
    decision = rt.store.get_decision(second.key)
    assert decision is not None
    assert decision.model_digest == published["digest"]
    assert recomputes == [published["digest"]]
    sign_in(admin.client)
    assert (
        admin.api("GET", f"/api/decisions/{second.external_id}").json["tickets"][0]["decision"][
            "model_digest"
        ]
        == published["digest"]
    )


# -- the decisions lookup: ids as people write them, tickets with only queue events -------------------------


def test_a_ticket_with_only_a_dead_event_is_found_and_the_queue_page_links_to_it(admin: AdminApp) -> None:
    _route(admin.runtime, "424242", "lookup-dead")  # Zendesk has no such ticket: dead at once, no decision
    for ticket_id in ("424242", "%23424242", "%20%23%20424242", "zendesk:ticket:424242"):
        answer = admin.api("GET", f"/api/decisions/{ticket_id}")
        assert answer.status_code == 200, ticket_id
        (item,) = answer.json["tickets"]
        assert item["ticket_key"] == "zendesk:ticket:424242"
        assert item["decision"] is None
        assert [e["status"] for e in item["events"]] == ["dead"]

    sign_in(admin.client)
    queue_page = admin.client.get("/admin/queue").get_data(as_text=True)
    link = re.search(r'href="(/admin/decisions/[^"]+)">zendesk:ticket:424242<', queue_page)
    assert link, "the queue page links the dead event's ticket"
    page = admin.client.get(link.group(1))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "No decision yet" in text
    assert "Its event is dead" in text
    looked_up = admin.client.get("/admin/decisions?ticket=%23424242")
    assert looked_up.status_code == 302
    assert looked_up.headers["Location"].endswith("/admin/decisions/424242")


def test_the_lookup_explains_text_that_is_no_ticket_id_and_counts_outcomes(admin: AdminApp) -> None:
    bad = admin.api("GET", "/api/decisions/hello")
    assert bad.status_code == 400
    assert bad.json["error"] == "bad_request"
    assert "like 1612 or #1612" in bad.json["message"]
    assert admin.api("GET", "/api/decisions/999999").status_code == 404  # a real id tierdesk never saw

    zendesk = ZendeskConnector(admin.sandbox.base_url, EMAIL, TOKEN)
    ticket = zendesk.create_ticket(str(admin.summary.customer_ids[2]), "Login", "Cannot sign in")
    _route(admin.runtime, ticket.external_id, "lookup-routed")
    routed = admin.api("GET", f"/api/decisions/%23{ticket.external_id}").json["tickets"][0]
    assert routed["decision"]["outcome"] == "applied"
    assert admin.api("GET", "/api/decisions").json["outcomes"] == {"applied": 1}

    sign_in(admin.client)
    page = admin.client.get("/admin/decisions?ticket=hello")
    assert page.status_code == 400
    text = page.get_data(as_text=True)
    assert "is not a ticket id" in text
    assert "1 ticket routed, 0 of them re-routed later · 0 skipped" in text
