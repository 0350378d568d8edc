"""Deterministic synthetic contacts, companies and ticket history for the Freshdesk sandbox.

Why: the Freshdesk demo and tests should show the same segment shapes as the Zendesk ones (a heavy revenue
tail, a few unprofitable customers, new and long-standing customers, VIPs, frustrated customers who write
often), so the people come from the generators every helpdesk's seed shares (sandbox/base/seed.py) and the
customer attributes carry the same names: contact custom fields revenue_12m, lifetime_value, referrals,
on_time_payment_rate and service_cost_12m, and the contact tag "vip". Everything comes from one
random.Random(seed).

Records are written straight into the sandbox (no HTTP, no automation rules); every timestamp is at least
two minutes old. Freshdesk has no CSAT or reopen count on the ticket itself, so neither is seeded.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sandbox.base.seed import (
    GROUP_WEIGHTS,
    GROUPS,
    INDUSTRIES,
    REPLIES,
    TIME_ZONES,
    TOPICS,
    SeedSummary,
    customer_fields,
    customer_history,
    organization_names,
    pick_special,
    random_between,
    random_signup,
    unique_person,
)
from sandbox.freshdesk.server import FreshdeskSandbox

__all__ = ["GROUPS", "SeedSummary", "seed"]

# Freshdesk's integer enumerations: priority 1 low .. 4 urgent; status 2 open, 3 pending,
# 4 resolved, 5 closed; source 1 email, 2 portal, 3 phone.
# Freshdesk's integer enumerations: priority 1 low .. 4 urgent; status 2 open, 3 pending,
# 4 resolved, 5 closed; source 1 email, 2 portal, 3 phone.
PRIORITY_WEIGHTS = {1: 30, 2: 45, 3: 18, 4: 7}


def seed(
    sandbox: FreshdeskSandbox, customers: int = 1000, seed: int = 42, now: datetime | None = None
) -> SeedSummary:
    """Fill `sandbox` with `customers` contacts plus companies, groups, agents and ticket history."""
    rng = random.Random(seed)
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    latest = now - timedelta(minutes=2)

    groups = {
        name: sandbox.add_group(name, description=f"{name} queue", created_at=now - timedelta(days=3000))[
            "id"
        ]
        for name in GROUPS
    }
    agent_ids = [
        sandbox.add_agent(
            f"{first.capitalize()} Agent",
            f"{first}.agent@support.example.com",
            created_at=now - timedelta(days=2500),
        )["id"]
        for first in ("alex", "sam", "robin")
    ]

    company_names = organization_names(rng, customers)
    company_ids: list[int] = []
    for name in company_names:
        created = random_signup(rng, now)
        company_ids.append(
            sandbox.add_company(
                name,
                domains=[f"{name.lower().replace(' ', '-')}.example"],
                industry=rng.choice(INDUSTRIES),
                custom_fields={"employees": rng.randint(5, 5000)},
                created_at=created,
                updated_at=random_between(rng, created, latest),
            )["id"]
        )

    tagged, listed, frustrated = pick_special(rng, customers)

    used_emails: set[str] = set()
    customer_ids: list[int] = []
    vip_emails: list[str] = []
    vip_tagged: list[str] = []
    ticket_total = 0
    note_total = 0
    for index in range(customers):
        first, last, email = unique_person(rng, used_emails)
        created = random_signup(rng, now)
        company_id = rng.choice(company_ids) if company_ids and rng.random() < 0.7 else None

        history = customer_history(rng, now, latest, created, index in frustrated)

        contact = sandbox.add_contact(
            f"{first.capitalize()} {last.capitalize()}",
            email,
            company_id=company_id,
            tags=["vip"] if index in tagged else [],
            custom_fields=customer_fields(rng, history),
            unique_external_id=f"cust-{index + 1:05d}",
            time_zone=rng.choice(TIME_ZONES),
            created_at=created,
            updated_at=random_between(rng, created, latest),
        )
        customer_ids.append(contact["id"])
        if index in listed:
            vip_emails.append(email)
        if index in tagged:
            vip_tagged.append(email)

        for opened in history.ticket_times:
            subject, topic = rng.choice(TOPICS)
            if (now - opened).days > 7:
                status = rng.choices((5, 4, 2, 3), weights=(60, 33, 5, 2))[0]
            else:
                status = rng.choices((2, 3, 4), weights=(55, 20, 25))[0]
            updated = min(latest, opened + timedelta(hours=rng.uniform(0.5, 240)))
            ticket = sandbox.add_ticket(
                contact["id"],
                subject,
                f"{subject}. Could you help?",
                status=status,
                priority=rng.choices(list(PRIORITY_WEIGHTS), weights=list(PRIORITY_WEIGHTS.values()))[0],
                source=rng.choices((1, 2, 3), weights=(55, 35, 10))[0],
                group_id=groups[rng.choices(GROUPS, weights=GROUP_WEIGHTS)[0]],
                responder_id=rng.choice(agent_ids),
                tags=[topic],
                created_at=opened,
                updated_at=updated,
            )
            ticket_total += 1
            if status in (3, 4, 5):
                sandbox.add_note(
                    ticket["id"],
                    rng.choice(REPLIES),
                    private=False,
                    user_id=rng.choice(agent_ids),
                    created_at=updated,
                )
                note_total += 1

    return SeedSummary(
        seed=seed,
        now=now,
        customers=customers,
        agents=len(agent_ids),
        organizations=len(company_names),
        tickets=ticket_total,
        comments=note_total,
        groups=groups,
        vip_emails=vip_emails,
        vip_tagged_emails=vip_tagged,
        customer_ids=customer_ids,
        agent_ids=agent_ids,
    )
