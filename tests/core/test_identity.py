"""Identity across sources: the pure matching rules, and the store's merged view of a person.

Why: a CRM contact that enriches the wrong helpdesk user changes that user's segment, priority and SLA.
Matches must follow the documented rules, ambiguous ones must be reported and held back, and the merged
attributes must follow the documented precedence.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from integration.core import identity
from integration.core.identity import Part, Rules, resolve
from integration.core.models import Customer, Organization, Purchase
from integration.pull import resolve_identities
from integration.store import Store

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def zd(
    id_: str, email: str | None, name: str = "Ana Silva", org: str | None = None, **attrs: object
) -> Customer:
    return Customer("zendesk", id_, email=email, name=name, organization_id=org, attributes=attrs)


def hs(
    id_: str, email: str | None, name: str = "Ana Silva", org: str | None = None, **attrs: object
) -> Customer:
    return Customer("hubspot", id_, email=email, name=name, organization_id=org, attributes=attrs)


def links(resolution: identity.Resolution) -> dict[str, tuple[str, str]]:
    return {link.record_key: (link.entity_key, link.role) for link in resolution.links}


# -- the pure rules ----------------------------------------------------------------------------------


def test_email_matches_case_insensitively_and_the_helpdesk_record_is_the_person() -> None:
    result = resolve([zd("1", "Ana@Example.com"), hs("9", " ana@example.COM ")], [], Rules())
    assert links(result) == {
        "zendesk:user:1": ("zendesk:user:1", "primary"),
        "hubspot:user:9": ("zendesk:user:1", "linked"),
    }
    assert result.conflicts == ()
    assert {link.rule for link in result.links} == {"email"}


def test_unmatched_crm_records_are_people_of_their_own() -> None:
    result = resolve([zd("1", "a@example.com"), hs("9", "b@example.com"), hs("10", None)], [], Rules())
    assert all(role == "primary" for _, role in links(result).values())
    assert result.people == 3


def test_external_id_attribute_links_to_the_named_source_record() -> None:
    csv = Customer("billing", "row-1", email="other@example.com", attributes={"zendesk_id": 1.0})
    result = resolve([zd("1", "a@example.com"), csv], [], Rules())
    assert links(result)["billing:user:row-1"] == ("zendesk:user:1", "linked")
    assert (
        next(link.rule for link in result.links if link.record_key == "billing:user:row-1") == "external_id"
    )


def test_rules_can_be_switched_off() -> None:
    records = [zd("1", "a@example.com"), hs("9", "a@example.com")]
    assert resolve(records, [], Rules(match=("external_id",))).linked == 0
    with pytest.raises(ValueError, match="unknown identity match rule"):
        Rules(match=("email", "phone"))


def test_crm_duplicates_that_disagree_are_a_conflict_and_held_back() -> None:
    result = resolve(
        [
            zd("1", "ana@example.com"),
            hs("9", "ana@example.com"),
            hs("10", "ANA@example.com", name="Anna Other"),
        ],
        [],
        Rules(),
    )
    assert links(result) == {
        "zendesk:user:1": ("zendesk:user:1", "primary"),
        "hubspot:user:9": ("hubspot:user:9", "held"),
        "hubspot:user:10": ("hubspot:user:10", "held"),
    }
    (conflict,) = result.conflicts
    assert conflict.code == "duplicate"
    assert "names differ" in conflict.detail
    assert "hubspot:user:10" in conflict.detail


def test_crm_duplicates_with_different_companies_conflict_but_agreeing_ones_merge() -> None:
    differ = resolve(
        [
            zd("1", "ana@example.com"),
            hs("9", "ana@example.com", org="5"),
            hs("10", "ana@example.com", org="6"),
        ],
        [],
        Rules(),
    )
    assert "organizations differ" in differ.conflicts[0].detail
    agree = resolve(
        [
            zd("1", "ana@example.com"),
            hs("9", "ana@example.com", org="5"),
            hs("10", "ana@example.com", name=""),
        ],
        [],
        Rules(),
    )
    assert agree.conflicts == ()
    assert agree.linked == 2


def test_a_crm_record_matching_two_helpdesk_users_is_ambiguous() -> None:
    contact = hs("9", "ana@example.com", zendesk_id="2")
    result = resolve(
        [zd("1", "ana@example.com"), zd("2", "bob@example.com", name="Bob"), contact], [], Rules()
    )
    (conflict,) = result.conflicts
    assert conflict.code == "ambiguous"
    assert "zendesk:user:1" in conflict.detail
    assert "zendesk:user:2" in conflict.detail
    assert links(result) == {
        "zendesk:user:1": ("zendesk:user:1", "primary"),
        "zendesk:user:2": ("zendesk:user:2", "primary"),
        "hubspot:user:9": ("hubspot:user:9", "held"),
    }


def test_organizations_match_by_domain_but_not_by_free_mail() -> None:
    orgs = [
        Organization("zendesk", "1", name="Acme", domains=("acme.example",)),
        Organization("hubspot", "7", name="ACME", domains=("https://www.Acme.example/",)),
        Organization("zendesk", "2", name="Gmail people", domains=("gmail.com",)),
        Organization("hubspot", "8", name="Gmail people", domains=("gmail.com",)),
    ]
    result = resolve([], orgs, Rules())
    assert links(result) == {
        "zendesk:org:1": ("zendesk:org:1", "primary"),
        "hubspot:org:7": ("zendesk:org:1", "linked"),
        "zendesk:org:2": ("zendesk:org:2", "primary"),
        "hubspot:org:8": ("hubspot:org:8", "primary"),
    }
    assert result.organizations == 3


def test_two_helpdesk_organizations_sharing_a_domain_are_ambiguous() -> None:
    orgs = [
        Organization("zendesk", "1", name="Acme", domains=("acme.example",)),
        Organization("zendesk", "2", name="Acme EU", domains=("acme.example",)),
        Organization("hubspot", "7", name="Acme", domains=("acme.example",)),
    ]
    result = resolve([], orgs, Rules())
    assert [c.code for c in result.conflicts] == ["ambiguous"]
    assert links(result)["hubspot:org:7"] == ("hubspot:org:7", "held")


@pytest.mark.parametrize(
    ("precedence", "expected"),
    [
        ((), ["billing", "hubspot", "zendesk", "freshdesk"]),
        (("hubspot",), ["hubspot", "billing", "zendesk", "freshdesk"]),
        (("zendesk", "billing"), ["zendesk", "billing", "hubspot", "freshdesk"]),
    ],
)
def test_source_order(precedence: tuple[str, ...], expected: list[str]) -> None:
    assert (
        Rules(precedence=precedence).source_order(["zendesk", "hubspot", "freshdesk", "billing"]) == expected
    )


def test_merge_takes_the_first_present_value_by_rank() -> None:
    merged = identity.merge_attributes(
        [
            Part(2, "zendesk:user:1", {"revenue_12m": 10, "referrals": 3, "plan": None}),
            Part(0, "billing:user:x", {"revenue_12m": None, "plan": "gold"}),
            Part(1, "hubspot:user:9", {"revenue_12m": 500, "lifecyclestage": "customer"}),
        ]
    )
    assert merged == {"revenue_12m": 500, "plan": "gold", "referrals": 3, "lifecyclestage": "customer"}


# -- the store's merged view ---------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "identity.db")


def test_store_reads_merge_crm_attributes_into_the_helpdesk_customer(store: Store) -> None:
    created = NOW - timedelta(days=100)
    store.upsert_organizations(
        [
            Organization(
                "zendesk", "50", name="Acme", domains=("acme.example",), attributes={"employees": 10}
            ),
            Organization(
                "hubspot", "7", name="Acme", domains=("acme.example",), attributes={"industry": "retail"}
            ),
        ]
    )
    store.upsert_customers(
        [
            Customer(
                "zendesk",
                "1",
                email="ana@acme.example",
                name="Ana",
                organization_id="50",
                tags=("vip",),
                created_at=created,
                attributes={"revenue_12m": 10.0, "referrals": 2},
            ),
            Customer(
                "hubspot",
                "9",
                email="ANA@acme.example",
                name="Ana",
                organization_id="7",
                tags=("crm",),
                created_at=created - timedelta(days=400),
                attributes={"lifecyclestage": "customer"},
            ),
            Customer("hubspot", "10", email="solo@other.example", name="Solo", organization_id="7"),
        ]
    )
    store.upsert_purchases(
        [
            Purchase(
                "hubspot",
                "d1",
                1000.0,
                NOW - timedelta(days=10),
                customer_ids=("9",),
                organization_ids=("7",),
            ),
            Purchase("hubspot", "d2", 500.0, NOW - timedelta(days=500), customer_ids=("9",)),
            Purchase("hubspot", "d3", 99.0, NOW - timedelta(days=5), won=False, customer_ids=("9",)),
        ]
    )
    resolution = resolve_identities(store, Rules(), now=NOW)
    assert resolution is not None
    assert resolution.conflicts == ()

    ana = store.get_customer("zendesk:user:1")
    assert ana is not None
    assert ana.attributes == {
        "revenue_12m": 1000.0,  # the CRM's deals win over the helpdesk's custom field
        "lifetime_value": 1500.0,
        "purchases_12m": 1,
        "last_purchase_days": 10,
        "referrals": 2,  # only the helpdesk has it
        "lifecyclestage": "customer",
    }
    assert set(ana.tags) == {"vip", "crm"}
    assert ana.created_at == created - timedelta(days=400)  # customer since first contact anywhere
    acme = store.get_organization("zendesk:org:50")
    assert acme is not None
    assert acme.attributes == {
        "employees": 10,
        "industry": "retail",
        "revenue_12m": 1000.0,
        "lifetime_value": 1000.0,
        "purchases_12m": 1,
        "last_purchase_days": 10,
    }

    # the population: one row per person; the CRM-only contact counts, pointed at the helpdesk org
    population = store.customer_columns(["revenue_12m", "lifecyclestage"])
    assert population["keys"] == ["hubspot:user:10", "zendesk:user:1"]
    assert population["organization_keys"] == ["zendesk:org:50", "zendesk:org:50"]
    assert population["attributes"]["revenue_12m"] == [None, 1000.0]
    assert [c.key for c in store.iter_customers()] == ["hubspot:user:10", "zendesk:user:1"]
    assert store.organization_columns([])["keys"] == ["zendesk:org:50"]
    assert [r["record_key"] for r in store.identity_links("zendesk:user:1")] == [
        "hubspot:user:9",
        "zendesk:user:1",
    ]

    # a fresh pull of the helpdesk record shows at once; the overlay still applies
    store.upsert_customers(
        [
            Customer(
                "zendesk", "1", email="ana@acme.example", organization_id="50", attributes={"referrals": 5}
            )
        ]
    )
    assert store.get_customer("zendesk:user:1").attributes["referrals"] == 5
    assert store.get_customer("zendesk:user:1").attributes["revenue_12m"] == 1000.0


def test_precedence_can_put_the_helpdesk_first(store: Store) -> None:
    store.upsert_customers(
        [
            Customer("zendesk", "1", email="a@x.example", attributes={"revenue_12m": 10.0}),
            Customer("hubspot", "9", email="a@x.example", attributes={"revenue_12m": 99.0, "plan": "gold"}),
        ]
    )
    resolve_identities(store, Rules(precedence=("zendesk", "hubspot")), now=NOW)
    assert store.get_customer("zendesk:user:1").attributes == {"revenue_12m": 10.0, "plan": "gold"}


def test_conflicts_are_stored_and_nothing_leaks_from_held_records(store: Store) -> None:
    store.upsert_customers(
        [
            Customer("zendesk", "1", email="ana@example.com", name="Ana", attributes={"referrals": 1}),
            Customer("hubspot", "9", email="ana@example.com", name="Ana", attributes={"plan": "gold"}),
            Customer("hubspot", "10", email="ana@example.com", name="Ana Other", attributes={"plan": "free"}),
        ]
    )
    resolve_identities(store, Rules(), now=NOW)
    (conflict,) = store.identity_conflicts()
    assert conflict["code"] == "duplicate"
    assert conflict["keys"] == ["hubspot:user:10", "hubspot:user:9", "zendesk:user:1"]
    assert store.get_customer("zendesk:user:1").attributes == {"referrals": 1}
    assert [c.key for c in store.iter_customers()] == ["zendesk:user:1"]
    assert store.identity_counts() == {"person held": 2, "person primary": 1}


def test_helpdesk_only_stores_skip_resolution(store: Store) -> None:
    store.upsert_customers([Customer("zendesk", "1", email="a@example.com")])
    assert resolve_identities(store, Rules(), now=NOW) is None
    assert store.identity_counts() == {}
