"""Deterministic synthetic contacts, companies and ticket history for the Freshdesk sandbox.

Why: the Freshdesk demo and tests should show the same segment shapes as the Zendesk ones (a heavy revenue
tail, a few unprofitable customers, new and long-standing customers, VIPs, frustrated customers who write
often), so the distributions come from the Zendesk seed's generators and the customer attributes carry
the same names: contact custom fields revenue_12m, lifetime_value, referrals, on_time_payment_rate and
service_cost_12m, and the contact tag "vip". Everything comes from one random.Random(seed).

Records are written straight into the sandbox (no HTTP, no automation rules); every timestamp is at least
two minutes old. Freshdesk has no CSAT or reopen count on the ticket itself, so neither is seeded.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sandbox.freshdesk import FreshdeskSandbox
from sandbox.seed import (
    GROUPS,
    INDUSTRIES,
    ORG_STEMS,
    ORG_SUFFIXES,
    REPLIES,
    TICKET_COST,
    TIME_ZONES,
    TOPICS,
    SeedSummary,
    _between,
    _created_at,
    _referrals,
    _revenue,
    _ticket_count,
    pick_special,
    unique_person,
)

__all__ = ["GROUPS", "seed"]

GROUP_WEIGHTS = (50, 12, 8, 15, 5, 10)
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

    company_count = max(1, customers // 10) if customers else 0
    names = [f"{stem} {suffix}" for stem in ORG_STEMS for suffix in ORG_SUFFIXES]
    rng.shuffle(names)
    company_ids: list[int] = []
    for index in range(company_count):
        name = (
            names[index] if index < len(names) else f"{names[index % len(names)]} {index // len(names) + 1}"
        )
        created = _created_at(rng, now)
        company_ids.append(
            sandbox.add_company(
                name,
                domains=[f"{name.lower().replace(' ', '-')}.example"],
                industry=rng.choice(INDUSTRIES),
                custom_fields={"employees": rng.randint(5, 5000)},
                created_at=created,
                updated_at=_between(rng, created, latest),
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
        created = _created_at(rng, now)
        company_id = rng.choice(company_ids) if company_ids and rng.random() < 0.7 else None

        revenue = _revenue(rng)
        history_start = max(created, now - timedelta(days=730))
        count = _ticket_count(rng)
        if created > now - timedelta(days=30):
            count = min(count, 2)
        if revenue == 0 and rng.random() < 0.7:
            count = 0
        times = [_between(rng, history_start, latest) for _ in range(count)]
        if index in frustrated:
            recent_start = max(created, now - timedelta(days=30))
            times += [_between(rng, recent_start, latest) for _ in range(rng.randint(3, 6))]
        times.sort()
        last_year = sum(1 for t in times if t >= now - timedelta(days=365))

        tenure_years = (now - created).days / 365
        lifetime = round(revenue * rng.uniform(1.0, 1.0 + 0.9 * tenure_years), 2)
        if revenue == 0 and rng.random() < 0.5:
            lifetime = round(rng.uniform(100, 6000), 2)
        headroom = revenue - last_year * TICKET_COST
        if revenue == 0:
            cost = 0.0 if rng.random() < 0.85 else round(rng.uniform(20, 300), 2)
        elif headroom > 0 and revenue < 2800 and rng.random() < 0.05:
            cost = round(min(3000.0, headroom + rng.uniform(20, 400)), 2)
        else:
            cost = round(min(3000.0, max(0.0, headroom) * rng.uniform(0.05, 0.6)), 2)

        contact = sandbox.add_contact(
            f"{first.capitalize()} {last.capitalize()}",
            email,
            company_id=company_id,
            tags=["vip"] if index in tagged else [],
            custom_fields={
                "revenue_12m": revenue,
                "lifetime_value": max(lifetime, revenue),
                "referrals": _referrals(rng),
                "on_time_payment_rate": round(1 - 0.5 * rng.betavariate(1.2, 4), 3),
                "service_cost_12m": cost,
            },
            unique_external_id=f"cust-{index + 1:05d}",
            time_zone=rng.choice(TIME_ZONES),
            created_at=created,
            updated_at=_between(rng, created, latest),
        )
        customer_ids.append(contact["id"])
        if index in listed:
            vip_emails.append(email)
        if index in tagged:
            vip_tagged.append(email)

        for opened in times:
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
        organizations=company_count,
        tickets=ticket_total,
        comments=note_total,
        groups=groups,
        vip_emails=vip_emails,
        vip_tagged_emails=vip_tagged,
        customer_ids=customer_ids,
        agent_ids=agent_ids,
    )
