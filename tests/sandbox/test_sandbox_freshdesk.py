"""The Freshdesk sandbox behaves like Freshdesk over real loopback HTTP.

Why these tests matter: every test of the Freshdesk connector trusts the sandbox. If it drifted from
Freshdesk (a PUT that merged tags instead of replacing them, a Link header on the last page, a note that
came out public, a wrapped body accepted), the connector could pass here and fail on a real account.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from sandbox.base import SeedSummary
from sandbox.freshdesk import FreshdeskSandbox
from sandbox.freshdesk.seed import GROUPS, seed
from tests.support import wait_for

KEY = "fd-sandbox-test-key"


class Api:
    """A thin authenticated client for one sandbox: paths are relative to /api/v2."""

    def __init__(self, box: FreshdeskSandbox, auth: tuple[str, str] | None = (KEY, "X")) -> None:
        self.box = box
        self.session = requests.Session()
        if auth:
            self.session.auth = auth

    def url(self, path: str) -> str:
        return f"{self.box.base_url}/api/v2/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 5)
        return self.session.request(method, self.url(path), **kwargs)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.request("POST", path, json=body)

    def put(self, path: str, body: Any) -> requests.Response:
        return self.request("PUT", path, json=body)

    def all_pages(self, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
        """Follow Link rel="next" to the end: (every record, number of pages)."""
        response = self.get(path, **params)
        records, pages = [], 0
        while True:
            assert response.status_code == 200, response.text
            records += response.json()
            pages += 1
            following = response.links.get("next")
            if not following:
                return records, pages
            response = self.session.get(following["url"], timeout=5)


@pytest.fixture
def box() -> Iterator[FreshdeskSandbox]:
    sandbox = FreshdeskSandbox(KEY, webhook_retry_delay=0.05)
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def summary(box: FreshdeskSandbox) -> SeedSummary:
    return seed(box, customers=120, seed=7)


@pytest.fixture
def api(box: FreshdeskSandbox) -> Api:
    return Api(box)


def _errors(response: requests.Response) -> list[dict[str, str]]:
    body = response.json()
    assert body["description"] == "Validation failed"
    return body["errors"]


def _contact(box: FreshdeskSandbox, summary: SeedSummary, index: int = 0) -> dict[str, Any]:
    return box.get_contact(summary.customer_ids[index])


# -- auth -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "status"),
    [
        ((KEY, "X"), 200),
        ((KEY, "anything"), 200),  # the password is ignored; the API key is the user name
        (("wrong-key", "X"), 401),
        (None, 401),
    ],
)
def test_api_key_is_the_basic_auth_user(
    box: FreshdeskSandbox, auth: tuple[str, str] | None, status: int
) -> None:
    response = Api(box, auth).get("tickets")
    assert response.status_code == status
    if status == 401:
        assert response.json()["code"] == "invalid_credentials"


def test_agents_me_is_the_api_user(api: Api, box: FreshdeskSandbox) -> None:
    me = api.get("agents/me").json()
    assert me["id"] == box.api_agent_id
    assert me["contact"]["email"] == "agent@example.com"


# -- lists ------------------------------------------------------------------------------------------


def test_ticket_list_pages_with_a_link_header_until_the_last_page(
    api: Api, box: FreshdeskSandbox, summary: SeedSummary
) -> None:
    params = {"updated_since": "2000-01-01T00:00:00Z", "order_by": "updated_at", "order_type": "asc"}
    first = api.get("tickets", per_page=10, **params)
    assert first.status_code == 200
    link = first.headers["Link"]
    assert link.endswith('>; rel="next"')
    assert "page=2" in link
    assert "updated_since=" in link  # the next link carries every parameter

    tickets, pages = api.all_pages("tickets", per_page=10, **params)
    assert len(tickets) == summary.tickets
    assert len({t["id"] for t in tickets}) == summary.tickets
    assert pages == -(-summary.tickets // 10)
    stamps = [t["updated_at"] for t in tickets]
    assert stamps == sorted(stamps)
    assert all(isinstance(t["priority"], int) and isinstance(t["status"], int) for t in tickets)
    assert "description" not in tickets[0]  # lists leave the description out, as Freshdesk does

    last_page = api.get("tickets", per_page=10, page=pages, **params)
    assert "Link" not in last_page.headers


def test_ticket_list_without_updated_since_shows_the_last_30_days(
    api: Api, box: FreshdeskSandbox, summary: SeedSummary
) -> None:
    recent, _ = api.all_pages("tickets", per_page=100)
    cutoff = datetime.now(UTC) - timedelta(days=30, minutes=1)
    assert recent
    assert all(datetime.fromisoformat(t["created_at"].replace("Z", "+00:00")) >= cutoff for t in recent)
    assert len(recent) < summary.tickets


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"per_page": 101}, "per_page"),
        ({"page": 0}, "page"),
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"order_by": "priority"}, "order_by"),
        ({"include": "everything"}, "include"),
    ],
)
def test_bad_list_parameters_are_validation_errors(
    api: Api, summary: SeedSummary, params: dict[str, Any], field: str
) -> None:
    response = api.get("tickets", **params)
    assert response.status_code == 400
    assert [e["field"] for e in _errors(response)] == [field]


def test_ticket_list_refuses_pages_past_the_cap() -> None:
    box = FreshdeskSandbox(KEY, ticket_page_max=3)
    box.start()
    try:
        seed(box, customers=60, seed=3)
        api = Api(box)
        params = {"updated_since": "2000-01-01T00:00:00Z", "per_page": 5}
        assert "Link" not in api.get("tickets", page=3, **params).headers
        refused = api.get("tickets", page=4, **params)
        assert refused.status_code == 400
        assert _errors(refused)[0]["field"] == "page"
    finally:
        box.stop()


def test_contacts_filter_by_updated_since_and_companies_page(
    api: Api, box: FreshdeskSandbox, summary: SeedSummary
) -> None:
    contacts, pages = api.all_pages("contacts", per_page=50)
    assert len(contacts) == 120
    assert pages == 3
    assert {"revenue_12m", "lifetime_value", "referrals", "on_time_payment_rate", "service_cost_12m"} <= set(
        contacts[0]["custom_fields"]
    )
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert api.get("contacts", _updated_since=since).json() == []
    contact = contacts[5]
    changed = api.put(f"contacts/{contact['id']}", {"custom_fields": {"referrals": 9}})
    assert changed.status_code == 200
    assert changed.json()["custom_fields"]["revenue_12m"] == contact["custom_fields"]["revenue_12m"]
    assert [c["id"] for c in api.get("contacts", _updated_since=since).json()] == [contact["id"]]

    companies, _ = api.all_pages("companies", per_page=5)
    assert len(companies) == summary.organizations
    assert "tags" not in companies[0]  # Freshdesk companies have no tags


def test_contact_list_rows_leave_out_what_only_the_contact_shows(
    api: Api, box: FreshdeskSandbox, summary: SeedSummary
) -> None:
    """Freshdesk's list row is the contact without avatar, tags, other_emails, deleted, other_companies and
    view_all_tickets (its API views and tests); GET /contacts/{id} has them all."""
    tagged = box.find_contact(summary.vip_tagged_emails[0])
    assert tagged is not None
    row = next(c for c in api.all_pages("contacts", per_page=100)[0] if c["id"] == tagged["id"])
    omitted = {"avatar", "tags", "other_emails", "deleted", "other_companies", "view_all_tickets"}
    assert not omitted & set(row)
    assert {"id", "name", "email", "company_id", "custom_fields", "active", "updated_at"} <= set(row)
    shown = api.get(f"contacts/{tagged['id']}").json()
    assert omitted <= set(shown)
    assert shown["tags"] == ["vip"]
    assert {k: v for k, v in shown.items() if k not in omitted} == row


def test_a_lost_response_still_did_the_write(api: Api, box: FreshdeskSandbox, summary: SeedSummary) -> None:
    ticket = _ticket(api, box, summary)
    box.lose_responses(1, method="POST", path=f"/api/v2/tickets/{ticket['id']}/notes", hold=1.0)
    with pytest.raises(requests.Timeout):
        api.request("POST", f"tickets/{ticket['id']}/notes", json={"body": "<p>x</p>"}, timeout=0.3)
    assert [c["body_text"] for c in box.ticket_conversations(ticket["id"])] == ["x"]
    answered = api.post(f"tickets/{ticket['id']}/notes", {"body": "<p>y</p>"})  # only the next one is lost
    assert answered.status_code == 201


def test_seed_has_the_six_groups_vip_tags_and_history(
    api: Api, box: FreshdeskSandbox, summary: SeedSummary
) -> None:
    groups, _ = api.all_pages("groups")
    assert [g["name"] for g in groups] == list(GROUPS)
    assert set(summary.groups) == set(GROUPS)
    tagged = [i for i in summary.customer_ids if "vip" in api.get(f"contacts/{i}").json()["tags"]]
    assert len(tagged) == len(summary.vip_tagged_emails) == round(120 * 0.02)
    assert summary.tickets > 120
    assert box.counts()["conversations"] == summary.comments


# -- writes -----------------------------------------------------------------------------------------


def _ticket(api: Api, box: FreshdeskSandbox, summary: SeedSummary, **fields: Any) -> dict[str, Any]:
    body = {"requester_id": summary.customer_ids[0], "subject": "s", "description": "d", **fields}
    response = api.post("tickets", body)
    assert response.status_code == 201, response.text
    return response.json()


def test_put_with_tags_replaces_the_whole_list(api: Api, box: FreshdeskSandbox, summary: SeedSummary) -> None:
    ticket = _ticket(api, box, summary, tags=["agent_one", "agent_two"])
    assert ticket["tags"] == ["agent_one", "agent_two"]
    updated = api.put(f"tickets/{ticket['id']}", {"tags": ["tierdesk_routed"]}).json()
    assert updated["tags"] == ["tierdesk_routed"]
    assert box.get_ticket(ticket["id"])["tags"] == ["tierdesk_routed"]


def test_bodies_are_unwrapped_and_unknown_fields_refused(
    api: Api, box: FreshdeskSandbox, summary: SeedSummary
) -> None:
    wrapped = api.post("tickets", {"ticket": {"subject": "s", "description": "d"}})
    assert wrapped.status_code == 400
    fields = {e["field"]: e["code"] for e in _errors(wrapped)}
    assert fields["ticket"] == "invalid_field"

    ticket = _ticket(api, box, summary)
    for body, field, code in (
        ({"priority": "high"}, "priority", "invalid_value"),
        ({"priority": 5}, "priority", "invalid_value"),
        ({"status": 1}, "status", "invalid_value"),
        ({"group_id": 1}, "group_id", "invalid_value"),
        ({"comment": {"body": "x"}}, "comment", "invalid_field"),
        ({"tags": "vip"}, "tags", "datatype_mismatch"),
    ):
        response = api.put(f"tickets/{ticket['id']}", body)
        assert response.status_code == 400, body
        assert [(e["field"], e["code"]) for e in _errors(response)] == [(field, code)]

    plain = api.request(
        "PUT", f"tickets/{ticket['id']}", data="priority=4", headers={"Content-Type": "text/plain"}
    )
    assert plain.status_code == 415
    assert plain.json()["code"] == "invalid_content_type"


def test_priority_status_and_group_are_integers(
    api: Api, box: FreshdeskSandbox, summary: SeedSummary
) -> None:
    ticket = _ticket(api, box, summary)
    assert (ticket["priority"], ticket["status"], ticket["source"]) == (1, 2, 2)  # Freshdesk's defaults
    group = summary.groups["Key Accounts"]
    updated = api.put(f"tickets/{ticket['id']}", {"priority": 4, "status": 3, "group_id": group}).json()
    assert (updated["priority"], updated["status"], updated["group_id"]) == (4, 3, group)


def test_due_dates_follow_the_policy_unless_set(
    api: Api, box: FreshdeskSandbox, summary: SeedSummary
) -> None:
    ticket = _ticket(api, box, summary, priority=1)
    created = datetime.fromisoformat(ticket["created_at"].replace("Z", "+00:00"))

    def due(t: dict[str, Any], field: str) -> timedelta:
        return datetime.fromisoformat(t[field].replace("Z", "+00:00")) - created

    assert (due(ticket, "fr_due_by"), due(ticket, "due_by")) == (timedelta(days=1), timedelta(days=5))
    urgent = api.put(f"tickets/{ticket['id']}", {"priority": 4}).json()
    assert (due(urgent, "fr_due_by"), due(urgent, "due_by")) == (timedelta(hours=1), timedelta(hours=4))

    fr = (created + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resolve = (created + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    explicit = api.put(f"tickets/{ticket['id']}", {"priority": 3, "fr_due_by": fr, "due_by": resolve}).json()
    assert (explicit["fr_due_by"], explicit["due_by"]) == (fr, resolve)

    backwards = api.put(f"tickets/{ticket['id']}", {"fr_due_by": resolve, "due_by": fr})
    assert backwards.status_code == 400
    assert _errors(backwards)[0]["field"] == "fr_due_by"
    before = api.put(f"tickets/{ticket['id']}", {"due_by": "2001-01-01T00:00:00Z"})
    assert before.status_code == 400
    assert _errors(before)[0]["field"] == "due_by"


def test_notes_are_private_by_default_and_listed_as_conversations(
    api: Api, box: FreshdeskSandbox, summary: SeedSummary
) -> None:
    ticket = _ticket(api, box, summary)
    note = api.post(f"tickets/{ticket['id']}/notes", {"body": "<div>why<br>because</div>"})
    assert note.status_code == 201
    assert note.json()["private"] is True
    assert note.json()["body_text"] == "why\nbecause"
    assert note.json()["user_id"] == box.api_agent_id
    public = api.post(f"tickets/{ticket['id']}/notes", {"body": "hello", "private": False}).json()
    assert public["private"] is False

    listed = api.get(f"tickets/{ticket['id']}/conversations").json()
    assert [c["private"] for c in listed] == [True, False]
    shown = api.get(f"tickets/{ticket['id']}", include="conversations").json()
    assert [c["id"] for c in shown["conversations"]] == [c["id"] for c in listed]
    assert shown["updated_at"] > ticket["updated_at"]  # a note changes the ticket
    assert shown["description_text"] == "d"

    missing = api.post(f"tickets/{ticket['id']}/notes", {"private": True})
    assert missing.status_code == 400
    assert _errors(missing)[0]["code"] == "missing_field"


def test_unknown_ids_are_404(api: Api, summary: SeedSummary) -> None:
    for path in ("tickets/999999", "contacts/1", "companies/1", "tickets/999999/conversations"):
        assert api.get(path).status_code == 404
    assert api.post("tickets/999999/notes", {"body": "x"}).status_code == 404


def test_new_contact_by_email_and_duplicate_email_is_409(
    api: Api, box: FreshdeskSandbox, summary: SeedSummary
) -> None:
    ticket = _ticket(api, box, summary, requester_id=None, email="brand.new@example.com")
    assert box.find_contact("brand.new@example.com")["id"] == ticket["requester_id"]
    duplicate = api.post("contacts", {"name": "Again", "email": "brand.new@example.com"})
    assert duplicate.status_code == 409
    assert _errors(duplicate)[0]["code"] == "duplicate_value"


# -- rate limits and faults -------------------------------------------------------------------------


def test_rate_limit_headers_and_429_with_retry_after() -> None:
    box = FreshdeskSandbox(KEY, rate_limit_per_minute=4)
    box.start()
    try:
        api = Api(box)
        first = api.get("tickets")
        assert first.headers["X-RateLimit-Total"] == "4"
        assert first.headers["X-RateLimit-Remaining"] == "3"
        assert first.headers["X-RateLimit-Used-CurrentRequest"] == "1"
        embedded = api.get("tickets", include="requester")  # an include costs one more credit
        assert embedded.headers["X-RateLimit-Used-CurrentRequest"] == "2"
        assert embedded.headers["X-RateLimit-Remaining"] == "1"
        api.get("tickets")
        limited = api.get("tickets")
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert limited.headers["X-RateLimit-Remaining"] == "0"
    finally:
        box.stop()


def test_ticket_update_cap_is_off_by_default(api: Api, box: FreshdeskSandbox, summary: SeedSummary) -> None:
    ticket = _ticket(api, box, summary)
    assert not box.endpoint_limits.enabled
    statuses = {api.put(f"tickets/{ticket['id']}", {"priority": 1 + n % 4}).status_code for n in range(85)}
    assert statuses == {200}  # past Growth's 80 a minute
    last = api.put(f"tickets/{ticket['id']}", {"priority": 2})
    assert last.headers["X-RateLimit-Total"] == "700"  # the account's budget, as before


@pytest.mark.parametrize(("plan", "cap"), [("growth", 80), ("pro", 160), ("enterprise", 280)])
def test_ticket_update_cap_follows_the_plan(plan: str, cap: int) -> None:
    assert (
        FreshdeskSandbox(KEY, endpoint_limits=True, plan=plan).endpoint_limits.limits["update_ticket"].limit
        == cap
    )


def test_unknown_plan_is_refused() -> None:
    with pytest.raises(ValueError, match="plan must be one of"):
        FreshdeskSandbox(KEY, plan="platinum")


def test_the_81st_ticket_update_on_growth_is_429_while_other_endpoints_answer() -> None:
    box = FreshdeskSandbox(KEY, endpoint_limits=True, plan="growth")
    summary = seed(box, customers=5, seed=7)
    box.start()
    try:
        api = Api(box)
        ticket = _ticket(api, box, summary)
        remaining = []
        for n in range(80):
            answer = api.put(f"tickets/{ticket['id']}", {"priority": 1 + n % 4})
            assert answer.status_code == 200, answer.text
            remaining.append(int(answer.headers["X-RateLimit-Remaining"]))
        assert remaining[-1] == 0  # the binding budget: the cap's 80, not the account's 700
        over = api.put(f"tickets/{ticket['id']}", {"priority": 1})  # the 80th set priority 4
        assert over.status_code == 429
        assert over.json()["code"] == "rate_limit_exceeded"
        assert 1 <= int(over.headers["Retry-After"]) <= 60
        assert (over.headers["X-RateLimit-Total"], over.headers["X-RateLimit-Remaining"]) == ("80", "0")
        assert box.get_ticket(ticket["id"])["priority"] == 4  # refused: not written
        reads = api.get(f"tickets/{ticket['id']}")
        assert reads.status_code == 200
        assert reads.headers["X-RateLimit-Total"] == "700"  # other endpoints: the account's budget
        assert api.post(f"tickets/{ticket['id']}/notes", {"body": "n"}).status_code == 201
        assert (
            api.post("tickets", {"email": "x@example.com", "subject": "s", "description": "d"}).status_code
            == 201
        )
    finally:
        box.stop()


def test_ticket_update_cap_takes_a_window_and_a_control_switch(
    api: Api, box: FreshdeskSandbox, summary: SeedSummary
) -> None:
    ticket = _ticket(api, box, summary)
    control = f"{box.base_url}/__sandbox/endpoint_limits"
    switched = requests.post(control, json={"limits": {"update_ticket": [2, 1.0]}}, timeout=5)
    assert switched.json() == {"endpoint_limits": {"update_ticket": {"limit": 2, "window": 1.0}}}
    statuses = [api.put(f"tickets/{ticket['id']}", {"priority": 2}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    time.sleep(1.1)
    assert api.put(f"tickets/{ticket['id']}", {"priority": 3}).status_code == 200
    requests.post(control, json={"enabled": False}, timeout=5)
    assert {api.put(f"tickets/{ticket['id']}", {"priority": 1}).status_code for _ in range(4)} == {200}


def test_injected_faults_can_target_one_method(api: Api, box: FreshdeskSandbox, summary: SeedSummary) -> None:
    ticket = _ticket(api, box, summary)
    box.inject_faults(429, count=1, retry_after=7)
    limited = api.get(f"tickets/{ticket['id']}")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
    box.inject_faults(503, count=1, method="PUT")
    assert api.get(f"tickets/{ticket['id']}").status_code == 200
    assert api.put(f"tickets/{ticket['id']}", {"priority": 2}).status_code == 503
    assert api.put(f"tickets/{ticket['id']}", {"priority": 2}).status_code == 200


# -- automation rules and webhooks ------------------------------------------------------------------


class Receiver:
    """A local endpoint that records what the automation rule sends."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Event()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @Request.application
    def app(self, request: Request) -> Response:
        self.requests.append(({k.lower(): v for k, v in request.headers.items()}, request.get_data()))
        self.arrived.set()
        return Response("ok", self.status)


def _deliveries_through_a_probe(box: FreshdeskSandbox) -> list[str]:
    """The ticket ids of every rule delivery so far, sorted, the probe's shown as "probe".

    Freshdesk shows no record of what a change fired, so what proves that an earlier change fired nothing
    is a later one that does: a portal ticket (the rule runs on creation) whose delivery is awaited. Rules
    fire in the order of the changes, so a delivery an earlier change fired goes out before the probe's.
    """
    probe = box.submit_ticket("probe@example.com", "probe", "does the rule fire?")["id"]
    wait_for(lambda: any(d["ticket_id"] == probe for d in box.deliveries), "the probe ticket's delivery", 5)
    return sorted("probe" if d["ticket_id"] == probe else str(d["ticket_id"]) for d in box.deliveries)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


TEMPLATE = json.dumps(
    {
        "ticket": {
            "id": "{{ticket.id}}",
            "subject": "{{ticket.subject}}",
            "priority": "{{ticket.priority}}",
            "status": "{{ticket.status}}",
            "tags": "{{ticket.tags}}",
            "contact": "{{ticket.contact.id}}",
            "email": "{{ticket.contact.email}}",
            "nothing": "{{ticket.no_such_thing}}",
        }
    }
)


def test_automation_rule_posts_the_rendered_template_when_a_ticket_is_created(
    api: Api, box: FreshdeskSandbox, summary: SeedSummary, receiver: Receiver
) -> None:
    rule = requests.post(
        f"{box.base_url}/__sandbox/automations",
        json={"url": receiver.url, "body": TEMPLATE, "headers": {"X-Tierdesk-Secret": "s3cret"}},
        timeout=5,
    )
    assert rule.status_code == 201
    assert rule.json()["automation"]["header_names"] == ["X-Tierdesk-Secret"]  # never the value
    contact = _contact(box, summary)
    ticket = _ticket(api, box, summary, subject='Say "hi"', tags=["b", "a"], priority=3)
    assert receiver.arrived.wait(5)
    headers, body = receiver.requests[0]
    assert headers["x-tierdesk-secret"] == "s3cret"
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers
    assert "signature" not in " ".join(headers)  # Freshdesk signs nothing
    sent = json.loads(body)["ticket"]
    assert sent == {
        "id": str(ticket["id"]),
        "subject": 'Say "hi"',
        "priority": "High",
        "status": "Open",
        "tags": "b, a",
        "contact": str(contact["id"]),
        "email": contact["email"],
        "nothing": "",
    }
    # the update that routes the ticket fires nothing: the rule runs on creation only
    assert len(box.wait_for_deliveries(1)) == 1  # the creation's delivery, recorded once answered
    api.put(f"tickets/{ticket['id']}", {"priority": 4})
    assert _deliveries_through_a_probe(box) == sorted([str(ticket["id"]), "probe"])


def test_automation_rule_can_send_basic_auth_and_is_retried_on_5xx(
    api: Api, box: FreshdeskSandbox, summary: SeedSummary
) -> None:
    failing = Receiver(status=503)
    try:
        box.add_automation_rule(failing.url, '{"id": "{{ticket.id}}"}', basic_auth=("tierdesk", "pw"))
        box.submit_ticket("portal.user@example.com", "help", "please")
        deliveries = box.wait_for_deliveries(4, timeout=5)
        assert [d["attempt"] for d in deliveries] == [1, 2, 3, 4]
        assert all(d["status_code"] == 503 for d in deliveries)
        headers, _ = failing.requests[0]
        assert headers["authorization"] == "Basic " + base64.b64encode(b"tierdesk:pw").decode()
    finally:
        failing.server.shutdown()


def test_seeded_history_fires_no_rules(box: FreshdeskSandbox, receiver: Receiver) -> None:
    box.add_automation_rule(receiver.url, '{"id": "{{ticket.id}}"}')
    seed(box, customers=20, seed=1)
    assert _deliveries_through_a_probe(box) == ["probe"]
