"""The HubSpot connector against the HubSpot sandbox: pulls, windowing, revenue, write-back, failures.

Why: HubSpot feeds revenue into every enriched customer's segment. A missed page (the 10,000-result
search cap), a deal counted for the wrong contact, or a rate-limit storm that gives up too early would all
quietly change who gets urgent treatment.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from connectors.base import is_helpdesk, is_source
from connectors.http import ApiError, ApiRateLimited, ApiUnauthorized
from connectors.hubspot import HubSpotConnector, rate_limit_wait
from integration import segment_service
from integration.pull import pull, resolve_identities
from integration.runtime import Runtime
from integration.settings import Settings
from integration.store import Store
from integration.web.app import create_app
from sandbox.base import SeedSummary
from sandbox.hubspot import HubSpotSandbox
from sandbox.hubspot.seed import seed as seed_hubspot
from sandbox.zendesk import ZendeskSandbox

TOKEN = "hs-test-token"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def hub() -> Iterator[HubSpotSandbox]:
    box = HubSpotSandbox(token=TOKEN, window_ms=200)
    box.start()
    yield box
    box.stop()


@pytest.fixture
def hubspot(hub: HubSpotSandbox) -> HubSpotConnector:
    return HubSpotConnector(TOKEN, hub.base_url, backoff_initial=0.01, backoff_max=0.05)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "hubspot.db")


def _seed_small(hub: HubSpotSandbox) -> dict[str, str]:
    """Two companies, three contacts, deals won/lost/open; returns ids by name."""
    acme = hub.add("companies", {"name": "Acme", "domain": "acme.example", "numberofemployees": "40"})["id"]
    globex = hub.add("companies", {"name": "Globex", "domain": "globex.example", "industry": "retail"})["id"]
    ana = hub.add("contacts", {"email": "ana@acme.example", "firstname": "Ana", "lastname": "Silva"})["id"]
    ben = hub.add("contacts", {"email": "ben@acme.example", "firstname": "Ben", "lifecyclestage": "lead"})[
        "id"
    ]
    cy = hub.add("contacts", {"email": "cy@globex.example", "firstname": "Cy", "lifecyclestage": "customer"})[
        "id"
    ]
    hub.associate("contacts", ana, "companies", acme)
    hub.associate("contacts", ben, "companies", acme)
    hub.associate("contacts", cy, "companies", globex)
    recent = (NOW - timedelta(days=30)).isoformat()
    old = (NOW - timedelta(days=700)).isoformat()
    deals = {
        "won_recent": ({"amount": "1000", "dealstage": "closedwon", "closedate": recent}, [ana, ben], [acme]),
        "won_old": ({"amount": "250.5", "dealstage": "closedwon", "closedate": old}, [ana], [acme]),
        "lost": ({"amount": "9999", "dealstage": "closedlost", "closedate": recent}, [ana], [acme]),
        "open": ({"amount": "5000", "dealstage": "contractsent"}, [cy], [globex]),
    }
    ids = {"acme": acme, "globex": globex, "ana": ana, "ben": ben, "cy": cy}
    for name, (props, contacts, companies) in deals.items():
        deal = hub.add("deals", props)["id"]
        ids[name] = deal
        for contact in contacts:
            hub.associate("deals", deal, "contacts", contact)
        for company in companies:
            hub.associate("deals", deal, "companies", company)
    return ids


def test_pull_translates_companies_contacts_and_closed_won_deals(
    hub: HubSpotSandbox, hubspot: HubSpotConnector, store: Store
) -> None:
    ids = _seed_small(hub)
    counts = pull(store, hubspot)
    assert counts == {"organizations": 2, "users": 3, "purchases": 4}
    ana = store.get_customer(f"hubspot:user:{ids['ana']}")
    assert ana is not None
    assert (ana.email, ana.name, ana.organization_id) == ("ana@acme.example", "Ana Silva", ids["acme"])
    acme = store.get_organization(f"hubspot:org:{ids['acme']}")
    assert acme is not None
    assert acme.domains == ("acme.example",)
    assert acme.attributes["employees"] == 40

    resolve_identities(store, now=NOW)  # purchases become attributes as of NOW
    ana = store.get_customer(f"hubspot:user:{ids['ana']}")
    assert ana is not None
    assert ana.attributes == {  # with an overlay, unset attributes are left out rather than None
        "revenue_12m": 1000.0,
        "lifetime_value": 1250.5,
        "purchases_12m": 1,
        "last_purchase_days": 30,
    }
    ben = store.get_customer(f"hubspot:user:{ids['ben']}")
    assert ben.attributes["revenue_12m"] == 1000.0  # a deal counts for every contact on it
    cy = store.get_customer(f"hubspot:user:{ids['cy']}")
    assert "revenue_12m" not in cy.attributes  # an open deal is no revenue; no deals is unknown, not 0
    acme = store.get_organization(f"hubspot:org:{ids['acme']}")
    assert acme.attributes["lifetime_value"] == 1250.5

    # a deal lost after all disappears from revenue on the next incremental pull
    hub.update("deals", ids["won_recent"], {"dealstage": "closedlost"})
    again = pull(store, hubspot, streams=("purchases",))
    assert again["purchases"] >= 1
    resolve_identities(store, now=NOW)
    assert store.get_customer(f"hubspot:user:{ids['ben']}").attributes.get("revenue_12m") is None
    assert store.get_customer(f"hubspot:user:{ids['ana']}").attributes["revenue_12m"] == 0.0
    states = {(s["connector"], s["stream"]): s for s in store.sync_state()}
    assert states[("hubspot", "purchases")]["status"] == "ok"
    assert states[("hubspot", "purchases")]["runs"] == 2


def test_incremental_pull_starts_from_the_cursor_with_a_minute_of_lookback(
    hub: HubSpotSandbox, hubspot: HubSpotConnector, store: Store
) -> None:
    for i in range(30):
        hub.add("contacts", {"email": f"p{i}@example.com"}, modified_at=NOW - timedelta(hours=2, minutes=i))
    assert pull(store, hubspot, streams=("users",)) == {"users": 30}
    cursor = store.get_cursor("hubspot", "users")
    assert cursor == str(int((NOW - timedelta(hours=2)).timestamp() * 1000))
    assert pull(store, hubspot, streams=("users",)) == {"users": 2}  # the newest minute, read again
    changed = hub.add("contacts", {"email": "late@example.com"})["id"]
    hub.clear_request_log()
    after = pull(store, hubspot, streams=("users",))
    assert after == {"users": 3}
    assert store.get_customer(f"hubspot:user:{changed}") is not None
    (search,) = [r for r in hub.request_log if r["path"].endswith("/search")]
    assert search["body"]["filterGroups"][0]["filters"][0] == {
        "propertyName": "lastmodifieddate",
        "operator": "GTE",
        "value": str(int(cursor) - 60_000),
    }
    assert search["body"]["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]


def test_search_cap_is_handled_by_windowing_on_the_modified_date(hub: HubSpotSandbox, store: Store) -> None:
    hub.search_cap = 50
    base = NOW - timedelta(days=3)
    for i in range(137):  # pairs of companies share a modified time, so windows restart on a tie
        hub.add(
            "companies",
            {"name": f"Co {i}", "domain": f"co{i}.example"},
            modified_at=base + timedelta(seconds=i // 2),
        )
    connector = HubSpotConnector(TOKEN, hub.base_url, page_size=20, search_cap=50)
    counts = pull(store, connector, streams=("organizations",))
    assert store.count("organizations") == 137
    assert counts["organizations"] >= 137  # the boundary records are read twice, harmlessly
    searches = [r for r in hub.request_log if r["path"].endswith("/search")]
    assert all(int(r["body"].get("after", 0)) + 20 <= 50 for r in searches)
    assert all(r["status"] == 200 for r in searches)
    windows = [
        r["body"]["filterGroups"][0]["filters"][0]["value"]
        for r in searches
        if "after" not in r["body"] and "filterGroups" in r["body"]
    ]
    assert len(windows) >= 2


def test_more_records_on_one_timestamp_than_the_cap_is_a_clear_error(
    hub: HubSpotSandbox, store: Store
) -> None:
    hub.search_cap = 20
    for i in range(25):
        hub.add("companies", {"name": f"Same {i}"}, modified_at=NOW)
    connector = HubSpotConnector(TOKEN, hub.base_url, page_size=10, search_cap=20)
    with pytest.raises(ApiError, match="cannot window the search"):
        pull(store, connector, streams=("organizations",))
    (state,) = store.sync_state("hubspot")
    assert state["status"] == "error"
    assert "cannot window" in state["last_error"]


def test_429_without_retry_after_waits_for_the_rate_limit_window(hub: HubSpotSandbox, store: Store) -> None:
    _seed_small(hub)
    connector = HubSpotConnector(TOKEN, hub.base_url, max_attempts=4, backoff_initial=5.0)
    hub.inject_faults(429, 2)
    started = time.monotonic()
    assert pull(store, connector, streams=("organizations",)) == {"organizations": 2}
    waited = time.monotonic() - started
    assert connector.http.rate_limited == 2
    assert 0.4 <= waited < 4.0  # twice the sandbox's 200 ms window, not the 5 s backoff


def test_a_real_rate_limit_window_is_respected(store: Store) -> None:
    limited = HubSpotSandbox(token=TOKEN, rate_limit=4, window_ms=300)
    limited.start()
    try:
        for i in range(30):
            limited.add("contacts", {"email": f"r{i}@example.com"})
        connector = HubSpotConnector(TOKEN, limited.base_url, page_size=5, max_attempts=5)
        assert pull(store, connector, streams=("users",)) == {"users": 30}
        assert connector.http.rate_limited >= 1
    finally:
        limited.stop()


def test_rate_limit_wait_reads_hubspots_headers() -> None:
    import requests

    def response(**headers: str) -> requests.Response:
        r = requests.Response()
        r.status_code = 429
        r.headers.update(headers)
        return r

    assert rate_limit_wait(response(**{"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})) == 10.0
    assert rate_limit_wait(response(**{"X-HubSpot-RateLimit-Secondly": "10"})) == 1.0
    assert rate_limit_wait(response()) == 10.0


def test_zendesk_429_without_retry_after_still_backs_off_exponentially() -> None:
    from connectors.http import HttpClient

    client = HttpClient("zendesk", "http://127.0.0.1:9")
    assert client.rate_limit_wait is None  # the hook is HubSpot's alone; Retry-After rules elsewhere
    error = ApiRateLimited("zendesk", "429", None)
    assert error.retry_after is None


def test_wrong_token_is_unauthorized(hub: HubSpotSandbox, store: Store) -> None:
    wrong = HubSpotConnector("nope", hub.base_url)
    with pytest.raises(ApiUnauthorized, match="INVALID_AUTHENTICATION|Authentication"):
        pull(store, wrong, streams=("users",))


def test_push_segments_creates_the_property_and_batches_by_100(
    hub: HubSpotSandbox, hubspot: HubSpotConnector
) -> None:
    contacts = [hub.add("contacts", {"email": f"s{i}@example.com"})["id"] for i in range(230)]
    company = hub.add("companies", {"name": "Acme"})["id"]
    changes: dict[str, list[str]] = {f"hubspot:user:{c}": ["tier_b"] for c in contacts}
    changes[f"hubspot:user:{contacts[0]}"] = ["tier_a", "vip"]
    changes[f"hubspot:user:{contacts[1]}"] = []
    changes[f"hubspot:org:{company}"] = ["key"]
    changes["zendesk:user:5"] = ["tier_a"]
    hub.clear_request_log()
    report = hubspot.push_segments(changes)
    assert len(report.succeeded) == 231
    assert report.failed == []
    assert report.skipped == ["zendesk:user:5"]
    prop = hub.property("contacts", "tierdesk_segment")
    assert prop is not None
    assert prop["type"] == "enumeration"
    assert prop["fieldType"] == "checkbox"
    assert {o["value"] for o in prop["options"]} == {"tier_a", "tier_b", "vip"}
    assert hub.get("contacts", contacts[0])["properties"]["tierdesk_segment"] == "tier_a;vip"
    assert "tierdesk_segment" not in hub.get("contacts", contacts[1])["properties"]
    assert hub.get("companies", company)["properties"]["tierdesk_segment"] == "key"
    batches = [r for r in hub.request_log if r["path"].endswith("/batch/update")]
    assert [len(r["body"]["inputs"]) for r in batches] == [100, 100, 30, 1]

    # a new label adds an option; an unknown record is reported, the rest written
    report = hubspot.push_segments(
        {f"hubspot:user:{contacts[2]}": ["at_risk"], "hubspot:user:999999": ["tier_c"]}
    )
    assert len(report.succeeded) == 1
    assert report.failed == ["hubspot:user:999999"]
    assert report.errors[0].startswith("hubspot:user:999999: ")
    assert "OBJECT_NOT_FOUND" in report.errors[0]
    assert {o["value"] for o in hub.property("contacts", "tierdesk_segment")["options"]} >= {
        "at_risk",
        "tier_c",
    }


def test_pull_only_sources_have_no_webhooks(hubspot: HubSpotConnector) -> None:
    assert is_source(hubspot)
    assert hubspot.pull_only
    assert not is_helpdesk(hubspot)  # no webhook to verify, no groups to check, no ticket to route


# -- wired into tierdesk next to Zendesk ------------------------------------------------------------------


@pytest.fixture
def enriched(
    settings: Settings, sandbox: ZendeskSandbox, seeded: SeedSummary, hub: HubSpotSandbox
) -> Iterator[Runtime]:
    seed_hubspot(hub, customers=120, seed=7, zendesk=sandbox, customer_ids=seeded.customer_ids)
    runtime = Runtime.from_settings(replace(settings, hubspot_url=hub.base_url, hubspot_token=TOKEN))
    yield runtime
    runtime.store.close()


def test_hubspot_enriches_zendesk_customers_and_reports_conflicts(
    enriched: Runtime, sandbox: ZendeskSandbox, hub: HubSpotSandbox
) -> None:
    rt = enriched
    assert set(rt.connectors) == {"zendesk", "hubspot"}
    for connector in rt.connectors.values():
        pull(rt.store, connector, resolve=False)
    resolution = resolve_identities(rt.store)
    assert resolution is not None
    conflicts = rt.store.identity_conflicts()
    assert conflicts
    assert all(c["code"] == "duplicate" for c in conflicts if c["kind"] == "person")
    counts = rt.store.identity_counts()
    assert counts["person linked"] >= 80  # most Zendesk customers have a HubSpot contact
    assert counts["org linked"] >= 5

    linked = [
        link
        for link in rt.store.db.query("SELECT * FROM identities WHERE role = 'linked' AND kind = 'person'")
    ]
    entity = linked[0]["entity_key"]
    customer = rt.store.get_customer(entity)
    assert customer is not None
    assert customer.source == "zendesk"
    assert customer.attributes["lifecyclestage"] in ("customer", "lead", "opportunity", "subscriber")
    own = sandbox.get_user(int(customer.external_id))["user_fields"]
    if customer.attributes.get("revenue_12m") is not None:  # the deals add up to what Zendesk knew
        assert customer.attributes["revenue_12m"] == pytest.approx(own["revenue_12m"], abs=0.05)

    report = segment_service.recompute(rt.store, rt.mapping, rt.mapping_digest)
    zendesk_people = rt.store.count("customers") - hub.count("contacts")
    assert report.customers > zendesk_people  # CRM-only contacts are customers too, linked ones are not twice
    assert report.customers < rt.store.count("customers")


def test_webhook_to_a_pull_only_source_is_404(enriched: Runtime) -> None:
    client: FlaskClient = create_app(runtime=enriched).test_client()
    answer = client.post("/webhooks/hubspot", data=b"[]", headers={"Content-Type": "application/json"})
    assert answer.status_code == 404
    assert answer.json["error"] == "unknown_source"


def _cli_env(runtime: Runtime) -> dict[str, str]:
    s = runtime.settings
    return {
        "TIERDESK_DB": s.db,
        "TIERDESK_ZENDESK_URL": s.zendesk_url or "",
        "TIERDESK_ZENDESK_EMAIL": s.zendesk_email or "",
        "TIERDESK_ZENDESK_TOKEN": s.zendesk_token or "",
        "TIERDESK_ZENDESK_WEBHOOK_SECRET": s.zendesk_webhook_secret or "",
        "TIERDESK_HUBSPOT_URL": s.hubspot_url,
        "TIERDESK_HUBSPOT_TOKEN": s.hubspot_token or "",
        "TIERDESK_LOG_LEVEL": "ERROR",
    }


def test_sync_command_pulls_one_connector_reports_conflicts_and_lists_state(
    enriched: Runtime, hub: HubSpotSandbox
) -> None:
    from click.testing import CliRunner

    from integration.cli.commands import main

    runner = CliRunner()
    env = _cli_env(enriched)
    first = runner.invoke(main, ["sync", "--connector", "hubspot"], env=env)
    assert first.exit_code == 0, first.output
    assert "zendesk:" not in first.output
    assert (
        f"hubspot: organizations {hub.count('companies')}, users {hub.count('contacts')}, purchases"
        in first.output
    )
    assert "conflict (person, duplicate):" in first.output
    both = runner.invoke(main, ["sync"], env=env)
    assert both.exit_code == 0, both.output
    assert "zendesk: organizations" in both.output
    assert "records linked" in both.output
    status = runner.invoke(main, ["sync", "--status"], env=env)
    assert status.exit_code == 0, status.output
    lines = status.output.splitlines()
    assert any(line.split()[:3] == ["hubspot", "purchases", "ok"] for line in lines)
    assert any(line.split()[:3] == ["zendesk", "users", "ok"] for line in lines)
    assert "identity conflict(s), held back from merging" in status.output
    unknown = runner.invoke(main, ["sync", "--connector", "salesforce"], env=env)
    assert unknown.exit_code != 0
    assert "configured: zendesk, hubspot" in unknown.output

    broken = runner.invoke(
        main, ["sync", "--connector", "hubspot"], env={**env, "TIERDESK_HUBSPOT_TOKEN": "bad"}
    )
    assert broken.exit_code != 0
    assert "hubspot: failed:" in broken.output
    status = runner.invoke(main, ["sync", "--status"], env=env)
    assert "error: ApiUnauthorized" in status.output


def test_progress_shows_a_bar_per_stream_on_a_terminal(
    hub: HubSpotSandbox, hubspot: HubSpotConnector, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    from integration.cli.printing import SyncProgress

    _seed_small(hub)
    progress = SyncProgress(hubspot, store, full=False, enabled=True)
    assert progress.totals == {"organizations": 2, "users": 3, "purchases": 4}
    pull(store, hubspot, progress=progress)
    progress.close()
    shown = capsys.readouterr().out
    assert shown.splitlines() == ["hubspot organizations", "hubspot users", "hubspot purchases"]  # click
    # draws the bars themselves only on a real terminal; here it prints each bar's label once
    quiet = SyncProgress(hubspot, store, full=False)  # pytest's stdout is no terminal
    assert not quiet.enabled
    assert quiet.totals == {}


def test_scheduled_sync_writes_segments_to_linked_contacts_once(
    enriched: Runtime, hub: HubSpotSandbox
) -> None:
    """The scheduler's sync writes each HubSpot record's segments (its Zendesk person's, when linked) in
    batches of 100, and a second sync with nothing changed writes nothing."""
    from integration.scheduler import refresh

    first = refresh(enriched)
    planned = first["tags_hubspot"]["planned"]
    assert planned["users"] >= 80
    assert first["tags_hubspot"]["write_calls"] >= 2  # the property is created, then the batch updates
    link = next(
        iter(enriched.store.db.query("SELECT * FROM identities WHERE role = 'linked' AND kind = 'person'"))
    )
    person = enriched.store.segments_for(link["entity_key"])
    wanted = sorted(f"tierdesk_{d}_{a.label}".lower() for d, a in person.items() if a.label)
    contact_id = link["record_key"].rsplit(":", 1)[1]
    value = hub.get("contacts", contact_id)["properties"]["tierdesk_segment"]
    assert sorted(value.split(";")) == wanted

    again = refresh(enriched)
    assert again["tags_hubspot"]["write_calls"] == 0
    assert again["tags_hubspot"]["planned"] == {"users": 0, "organizations": 0}


def test_a_source_that_fails_to_pull_is_reported_and_the_others_go_on(enriched: Runtime) -> None:
    """One failure policy for the scheduler and `tierdesk sync`: the failing source is isolated, logged,
    kept in its stream state and reported; the others are pulled, recomputed, tagged and re-routed."""
    from integration import scheduler

    broken = Runtime.from_settings(replace(enriched.settings, hubspot_token="expired"))
    try:
        counts = scheduler.run_job(broken, "sync")
        assert counts is not None
        assert counts["pulled_zendesk"]["users"] == 120
        assert "HubSpot" in counts["pull_failed_hubspot"]
        assert "TIERDESK_HUBSPOT_TOKEN" in counts["pull_failed_hubspot"]
        assert counts["customers"] >= 120  # recomputed with what the other source brought
        assert counts["tags_zendesk"]["planned"]["users"] == 120  # and tagged
        assert "rerouted_zendesk" in counts
        (run,) = broken.store.list_job_runs()
        assert run["status"] == "failed"
        assert run["error"].startswith("pull hubspot: ")
        assert run["counts"] == counts
        states = {(row["connector"], row["status"]) for row in broken.store.sync_state()}
        assert ("hubspot", "error") in states
        assert ("zendesk", "ok") in states
        with pytest.raises(scheduler.JobIncomplete) as raised:
            scheduler.refresh(broken)  # called directly: the counts travel with the error
        assert raised.value.counts["tags_zendesk"]["write_calls"] == 0  # tagged already
    finally:
        broken.store.close()
