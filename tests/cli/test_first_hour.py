"""A new user's first hour: the demo, what it leaves to look at, its numbers, the admin's rough edges.

The demo runs for real (sandboxes on loopback, tierdesk listening, webhooks routed); the admin is read
through its own HTTP server while the demo still serves it, or through Flask's test client.
"""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from integration.cli import demo
from integration.cli.demo import run
from integration.core.mapping import MappingError
from integration.core.mapping_file import parse_mapping
from integration.store import Store
from tests.support import ROOT, AdminApp, edit, free_port, run_tierdesk, sign_in

# -- the demo leaves something to look at ---------------------------------------------------------------


@pytest.mark.slow
def test_demo_keeps_its_database_at_db_on_the_port_asked_and_prints_the_line(tmp_path: Path) -> None:
    path, port = tmp_path / "demo.db", free_port()
    args = ("--customers", "150", "--tickets", "5", "--seed", "3", "--no-serve")
    result = run_tierdesk("demo", *args, "--db", str(path), "--port", str(port), env={}, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Admin: http://127.0.0.1:{port}/admin/" in result.stdout
    assert f"  export TIERDESK_DB={path}" in result.stdout.splitlines()
    assert path.exists()
    status = run_tierdesk("sync", "--status", env={"TIERDESK_DB": str(path)})  # as the printed line says
    assert status.returncode == 0, status.stderr
    assert "zendesk      users" in status.stdout


@pytest.mark.slow
def test_demo_without_db_removes_its_temporary_folder() -> None:
    lines: list[str] = []
    assert run(customers=150, tickets=5, seed=3, echo=lines.append, serve=False) == 0
    said = next(line for line in lines if line.startswith("The demo's database "))
    found = re.search(r"(/\S+/tierdesk\.db) is removed as the demo ends: add --db PATH to keep it", said)
    assert found, said
    folder = Path(found.group(1)).parent
    assert folder.name.startswith("tierdesk-demo-")
    assert not folder.exists()


@pytest.mark.slow
def test_demo_refuses_a_db_that_exists_and_a_port_in_use(tmp_path: Path) -> None:
    existing = tmp_path / "mine.db"
    existing.write_bytes(b"precious")
    result = run_tierdesk("demo", "--no-serve", "--db", str(existing), env={})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert f"--db {existing}: {existing} exists already" in line
    assert existing.read_bytes() == b"precious"  # nothing lost
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(demo.DemoError, match=f"--port {port}: cannot listen on 127.0.0.1:{port}"):
            run(customers=50, tickets=1, echo=lambda _: None, serve=False, port=port)


@pytest.mark.slow
def test_freshdesk_demo_ends_with_its_own_command() -> None:
    lines: list[str] = []
    assert run(customers=60, tickets=2, seed=5, echo=lines.append, helpdesk="freshdesk", serve=False) == 0
    assert "`tierdesk demo --helpdesk freshdesk --serve`" in lines[-1]
    assert not [line for line in lines if "make demo" in line]


# -- one number of customers everywhere -----------------------------------------------------------------


class AdminReader:
    """Reads the admin the demo prints, over HTTP, at the moment the demo prints it (it still serves)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.seen: dict[str, object] = {}

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        api = re.match(r'Admin API: curl -H "Authorization: Bearer (\S+)" (http://\S+)', line)
        if not api:
            return
        token, api_url = api.groups()
        printed = next(x for x in self.lines if x.startswith("Admin: "))
        base, password = re.match(
            r"Admin: (http://\S+)/admin/ \(user admin, password (\S+)\)", printed
        ).groups()
        self.seen["api_answer"] = requests.get(
            api_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        session = requests.Session()
        login = session.get(f"{base}/admin/login", timeout=10).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
        signed = session.post(
            f"{base}/admin/login",
            data={"user": "admin", "password": password, "csrf_token": csrf},
            timeout=10,
        )
        assert signed.status_code == 200, signed.text[:200]
        self.seen["overview"] = session.get(f"{base}/admin/", timeout=10).text
        self.seen["segments"] = session.get(f"{base}/admin/segments", timeout=10).text


def _number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.slow
def test_demo_segment_totals_overview_and_segments_page_count_the_same_customers(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    reader = AdminReader()
    assert run(customers=150, tickets=5, seed=3, echo=reader, serve=False, db=str(path)) == 0

    store = Store(path)
    raw = store.count("customers")  # every source's records, CRM contacts linked into a user included
    by_source = store.customer_counts()
    customers = store.customer_count()
    assert by_source["zendesk"] == 150
    assert by_source.get("hubspot", 0) > 0  # CRM-only contacts are customers too
    assert customers < raw  # ... linked ones are not customers of their own

    said = next(line for line in reader.lines if line.startswith("Segmented "))
    assert said.startswith(f"Segmented {customers:,} customers in ")
    assert f"({150:,} Zendesk users and {by_source['hubspot']:,} HubSpot contacts not in Zendesk;" in said
    dimension_lines = reader.lines[reader.lines.index(said) + 1 :][:6]
    for line in dimension_lines:  # "  tier       B 62, C 55, A 33": every dimension adds up to the same
        assert sum(int(n) for n in re.findall(r" (\d+)(?:,|$)", line)) == customers, line

    segment = run_tierdesk("segment", env={"TIERDESK_DB": str(path)})
    assert segment.returncode == 0, segment.stderr
    assert segment.stdout.startswith(f"{customers} customers, ")

    overview = str(reader.seen["overview"])
    card = re.search(r'<span class="big">([\d,]+)</span> customers', overview)
    assert card
    assert _number(card.group(1)) == customers
    assert "Helpdesks: zendesk." in overview  # HubSpot is a source, not a helpdesk
    assert "Sources: hubspot." in overview
    page = str(reader.seen["segments"])
    heading = re.search(r"Labels as stored by the last recompute, ([\d,]+) customers\.", page)
    assert heading
    assert _number(heading.group(1)) == customers
    api = reader.seen["api_answer"]
    assert isinstance(api, requests.Response)
    assert api.status_code == 200  # the API address the demo prints answers
    for dimension in api.json()["dimensions"]:
        assert sum(row["customers"] for row in dimension["labels"]) == customers, dimension["dimension"]
    assert api.json()["quality"]["customers"] == customers


@pytest.mark.slow
def test_a_person_found_by_email_is_one_customer_not_one_per_record(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    assert run(customers=150, tickets=2, seed=3, echo=lambda _: None, serve=False, db=str(path)) == 0
    store = Store(path)
    link = next(
        iter(
            store.db.query(
                "SELECT record_key, entity_key FROM identities WHERE role = 'linked' AND kind = 'person'"
            )
        )
    )
    email = store.get_customer(link["record_key"]).email
    assert email
    assert email.lower() == (store.get_customer(link["entity_key"]).email or "").lower()
    found = store.search_customers(email)
    assert [c.key for c in found] == [link["entity_key"]]  # the Zendesk user, enriched; not the CRM copy
    held = next(iter(store.db.query("SELECT record_key FROM identities WHERE role = 'held'")), None)
    if held is not None:  # a record held back by a conflict is nobody's customer
        assert held["record_key"] not in [c.key for c in store.search_customers(held["record_key"])]


# -- the admin's rough edges --------------------------------------------------------------------------------


def test_a_version_page_with_one_version_offers_nothing_to_compare(admin: AdminApp) -> None:
    sign_in(admin.client)
    (version,) = admin.runtime.store.mapping_versions()
    page = admin.client.get(f"/admin/mapping/versions/{version.id}").get_data(as_text=True)
    assert 'id="against"' not in page
    assert "The only version so far: nothing to compare with." in page


def test_simulate_without_a_draft_says_what_to_do(admin: AdminApp) -> None:
    sign_in(admin.client)
    page = admin.client.get("/admin/simulate").get_data(as_text=True)
    assert "<select" not in page  # nothing to choose from: no empty selector
    assert "Nothing to compare with yet" in page
    assert "press <em>Check</em> to save a draft" in page


def test_simulate_groups_the_moved_tickets_by_change(admin: AdminApp) -> None:
    sign_in(admin.client)
    store = admin.runtime.store
    text = store.active_mapping_version().text
    draft = edit(text, 'set: {group: "Retention"}', 'set: {group: "Retention", priority: urgent}')
    store.save_mapping_draft("admin", draft)
    page = admin.client.get("/admin/simulate?mapping=draft&days=365&run=1").get_data(as_text=True)
    captions = re.findall(r"<caption>(priority [^<]+): ([\d,]+) tickets?</caption>", page)
    assert captions, page[:2000]
    moved = int(re.search(r"([\d,]+) would move", page).group(1).replace(",", ""))
    assert sum(_number(n) for _, n in captions) == moved
    assert all(label.endswith("→ urgent") for label, _ in captions)
    assert len({label for label, _ in captions}) == len(captions)  # one table per change


def _drift_chart(page: str) -> dict:
    found = re.search(
        r'<script type="application/json" class="chart-data" data-target="drift-chart">(.*?)</script>',
        page,
        re.S,
    )
    assert found
    return json.loads(found.group(1))


def test_the_drift_chart_starts_at_the_first_recorded_day(admin: AdminApp) -> None:
    sign_in(admin.client)
    chart = _drift_chart(admin.client.get("/admin/segments?dimension=tier&days=90").get_data(as_text=True))
    assert len(chart["x"]) == 1  # segments were first computed today: no 89 days of everyone "(none)"
    old = (datetime.now(UTC) - timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with admin.runtime.store.transaction() as db:  # history from before the period: the whole period shows
        db.conn.execute(
            "UPDATE segment_changes SET changed_at = ? WHERE id = (SELECT min(id) FROM segment_changes)",
            (old,),
        )
    chart = _drift_chart(admin.client.get("/admin/segments?dimension=tier&days=90").get_data(as_text=True))
    assert len(chart["x"]) == 90


# -- the docs a newcomer reads first ------------------------------------------------------------------------


def test_the_example_error_in_the_default_mapping_is_the_real_one() -> None:
    path = ROOT / "mappings" / "default.yaml"
    text = path.read_text()
    example = re.search(
        r"#   (mappings/default\.yaml:\d+: segments\.tier\.weights\.revenue_12m: .*got 'high')", text
    )
    assert example
    broken = re.sub(r"(?m)^(\s+revenue_12m:) 0\.4\b", r"\1 high", text, count=1)
    assert broken != text
    with pytest.raises(MappingError) as caught:
        parse_mapping(broken, "mappings/default.yaml")
    assert str(caught.value) == example.group(1)
