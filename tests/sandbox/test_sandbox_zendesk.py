"""The Zendesk sandbox behaves like Zendesk over real loopback HTTP.

Why these tests matter: every other test of the Zendesk connector trusts the sandbox. If it drifted from
Zendesk (a tag verb that replaces instead of adds, a cursor that skips a change, an unsigned webhook), the
connector could pass here and fail on a real account. The last tests hold the sandbox to Zendesk's own
OpenAPI description.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import yaml
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from sandbox.zendesk import ZendeskSandbox
from sandbox.zendesk.seed import GROUPS, seed
from tests.support import ROOT

EMAIL = "agent@example.com"
TOKEN = "sandbox-test-token"
RETRY_DELAY = 0.05  # seconds between a failed webhook attempt and the next (the `fresh` fixture)
SPEC_PATH = ROOT.parent / "shared" / "specs" / "zendesk" / "zendesk-support-oas.subset.yaml"


# -- fixtures and helpers -----------------------------------------------------------------------------


class Api:
    """A thin authenticated client for one sandbox: paths are relative to /api/v2."""

    def __init__(self, box: ZendeskSandbox, auth: tuple[str, str] | None = (f"{EMAIL}/token", TOKEN)):
        self.box = box
        self.session = requests.Session()
        if auth:
            self.session.auth = auth

    def url(self, path: str) -> str:
        return f"{self.box.base_url}/api/v2/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 5)
        return self.session.request(method, self.url(path), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, json=body, **kwargs)

    def delete(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, json=body, **kwargs)

    def close(self) -> None:
        self.session.close()


@pytest.fixture(scope="module")
def box() -> Iterator[ZendeskSandbox]:
    """One sandbox for the CRUD-style tests; tests that need a clean slate use `fresh`."""
    sandbox = ZendeskSandbox(email=EMAIL, token=TOKEN, webhook_retry_delay=0.05)
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def api(box: ZendeskSandbox) -> Iterator[Api]:
    client = Api(box)
    yield client
    client.close()
    box.inject_faults(503, 0)


@pytest.fixture
def fresh() -> Iterator[ZendeskSandbox]:
    sandbox = ZendeskSandbox(email=EMAIL, token=TOKEN, webhook_retry_delay=RETRY_DELAY)
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def fresh_api(fresh: ZendeskSandbox) -> Iterator[Api]:
    client = Api(fresh)
    yield client
    client.close()


class Receiver:
    """A webhook endpoint on loopback that records raw requests and answers from a script of statuses."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        with self._lock:
            self.requests.append({"headers": dict(req.headers), "body": req.get_data(), "method": req.method})
            status = self.statuses.pop(0) if self.statuses else 200
        return Response("ok", status=status)(environ, start_response)

    def wait(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.requests) < n:
            time.sleep(0.01)
        return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Our own reading of Zendesk's scheme: base64(HMAC-SHA256(secret, timestamp + body))."""
    return base64.b64encode(
        hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    ).decode()


def make_ticket_with_audit(api: Api, **fields: Any) -> dict[str, Any]:
    """Create a ticket; the answer holds the ticket and the audit of its creation."""
    body = {"subject": "Printer on fire", "comment": {"body": "It smokes."}, **fields}
    answer = api.post("tickets", {"ticket": body})
    assert answer.status_code == 201, answer.text
    return answer.json()


def make_ticket(api: Api, **fields: Any) -> dict[str, Any]:
    return make_ticket_with_audit(api, **fields)["ticket"]


def notified_webhooks(audit: dict[str, Any]) -> list[str]:
    """The webhooks a change's triggers notified, from its audit (Zendesk's WebhookNotification events)."""
    return [e["webhook_id"] for e in audit["events"] if e["type"] == "WebhookNotification"]


def wait_for_job(api: Api, job: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = api.get(f"job_statuses/{job['id']}").json()["job_status"]
        if current["status"] in ("completed", "failed"):
            return current
        time.sleep(0.01)
    raise AssertionError(f"job {job['id']} did not finish in {timeout}s")


def an_hour_ago() -> int:
    return int(time.time()) - 3600


# -- auth and protocol -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [None, (f"{EMAIL}/token", "wrong"), (EMAIL, TOKEN), ("someone@example.com/token", TOKEN)],
    ids=["none", "wrong-token", "password-style-user", "other-user"],
)
def test_requests_without_the_api_token_are_401(box: ZendeskSandbox, auth: tuple[str, str] | None) -> None:
    client = Api(box, auth=auth)
    try:
        answer = client.get("users/me")
    finally:
        client.close()
    assert answer.status_code == 401
    assert answer.json() == {"error": "Couldn't authenticate you"}


def test_api_user_is_an_agent_and_paths_accept_json_suffix(api: Api) -> None:
    me = api.get("users/me").json()["user"]
    assert me["email"] == EMAIL
    assert me["role"] == "agent"
    assert api.get(f"users/{me['id']}.json").json()["user"]["id"] == me["id"]


def test_protocol_errors_look_like_zendesk(api: Api) -> None:
    unknown = api.get("no_such_thing")
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"error": "InvalidEndpoint", "description": "Not found"},
    )
    missing = api.get("tickets/987654321")
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "RecordNotFound", "description": "Not found"},
    )
    assert api.request("PATCH", "tickets").status_code == 405
    bad = api.request("POST", "users", data=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "InvalidJSON"
    unwrapped = api.post("users", {"name": "No wrapper"})
    assert unwrapped.status_code == 400
    assert unwrapped.json()["error"] == "ParameterMissing"


# -- users, organizations, groups --------------------------------------------------------------------


def test_user_crud_shapes_and_field_semantics(api: Api) -> None:
    created = api.post(
        "users",
        {
            "user": {
                "name": "Ana Silva",
                "email": "Ana.Silva42@Example.com",
                "tags": ["Gold"],
                "user_fields": {"a": 1},
            }
        },
    )
    assert created.status_code == 201
    user = created.json()["user"]
    assert isinstance(user["id"], int)
    assert user["email"] == "ana.silva42@example.com"
    assert user["role"] == "end-user"
    assert user["tags"] == ["gold"]
    assert user["url"].endswith(f"/api/v2/users/{user['id']}.json")
    assert datetime.strptime(user["created_at"], "%Y-%m-%dT%H:%M:%SZ")

    updated = api.put(f"users/{user['id']}", {"user": {"tags": ["silver"], "user_fields": {"b": 2}}}).json()[
        "user"
    ]
    assert updated["tags"] == ["silver"]  # tags in the body replace the user's tags
    assert updated["user_fields"] == {"a": 1, "b": 2}  # user_fields merge

    duplicate = api.post("users", {"user": {"name": "Copy", "email": "ana.silva42@example.com"}})
    assert duplicate.status_code == 422
    assert duplicate.json()["error"] == "RecordInvalid"
    assert "email" in duplicate.json()["details"]

    found = api.get("users/search", params={"query": "email:ana.silva42@example.com"}).json()["users"]
    assert [u["id"] for u in found] == [user["id"]]
    many = api.get("users/show_many", params={"ids": f"{user['id']},999999999"}).json()["users"]
    assert [u["id"] for u in many] == [user["id"]]

    again = api.post(
        "users/create_or_update", {"user": {"email": "ana.silva42@example.com", "name": "Ana S."}}
    )
    assert again.status_code == 200
    assert again.json()["user"]["id"] == user["id"]
    new = api.post(
        "users/create_or_update", {"user": {"external_id": "crm-77", "name": "Bo", "email": "bo@example.com"}}
    )
    assert new.status_code == 201
    by_external = api.get("users/search", params={"external_id": "CRM-77"}).json()["users"]
    assert [u["id"] for u in by_external] == [new.json()["user"]["id"]]


def test_organization_crud_and_create_or_update(api: Api) -> None:
    created = api.post(
        "organizations",
        {
            "organization": {
                "name": "Northwind Ltd",
                "domain_names": ["northwind.example"],
                "external_id": "nw",
            }
        },
    )
    assert created.status_code == 201
    org = created.json()["organization"]
    assert org["domain_names"] == ["northwind.example"]
    assert api.post("organizations", {"organization": {"name": "northwind ltd"}}).status_code == 422

    changed = api.put(
        f"organizations/{org['id']}", {"organization": {"notes": "key", "organization_fields": {"tier": "a"}}}
    ).json()["organization"]
    assert (changed["notes"], changed["organization_fields"]) == ("key", {"tier": "a"})

    upsert = api.post(
        "organizations/create_or_update", {"organization": {"external_id": "NW", "details": "HQ"}}
    )
    assert upsert.status_code == 200
    assert upsert.json()["organization"]["id"] == org["id"]
    assert api.get(f"organizations/{org['id']}").json()["organization"]["details"] == "HQ"

    user = api.post("users", {"user": {"name": "Org Member", "organization_id": org["id"]}}).json()["user"]
    ticket = make_ticket(api, requester_id=user["id"])
    assert ticket["organization_id"] == org["id"]  # defaults to the requester's organization


def test_ticket_created_with_requester_email_creates_the_user(api: Api) -> None:
    answer = api.post(
        "tickets",
        {
            "ticket": {
                "subject": "Hi",
                "comment": {"body": "Hello"},
                "requester": {"email": "new.person@example.com", "name": "New Person"},
            }
        },
    )
    assert answer.status_code == 201
    body = answer.json()
    ticket = body["ticket"]
    assert answer.headers["Location"] == ticket["url"]
    assert set(body["audit"]) >= {"id", "ticket_id", "author_id", "created_at", "events"}
    requester = api.get(f"users/{ticket['requester_id']}").json()["user"]
    assert (requester["email"], requester["name"]) == ("new.person@example.com", "New Person")
    assert ticket["status"] == "new"
    assert ticket["via"]["channel"] == "api"
    assert ticket["satisfaction_rating"] == {"score": "unoffered"}
    assert ticket["description"] == "Hello"
    same = make_ticket(api, requester={"email": "NEW.person@example.com"})
    assert same["requester_id"] == ticket["requester_id"]


def test_groups_list_with_cursor_pagination(fresh_api: Api, fresh: ZendeskSandbox) -> None:
    for name in GROUPS:
        assert fresh_api.post("groups", {"group": {"name": name}}).status_code == 201
    assert fresh_api.post("groups", {"group": {"description": "no name"}}).status_code == 422
    first = fresh_api.get("groups", params={"page[size]": 4}).json()
    assert [g["name"] for g in first["groups"]] == list(GROUPS[:4])
    assert first["meta"]["has_more"] is True
    second = requests.get(first["links"]["next"], auth=(f"{EMAIL}/token", TOKEN), timeout=5).json()
    assert [g["name"] for g in second["groups"]] == list(GROUPS[4:])
    assert second["meta"]["has_more"] is False
    assert second["links"]["next"] is None
    assert fresh.group_ids()["Retention"] == second["groups"][0]["id"]


def test_user_list_cursor_pagination_visits_every_user_once(fresh: ZendeskSandbox, fresh_api: Api) -> None:
    seed(fresh, customers=230, seed=3)
    expected = fresh.counts()["users"]
    seen: list[int] = []
    pages = 0
    params: dict[str, Any] | None = {"page[size]": 100}
    url = fresh_api.url("users")
    while url:
        page = fresh_api.session.get(url, params=params, timeout=5).json()
        seen += [u["id"] for u in page["users"]]
        pages += 1
        url = page["links"]["next"] if page["meta"]["has_more"] else None
        params = None
    assert len(seen) == len(set(seen)) == expected
    assert seen == sorted(seen)
    assert pages == -(-expected // 100)
    too_big = fresh_api.get("users", params={"page[size]": 101})
    assert too_big.status_code == 400


# -- incremental exports -----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", ["users", "tickets"])
def test_cursor_export_returns_everything_then_only_new_changes(
    fresh: ZendeskSandbox, fresh_api: Api, stream: str
) -> None:
    seed(fresh, customers=60, seed=11)
    total = fresh.counts()[stream]
    collected: list[dict[str, Any]] = []
    answer = fresh_api.get(f"incremental/{stream}/cursor", params={"start_time": 0, "per_page": 50}).json()
    while True:
        assert set(answer) == {
            stream,
            "after_cursor",
            "after_url",
            "before_cursor",
            "before_url",
            "end_of_stream",
        }
        collected += answer[stream]
        stamps = [r["updated_at"] for r in answer[stream]]
        assert stamps == sorted(stamps)
        if answer["end_of_stream"]:
            break
        answer = fresh_api.get(
            f"incremental/{stream}/cursor", params={"cursor": answer["after_cursor"]}
        ).json()
    assert len(collected) == len({r["id"] for r in collected}) == total
    watermark = answer["after_cursor"]

    quiet = fresh_api.get(f"incremental/{stream}/cursor", params={"cursor": watermark}).json()
    assert quiet[stream] == []
    assert quiet["end_of_stream"] is True

    target = next(r["id"] for r in collected if r.get("status") != "closed")  # closed tickets are frozen
    path = f"{stream}/{target}"
    assert fresh_api.put(path, {stream[:-1]: {"tags": ["changed_now"]}}).status_code == 200
    again = fresh_api.get(f"incremental/{stream}/cursor", params={"cursor": watermark}).json()
    assert [r["id"] for r in again[stream]] == [target]
    assert again[stream][0]["tags"] == ["changed_now"]
    assert again["end_of_stream"] is True
    assert again["after_cursor"] != watermark


def test_deletes_are_soft_and_show_in_the_exports(fresh: ZendeskSandbox, fresh_api: Api) -> None:
    """As Zendesk's: a deleted user answers active false (760 of 1,000 recorded users are so), a deleted
    ticket disappears from reads but comes through the export with status "deleted" (515 of 1,000)."""
    user = fresh.add_user("Leaving Soon", "leaving@example.com")
    ticket = fresh.add_ticket(user["id"], "Spam", "buy now")
    start = {"start_time": 0}
    watermark = {
        s: fresh_api.get(f"incremental/{s}/cursor", params=start).json() for s in ("users", "tickets")
    }

    deleted = fresh_api.delete(f"users/{user['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["user"]["active"] is False
    assert fresh_api.get(f"users/{user['id']}").json()["user"]["active"] is False
    assert fresh_api.delete(f"tickets/{ticket['id']}").status_code == 204
    assert fresh_api.get(f"tickets/{ticket['id']}").status_code == 404
    assert fresh_api.put(f"tickets/{ticket['id']}", {"ticket": {"priority": "low"}}).status_code == 404
    assert fresh_api.delete(f"tickets/{ticket['id']}").status_code == 404
    assert ticket["id"] not in [t["id"] for t in fresh_api.get("tickets").json()["tickets"]]

    for stream, record, field, value in (
        ("users", user, "active", False),
        ("tickets", ticket, "status", "deleted"),
    ):
        cursor = watermark[stream]["after_cursor"]
        changed = fresh_api.get(f"incremental/{stream}/cursor", params={"cursor": cursor}).json()[stream]
        assert [(r["id"], r[field]) for r in changed] == [(record["id"], value)]


def test_cursor_export_needs_start_time_or_cursor(api: Api) -> None:
    missing = api.get("incremental/users/cursor")
    assert missing.status_code == 400
    garbage = api.get("incremental/users/cursor", params={"cursor": "not-a-cursor"})
    assert garbage.status_code == 400


def test_time_based_organization_export(fresh: ZendeskSandbox, fresh_api: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(5):
        fresh.add_organization(
            f"Org {i}", created_at=now - timedelta(days=10), updated_at=now - timedelta(hours=5 - i)
        )
    start = int((now - timedelta(hours=3, minutes=30)).timestamp())
    page = fresh_api.get("incremental/organizations", params={"start_time": start, "per_page": 2}).json()
    assert set(page) == {"organizations", "count", "end_time", "next_page", "end_of_stream"}
    assert [o["name"] for o in page["organizations"]] == ["Org 2", "Org 3"]
    assert page["count"] == 2
    assert page["end_of_stream"] is False
    assert page["end_time"] == int((now - timedelta(hours=2)).timestamp())
    assert f"start_time={page['end_time']}" in page["next_page"]
    last = requests.get(page["next_page"], auth=(f"{EMAIL}/token", TOKEN), timeout=5).json()
    assert [o["name"] for o in last["organizations"]] == ["Org 3", "Org 4"]  # the boundary second repeats
    assert last["end_of_stream"] is True


@pytest.mark.parametrize("seconds_ago", [0, 30, 59, -100])
def test_incremental_start_time_must_be_a_minute_old(api: Api, seconds_ago: int) -> None:
    answer = api.get("incremental/organizations", params={"start_time": int(time.time()) - seconds_ago})
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "InvalidValue",
        "description": "Too recent start_time. Use a start_time older than 1 minute",
    }
    assert api.get("incremental/organizations").status_code == 400
    assert (
        api.get("incremental/organizations", params={"start_time": int(time.time()) - 61}).status_code == 200
    )


# -- tickets: tags, notes, safe updates, validation --------------------------------------------------


def test_ticket_tag_semantics(api: Api) -> None:
    ticket = make_ticket(api, tags=["Billing", "vip", "billing", "two words"])
    # lowercased, deduplicated, first order kept; a space separates tags (Zendesk stores them space-joined)
    assert ticket["tags"] == ["billing", "vip", "two", "words"]
    tid = ticket["id"]

    replaced = api.put(f"tickets/{tid}", {"ticket": {"tags": ["agent_flag"]}}).json()["ticket"]
    assert replaced["tags"] == ["agent_flag"]  # tags on a ticket update REPLACE the list
    added = api.put(f"tickets/{tid}", {"ticket": {"additional_tags": ["seg_a", "agent_flag"]}}).json()[
        "ticket"
    ]
    assert added["tags"] == ["agent_flag", "seg_a"]
    removed = api.put(f"tickets/{tid}", {"ticket": {"remove_tags": ["agent_flag"]}}).json()["ticket"]
    assert removed["tags"] == ["seg_a"]

    # The tags endpoint, per the spec: POST = SetTagsTicket (replace), PUT = PutTagsTicket (add),
    # DELETE removes.
    posted = api.post(f"tickets/{tid}/tags", {"tags": ["one", "two"]})
    assert (posted.status_code, posted.json()) == (201, {"tags": ["one", "two"]})
    put = api.put(f"tickets/{tid}/tags", {"tags": ["three"]})
    assert (put.status_code, put.json()) == (200, {"tags": ["one", "two", "three"]})
    deleted = api.delete(f"tickets/{tid}/tags", {"tags": ["one"]})
    assert deleted.status_code == 204
    assert api.get(f"tickets/{tid}/tags").json() == {"tags": ["two", "three"]}
    assert api.post(f"tickets/{tid}/tags", {}).status_code == 400


def test_internal_note_is_private_and_listed_in_order(api: Api) -> None:
    ticket = make_ticket(api)
    answer = api.put(
        f"tickets/{ticket['id']}", {"ticket": {"comment": {"body": "Why: VIP", "public": False}}}
    )
    assert answer.status_code == 200
    comment_events = [e for e in answer.json()["audit"]["events"] if e["type"] == "Comment"]
    assert comment_events[0]["public"] is False
    comments = api.get(f"tickets/{ticket['id']}/comments").json()["comments"]
    assert [(c["body"], c["public"], c["type"]) for c in comments] == [
        ("It smokes.", True, "Comment"),
        ("Why: VIP", False, "Comment"),
    ]
    me = api.get("users/me").json()["user"]
    assert comments[1]["author_id"] == me["id"]  # the author defaults to the API user
    assert comments[1]["plain_body"] == "Why: VIP"
    assert api.get(f"tickets/{ticket['id']}").json()["ticket"]["is_public"] is True


def test_safe_update_refuses_a_stale_stamp(api: Api, box: ZendeskSandbox) -> None:
    ticket = make_ticket(api)
    stale = ticket["updated_at"]
    first = api.put(f"tickets/{ticket['id']}", {"ticket": {"additional_tags": ["agent_was_here"]}}).json()[
        "ticket"
    ]
    assert first["updated_at"] != stale  # same second, still a new stamp
    conflict = api.put(
        f"tickets/{ticket['id']}",
        {"ticket": {"priority": "high", "safe_update": True, "updated_stamp": stale}},
    )
    assert conflict.status_code == 409
    assert conflict.json() == {
        "error": "UpdateConflict",
        "description": "Safe Update prevented the update due to outdated ticket data. "
        "Please fetch the latest ticket data and try again.",
    }
    assert api.get(f"tickets/{ticket['id']}").json()["ticket"]["priority"] is None
    ok = api.put(
        f"tickets/{ticket['id']}",
        {"ticket": {"priority": "high", "safe_update": True, "updated_stamp": first["updated_at"]}},
    )
    assert ok.status_code == 200
    assert ok.json()["ticket"]["priority"] == "high"
    assert box.ticket_updated_by(ticket["id"]) == api.get("users/me").json()["user"]["id"]


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"priority": "critical"}, "priority"),
        ({"priority": "High"}, "priority"),
        ({"status": "done"}, "status"),
        ({"group_id": 424242}, "group_id"),
        ({"assignee_id": 1}, "assignee_id"),
        ({"comment": {"body": " "}}, "comment"),
    ],
)
def test_invalid_ticket_updates_are_422_naming_the_field(
    api: Api, update: dict[str, Any], field: str
) -> None:
    ticket = make_ticket(api)
    answer = api.put(f"tickets/{ticket['id']}", {"ticket": update})
    assert answer.status_code == 422
    body = answer.json()
    assert (body["error"], body["description"]) == ("RecordInvalid", "Record validation errors")
    assert field in body["details"]
    assert api.get(f"tickets/{ticket['id']}").json()["ticket"]["updated_at"] == ticket["updated_at"]


def test_closed_tickets_cannot_be_updated(api: Api) -> None:
    ticket = make_ticket(api, status="closed")
    answer = api.put(f"tickets/{ticket['id']}", {"ticket": {"priority": "low"}})
    assert answer.status_code == 422
    assert "status" in answer.json()["details"]


def test_group_assignment_and_reopen_tracking(api: Api, box: ZendeskSandbox) -> None:
    group = api.post("groups", {"group": {"name": "Tier Two"}}).json()["group"]
    ticket = make_ticket(api)
    routed = api.put(f"tickets/{ticket['id']}", {"ticket": {"group_id": group["id"], "status": "solved"}})
    assert routed.json()["ticket"]["group_id"] == group["id"]
    api.put(f"tickets/{ticket['id']}", {"ticket": {"status": "open"}})
    assert box.ticket_reopens(ticket["id"]) == 1


# -- bulk jobs -----------------------------------------------------------------------------------------


def test_update_many_users_runs_as_a_job(api: Api) -> None:
    ids = [
        api.post("users", {"user": {"name": f"Bulk {i}", "tags": ["keep"]}}).json()["user"]["id"]
        for i in range(3)
    ]
    answer = api.put(
        "users/update_many",
        {"users": [{"id": i, "additional_tags": ["seg_gold"], "user_fields": {"tier": "A"}} for i in ids]},
    )
    assert answer.status_code == 200
    job = answer.json()["job_status"]
    assert isinstance(job["id"], str)
    assert job["status"] in ("queued", "working", "completed")
    done = wait_for_job(api, job)
    assert done["status"] == "completed"
    assert (done["total"], done["progress"]) == (3, 3)
    assert [r["id"] for r in done["results"]] == ids
    assert all(r["success"] and r["status"] == "Updated" and r["action"] == "update" for r in done["results"])
    for user_id in ids:
        user = api.get(f"users/{user_id}").json()["user"]
        assert user["tags"] == ["keep", "seg_gold"]
        assert user["user_fields"] == {"tier": "A"}

    bulk = api.put(
        "users/update_many", {"user": {"remove_tags": ["keep"]}}, params={"ids": ",".join(map(str, ids))}
    )
    assert wait_for_job(api, bulk.json()["job_status"])["status"] == "completed"
    assert api.get(f"users/{ids[0]}").json()["user"]["tags"] == ["seg_gold"]

    listed = api.get(
        "job_statuses/show_many", params={"ids": f"{job['id']},{bulk.json()['job_status']['id']}"}
    )
    assert len(listed.json()["job_statuses"]) == 2
    too_many = api.put(
        "users/update_many", {"user": {"notes": "x"}}, params={"ids": ",".join(map(str, range(1, 102)))}
    )
    assert too_many.status_code == 400


def test_ticket_bulk_jobs_report_per_item_failures(api: Api) -> None:
    created = api.post(
        "tickets/create_many", {"tickets": [{"comment": {"body": f"bulk {i}"}} for i in range(2)]}
    )
    job = wait_for_job(api, created.json()["job_status"])
    ticket_ids = [r["id"] for r in job["results"]]
    assert len(ticket_ids) == 2
    answer = api.put(
        "tickets/update_many",
        {"tickets": [{"id": ticket_ids[0], "priority": "low"}, {"id": ticket_ids[1], "priority": "bogus"}]},
    )
    done = wait_for_job(api, answer.json()["job_status"])
    ok, bad = done["results"]
    assert ok == {"id": ticket_ids[0], "action": "update", "status": "Updated", "success": True}
    # a failed record is told as Zendesk tells it: error, id, details, and no "success" key at all
    assert set(bad) == {"index", "error", "id", "details"}
    assert (bad["index"], bad["error"], bad["id"]) == (1, "RecordInvalid", ticket_ids[1])
    assert api.get(f"tickets/{ticket_ids[0]}").json()["ticket"]["priority"] == "low"
    org_job = api.put("organizations/update_many", {"organization": {"notes": "x"}}, params={"ids": "1"})
    missing = wait_for_job(api, org_job.json()["job_status"])["results"][0]
    assert "success" not in missing
    assert (missing["error"], missing["id"]) == ("RecordNotFound", 1)


# -- rate limits and faults ------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after() -> None:
    limited = ZendeskSandbox(email=EMAIL, token=TOKEN, rate_limit_per_minute=5)
    limited.start()
    client = Api(limited)
    try:
        remaining = []
        for _ in range(5):
            answer = client.get("users/me")
            assert answer.status_code == 200
            assert answer.headers["X-Rate-Limit"] == "5"
            remaining.append(int(answer.headers["X-Rate-Limit-Remaining"]))
        assert remaining == [4, 3, 2, 1, 0]
        control = requests.get(f"{limited.base_url}/__sandbox/requests", timeout=5)
        assert control.status_code == 200  # sandbox controls never count against the limit
        over = client.get("users/me")
        assert over.status_code == 429
        assert over.text == "Rate limit exceeded"
        assert 1 <= int(over.headers["Retry-After"]) <= 60
        assert over.headers["X-Rate-Limit-Remaining"] == "0"
    finally:
        client.close()
        limited.stop()


def test_incremental_exports_have_their_own_limit() -> None:
    limited = ZendeskSandbox(email=EMAIL, token=TOKEN, incremental_limit_per_minute=2)
    limited.start()
    client = Api(limited)
    try:
        statuses = [
            client.get("incremental/users/cursor", params={"start_time": an_hour_ago()}).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        assert client.get("users/me").status_code == 200
    finally:
        client.close()
        limited.stop()


# -- endpoint rate limits (off by default) ---------------------------------------------------------------


@pytest.fixture
def limited() -> Iterator[ZendeskSandbox]:
    """A sandbox with Zendesk's documented endpoint limits on and a few tickets and an organization."""
    sandbox = ZendeskSandbox(email=EMAIL, token=TOKEN, endpoint_limits=True)
    requester = sandbox.add_user("Requester", "requester@example.com")["id"]
    for n in range(101):
        sandbox.add_ticket(requester, f"ticket {n}", "d")
    sandbox.add_organization("Acme")
    sandbox.start()
    yield sandbox
    sandbox.stop()


def _note(n: int) -> dict[str, Any]:
    return {"ticket": {"comment": {"body": f"update {n}", "public": False}}}


def test_endpoint_limits_are_off_by_default(fresh: ZendeskSandbox, fresh_api: Api) -> None:
    requester = fresh.add_user("Requester", "requester@example.com")["id"]
    ticket = fresh.add_ticket(requester, "s", "d")["id"]
    org = fresh.add_organization("Acme")["id"]
    assert not fresh.endpoint_limits.enabled
    updates = [fresh_api.put(f"tickets/{ticket}.json", _note(n)) for n in range(105)]
    assert {r.status_code for r in updates} == {200}  # past 100 a minute and 30 per ticket
    assert not [h for h in updates[-1].headers if h.lower().startswith("zendesk-ratelimit")]
    exports = [
        fresh_api.get("incremental/users/cursor", params={"start_time": an_hour_ago()}) for _ in range(11)
    ]
    assert {r.status_code for r in exports} == {200}
    orgs = [fresh_api.put(f"organizations/{org}", {"organization": {"notes": str(n)}}) for n in range(6)]
    assert {r.status_code for r in orgs} == {200}
    assert requests.get(f"{fresh.base_url}/__sandbox/endpoint_limits", timeout=5).json() == {
        "endpoint_limits": {}
    }


def test_the_101st_ticket_update_in_a_minute_is_429_while_other_endpoints_answer(
    limited: ZendeskSandbox,
) -> None:
    client = Api(limited)
    try:
        remaining = []
        for ticket in range(1, 101):
            answer = client.put(f"tickets/{ticket}.json", _note(ticket))
            assert answer.status_code == 200, answer.text
            header = answer.headers["zendesk-ratelimit-update-ticket"]
            remaining.append(int(header.split("remaining=")[1].split(";")[0]))
        assert (remaining[0], remaining[-1]) == (99, 0)
        over = client.put("tickets/101.json", _note(101))
        assert over.status_code == 429
        assert 1 <= int(over.headers["Retry-After"]) <= 60
        assert "total=100; remaining=0" in over.headers["zendesk-ratelimit-update-ticket"]
        assert len(client.get("tickets/101/comments").json()["comments"]) == 1  # refused: nothing written
        assert (
            client.put("tickets/update_many", {"tickets": [{"id": 101, "priority": "high"}]}).status_code
            == 429
        )
        # other endpoints keep answering: reads, other writes, exports
        assert client.get("tickets/101").status_code == 200
        assert client.get("users/me").status_code == 200
        assert (
            client.post("tickets", {"ticket": {"subject": "s", "comment": {"body": "b"}}}).status_code == 201
        )
        assert client.put("organizations/2000001", {"organization": {"notes": "n"}}).status_code == 200
        exported = client.get("incremental/tickets/cursor", params={"start_time": an_hour_ago()})
        assert exported.status_code == 200
    finally:
        client.close()


def test_update_many_counts_once_a_request_against_update_ticket() -> None:
    box = ZendeskSandbox(email=EMAIL, token=TOKEN, endpoint_limits={"update_ticket": 2})
    requester = box.add_user("Requester", "requester@example.com")["id"]
    ids = [box.add_ticket(requester, "s", "d")["id"] for _ in range(3)]
    box.start()
    client = Api(box)
    try:
        batch = {"tickets": [{"id": i, "priority": "high"} for i in ids]}
        statuses = [client.put("tickets/update_many.json", batch).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
    finally:
        client.close()
        box.stop()


def test_incremental_exports_are_limited_at_ten_a_minute(limited: ZendeskSandbox) -> None:
    client = Api(limited)
    try:
        params = {"start_time": an_hour_ago()}
        statuses = [client.get("incremental/users/cursor", params=params).status_code for _ in range(10)]
        assert statuses == [200] * 10
        over = client.get("incremental/tickets/cursor", params=params)  # one budget for every export
        assert over.status_code == 429
        assert 1 <= int(over.headers["Retry-After"]) <= 60
        assert "total=10; remaining=0" in over.headers["zendesk-ratelimit-incremental-exports"]
        assert client.get("users/me").status_code == 200
        assert client.put("tickets/1", _note(1)).status_code == 200
    finally:
        client.close()


def test_thirty_updates_per_ticket_per_user_per_ten_minutes(limited: ZendeskSandbox) -> None:
    client = Api(limited)
    try:
        statuses = [client.put("tickets/7", _note(n)).status_code for n in range(30)]
        assert statuses == [200] * 30
        over = client.put("tickets/7", _note(30))
        assert over.status_code == 429
        assert 60 < int(over.headers["Retry-After"]) <= 600  # the ten-minute window, not the minute
        assert "total=30; remaining=0" in over.headers["zendesk-ratelimit-update-ticket-per-user"]
        assert client.put("tickets/8", _note(0)).status_code == 200  # another ticket is free
    finally:
        client.close()


def test_update_organization_is_limited_at_five_a_minute(limited: ZendeskSandbox) -> None:
    client = Api(limited)
    try:
        body = {"organization": {"notes": "n"}}
        statuses = [client.put("organizations/2000001.json", body).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
    finally:
        client.close()


def test_endpoint_limits_take_a_window_high_volume_and_a_control_switch() -> None:
    assert (
        ZendeskSandbox(endpoint_limits=True, high_volume=True).endpoint_limits.limits["update_ticket"].limit
        == 300
    )
    with pytest.raises(ValueError, match="unknown endpoint limit"):
        ZendeskSandbox(endpoint_limits={"update_tickets": 1})
    box = ZendeskSandbox(email=EMAIL, token=TOKEN, endpoint_limits={"update_ticket": (2, 1.0)})
    requester = box.add_user("Requester", "requester@example.com")["id"]
    ticket = box.add_ticket(requester, "s", "d")["id"]
    box.start()
    client = Api(box)
    control = f"{box.base_url}/__sandbox/endpoint_limits"
    try:
        statuses = [client.put(f"tickets/{ticket}", _note(n)).status_code for n in range(3)]
        assert statuses == [200, 200, 429]
        time.sleep(1.1)  # a one-second window frees up within the second
        assert client.put(f"tickets/{ticket}", _note(3)).status_code == 200
        assert requests.post(control, json={"enabled": False}, timeout=5).json() == {"endpoint_limits": {}}
        assert {client.put(f"tickets/{ticket}", _note(n)).status_code for n in range(5)} == {200}
        switched = requests.post(control, json={"limits": {"update_organization": [1, 60]}}, timeout=5)
        assert switched.json()["endpoint_limits"]["update_organization"] == {"limit": 1, "window": 60.0}
        assert switched.json()["endpoint_limits"]["update_ticket"] == {"limit": 100, "window": 60.0}
        bad = requests.post(control, json={"limits": {"nope": 1}}, timeout=5)
        assert bad.status_code == 400
    finally:
        client.close()
        box.stop()


def test_injected_faults_answer_then_clear(api: Api, box: ZendeskSandbox) -> None:
    box.inject_faults(503, count=2, retry_after=1)
    first, second, third = (api.get("users/me") for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert first.headers["Retry-After"] == "1"
    box.inject_faults(429, count=1)
    limited = api.get("users/me")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")

    control = requests.post(f"{box.base_url}/__sandbox/faults", json={"status": 500, "count": 1}, timeout=5)
    assert control.status_code == 200
    assert api.get("users/me").status_code == 500
    assert api.get("users/me").status_code == 200


def test_delay_and_request_log_controls(api: Api, box: ZendeskSandbox) -> None:
    box.clear_request_log()
    requests.post(f"{box.base_url}/__sandbox/delay", json={"seconds": 0.2}, timeout=5)
    started = time.monotonic()
    api.get("users/me", params={"x": "1"})
    assert time.monotonic() - started >= 0.2
    box.set_delay(0)
    assert box.request_log == [("GET", "/api/v2/users/me", "x=1", 200)]
    logged = requests.get(f"{box.base_url}/__sandbox/requests", timeout=5).json()["requests"]
    assert logged == [{"method": "GET", "path": "/api/v2/users/me", "query_string": "x=1", "status": 200}]


# -- webhooks and triggers -------------------------------------------------------------------------------

TEMPLATE = json.dumps(
    {
        "ticket": {
            "id": "{{ticket.id}}",
            "title": "{{ticket.title}}",
            "status": "{{ticket.status}}",
            "priority": "{{ticket.priority}}",
            "tags": "{{ticket.tags}}",
            "requester_email": "{{ticket.requester.email}}",
            "organization": "{{ticket.organization.name}}",
            "group": "{{ticket.group.name}}",
            "created": "{{ticket.created_at_with_timestamp}}",
            "actor": "{{current_user.id}}",
            "unknown": "{{ticket.no_such_thing}}",
        }
    }
)


def install_trigger(api: Api, endpoint: str, *, secret: str | None = None) -> tuple[str, str]:
    webhook: dict[str, Any] = {
        "name": "tierdesk",
        "endpoint": endpoint,
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": ["conditional_ticket_events"],
    }
    if secret:
        webhook["signing_secret"] = {"algorithm": "SHA256", "secret": secret}
    created = api.post("webhooks", {"webhook": webhook})
    assert created.status_code == 201, created.text
    webhook_id = created.json()["webhook"]["id"]
    assert isinstance(webhook_id, str)
    shown = api.get(f"webhooks/{webhook_id}/signing_secret").json()["signing_secret"]
    assert shown["algorithm"] == "SHA256"
    trigger = api.post(
        "triggers",
        {
            "trigger": {
                "title": "route new tickets",
                "conditions": {
                    "all": [
                        {"field": "update_type", "operator": "is", "value": "Create"},
                        {"field": "current_tags", "operator": "not_includes", "value": "tierdesk_routed"},
                    ],
                    "any": [],
                },
                "actions": [{"field": "notification_webhook", "value": [webhook_id, TEMPLATE]}],
            }
        },
    )
    assert trigger.status_code == 201, trigger.text
    return webhook_id, shown["secret"]


def test_trigger_fires_a_signed_webhook_with_rendered_body(
    fresh: ZendeskSandbox, fresh_api: Api, receiver: Receiver
) -> None:
    webhook_id, secret = install_trigger(fresh_api, receiver.url)
    org = fresh_api.post("organizations", {"organization": {"name": "Contoso GmbH"}}).json()["organization"]
    group = fresh_api.post("groups", {"group": {"name": "Key Accounts"}}).json()["group"]
    user = fresh_api.post(
        "users", {"user": {"name": "Zoe Kim", "email": "zoe.kim7@example.com", "organization_id": org["id"]}}
    ).json()["user"]
    started = time.monotonic()
    ticket = make_ticket(
        fresh_api,
        subject='Say "hi"',
        requester_id=user["id"],
        tags=["vip"],
        priority="high",
        group_id=group["id"],
    )
    assert time.monotonic() - started < 1.0  # creation does not wait for the delivery
    delivered = receiver.wait(1)
    assert len(delivered) == 1
    sent = delivered[0]
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["user-agent"] == "Zendesk Webhook"
    assert headers["x-zendesk-webhook-id"] == webhook_id
    assert headers["x-zendesk-account-id"].isdigit()
    assert headers["x-zendesk-webhook-invocation-id"]
    stamp = headers["x-zendesk-webhook-signature-timestamp"]
    assert abs(
        datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) - datetime.now(UTC)
    ) < timedelta(seconds=30)
    assert hmac.compare_digest(
        headers["x-zendesk-webhook-signature"], expected_signature(secret, stamp, sent["body"])
    )
    body = json.loads(sent["body"])["ticket"]
    assert body == {
        "id": str(ticket["id"]),
        "title": 'Say "hi"',
        "status": "New",  # placeholders render display values, as Zendesk's do
        "priority": "High",
        "tags": "vip",
        "requester_email": "zoe.kim7@example.com",
        "organization": "Contoso GmbH",
        "group": "Key Accounts",
        "created": ticket["created_at"],
        "actor": str(fresh.api_user_id),
        "unknown": "",
    }
    record = fresh.wait_for_deliveries(1)[0]
    assert (record["webhook_id"], record["ticket_id"], record["status_code"], record["attempt"]) == (
        webhook_id,
        ticket["id"],
        200,
        1,
    )
    assert record["invocation_id"] == headers["x-zendesk-webhook-invocation-id"]
    assert record["error"] is None

    # Updates are "Change", not "Create": the trigger stays quiet. Triggers run inside the update, and the
    # update's audit lists every webhook they notify, so an audit without one means nothing will be sent.
    changed = fresh_api.put(f"tickets/{ticket['id']}", {"ticket": {"priority": "low"}}).json()
    assert notified_webhooks(changed["audit"]) == []
    assert len(receiver.requests) == 1


def test_webhook_retries_with_the_same_invocation_id(
    fresh: ZendeskSandbox, fresh_api: Api, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    _, secret = install_trigger(
        fresh_api, receiver.url, secret="dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
    )
    make_ticket(fresh_api)
    attempts = receiver.wait(3)
    assert len(attempts) == 3
    invocations = {r["headers"]["X-Zendesk-Webhook-Invocation-Id"] for r in attempts}
    assert len(invocations) == 1
    for attempt in attempts:
        stamp = attempt["headers"]["X-Zendesk-Webhook-Signature-Timestamp"]
        assert attempt["headers"]["X-Zendesk-Webhook-Signature"] == expected_signature(
            secret, stamp, attempt["body"]
        )
    records = fresh.wait_for_deliveries(3)
    assert [(r["attempt"], r["status_code"]) for r in records] == [(1, 500), (2, 503), (3, 200)]
    time.sleep(3 * RETRY_DELAY)  # kept: a fourth attempt would come one retry delay after the third
    assert len(fresh.deliveries) == 3  # success ends the retries
    over_http = requests.get(f"{fresh.base_url}/__sandbox/deliveries", timeout=5).json()["deliveries"]
    assert [d["status_code"] for d in over_http] == [500, 503, 200]


def test_webhook_gives_up_after_three_retries(
    fresh: ZendeskSandbox, fresh_api: Api, receiver: Receiver
) -> None:
    receiver.statuses = [500] * 10
    install_trigger(fresh_api, receiver.url)
    make_ticket(fresh_api)
    fresh.wait_for_deliveries(4)
    time.sleep(3 * RETRY_DELAY)  # kept: a fifth attempt would come one retry delay after the fourth
    assert [r["attempt"] for r in fresh.deliveries] == [1, 2, 3, 4]


def test_trigger_skips_tickets_that_carry_the_routed_tag(
    fresh: ZendeskSandbox, fresh_api: Api, receiver: Receiver
) -> None:
    install_trigger(fresh_api, receiver.url)
    routed = make_ticket_with_audit(fresh_api, tags=["tierdesk_routed"])
    other = make_ticket_with_audit(fresh_api, tags=["other"])
    assert notified_webhooks(routed["audit"]) == []  # the trigger ran at creation and notified nobody
    assert len(notified_webhooks(other["audit"])) == 1
    delivered = fresh.wait_for_deliveries(1)
    assert len(fresh.deliveries) == 1
    assert len(delivered) == 1
    assert json.loads(receiver.requests[0]["body"])["ticket"]["tags"] == "other"


def test_trigger_validation_and_crud(fresh_api: Api) -> None:
    bad_field = {
        "title": "x",
        "conditions": {"all": [{"field": "moon_phase", "operator": "is", "value": "full"}]},
        "actions": [{"field": "status", "value": "open"}],
    }
    assert fresh_api.post("triggers", {"trigger": bad_field}).status_code == 422
    bad_operator = {
        "title": "x",
        "conditions": {"all": [{"field": "current_tags", "operator": "is", "value": "a"}]},
        "actions": [{"field": "status", "value": "open"}],
    }
    assert fresh_api.post("triggers", {"trigger": bad_operator}).status_code == 422
    unknown_hook = {
        "title": "x",
        "conditions": {"all": []},
        "actions": [{"field": "notification_webhook", "value": ["nope", "{}"]}],
    }
    assert fresh_api.post("triggers", {"trigger": unknown_hook}).status_code == 422

    good = {
        "title": "Tag urgent",
        "conditions": {"all": [{"field": "priority", "operator": "is", "value": "urgent"}], "any": []},
        "actions": [{"field": "current_tags", "value": "escalated"}],
    }
    created = fresh_api.post("triggers", {"trigger": good}).json()["trigger"]
    assert created["active"] is True
    assert fresh_api.get("triggers").json()["triggers"][0]["id"] == created["id"]
    ticket = make_ticket(fresh_api, priority="urgent")
    assert ticket["tags"] == ["escalated"]  # trigger actions apply within the same update
    assert (
        fresh_api.put(f"triggers/{created['id']}", {"trigger": {"active": False}}).json()["trigger"]["active"]
        is False
    )
    assert make_ticket(fresh_api, priority="urgent")["tags"] == []
    assert fresh_api.delete(f"triggers/{created['id']}").status_code == 204
    assert fresh_api.get(f"triggers/{created['id']}").status_code == 404


def test_customer_submitted_ticket_runs_triggers_as_the_customer(
    fresh: ZendeskSandbox, fresh_api: Api, receiver: Receiver
) -> None:
    webhook_id, _ = install_trigger(fresh_api, receiver.url)
    only_customers = {
        "title": "customer wrote",
        "conditions": {"all": [{"field": "role", "operator": "is", "value": "end_user"}]},
        "actions": [{"field": "current_tags", "value": "from_customer"}],
    }
    assert fresh_api.post("triggers", {"trigger": only_customers}).status_code == 201
    assert "from_customer" not in make_ticket(fresh_api)["tags"]  # the API user is an agent
    answer = requests.post(
        f"{fresh.base_url}/__sandbox/tickets",
        json={
            "requester": {"email": "walk.in@example.com", "name": "Walk In"},
            "subject": "Help",
            "body": "Please",
        },
        timeout=5,
    )
    assert answer.status_code == 201
    ticket = answer.json()["ticket"]
    assert ticket["via"]["channel"] == "web"
    assert ticket["tags"] == ["from_customer"]
    requester = fresh_api.get(f"users/{ticket['requester_id']}").json()["user"]
    assert (requester["email"], requester["role"]) == ("walk.in@example.com", "end-user")
    deliveries = fresh.wait_for_deliveries(2)
    assert {d["ticket_id"] for d in deliveries} == {ticket["id"], ticket["id"] - 1}
    assert all(d["webhook_id"] == webhook_id for d in deliveries)


def test_webhook_api_crud_and_secret_reset(fresh_api: Api) -> None:
    invalid = fresh_api.post("webhooks", {"webhook": {"name": "x", "endpoint": "not a url"}})
    assert invalid.status_code == 400
    assert "errors" in invalid.json()
    webhook_id, secret = install_trigger(fresh_api, "http://127.0.0.1:9/hook")
    listed = fresh_api.get("webhooks").json()["webhooks"]
    assert [w["id"] for w in listed] == [webhook_id]
    assert "signing_secret" not in listed[0]
    assert (
        fresh_api.request(
            "PATCH", f"webhooks/{webhook_id}", json={"webhook": {"status": "inactive"}}
        ).status_code
        == 204
    )
    assert fresh_api.get(f"webhooks/{webhook_id}").json()["webhook"]["status"] == "inactive"
    reset = fresh_api.post(f"webhooks/{webhook_id}/signing_secret")
    assert reset.status_code == 201
    assert reset.json()["signing_secret"]["secret"] != secret
    assert fresh_api.delete(f"webhooks/{webhook_id}").status_code == 204
    assert fresh_api.get(f"webhooks/{webhook_id}").status_code == 404


# -- SLA policies ------------------------------------------------------------------------------------------


def test_sla_policy_crud_and_matching(fresh: ZendeskSandbox, fresh_api: Api) -> None:
    missing = fresh_api.post("slas/policies", {"sla_policy": {"description": "no title"}})
    assert missing.status_code == 422
    assert set(missing.json()["details"]) == {"title", "filter"}
    gold = {
        "title": "Gold",
        "filter": {
            "all": [{"field": "current_tags", "operator": "includes", "value": "tierdesk_sla_gold"}],
            "any": [],
        },
        "policy_metrics": [
            {"priority": "high", "metric": "first_reply_time", "target": 60, "business_hours": False}
        ],
    }
    created = fresh_api.post("slas/policies", {"sla_policy": gold})
    assert created.status_code == 201
    policy = created.json()["sla_policy"]
    assert policy["position"] == 1
    assert fresh_api.get("slas/policies").json()["sla_policies"][0]["title"] == "Gold"
    tagged = make_ticket(fresh_api, tags=["tierdesk_sla_gold"], priority="high")
    plain = make_ticket(fresh_api)
    assert fresh.applied_sla_policy(tagged["id"])["id"] == policy["id"]
    assert fresh.applied_sla_policy(plain["id"]) is None
    renamed = fresh_api.put(f"slas/policies/{policy['id']}", {"sla_policy": {"title": "Gold+"}}).json()[
        "sla_policy"
    ]
    assert renamed["title"] == "Gold+"
    assert fresh_api.delete(f"slas/policies/{policy['id']}").status_code == 204


# -- standalone -------------------------------------------------------------------------------------------


def test_module_runs_standalone_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(  # noqa: S603 - fixed argv: our own module under this interpreter
        [
            sys.executable,
            "-m",
            "sandbox.zendesk",
            "--port",
            "0",
            "--customers",
            "30",
            "--seed",
            "5",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("Zendesk sandbox listening on http://127.0.0.1:")
        url = banner.rsplit(" ", 1)[1].strip()
        me = requests.get(
            f"{url}/api/v2/users/me", auth=("agent@example.com/token", "sandbox-token"), timeout=5
        )
        assert me.status_code == 200
        users = requests.get(
            f"{url}/api/v2/users",
            params={"role": "end-user"},
            auth=("agent@example.com/token", "sandbox-token"),
            timeout=5,
        )
        assert len(users.json()["users"]) == 30
        limits = requests.get(f"{url}/__sandbox/endpoint_limits", timeout=5).json()
        assert limits == {"endpoint_limits": {}}  # off unless --endpoint-limits
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_module_flag_switches_the_endpoint_limits_on() -> None:
    argv = [sys.executable, "-m", "sandbox.zendesk", "--port", "0", "--customers", "0"]
    process = subprocess.Popen(  # noqa: S603 - fixed argv: our own module under this interpreter
        [*argv, "--endpoint-limits", "--high-volume"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" ", 1)[1].strip()
        limits = requests.get(f"{url}/__sandbox/endpoint_limits", timeout=5).json()["endpoint_limits"]
        assert limits["update_ticket"] == {"limit": 300, "window": 60.0}
        assert limits["incremental_exports"] == {"limit": 30, "window": 60.0}
        assert limits["update_ticket_per_user"] == {"limit": 30, "window": 600.0}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


# -- seeding -----------------------------------------------------------------------------------------------


def test_seed_is_deterministic_and_has_the_stated_shape() -> None:
    now = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    boxes = [ZendeskSandbox(), ZendeskSandbox()]
    summaries = [seed(b, customers=1000, seed=42, now=now) for b in boxes]
    assert summaries[0] == summaries[1]
    users_a = [boxes[0].get_user(i) for i in summaries[0].customer_ids]
    users_b = [boxes[1].get_user(i) for i in summaries[1].customer_ids]
    assert users_a == users_b
    assert (
        seed(ZendeskSandbox(), customers=50, seed=1, now=now).vip_emails
        != seed(ZendeskSandbox(), customers=50, seed=2, now=now).vip_emails
    )

    summary, sandbox = summaries[0], boxes[0]
    assert list(summary.groups) == list(GROUPS)
    assert 90 <= summary.organizations <= 110
    assert len(summary.vip_emails) == 10
    assert len(summary.vip_tagged_emails) == 20
    tickets = [sandbox.get_ticket(t) for t in range(1, summary.tickets + 1)]
    recent = {}
    last_year = {}
    for ticket in tickets:
        created = datetime.fromisoformat(ticket["created_at"].replace("Z", "+00:00"))
        assert created <= now - timedelta(minutes=2)
        assert created >= now - timedelta(days=731)
        if created >= now - timedelta(days=30):
            recent[ticket["requester_id"]] = recent.get(ticket["requester_id"], 0) + 1
        if created >= now - timedelta(days=365):
            last_year[ticket["requester_id"]] = last_year.get(ticket["requester_id"], 0) + 1

    def share(predicate: Any) -> float:
        return sum(1 for u in users_a if predicate(u)) / len(users_a)

    assert 0.05 <= share(lambda u: u["created_at"] >= "2024-05-02") <= 0.11  # joined in the last 30 days
    assert share(lambda u: u["created_at"] <= "2022-06-01") >= 0.5  # two to eight years ago
    assert 0.6 <= share(lambda u: u["organization_id"] is not None) <= 0.8
    assert 0.10 <= share(lambda u: u["user_fields"]["revenue_12m"] == 0) <= 0.20
    assert share(lambda u: u["user_fields"]["revenue_12m"] >= 100_000) > 0
    revenues = sorted(u["user_fields"]["revenue_12m"] for u in users_a)
    assert 1000 <= revenues[len(revenues) // 2] <= 3500
    assert all(u["user_fields"]["lifetime_value"] >= u["user_fields"]["revenue_12m"] for u in users_a)
    assert all(0 <= u["user_fields"]["referrals"] <= 10 for u in users_a)
    assert all(0.5 <= u["user_fields"]["on_time_payment_rate"] <= 1.0 for u in users_a)
    assert all(0 <= u["user_fields"]["service_cost_12m"] <= 3000 for u in users_a)
    negative = share(
        lambda u: (
            u["user_fields"]["revenue_12m"]
            - u["user_fields"]["service_cost_12m"]
            - last_year.get(u["id"], 0) * 25
            < 0
        )
    )
    assert 0.04 <= negative <= 0.11
    assert 0.03 <= share(lambda u: recent.get(u["id"], 0) >= 3) <= 0.08
    assert 0.01 <= share(lambda u: "vip" in u["tags"]) <= 0.03
    assert all(u["role"] == "end-user" and u["email"].endswith("@example.com") for u in users_a)
    statuses = [t["status"] for t in tickets]
    assert sum(s in ("solved", "closed") for s in statuses) / len(statuses) > 0.7
    frequent = {uid for uid, n in recent.items() if n >= 3}
    bad = [t for t in tickets if t["satisfaction_rating"]["score"] == "bad"]
    assert sum(t["requester_id"] in frequent for t in bad) / len(bad) > 0.4  # bad ratings cluster


# -- conformance with Zendesk's OpenAPI description ---------------------------------------------------------


class _SpecLoader(yaml.SafeLoader):
    """Safe loading plus the YAML 1.1 "=" scalar the vendor file uses (see the spec's README)."""


_SpecLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        pytest.skip(f"Zendesk OpenAPI subset not found at {SPEC_PATH} (clone shared/ beside the repository)")
    return yaml.load(SPEC_PATH.read_text(encoding="utf-8"), Loader=_SpecLoader)  # noqa: S506 - SafeLoader subclass


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _properties(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every property a schema declares, following $ref and allOf/anyOf/oneOf."""
    schema = _resolve(spec, schema)
    props = {k: _resolve(spec, v) for k, v in schema.get("properties", {}).items()}
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []):
            props.update(_properties(spec, sub))
    return props


_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def _check_against(spec: dict[str, Any], schema_name: str, obj: dict[str, Any]) -> None:
    props = _properties(spec, {"$ref": f"#/components/schemas/{schema_name}"})
    undeclared = sorted(set(obj) - set(props))
    assert not undeclared, f"{schema_name} does not declare {undeclared}"
    for key, value in obj.items():
        declared = props[key]
        if value is None or "type" not in declared:
            continue  # Zendesk sends null for unset references even where the spec omits nullable
        expected = _TYPES[declared["type"]]
        ok = isinstance(value, expected) and not (
            isinstance(value, bool) and declared["type"] in ("integer", "number")
        )
        assert ok, f"{schema_name}.{key} should be {declared['type']}, got {value!r}"
        if "enum" in declared:
            assert value in declared["enum"], f"{schema_name}.{key}={value!r} not in {declared['enum']}"


def test_every_served_api_path_is_declared_in_the_spec(spec: dict[str, Any], box: ZendeskSandbox) -> None:
    declared = {
        (path, method.upper())
        for path, ops in spec["paths"].items()
        for method in ops
        if method != "parameters"
    }
    served = set()
    for rule in box.app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v2/"):
            continue
        path = rule.rule
        for converter in ("int:", "string:"):
            path = path.replace(f"<{converter}", "<")
        path = path.replace("<", "{").replace(">", "}")
        if path.startswith("/api/v2/webhooks") or path == "/api/v2/users/me":
            continue  # the Webhooks API is a separate Zendesk API; users/me is not in the subset
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method))
    assert served, "no routes found"
    assert not sorted(served - declared), f"served but not in the spec: {sorted(served - declared)}"


def test_json_shapes_use_only_properties_the_spec_declares(spec: dict[str, Any], fresh_api: Api) -> None:
    org = fresh_api.post("organizations", {"organization": {"name": "Spec Org", "external_id": "s1"}}).json()
    _check_against(spec, "OrganizationResponse", org)
    _check_against(spec, "OrganizationObject", org["organization"])
    user = fresh_api.post(
        "users",
        {
            "user": {
                "name": "Spec User",
                "email": "spec@example.com",
                "organization_id": org["organization"]["id"],
            }
        },
    ).json()
    _check_against(spec, "UserObject", user["user"])
    _check_against(spec, "UserObject", fresh_api.get("users/me").json()["user"])
    group = fresh_api.post("groups", {"group": {"name": "Spec Group"}}).json()
    _check_against(spec, "GroupResponse", group)
    _check_against(spec, "GroupObject", group["group"])
    created = fresh_api.post(
        "tickets",
        {
            "ticket": {
                "subject": "s",
                "comment": {"body": "b"},
                "requester_id": user["user"]["id"],
                "priority": "low",
                "type": "question",
                "group_id": group["group"]["id"],
            }
        },
    ).json()
    _check_against(spec, "TicketResponse", {"ticket": created["ticket"]})
    _check_against(spec, "TicketObject", created["ticket"])
    _check_against(spec, "AuditObject", created["audit"])
    updated = fresh_api.put(
        f"tickets/{created['ticket']['id']}", {"ticket": {"comment": {"body": "n", "public": False}}}
    ).json()
    _check_against(spec, "TicketUpdateResponse", updated)
    _check_against(spec, "TicketObject", updated["ticket"])
    for comment in fresh_api.get(f"tickets/{created['ticket']['id']}/comments").json()["comments"]:
        _check_against(spec, "TicketCommentObject", comment)
    job = fresh_api.put(
        "tickets/update_many", {"ticket": {"status": "open"}}, params={"ids": str(created["ticket"]["id"])}
    ).json()
    _check_against(spec, "JobStatusResponse", job)
    _check_against(spec, "JobStatusObject", job["job_status"])
    _check_against(spec, "JobStatusObject", wait_for_job(fresh_api, job["job_status"]))
    users_export = fresh_api.get("incremental/users/cursor", params={"start_time": an_hour_ago()}).json()
    _check_against(spec, "CursorBasedExportIncrementalUsersResponse", users_export)
    tickets_export = fresh_api.get("incremental/tickets/cursor", params={"start_time": an_hour_ago()}).json()
    _check_against(spec, "CursorBasedExportIncrementalTicketsResponse", tickets_export)
    orgs_export = fresh_api.get("incremental/organizations", params={"start_time": an_hour_ago()}).json()
    _check_against(spec, "ExportIncrementalOrganizationsResponse", orgs_export)
    _check_against(
        spec, "TagsByObjectIdResponse", fresh_api.get(f"tickets/{created['ticket']['id']}/tags").json()
    )
    policy = fresh_api.post(
        "slas/policies", {"sla_policy": {"title": "t", "filter": {"all": [], "any": []}}}
    ).json()
    _check_against(spec, "SLAPolicyResponse", policy)
    _check_against(spec, "SLAPolicyObject", policy["sla_policy"])
    trigger = fresh_api.post(
        "triggers",
        {
            "trigger": {
                "title": "t",
                "conditions": {"all": [{"field": "status", "operator": "is", "value": "new"}]},
                "actions": [{"field": "priority", "value": "low"}],
            }
        },
    ).json()
    _check_against(spec, "TriggerResponse", trigger)
    _check_against(spec, "TriggerObject", trigger["trigger"])
