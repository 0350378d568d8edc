"""The contract every connector passes against its sandbox; a new connector adds one case to CASES.

Why: each connector has its own tests of its vendor's quirks, but the rest of tierdesk relies on the same
few promises from all of them. A Source's incremental pull returns what the vendor holds and, from its
cursor, only what changed; it follows pages and waits out a rate limit. A Helpdesk reads a ticket, writes
a decision the vendor then shows, verifies and parses its webhook and refuses a forged one, and names a
mapped group it lacks. A TagTarget's push lands on the vendor's records with the vendor's tag semantics,
and a second push with nothing changed writes nothing.

Each case lists the capabilities its connector's class provides (no probing at run time) and has a small
factory that starts the sandbox on loopback, seeds it and builds the connector. The factory also hands
the suite what it needs to look at or change the vendor's side directly (a `Rig`): the contract is judged
by what the vendor holds, not by what the connector says it did.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.datastructures import Headers

from connectors.base import WebhookRejected
from connectors.csvfile import CsvFileConnector, load_mapping
from connectors.freshdesk import AUTOMATION_BODY, FreshdeskConnector
from connectors.http import ApiError
from connectors.hubspot import HubSpotConnector
from connectors.zendesk import ZendeskConnector
from integration import segment_service, tagsync
from integration.core.models import Decision, TicketEvent
from integration.pull import pull
from integration.runtime import load_mapping as load_routing
from integration.store import Store
from sandbox.freshdesk import FreshdeskSandbox
from sandbox.freshdesk.seed import seed as seed_freshdesk
from sandbox.hubspot import HubSpotSandbox
from sandbox.hubspot.seed import seed as seed_hubspot
from sandbox.zendesk import ZendeskSandbox
from sandbox.zendesk.seed import seed as seed_zendesk
from tests.contract import Contract, Recorder
from tests.support import ROOT, signed_headers

SOURCE, HELPDESK, TAG_TARGET = "Source", "Helpdesk", "TagTarget"

# What each capability promises, as the methods a connector's class defines for it (a TagTarget pushes
# tags onto helpdesk records or writes segments into a CRM property: either method).
METHODS: dict[str, tuple[tuple[str, ...], ...]] = {
    SOURCE: (("pull",),),
    HELPDESK: (("get_ticket",), ("apply",), ("verify_webhook",), ("parse_webhook",), ("check_groups",)),
    TAG_TARGET: (("push_tags", "push_segments"),),
}

PAGE = 10  # every connector here pages 10 records at a time, so the 30-customer seeds span pages
CUSTOMERS = 30
SECRET = "contract-webhook-secret"
MARKER = "tierdesk_routed"
NOTE = "tierdesk routed this ticket\nWhy: the connector contract"
DECISION = Decision(
    priority="high", group="Senior Support", tags=("tierdesk_tier_a", MARKER), note=NOTE, sla="gold"
)


@dataclass(frozen=True)
class TicketView:
    """A ticket as the vendor's own API shows it."""

    priority: str | None
    group: str | None
    tags: tuple[str, ...]
    notes: tuple[str, ...]  # private notes, oldest first


@dataclass
class Rig:
    """One connector wired to its seeded sandbox, and the vendor-side handles the contract works through.

    Every case fills the fields of its capabilities; the rest stay None.
    """

    connector: Any
    streams: tuple[str, ...]
    held: dict[str, int]  # records of each stream the vendor holds: what a first pull returns
    change_customer: Callable[[], str]  # change one customer on the vendor's side; returns its id
    snapshot: bool = False  # a whole-file source: the cursor says "unchanged" or every record comes again
    # sources behind an API: pages and rate limits
    rate_limit: Callable[[], float] | None = None  # answer the next request 429; returns the wait asked
    statuses: Callable[[], list[int]] | None = None  # the statuses of the API requests answered, in order
    # helpdesks
    open_ticket: Callable[[tuple[str, ...]], tuple[str, str]] | None = None  # own tags -> (ticket, requester)
    ticket_view: Callable[[str], TicketView] | None = None
    webhook: Callable[[str, str], tuple[Headers, bytes]] | None = None  # (ticket, secret) -> a delivery
    # tag targets
    tags_of: Callable[[str], tuple[str, ...]] | None = None  # a customer's tags as the vendor holds them
    writes: Callable[[], int] | None = None  # write requests the vendor has answered so far
    own_tagged: str | None = None  # a customer carrying a tag of their own (helpdesks), or None
    keeps_other_tags: bool = True  # False: our tags live in a property of our own that we set whole


@dataclass(frozen=True)
class Case:
    """A connector, what its class provides, and how to start it against its sandbox."""

    name: str
    connector_class: type
    capabilities: frozenset[str]
    start: Callable[[Path], Any]  # a context manager factory: tmp_path -> Rig
    api: bool = True  # talks to an HTTP API: pages and rate limits apply


def _auth_api(base: str, auth: tuple[str, str]) -> Callable[..., Any]:
    """A tiny client for a sandbox's vendor API: call(method, path, json) -> decoded answer."""

    def call(method: str, path: str, body: Any = None) -> Any:
        answer = requests.request(method, f"{base}{path}", json=body, auth=auth, timeout=10)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    return call


def _helpdesk_rig(box: Any, summary: Any, connector: Any, **vendor: Any) -> Rig:
    """What the helpdesk sandboxes share: the streams their seeds fill, Retry-After, the request log."""

    def rate_limit() -> float:
        box.inject_faults(429, count=1, retry_after=1)
        return 1.0

    return Rig(
        connector,
        streams=("organizations", "users", "tickets"),
        held={"organizations": summary.organizations, "users": summary.customers, "tickets": summary.tickets},
        rate_limit=rate_limit,
        statuses=lambda: [status for *_, status in box.request_log],
        writes=lambda: sum(1 for method, *_ in box.request_log if method != "GET"),
        **vendor,
    )


# -- Zendesk -----------------------------------------------------------------------------------------------

ZD_EMAIL, ZD_TOKEN = "contract@example.com", "contract-zendesk-token"


@contextmanager
def zendesk(tmp_path: Path) -> Iterator[Rig]:
    box = ZendeskSandbox(email=ZD_EMAIL, token=ZD_TOKEN)
    recorder = Recorder().attach(box)  # and every request is held to Zendesk's OpenAPI description
    box.start()
    try:
        summary = seed_zendesk(box, customers=CUSTOMERS, seed=7)
        api = _auth_api(f"{box.base_url}/api/v2", (f"{ZD_EMAIL}/token", ZD_TOKEN))
        connector = ZendeskConnector(
            box.base_url, ZD_EMAIL, ZD_TOKEN, SECRET, export_page_size=PAGE, backoff_initial=0.01
        )

        def change_customer() -> str:
            user_id = summary.customer_ids[3]
            api("PUT", f"/users/{user_id}", {"user": {"user_fields": {"revenue_12m": 123_456}}})
            return str(user_id)

        def open_ticket(tags: tuple[str, ...]) -> tuple[str, str]:
            requester = summary.customer_ids[0]
            body = {"subject": "Contract", "comment": {"body": "help"}, "requester_id": requester}
            ticket = api("POST", "/tickets", {"ticket": {**body, "tags": list(tags)}})["ticket"]
            return str(ticket["id"]), str(requester)

        def ticket_view(ticket_id: str) -> TicketView:
            ticket = api("GET", f"/tickets/{ticket_id}")["ticket"]
            groups = {gid: name for name, gid in box.group_ids().items()}
            comments = api("GET", f"/tickets/{ticket_id}/comments")["comments"]
            return TicketView(
                ticket["priority"],
                groups.get(ticket["group_id"]),
                tuple(ticket["tags"]),
                tuple(c["body"] for c in comments if not c["public"]),
            )

        def webhook(ticket_id: str, secret: str) -> tuple[Headers, bytes]:
            body = json.dumps({"ticket": {"id": ticket_id}}).encode()
            return Headers(signed_headers(body, secret)), body

        yield _helpdesk_rig(
            box,
            summary,
            connector,
            change_customer=change_customer,
            open_ticket=open_ticket,
            ticket_view=ticket_view,
            webhook=webhook,
            tags_of=lambda user_id: tuple(api("GET", f"/users/{user_id}")["user"]["tags"]),
            own_tagged=str(box.find_user(summary.vip_tagged_emails[0])["id"]),
        )
        spec = Contract.load()  # None without the spec; conftest.py reports that once for the session
        problems = spec.check(recorder.take()) if spec is not None else []
        assert not problems, "Zendesk requests outside its OpenAPI description:\n" + "\n".join(problems[:10])
    finally:
        box.stop()


# -- Freshdesk ---------------------------------------------------------------------------------------------

FD_KEY = "contract-freshdesk-key"
FD_PRIORITIES = {1: "low", 2: "normal", 3: "high", 4: "urgent"}  # Freshdesk's numbers, from its API docs


@contextmanager
def freshdesk(tmp_path: Path) -> Iterator[Rig]:
    box = FreshdeskSandbox(FD_KEY)
    box.start()
    try:
        summary = seed_freshdesk(box, customers=CUSTOMERS, seed=7)
        api = _auth_api(f"{box.base_url}/api/v2", (FD_KEY, "X"))
        connector = FreshdeskConnector(box.base_url, FD_KEY, SECRET, per_page=PAGE, backoff_initial=0.01)

        def change_customer() -> str:
            contact_id = summary.customer_ids[3]
            api("PUT", f"/contacts/{contact_id}", {"custom_fields": {"revenue_12m": 123_456}})
            return str(contact_id)

        def open_ticket(tags: tuple[str, ...]) -> tuple[str, str]:
            requester = summary.customer_ids[0]
            body = {
                "requester_id": requester,
                "subject": "Contract",
                "description": "help",
                "tags": list(tags),
            }
            return str(api("POST", "/tickets", body)["id"]), str(requester)

        def ticket_view(ticket_id: str) -> TicketView:
            ticket = api("GET", f"/tickets/{ticket_id}")
            groups = {gid: name for name, gid in box.group_ids().items()}
            conversations = api("GET", f"/tickets/{ticket_id}/conversations")
            return TicketView(
                FD_PRIORITIES.get(ticket["priority"]),
                groups.get(ticket["group_id"]),
                tuple(ticket["tags"]),
                tuple(c["body_text"] for c in conversations if c["private"]),
            )

        def webhook(ticket_id: str, secret: str) -> tuple[Headers, bytes]:
            body = box.render_template(AUTOMATION_BODY, int(ticket_id)).encode()
            return Headers({"Content-Type": "application/json", "X-Tierdesk-Secret": secret}), body

        yield _helpdesk_rig(
            box,
            summary,
            connector,
            change_customer=change_customer,
            open_ticket=open_ticket,
            ticket_view=ticket_view,
            webhook=webhook,
            tags_of=lambda contact_id: tuple(api("GET", f"/contacts/{contact_id}")["tags"]),
            own_tagged=str(box.find_contact(summary.vip_tagged_emails[0])["id"]),
        )
    finally:
        box.stop()


# -- HubSpot -----------------------------------------------------------------------------------------------

HS_TOKEN = "contract-hubspot-token"


@contextmanager
def hubspot(tmp_path: Path) -> Iterator[Rig]:
    hub = HubSpotSandbox(token=HS_TOKEN, window_ms=200)
    hub.start()
    try:
        summary = seed_hubspot(hub, customers=CUSTOMERS, seed=7)
        connector = HubSpotConnector(HS_TOKEN, hub.base_url, page_size=PAGE, backoff_initial=0.01)
        prop = connector.segment_property

        def change_customer() -> str:
            contact_id = next(iter(summary.contact_ids.values()))
            hub.update("contacts", contact_id, {"lastname": "Changed"})
            return contact_id

        def rate_limit() -> float:
            hub.inject_faults(429, 1)  # HubSpot sends no Retry-After: its headers name the window instead
            return hub.window_ms / 1000

        def tags_of(contact_id: str) -> tuple[str, ...]:
            value = hub.get("contacts", contact_id)["properties"].get(prop) or ""
            return tuple(v for v in value.split(";") if v)

        def writes() -> int:
            return sum(
                1
                for r in hub.request_log
                if r["method"] in ("PATCH", "PUT", "DELETE")
                or (r["method"] == "POST" and not r["path"].endswith(("/search", "/batch/read")))
            )

        yield Rig(
            connector,
            streams=("organizations", "users", "purchases"),
            held={"organizations": summary.companies, "users": summary.contacts, "purchases": summary.deals},
            change_customer=change_customer,
            rate_limit=rate_limit,
            statuses=lambda: [r["status"] for r in hub.request_log],
            tags_of=tags_of,
            writes=writes,
            keeps_other_tags=False,
        )
    finally:
        hub.stop()


# -- CSV files ---------------------------------------------------------------------------------------------

CRM_MAPPING = """\
files:
  crm:
    path: crm.csv
    kind: customers
    columns: {id: customer_id, email: email, name: full_name}
    attributes:
      referrals: {column: refs, type: integer}
"""


def _crm_rows(changed: int | None = None) -> str:
    rows = ["customer_id,email,full_name,refs"]
    for n in range(CUSTOMERS):
        refs = 99 if n == changed else n % 4
        rows.append(f"c{n},person{n}@example.com,Person {n},{refs}")
    return "\n".join(rows) + "\n"


@contextmanager
def csvfile(tmp_path: Path) -> Iterator[Rig]:
    export = tmp_path / "crm.csv"  # the "vendor" is the export file itself
    export.write_text(_crm_rows())
    (tmp_path / "csv-mapping.yaml").write_text(CRM_MAPPING)
    (spec,) = load_mapping(tmp_path / "csv-mapping.yaml")

    def change_customer() -> str:
        export.write_text(_crm_rows(changed=3))
        return "c3"

    yield Rig(
        CsvFileConnector(spec),
        streams=("users",),
        held={"users": CUSTOMERS},
        change_customer=change_customer,
        snapshot=True,
    )


CASES = [
    Case("zendesk", ZendeskConnector, frozenset({SOURCE, HELPDESK, TAG_TARGET}), zendesk),
    Case("freshdesk", FreshdeskConnector, frozenset({SOURCE, HELPDESK, TAG_TARGET}), freshdesk),
    Case("hubspot", HubSpotConnector, frozenset({SOURCE, TAG_TARGET}), hubspot),
    Case("csvfile", CsvFileConnector, frozenset({SOURCE}), csvfile, api=False),
]


def cases(capability: str, *, api: bool | None = None) -> list[Any]:
    return [
        pytest.param(case, id=case.name)
        for case in CASES
        if capability in case.capabilities and (api is None or case.api == api)
    ]


@pytest.fixture
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    case: Case = request.param
    with case.start(tmp_path) as started:
        yield started


# -- the services the contract drives (the pull, the segment recompute and the tag sync) -----------------


def _pull(rig: Rig, stream: str, cursor: str | None) -> tuple[list[str], int, str | None]:
    """(record ids, batches, the cursor to resume from) of one pull."""
    ids: list[str] = []
    batches = 0
    for batch in rig.connector.pull(stream, cursor):
        batches += 1
        ids += [record.external_id for record in batch.records]
        cursor = batch.cursor
    return ids, batches, cursor


def _segmented(rig: Rig, tmp_path: Path) -> tuple[Store, Any]:
    """A store holding what the connector pulls, segmented by the default mapping."""
    mapping, digest = load_routing(ROOT / "mappings" / "default.yaml")
    store = Store(tmp_path / "contract.db")
    pull(store, rig.connector)
    segment_service.recompute(store, mapping, digest)
    return store, mapping


def _recorded_tags(store: Store, source: str) -> dict[str, tuple[str, ...]]:
    """The tags tierdesk believes each of the source's customers now holds (what the diff starts from)."""
    return {external_id: tags for _, src, external_id, tags, _ in store.tag_state("users") if src == source}


# -- the case table itself ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_each_case_lists_what_its_connector_class_defines(case: Case) -> None:
    assert case.capabilities, "a connector provides at least one capability"
    for capability in case.capabilities:
        for alternatives in METHODS[capability]:
            defined = [
                m for m in alternatives if callable(inspect.getattr_static(case.connector_class, m, None))
            ]
            assert defined, (
                f"{case.name} is listed as a {capability} but its class lacks {' or '.join(alternatives)}"
            )


# -- Sources -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rig", cases(SOURCE), indirect=True)
def test_a_first_pull_returns_what_the_vendor_holds(rig: Rig) -> None:
    for stream in rig.streams:
        ids, _, cursor = _pull(rig, stream, None)
        assert len(set(ids)) == rig.held[stream], stream
        assert cursor, f"{stream}: a pull leaves a cursor to resume from"


@pytest.mark.parametrize("rig", cases(SOURCE), indirect=True)
def test_a_pull_from_the_cursor_returns_only_what_changed(rig: Rig) -> None:
    first = {stream: _pull(rig, stream, None) for stream in rig.streams}
    quiet = {stream: set(_pull(rig, stream, first[stream][2])[0]) for stream in rig.streams}
    for stream, (ids, _, _) in first.items():
        if rig.snapshot:
            assert quiet[stream] == set(), f"{stream}: an unchanged export is not read again"
        else:  # at most what the vendor's overlap at the cursor reads again, never everything
            assert len(quiet[stream]) < len(set(ids)), stream
    changed = rig.change_customer()
    again = set(_pull(rig, "users", first["users"][2])[0])
    assert changed in again
    if not rig.snapshot:
        assert again <= quiet["users"] | {changed}


@pytest.mark.parametrize("rig", cases(SOURCE, api=True), indirect=True)
def test_a_pull_follows_every_page(rig: Rig) -> None:
    ids, batches, _ = _pull(rig, "users", None)
    assert rig.held["users"] > PAGE
    assert batches >= -(-rig.held["users"] // PAGE)  # one batch a page at least
    assert len(set(ids)) == rig.held["users"]


@pytest.mark.parametrize("rig", cases(SOURCE, api=True), indirect=True)
def test_a_rate_limit_is_waited_out_and_the_request_retried(rig: Rig) -> None:
    assert rig.rate_limit is not None
    assert rig.statuses is not None
    asked = rig.rate_limit()
    started = time.monotonic()
    ids, _, _ = _pull(rig, "users", None)
    assert time.monotonic() - started >= asked * 0.9  # the wait the vendor asked for, not a quick retry
    assert len(set(ids)) == rig.held["users"]  # nothing lost to the 429
    statuses = rig.statuses()
    limited = statuses.index(429)
    assert statuses[limited + 1] == 200  # the same request again, answered this time


# -- Helpdesks ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rig", cases(HELPDESK), indirect=True)
def test_get_ticket_reads_the_ticket_the_vendor_holds(rig: Rig) -> None:
    assert rig.open_ticket is not None
    assert rig.ticket_view is not None
    ticket_id, requester = rig.open_ticket(("agent_flag",))
    ticket = rig.connector.get_ticket(ticket_id)
    shown = rig.ticket_view(ticket_id)
    assert ticket.source == rig.connector.name
    assert (ticket.external_id, ticket.requester_id) == (ticket_id, requester)
    assert ticket.tags == shown.tags
    assert ticket.priority == shown.priority


@pytest.mark.parametrize("rig", cases(HELPDESK), indirect=True)
def test_apply_writes_priority_group_tags_and_one_note_the_vendor_shows(rig: Rig) -> None:
    assert rig.open_ticket is not None
    assert rig.ticket_view is not None
    ticket_id, _ = rig.open_ticket(("agent_flag",))
    result = rig.connector.apply(rig.connector.get_ticket(ticket_id), DECISION)
    assert result.outcome == "applied"
    shown = rig.ticket_view(ticket_id)
    assert (shown.priority, shown.group) == (DECISION.priority, DECISION.group)
    assert {"agent_flag", *DECISION.tags} <= set(shown.tags)  # the agent's tag stays
    assert [n.splitlines()[0] for n in shown.notes] == [NOTE.splitlines()[0]]
    again = rig.connector.apply(rig.connector.get_ticket(ticket_id), DECISION)  # a repeated event
    assert again.outcome == "skipped"
    assert len(rig.ticket_view(ticket_id).notes) == 1


@pytest.mark.parametrize("rig", cases(HELPDESK), indirect=True)
def test_a_signed_webhook_parses_to_a_ticket_event_and_a_forged_one_is_rejected(rig: Rig) -> None:
    assert rig.open_ticket is not None
    assert rig.webhook is not None
    ticket_id, _ = rig.open_ticket(())
    headers, body = rig.webhook(ticket_id, SECRET)
    rig.connector.verify_webhook(headers, body, time.time())
    event = rig.connector.parse_webhook(headers, body)
    assert isinstance(event, TicketEvent)
    assert (event.source, event.ticket_id) == (rig.connector.name, ticket_id)
    assert event.event_id
    forged_headers, forged_body = rig.webhook(ticket_id, "not-the-secret")
    with pytest.raises(WebhookRejected) as rejected:
        rig.connector.verify_webhook(forged_headers, forged_body, time.time())
    assert rejected.value.status == 401


@pytest.mark.parametrize("rig", cases(HELPDESK), indirect=True)
def test_check_groups_names_the_mapped_group_the_vendor_lacks(rig: Rig) -> None:
    rig.connector.check_groups({"General", "Senior Support"})  # the seeded groups: nothing raised
    with pytest.raises(ApiError, match="No Such Team"):
        rig.connector.check_groups({"General", "No Such Team"})


# -- TagTargets --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rig", cases(TAG_TARGET), indirect=True)
def test_a_tag_push_lands_with_the_vendors_semantics_and_a_second_writes_nothing(
    rig: Rig, tmp_path: Path
) -> None:
    assert rig.tags_of is not None
    assert rig.writes is not None
    store, mapping = _segmented(rig, tmp_path)
    own = [t for t in rig.tags_of(rig.own_tagged) if not t.startswith("tierdesk_")] if rig.own_tagged else []
    first = tagsync.push(store, rig.connector, mapping)
    assert first.pushed.get("users", 0) > 0
    assert sum(first.failed.values()) == 0, first.errors
    for customer_id, recorded in _recorded_tags(store, rig.connector.name).items():
        held = set(rig.tags_of(customer_id))
        ours = {t for t in held if t.startswith("tierdesk_")}
        assert ours == {t for t in recorded if t.startswith("tierdesk_")}, (
            customer_id
        )  # what we pushed landed
        if not rig.keeps_other_tags:
            assert held == ours, customer_id  # a property of our own holds only our tags
    if rig.own_tagged:
        assert set(own) <= set(rig.tags_of(rig.own_tagged))  # the customer's own tags survive the push
        assert own, "the seed gives this customer a tag of their own"

    writes = rig.writes()
    second = tagsync.push(store, rig.connector, mapping)
    assert second.write_calls == 0
    assert rig.writes() == writes  # nothing changed, nothing sent
