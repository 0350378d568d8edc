"""The HubSpot sandbox behaves like HubSpot in what tierdesk uses, over real loopback HTTP.

Why: the HubSpot connector's tests trust this sandbox; if it were more forgiving than HubSpot (no search
cap, no batch limit, any enumeration value accepted, a Retry-After HubSpot never sends) the connector
could pass here and fail on a real portal.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from sandbox.hubspot import SEARCH_CAP, HubSpotSandbox, iso_ms
from sandbox.hubspot.seed import seed
from sandbox.zendesk import ZendeskSandbox
from sandbox.zendesk.seed import seed as seed_zendesk

TOKEN = "hs-sandbox-test-token"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Api:
    def __init__(self, box: HubSpotSandbox, token: str = TOKEN) -> None:
        self.box = box
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> requests.Response:
        return requests.request(
            method, f"{self.box.base_url}{path}", json=body, params=params, headers=self.headers, timeout=5
        )

    def search(self, object_type: str, body: dict[str, Any]) -> requests.Response:
        return self.call("POST", f"/crm/v3/objects/{object_type}/search", body)


@pytest.fixture
def box() -> Iterator[HubSpotSandbox]:
    sandbox = HubSpotSandbox(token=TOKEN)
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def api(box: HubSpotSandbox) -> Api:
    return Api(box)


def _contacts(box: HubSpotSandbox, n: int, start: datetime = NOW) -> list[str]:
    return [
        box.add(
            "contacts",
            {"email": f"c{i}@example.com", "firstname": f"C{i}"},
            created_at=start,
            modified_at=start + timedelta(seconds=i),
        )["id"]
        for i in range(n)
    ]


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}"])
def test_requests_without_the_private_app_token_are_401(box: HubSpotSandbox, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    answer = requests.get(f"{box.base_url}/crm/v3/objects/contacts", headers=headers, timeout=5)
    assert answer.status_code == 401
    assert answer.json()["category"] == "INVALID_AUTHENTICATION"


def test_objects_list_pages_with_after_and_returns_string_properties(api: Api, box: HubSpotSandbox) -> None:
    ids = _contacts(box, 7)
    seen, after = [], None
    while True:
        page = api.call("GET", "/crm/v3/objects/contacts", limit=3, after=after).json()
        seen += [r["id"] for r in page["results"]]
        after = page.get("paging", {}).get("next", {}).get("after")
        if not after:
            break
    assert seen == ids
    first = api.call("GET", f"/crm/v3/objects/contacts/{ids[0]}").json()
    assert first["properties"]["email"] == "c0@example.com"
    assert first["properties"]["hs_object_id"] == ids[0]
    assert first["properties"]["lastmodifieddate"] == iso_ms(NOW)
    assert api.call("GET", "/crm/v3/objects/contacts", limit=101).status_code == 400
    by_email = api.call("GET", "/crm/v3/objects/contacts/C3@EXAMPLE.com", idProperty="email").json()
    assert by_email["id"] == ids[3]
    assert api.call("GET", "/crm/v3/objects/contacts/999999").status_code == 404
    assert api.call("GET", "/crm/v3/objects/tickets_of_doom").status_code == 400


def test_contact_emails_are_unique_and_writes_move_lastmodifieddate(api: Api, box: HubSpotSandbox) -> None:
    created = api.call("POST", "/crm/v3/objects/contacts", {"properties": {"email": "New@Example.com"}})
    assert created.status_code == 201
    again = api.call("POST", "/crm/v3/objects/contacts", {"properties": {"email": "new@example.com"}})
    assert again.status_code == 409
    assert created.json()["id"] in again.json()["message"]
    before = created.json()["properties"]["lastmodifieddate"]
    patched = api.call(
        "PATCH", f"/crm/v3/objects/contacts/{created.json()['id']}", {"properties": {"firstname": "Ny"}}
    )
    assert patched.status_code == 200
    assert patched.json()["properties"]["lastmodifieddate"] >= before
    unknown = api.call("POST", "/crm/v3/objects/contacts", {"properties": {"shoe_size": "44"}})
    assert unknown.status_code == 400
    assert "PROPERTY_DOESNT_EXIST" in unknown.text


def test_search_filters_sorts_and_pages(api: Api, box: HubSpotSandbox) -> None:
    _contacts(box, 12)
    since = int((NOW + timedelta(seconds=5)).timestamp() * 1000)
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(since)}]}
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}],
        "properties": ["email"],
        "limit": 4,
    }
    first = api.search("contacts", body).json()
    assert first["total"] == 7
    assert [r["properties"]["email"] for r in first["results"]] == [
        f"c{i}@example.com" for i in (11, 10, 9, 8)
    ]
    assert first["paging"]["next"]["after"] == "4"
    second = api.search("contacts", {**body, "after": "4"}).json()
    assert [r["properties"]["email"] for r in second["results"]] == [f"c{i}@example.com" for i in (7, 6, 5)]
    assert "paging" not in second
    iso = {"propertyName": "lastmodifieddate", "operator": "LT", "value": iso_ms(NOW + timedelta(seconds=2))}
    either = {
        "filterGroups": [
            {"filters": [iso]},
            {"filters": [{"propertyName": "email", "operator": "EQ", "value": "C11@example.com"}]},
        ],
        "sorts": ["lastmodifieddate"],
    }
    assert [r["properties"]["email"] for r in api.search("contacts", either).json()["results"]] == [
        "c0@example.com",
        "c1@example.com",
        "c11@example.com",
    ]


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"limit": 201}, "limit"),
        ({"filterGroups": [{"filters": []}] * 6}, "filterGroups"),
        (
            {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "x"}]}]},
            "operator",
        ),
        ({"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "x"}]}]}, "nope"),
        ({"sorts": ["email", "firstname"]}, "one sort"),
        ({"after": str(SEARCH_CAP)}, "10000"),
        ({"after": "9900", "limit": 200}, "10000"),
    ],
)
def test_search_refuses_what_hubspot_refuses(api: Api, body: dict[str, Any], complaint: str) -> None:
    answer = api.search("contacts", body)
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"
    assert complaint in answer.json()["message"]


def test_search_pages_up_to_the_cap_and_counts_beyond_it(box: HubSpotSandbox, api: Api) -> None:
    for i in range(SEARCH_CAP + 50):
        box.add("companies", {"name": f"Co {i}"}, created_at=NOW, modified_at=NOW + timedelta(milliseconds=i))
    body = {"sorts": ["hs_lastmodifieddate"], "limit": 200, "after": str(SEARCH_CAP - 200)}
    last = api.search("companies", body).json()
    assert last["total"] == SEARCH_CAP + 50
    assert len(last["results"]) == 200
    assert last["paging"]["next"]["after"] == str(SEARCH_CAP)  # HubSpot offers it, then refuses it
    assert api.search("companies", {**body, "after": str(SEARCH_CAP)}).status_code == 400


def test_custom_enumeration_property_and_batch_update(api: Api, box: HubSpotSandbox) -> None:
    ids = _contacts(box, 3)
    assert api.call("GET", "/crm/v3/properties/contacts/tierdesk_segment").status_code == 404
    created = api.call(
        "POST",
        "/crm/v3/properties/contacts",
        {
            "name": "tierdesk_segment",
            "label": "Segment",
            "type": "enumeration",
            "fieldType": "checkbox",
            "groupName": "contactinformation",
            "options": [{"label": "A", "value": "tier_a"}],
        },
    )
    assert created.status_code == 201
    assert api.call("POST", "/crm/v3/properties/contacts", created.json()).status_code == 409

    def update(inputs: list[dict[str, Any]]) -> requests.Response:
        return api.call("POST", "/crm/v3/objects/contacts/batch/update", {"inputs": inputs})

    refused = update([{"id": ids[0], "properties": {"tierdesk_segment": "tier_a;vip"}}])
    assert refused.status_code == 400
    assert "INVALID_OPTION" in refused.text
    options = [{"label": "A", "value": "tier_a"}, {"label": "VIP", "value": "vip"}]
    patched = api.call("PATCH", "/crm/v3/properties/contacts/tierdesk_segment", {"options": options})
    assert [o["value"] for o in patched.json()["options"]] == ["tier_a", "vip"]
    ok = update([{"id": ids[0], "properties": {"tierdesk_segment": "tier_a;vip"}}])
    assert ok.status_code == 200
    assert ok.json()["status"] == "COMPLETE"
    assert box.get("contacts", ids[0])["properties"]["tierdesk_segment"] == "tier_a;vip"
    partial = update(
        [
            {"id": ids[1], "properties": {"tierdesk_segment": "vip"}},
            {"id": "424242", "properties": {"tierdesk_segment": "vip"}},
        ]
    )
    assert partial.status_code == 207
    assert partial.json()["errors"][0]["context"]["ids"] == ["424242"]
    assert box.get("contacts", ids[1])["properties"]["tierdesk_segment"] == "vip"
    cleared = update([{"id": ids[0], "properties": {"tierdesk_segment": ""}}])
    assert cleared.status_code == 200
    assert "tierdesk_segment" not in box.get("contacts", ids[0])["properties"]
    too_many = update([{"id": ids[0], "properties": {}}] * 101)
    assert too_many.status_code == 400
    assert "100" in too_many.json()["message"]


def test_deals_are_closed_won_by_stage_and_associations_read_in_batches(
    api: Api, box: HubSpotSandbox
) -> None:
    contact = _contacts(box, 1)[0]
    company = box.add("companies", {"name": "Acme", "domain": "acme.example"})["id"]
    won = box.add("deals", {"amount": "1200.50", "dealstage": "closedwon", "closedate": "2026-01-02"})["id"]
    lost = box.add("deals", {"amount": "99", "dealstage": "closedlost"})["id"]
    box.associate("deals", won, "contacts", contact)
    box.associate("deals", won, "companies", company)
    box.associate("contacts", contact, "companies", company)
    assert box.get("deals", won)["properties"]["hs_is_closed_won"] == "true"
    assert box.get("deals", lost)["properties"]["hs_is_closed_won"] == "false"
    assert box.get("contacts", contact)["properties"]["associatedcompanyid"] == company
    answer = api.call(
        "POST", "/crm/v4/associations/deals/contacts/batch/read", {"inputs": [{"id": won}, {"id": lost}]}
    )
    assert answer.status_code == 200
    assert {r["from"]["id"]: [t["toObjectId"] for t in r["to"]] for r in answer.json()["results"]} == {
        won: [int(contact)],
        lost: [],
    }
    missing = api.call("POST", "/crm/v4/associations/deals/companies/batch/read", {"inputs": [{"id": "1"}]})
    assert missing.status_code == 207
    assert missing.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"


def test_rate_limit_is_429_with_hubspot_headers_and_no_retry_after() -> None:
    limited = HubSpotSandbox(token=TOKEN, rate_limit=3, window_ms=400)
    limited.start()
    try:
        api = Api(limited)
        answers = [api.call("GET", "/crm/v3/objects/contacts") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "3"
        assert answers[0].headers["X-HubSpot-RateLimit-Remaining"] == "2"
        blocked = answers[-1]
        assert "Retry-After" not in blocked.headers
        assert blocked.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "400"
        assert blocked.headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert blocked.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        time.sleep(0.45)  # the window rolls on
        assert api.call("GET", "/crm/v3/objects/contacts").status_code == 200
    finally:
        limited.stop()


def test_seed_overlaps_the_zendesk_seed_and_has_duplicates_and_conflicts() -> None:
    zendesk = ZendeskSandbox()
    summary = seed_zendesk(zendesk, customers=200, seed=5, now=NOW)
    emails = {zendesk.get_user(i)["email"] for i in summary.customer_ids}
    hub = HubSpotSandbox()
    hs = seed(hub, customers=200, seed=5, now=NOW)  # a throwaway Zendesk seeded alike: same emails
    assert set(hs.matched_emails) <= emails
    assert 0.75 <= len(hs.matched_emails) / len(emails) <= 0.95
    assert not set(hs.crm_only_emails) & emails
    assert hs.conflict_emails
    assert hs.merged_duplicate_emails
    contacts = [hub.get("contacts", str(i))["properties"] for i in range(101, 101 + hs.contacts)]
    by_email: dict[str, list[dict[str, Any]]] = {}
    for props in contacts:
        by_email.setdefault(props["email"].casefold(), []).append(props)
    for email in hs.conflict_emails:
        first, second = by_email[email]
        assert (first["firstname"], first["lastname"]) != (second["firstname"], second["lastname"])
    assert any(p["email"] != p["email"].lower() for p in contacts)  # CRMs keep what people typed
    # deals add up to the Zendesk user's revenue
    user = next(
        zendesk.get_user(i)
        for i in summary.customer_ids
        if zendesk.get_user(i)["email"] in hs.matched_emails
        and zendesk.get_user(i)["user_fields"]["revenue_12m"]
    )
    contact_id = hs.contact_ids[user["email"]]
    year_ago = NOW - timedelta(days=365)
    won = [
        hub.get("deals", d)["properties"]
        for d in hub._associations[("contacts", "deals")].get(contact_id, [])
    ]
    recent = sum(
        float(p["amount"])
        for p in won
        if p["hs_is_closed_won"] == "true"
        and datetime.fromisoformat(p["closedate"].replace("Z", "+00:00")) >= year_ago
    )
    assert recent == pytest.approx(user["user_fields"]["revenue_12m"], abs=0.02)
    again = seed(HubSpotSandbox(), customers=200, seed=5, now=NOW)
    assert again.contact_ids == hs.contact_ids
