"""The Zendesk connector over real Zendesk responses (shared/recordings/zendesk, replayed on loopback).

What the sandbox cannot prove: that the connector reads what Zendesk really sends. These bodies came from
Zendesk's production servers (tests/recordings.py says how they are served): export pages with staff,
deleted users and deleted tickets, real cursor chains, groups named with emoji, bulk jobs whose failed
records carry an ``error`` and no ``success`` key, and Zendesk's 404 body.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from connectors.base import TagChange
from connectors.http import ApiNotFound
from connectors.zendesk import ZendeskConnector
from integration.core.models import Decision, Ticket
from integration.pull import pull
from integration.store import Store
from tests.recordings import MISSING, RECORDINGS, Interaction, Replay, cassette, documented_example

if RECORDINGS is None:
    pytest.skip(MISSING, allow_module_level=True)

USERS = "UsersIncrementalTest.test_pagination.json"
TICKETS = "TicketsIncrementalTest.test_pagination.json"
WHOLE_TICKET_STREAM = "TicketsIncrementalTest.test_get_values.json"
GROUPS = "TestGroupCreateUpdateDelete.test_values.json"
DELETED_TICKET = "TestDeletedTickets.test_delete_and_restore.json"
ADMIN_ID = "6130907993114"  # ticket 4017's requester, an admin; also every recorded ticket's requester


@pytest.fixture
def replay() -> Iterator[Callable[..., tuple[Replay, ZendeskConnector]]]:
    """Start a replay of the given interactions and a connector pointed at it."""
    running: list[Replay] = []

    def start(
        interactions: list[Interaction],
        *,
        any_query: frozenset[str] = frozenset(),
        export_page_size: int = 1000,
    ) -> tuple[Replay, ZendeskConnector]:
        server = Replay(interactions, any_query=any_query).__enter__()
        running.append(server)
        connector = ZendeskConnector(
            server.url,
            "agent@example.com",
            "not-a-real-token",
            max_attempts=1,
            export_page_size=export_page_size,
        )
        return server, connector

    yield start
    for server in running:
        server.__exit__()


def _page(name: str, path: str, **query: str) -> dict:
    """The recorded body answering GET `path` with exactly `query` (before the replay's allowances)."""
    wanted = frozenset(query.items())
    return next(
        i.json() for i in cassette(name) if i.method == "GET" and i.path == path and i.query == wanted
    )


# -- pages and cursor chains -------------------------------------------------------------------------------


def test_a_users_export_page_keeps_end_users_and_marks_deleted_ones_inactive(replay, tmp_path: Path) -> None:
    server, zendesk = replay(cassette(USERS))
    raw = _page(USERS, "/api/v2/incremental/users/cursor", start_time="0")["users"]
    assert len(raw) == 1000
    assert Counter(u["role"] for u in raw) == {"end-user": 998, "admin": 1, "agent": 1}

    batch = next(zendesk.pull("users", None))
    assert server.unmatched == []
    assert [c.external_id for c in batch.records] == [str(u["id"]) for u in raw if u["role"] == "end-user"]
    inactive = {c.external_id for c in batch.records if not c.active}
    assert inactive == {str(u["id"]) for u in raw if u["role"] == "end-user" and u["active"] is False}
    assert len(inactive) == 760
    assert sum(1 for c in batch.records if c.email is None) > 900  # most recorded users have no email
    after = _page(USERS, "/api/v2/incremental/users/cursor", start_time="0")["after_cursor"]
    assert batch.cursor == f"cursor:{after}"

    # stored, the deleted users are kept but are no customers: not in the population, never tagged
    store = Store(tmp_path / "t.db")
    store.save_batch("zendesk", "users", batch.records, batch.cursor)
    assert store.count("customers") == 998
    assert len(store.customer_columns([])["keys"]) == 998 - 760
    assert len(list(store.iter_customers())) == 998 - 760
    assert {row[2] for row in store.tag_state("users")} == {c.external_id for c in batch.records if c.active}
    deleted = next(iter(inactive))
    customer = store.get_customer(f"zendesk:user:{deleted}")
    assert customer is not None
    assert customer.active is False


@pytest.mark.parametrize(("name", "stream"), [(USERS, "users"), (TICKETS, "tickets")])
def test_a_recorded_cursor_chain_is_followed_page_by_page(replay, name: str, stream: str) -> None:
    """100 recorded pages of one record each, linked by Zendesk's own after_cursors."""
    chain = [
        i
        for i in cassette(name)
        if i.path == f"/api/v2/incremental/{stream}/cursor" and ("per_page", "1") in i.query
    ]
    assert len(chain) == 100
    server, zendesk = replay(chain, export_page_size=1)

    batches = list(itertools.islice(zendesk.pull(stream, None), len(chain)))

    assert server.unmatched == []
    assert [b.cursor for b in batches] == [f"cursor:{i.json()['after_cursor']}" for i in chain]
    sent = [dict(parse_qsl(query)) for _method, _path, query in server.requests]
    assert (sent[0]["start_time"], sent[0]["per_page"]) == ("0", "1")
    assert [q["cursor"] for q in sent[1:]] == [i.json()["after_cursor"] for i in chain[:-1]]
    records = [r for b in batches for r in b.records]
    assert [r.external_id for r in records] == [str(i.json()[stream][0]["id"]) for i in chain]
    if stream == "users":  # every page's user is an end user; 92 of the 100 were deleted since
        assert sum(1 for r in records if not r.active) == 92


def test_the_whole_recorded_ticket_stream_is_pulled_to_its_end(replay, tmp_path: Path) -> None:
    server, zendesk = replay(cassette(WHOLE_TICKET_STREAM))
    store = Store(tmp_path / "t.db")
    assert pull(store, zendesk, streams=("tickets",)) == {"tickets": 87}
    assert server.unmatched == []
    page = _page(WHOLE_TICKET_STREAM, "/api/v2/incremental/tickets/cursor", start_time="0")
    assert page["end_of_stream"] is True
    assert store.get_cursor("zendesk", "tickets") == f"cursor:{page['after_cursor']}"
    assert store.count("tickets") == 87


def test_the_documented_organizations_export_example_is_read(replay) -> None:
    example = documented_example(
        "incremental_organizations_example.json", "/api/v2/incremental/organizations"
    )
    server, zendesk = replay([example], any_query=frozenset({example.path}))
    batches = list(zendesk.pull("organizations", None))
    assert server.unmatched == []
    assert len(batches) == 1  # end_of_stream: the next_page (pointing at ticket_events) is not followed
    (org,) = batches[0].records
    assert (org.external_id, org.name, org.domains, org.tags) == (
        "4112492",
        "Groablet Enterprises",
        ("remain.com",),
        ("smiley", "teapot_kettle"),
    )
    assert org.attributes == {
        "datepudding": "2018-11-04T00:00:00+00:00",
        "org_field_1": "happy happy",
        "org_field_2": "teapot_kettle",
    }
    assert batches[0].cursor == "1601357503"


# -- deleted tickets count for nothing --------------------------------------------------------------------


def test_deleted_tickets_in_a_recorded_page_count_in_no_statistic(replay, tmp_path: Path) -> None:
    """515 of the 1,000 tickets of the recorded page are deleted: they are stored, and counted nowhere."""
    server, zendesk = replay(cassette(TICKETS))
    raw = _page(TICKETS, "/api/v2/incremental/tickets/cursor", start_time="0")["tickets"]
    assert Counter(t["status"] for t in raw) == {"deleted": 515, "new": 485}

    batch = next(zendesk.pull("tickets", None))
    store = Store(tmp_path / "t.db")
    store.save_batch("zendesk", "tickets", batch.records, batch.cursor)
    assert server.unmatched == []
    assert store.count("tickets") == 1000

    recorded_at = datetime(2023, 9, 19, tzinfo=UTC)  # the page was recorded the next day: windows apply
    (requester,) = {t["requester_id"] for t in raw}
    stats = store.ticket_stats(recorded_at)[f"zendesk:user:{requester}"]
    assert stats.tickets_total == stats.tickets_30d == 485
    rows = {row[0]: row[1:] for row in store.ticket_stat_rows(recorded_at)}
    assert rows[f"zendesk:user:{requester}"][:4] == (485, 485, 485, 485)
    since = recorded_at - timedelta(days=2)
    assert len(store.tickets_created_between(since, recorded_at)) == 485


# -- groups, job statuses, errors ------------------------------------------------------------------------


def test_groups_named_with_emoji_resolve_to_their_ids(replay) -> None:
    server, zendesk = replay(cassette(GROUPS))
    recorded = _page(GROUPS, "/api/v2/groups", **{"page[size]": "100"})["groups"]
    groups = zendesk.groups()
    assert server.unmatched == []
    assert groups == {g["name"]: g["id"] for g in recorded}
    assert zendesk.group_id("🎯Support") == next(g["id"] for g in recorded if g["name"] == "🎯Support")
    assert "🎯A is for Aleph" in groups


UPDATE_MANY = [
    (
        "TestOrganizationCreateUpdateDelete.test_multiple_update_full_objects-update-many.json",
        "organizations",
        99,
    ),
    (
        "TestOrganizationCreateUpdateDelete.test_multiple_update_half_full_objects-update-many.json",
        "organizations",
        49,
    ),
    (
        "TestOrganizationCreateUpdateDelete.test_multiple_update_single_object-update-many.json",
        "organizations",
        0,
    ),
    ("TestUserCreateUpdateDelete.test_multiple_update_full_objects-update-many.json", "users", 0),
    ("TestUserCreateUpdateDelete.test_multiple_update_half_full_objects-update-many.json", "users", 0),
    ("TestUserCreateUpdateDelete.test_multiple_update_single_object-update-many.json", "users", 0),
]


@pytest.mark.parametrize(("name", "kind", "failures"), UPDATE_MANY, ids=lambda v: str(v)[-40:])
def test_a_recorded_bulk_job_counts_only_the_records_it_wrote(
    replay, name: str, kind: str, failures: int
) -> None:
    """Zendesk marks a failed record with ``error`` and no ``success`` key: it is failed, not written."""
    interactions = cassette(name)
    put = next(i for i in interactions if i.method == "PUT" and i.path == f"/api/v2/{kind}/update_many")
    ids = [str(record["id"]) for record in json.loads(put.request_body)[kind]]
    job_id = put.json()["job_status"]["id"]
    polls = [i for i in interactions if i.method == "GET" and i.path == f"/api/v2/job_statuses/{job_id}"]
    final = polls[-1].json()["job_status"]
    assert final["status"] == "completed"
    failed = {str(r["id"]) for r in final["results"] if "error" in r}
    assert len(failed) == failures
    assert all("success" not in r for r in final["results"] if "error" in r)

    server, zendesk = replay([put, *polls])
    report = zendesk.push_tags(kind, [TagChange(i, ("tierdesk_tier_a",), ()) for i in ids])

    assert server.unmatched == []
    assert set(report.failed) == failed
    assert set(report.succeeded) == set(ids) - failed
    assert report.write_calls == 1
    assert report.job_polls == len(polls)
    if failures:
        assert "OrganizationUpdateFailed" in report.errors[0]
        assert "has already been taken" in report.errors[0]


@pytest.mark.parametrize(
    ("name", "call"),
    [
        (
            "TestTicketCreateUpdateDelete.test_single_update_raises_recordnotfoundexception-recordnotfound-update.json",
            lambda z: z.apply(
                Ticket("zendesk", "9223372036854775807", updated_stamp="2023-09-18T00:00:00Z"),
                Decision(priority="high", tags=("tierdesk_routed",), note="routed"),
            ),
        ),
        (
            "TestUserCreateUpdateDelete.test_single_update_raises_recordnotfoundexception-recordnotfound-update.json",
            lambda z: z.update_customer_attributes("9223372036854775807", {"plan": "gold"}),
        ),
    ],
    ids=["ticket", "user"],
)
def test_zendesks_404_body_becomes_a_clear_not_found(replay, name: str, call) -> None:
    server, zendesk = replay(cassette(name))
    with pytest.raises(ApiNotFound, match=r"404 RecordNotFound: Not found"):
        call(zendesk)
    assert server.unmatched == []


# -- who is a customer -----------------------------------------------------------------------------------


def test_a_recorded_admin_requester_is_no_customer(replay) -> None:
    """Ticket 4017's requester is an admin: the webhook path must not take them for a customer."""
    reads = [i for i in cassette(DELETED_TICKET) if i.method == "GET"]
    server, zendesk = replay(reads)
    ticket = zendesk.get_ticket("4017")
    assert ticket.requester_id == ADMIN_ID
    assert zendesk.get_customer(ADMIN_ID) is None
    organization = zendesk.get_organization("6130869157658")
    assert organization.external_id == "6130869157658"
    assert server.unmatched == []
