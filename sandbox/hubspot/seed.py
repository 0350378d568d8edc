"""Synthetic CRM data for the HubSpot sandbox that overlaps the Zendesk sandbox's seeded customers.

Why: enrichment only shows something when the CRM and the helpdesk share people. With the same `seed` and
`customers` as sandbox/zendesk/seed.py, most Zendesk customers appear here as contacts with the same
email (a few in different letter case), their organizations as companies with the same domain, and their
revenue as closed-won deals whose amounts add up to the Zendesk user's revenue_12m and lifetime_value. Then
there is what real CRMs have: contacts support never heard from, prospects without deals, open and lost
deals, and duplicate contacts -- some that agree with each other (merged quietly) and some that carry one
email under two different names and companies (identity conflicts tierdesk must report, not merge).

The Zendesk side is read from a seeded ZendeskSandbox (the one the demo runs, or a throwaway one seeded the
same way, which gives the same emails), and everything else comes from random.Random(seed + 1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.hubspot.server import HubSpotSandbox
from sandbox.zendesk.seed import seed as seed_zendesk
from sandbox.zendesk.server import ZendeskSandbox

MATCH_SHARE = 0.85  # Zendesk customers who are also HubSpot contacts
COMPANY_SHARE = 0.9  # Zendesk organizations that are also HubSpot companies
CRM_ONLY_SHARE = 0.08  # extra contacts, relative to the number of customers
EXTRA_FIRST = ("alba", "bruno", "cleo", "dmitri", "esme", "felix", "gaia", "henrik", "iris", "jakob")
EXTRA_LAST = (
    "arnaud",
    "brandt",
    "castro",
    "dahl",
    "ekström",
    "ferreira",
    "gallo",
    "holm",
    "ito",
    "jovanovic",
)


@dataclass(frozen=True)
class HubSpotSeedSummary:
    seed: int
    now: datetime
    companies: int
    contacts: int
    deals: int
    won_deals: int
    matched_emails: list[str]  # contacts whose email is a Zendesk customer's (as Zendesk has it)
    crm_only_emails: list[str]  # contacts with no Zendesk user
    conflict_emails: list[str]  # one email on two contacts that disagree: identity conflicts
    merged_duplicate_emails: list[str]  # one email on two contacts that agree: merged quietly
    contact_ids: dict[str, str] = field(default_factory=dict)  # lower-case email -> first contact id
    company_ids: dict[str, str] = field(default_factory=dict)  # domain -> company id


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = max(0.0, (end - start).total_seconds())
    return start + timedelta(seconds=rng.uniform(0, span))


def _split(rng: random.Random, total: float, parts: int) -> list[float]:
    """`total` in `parts` positive amounts that add up to it (to the cent)."""
    weights = [rng.uniform(0.5, 1.5) for _ in range(parts)]
    amounts = [round(total * w / sum(weights), 2) for w in weights]
    amounts[-1] = round(total - sum(amounts[:-1]), 2)
    return [a for a in amounts if a > 0]


def _zendesk_people(zendesk: ZendeskSandbox, customer_ids: list[int]) -> tuple[list[dict], dict[int, dict]]:
    users = [zendesk.get_user(i) for i in customer_ids]
    orgs: dict[int, dict] = {}
    for user in users:
        org_id = user.get("organization_id")
        if org_id and org_id not in orgs:
            orgs[org_id] = zendesk.get_organization(org_id)
    return users, orgs


def seed(
    hub: HubSpotSandbox,
    customers: int = 1000,
    seed: int = 42,
    now: datetime | None = None,
    zendesk: ZendeskSandbox | None = None,
    customer_ids: list[int] | None = None,
) -> HubSpotSeedSummary:
    """Fill `hub` with companies, contacts and deals overlapping a Zendesk sandbox seeded with `seed`.

    Pass the demo's seeded `zendesk` sandbox (and its SeedSummary.customer_ids) to overlap exactly that
    account; without it a throwaway sandbox is seeded with the same `customers` and `seed`.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    if zendesk is None or customer_ids is None:
        zendesk = ZendeskSandbox()
        customer_ids = seed_zendesk(zendesk, customers=customers, seed=seed, now=now).customer_ids
    users, orgs = _zendesk_people(zendesk, customer_ids)
    rng = random.Random(seed + 1)
    latest = now - timedelta(minutes=2)

    company_ids: dict[str, str] = {}
    company_by_org: dict[int, str] = {}
    for org_id, org in sorted(orgs.items()):
        if rng.random() >= COMPANY_SHARE or not org.get("domain_names"):
            continue
        created = _time(org.get("created_at")) or now - timedelta(days=1000)
        fields = org.get("organization_fields") or {}
        company = hub.add(
            "companies",
            {
                "name": org["name"] if rng.random() < 0.8 else org["name"].upper(),
                "domain": org["domain_names"][0],
                "industry": fields.get("industry") or "",
                "numberofemployees": fields.get("employees") or "",
                "lifecyclestage": "customer",
            },
            created_at=created,
            modified_at=_between(rng, created, latest),
        )
        company_ids[org["domain_names"][0]] = company["id"]
        company_by_org[org_id] = company["id"]
    for index in range(max(1, len(orgs) // 10)):  # prospects support has never seen
        created = now - timedelta(days=rng.uniform(10, 900))
        domain = f"prospect-{seed}-{index + 1}.example"
        company = hub.add(
            "companies",
            {"name": f"Prospect {index + 1}", "domain": domain, "lifecyclestage": "lead"},
            created_at=created,
            modified_at=_between(rng, created, latest),
        )
        company_ids[domain] = company["id"]

    contact_ids: dict[str, str] = {}
    matched: list[str] = []
    deals = won = 0

    def add_contact(
        email: str, first: str, last: str, company: str | None, created: datetime, stage: str
    ) -> dict[str, Any]:
        props: dict[str, Any] = {
            "email": email,
            "firstname": first,
            "lastname": last,
            "lifecyclestage": stage,
        }
        if company:
            props["associatedcompanyid"] = company
        contact = hub.add("contacts", props, created_at=created, modified_at=_between(rng, created, latest))
        contact_ids.setdefault(email.casefold(), contact["id"])
        if company:
            hub.associate("contacts", contact["id"], "companies", company)
        return contact

    def add_deal(
        contact: str, company: str | None, amount: float, stage: str, closed: datetime | None
    ) -> None:
        nonlocal deals, won
        created = (closed or now) - timedelta(days=rng.uniform(5, 90))
        props: dict[str, Any] = {
            "dealname": f"Deal {deals + 1}",
            "amount": f"{amount:.2f}",
            "pipeline": "default",
            "dealstage": stage,
        }
        if closed is not None:
            props["closedate"] = closed.isoformat()
        deal = hub.add(
            "deals", props, created_at=created, modified_at=min(latest, _between(rng, created, latest))
        )
        hub.associate("deals", deal["id"], "contacts", contact)
        if company:
            hub.associate("deals", deal["id"], "companies", company)
        deals += 1
        won += stage == "closedwon"

    for user in users:
        if rng.random() >= MATCH_SHARE:
            continue
        email = user["email"]
        if rng.random() < 0.1:  # CRMs keep what people typed
            email = email[0].upper() + email[1:].replace("@example.com", "@Example.com")
        first, _, last = (user.get("name") or "Someone").partition(" ")
        company = company_by_org.get(user.get("organization_id") or 0)
        created = _time(user.get("created_at")) or now - timedelta(days=365)
        fields = user.get("user_fields") or {}
        revenue = float(fields.get("revenue_12m") or 0)
        lifetime = max(float(fields.get("lifetime_value") or 0), revenue)
        stage = "customer" if lifetime > 0 else rng.choice(("lead", "opportunity", "subscriber"))
        contact = add_contact(
            email, first, last, company, created - timedelta(days=rng.uniform(0, 30)), stage
        )
        matched.append(user["email"])
        year_ago = max(created, now - timedelta(days=364))
        for amount in _split(rng, revenue, rng.randint(1, 3)) if revenue > 0 else []:
            add_deal(contact["id"], company, amount, "closedwon", _between(rng, year_ago, latest))
        older = round(lifetime - revenue, 2)
        if older > 0:
            start = min(created, now - timedelta(days=400))
            for amount in _split(rng, older, rng.randint(1, 2)):
                add_deal(
                    contact["id"],
                    company,
                    amount,
                    "closedwon",
                    _between(rng, start, now - timedelta(days=370)),
                )
        if rng.random() < 0.15:  # in the pipeline or lost: never revenue
            stage = rng.choice(("contractsent", "qualifiedtobuy", "closedlost"))
            closed = _between(rng, now - timedelta(days=200), latest) if stage == "closedlost" else None
            add_deal(contact["id"], company, round(rng.uniform(500, 20000), 2), stage, closed)

    crm_only: list[str] = []
    for index in range(round(customers * CRM_ONLY_SHARE)):
        first, last = rng.choice(EXTRA_FIRST), rng.choice(EXTRA_LAST)
        email = f"{first}.{last}.{index + 1}@crm-only.example"
        created = now - timedelta(days=rng.uniform(1, 1500))
        has_deal = rng.random() < 0.4
        contact = add_contact(
            email, first.title(), last.title(), None, created, "customer" if has_deal else "lead"
        )
        crm_only.append(email)
        if has_deal:
            add_deal(
                contact["id"],
                None,
                round(rng.uniform(100, 8000), 2),
                "closedwon",
                _between(rng, created, latest),
            )

    conflicts: list[str] = []
    agreeing: list[str] = []
    pool = [e for e in matched if e.casefold() in contact_ids]
    rng.shuffle(pool)
    other_companies = list(company_ids.values())
    for email in pool[: max(1, customers // 250)]:  # same email, another person and company: a conflict
        first, last = rng.choice(EXTRA_FIRST), rng.choice(EXTRA_LAST)
        add_contact(
            email.upper(),
            first.title(),
            last.title(),
            rng.choice(other_companies),
            now - timedelta(days=40),
            "lead",
        )
        conflicts.append(email)
    for email in pool[max(1, customers // 250) : max(1, customers // 250) + max(1, customers // 500)]:
        original = hub.get("contacts", contact_ids[email.casefold()])["properties"]
        add_contact(
            email.upper(),
            original.get("firstname") or "",
            original.get("lastname") or "",
            original.get("associatedcompanyid"),
            now - timedelta(days=20),
            "lead",
        )
        agreeing.append(email)

    return HubSpotSeedSummary(
        seed=seed,
        now=now,
        companies=hub.count("companies"),
        contacts=hub.count("contacts"),
        deals=deals,
        won_deals=won,
        matched_emails=matched,
        crm_only_emails=crm_only,
        conflict_emails=conflicts,
        merged_duplicate_emails=agreeing,
        contact_ids=contact_ids,
        company_ids=company_ids,
    )
