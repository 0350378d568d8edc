"""Deterministic synthetic contacts, companies and ticket history for the Freshdesk sandbox.

Why: the Freshdesk demo and tests should show the same segment shapes as the Zendesk ones (a heavy revenue
tail, a few unprofitable customers, new and long-standing customers, VIPs, frustrated customers who write
often), so the people come from the generators every helpdesk's seed shares (sandbox/base/people.py) and the
customer attributes carry the same names: contact custom fields revenue_12m, lifetime_value, referrals,
on_time_payment_rate and service_cost_12m, and the contact tag "vip". Everything comes from one
random.Random(seed).

Records are written straight into the sandbox (no HTTP, no automation rules); every timestamp is at least
two minutes old. Freshdesk has no CSAT or reopen count on the ticket itself, so neither is seeded.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.base import people
from sandbox.freshdesk.server import FreshdeskSandbox

__all__ = ["GROUPS", "seed"]

GROUPS = people.GROUPS  # the queues every helpdesk's seed creates

# Freshdesk's integer enumerations: priority 1 low .. 4 urgent; status 2 open, 3 pending,
# 4 resolved, 5 closed; source 1 email, 2 portal, 3 phone.
# Freshdesk's integer enumerations: priority 1 low .. 4 urgent; status 2 open, 3 pending,
# 4 resolved, 5 closed; source 1 email, 2 portal, 3 phone.
PRIORITY_WEIGHTS = {1: 30, 2: 45, 3: 18, 4: 7}


def seed(
    sandbox: FreshdeskSandbox, customers: int = 1000, seed: int = 42, now: datetime | None = None
) -> people.SeedSummary:
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

    def add_company(org: people.Organization) -> int:
        return sandbox.add_company(
            org.name,
            domains=[org.domain],
            industry=org.industry,
            custom_fields={"employees": org.employees},
            created_at=org.created,
            updated_at=org.updated,
        )["id"]

    def add_contact(customer: people.Customer) -> dict[str, Any]:
        return sandbox.add_contact(
            customer.name,
            customer.email,
            company_id=customer.organization_id,
            custom_fields=customer.fields,
            unique_external_id=customer.external_id,
            **customer.common_fields,
        )

    tally = people.SeedTally()
    for customer, contact in tally.write_people(rng, customers, now, latest, add_company, add_contact):
        for opened in customer.history.ticket_times:
            subject, topic = rng.choice(people.TOPICS)
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
                group_id=groups[rng.choices(GROUPS, weights=people.GROUP_WEIGHTS)[0]],
                responder_id=rng.choice(agent_ids),
                tags=[topic],
                created_at=opened,
                updated_at=updated,
            )
            tally.tickets += 1
            if status in (3, 4, 5):
                sandbox.add_note(
                    ticket["id"],
                    rng.choice(people.REPLIES),
                    private=False,
                    user_id=rng.choice(agent_ids),
                    created_at=updated,
                )
                tally.comments += 1

    return tally.summary(seed, now, groups, agent_ids)
