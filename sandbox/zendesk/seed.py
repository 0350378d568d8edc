"""Deterministic synthetic customers, organizations and ticket history for the Zendesk sandbox.

Why: segments only show something when the data has the shapes real accounts have: a heavy revenue tail,
a few unprofitable customers, brand-new and long-standing customers, VIPs, and a handful of frustrated
customers who write often, reopen tickets and rate support badly. Everything comes from one
random.Random(seed), so the same seed (and `now`) always gives the same account; the people are the
ones every helpdesk's seed shares (sandbox/base/people.py).

Records are written straight into the sandbox (no HTTP, no triggers), and every timestamp is at least two
minutes old so an incremental export from "a minute ago" starts empty.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.base import people
from sandbox.zendesk.server import ZendeskSandbox

__all__ = ["GROUPS", "seed"]

GROUPS = people.GROUPS  # the queues every helpdesk's seed creates


def _rating(rng: random.Random, status: str, frustrated: bool) -> dict[str, Any]:
    if status not in ("solved", "closed"):
        return {"score": "unoffered"}
    if frustrated:
        score = rng.choices(("bad", "good", "offered", "unoffered"), weights=(50, 15, 10, 25))[0]
    else:
        score = rng.choices(("good", "bad", "offered", "unoffered"), weights=(32, 4, 10, 54))[0]
    if score in ("good", "bad"):
        return {"id": rng.randrange(10**9, 10**10), "score": score, "comment": ""}
    return {"score": score}


# Typical minutes to a first reply and to resolution by ticket priority (None: no priority set).
REPLY_MINUTES = {"urgent": 25, "high": 75, "normal": 240, "low": 480, None: 300}
RESOLUTION_MINUTES = {"urgent": 240, "high": 720, "normal": 2160, "low": 4320, None: 2880}


def _service_times(
    rng: random.Random,
    status: str,
    priority: str | None,
    opened: datetime,
    updated: datetime,
    revenue: float,
    frustrated: bool,
) -> tuple[datetime | None, datetime | None]:
    """(first reply, solved) times: faster for urgent tickets and big accounts, slower for the frustrated."""
    if status == "new":
        return None, None
    factor = (2.2 if frustrated else 1.0) * (0.6 if revenue >= 20_000 else 1.0)
    reply_minutes = max(1.0, REPLY_MINUTES[priority] * factor * math.exp(rng.gauss(0, 0.8)))
    reply = min(opened + timedelta(minutes=reply_minutes), updated).replace(microsecond=0)
    solved = None
    if status in ("solved", "closed"):
        minutes = reply_minutes + RESOLUTION_MINUTES[priority] * factor * math.exp(rng.gauss(0, 0.9))
        solved = min(opened + timedelta(minutes=minutes), updated).replace(microsecond=0)
    if status in ("open", "hold") and rng.random() < 0.2:
        return None, solved  # not answered yet
    return reply, solved


def seed(
    sandbox: ZendeskSandbox, customers: int = 1000, seed: int = 42, now: datetime | None = None
) -> people.SeedSummary:
    """Fill `sandbox` with `customers` end users plus organizations, groups, agents and ticket history."""
    rng = random.Random(seed)
    service_rng = random.Random(f"{seed}:service")  # its own stream: the rest of the data stays the same
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    latest = now - timedelta(minutes=2)

    groups: dict[str, int] = {}
    for index, name in enumerate(GROUPS):
        groups[name] = sandbox.add_group(
            name, description=f"{name} queue", default=index == 0, created_at=now - timedelta(days=3000)
        )["id"]

    agent_ids = [
        sandbox.add_user(
            f"{first.capitalize()} Agent",
            f"{first}.agent@support.example.com",
            role="agent",
            created_at=now - timedelta(days=2500),
        )["id"]
        for first in ("alex", "sam", "robin")
    ]

    def add_organization(org: people.Organization) -> int:
        return sandbox.add_organization(
            org.name,
            domain_names=[org.domain],
            organization_fields={"industry": org.industry, "employees": org.employees},
            created_at=org.created,
            updated_at=org.updated,
            external_id=f"org-{org.index + 1:04d}",
        )["id"]

    def add_customer(customer: people.Customer) -> dict[str, Any]:
        return sandbox.add_user(
            customer.name,
            customer.email,
            organization_id=customer.organization_id,
            user_fields=customer.fields,
            external_id=customer.external_id,
            **customer.common_fields,
        )

    tally = people.SeedTally()
    for customer, user in tally.write_people(rng, customers, now, latest, add_organization, add_customer):
        is_frustrated = customer.frustrated
        for opened in customer.history.ticket_times:
            subject, topic = rng.choice(people.TOPICS)
            age_days = (now - opened).days
            if age_days > 7:
                status = rng.choices(("closed", "solved", "open", "pending"), weights=(60, 33, 5, 2))[0]
            else:
                status = rng.choices(
                    ("new", "open", "pending", "hold", "solved"), weights=(20, 35, 15, 5, 25)
                )[0]
            updated = min(latest, opened + timedelta(hours=rng.uniform(0.5, 240)))
            reopens = 0
            if status in ("solved", "closed", "open"):
                reopens = rng.choice((1, 1, 2)) if rng.random() < (0.3 if is_frustrated else 0.04) else 0
            priority = rng.choices((None, "low", "normal", "high", "urgent"), weights=(30, 15, 35, 15, 5))[0]
            first_reply, solved = _service_times(
                service_rng, status, priority, opened, updated, customer.history.revenue, is_frustrated
            )
            ticket = sandbox.add_ticket(
                user["id"],
                subject,
                f"{subject}. Could you help?",
                status=status,
                priority=priority,
                group_id=groups[rng.choices(GROUPS, weights=people.GROUP_WEIGHTS)[0]],
                assignee_id=rng.choice(agent_ids) if status != "new" else None,
                tags=[topic],
                via_channel=rng.choices(("email", "web", "api"), weights=(55, 35, 10))[0],
                satisfaction_rating=_rating(rng, status, is_frustrated),
                reopens=reopens,
                created_at=opened,
                updated_at=updated,
                first_reply_at=first_reply,
                solved_at=solved,
            )
            tally.tickets += 1
            tally.comments += 1
            if status in ("solved", "closed", "pending"):
                sandbox.add_comment(
                    ticket["id"],
                    rng.choice(people.REPLIES),
                    author_id=ticket["assignee_id"] or agent_ids[0],
                    created_at=updated,
                )
                tally.comments += 1

    return tally.summary(seed, now, groups, agent_ids)
