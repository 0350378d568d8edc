"""Deterministic synthetic customers, organizations and ticket history for the Zendesk sandbox.

Why: segments only show something when the data has the shapes real accounts have: a heavy revenue tail,
a few unprofitable customers, brand-new and long-standing customers, VIPs, and a handful of frustrated
customers who write often, reopen tickets and rate support badly. Everything comes from one
random.Random(seed), so the same seed (and `now`) always gives the same account; the people are the
ones every helpdesk's seed shares (sandbox/base/seed.py).

Records are written straight into the sandbox (no HTTP, no triggers), and every timestamp is at least two
minutes old so an incremental export from "a minute ago" starts empty.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

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
from sandbox.zendesk.server import ZendeskSandbox

__all__ = ["GROUPS", "SeedSummary", "seed"]


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
) -> SeedSummary:
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

    org_names = organization_names(rng, customers)
    org_ids: list[int] = []
    for index, name in enumerate(org_names):
        slug = name.lower().replace(" ", "-")
        created = random_signup(rng, now)
        org_ids.append(
            sandbox.add_organization(
                name,
                domain_names=[f"{slug}.example"],
                organization_fields={"industry": rng.choice(INDUSTRIES), "employees": rng.randint(5, 5000)},
                external_id=f"org-{index + 1:04d}",
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
    comment_total = 0
    for index in range(customers):
        first, last, email = unique_person(rng, used_emails)
        created = random_signup(rng, now)
        organization_id = rng.choice(org_ids) if org_ids and rng.random() < 0.7 else None
        is_frustrated = index in frustrated

        history = customer_history(rng, now, latest, created, is_frustrated)

        tags = ["vip"] if index in tagged else []
        user = sandbox.add_user(
            f"{first.capitalize()} {last.capitalize()}",
            email,
            organization_id=organization_id,
            tags=tags,
            user_fields=customer_fields(rng, history),
            external_id=f"cust-{index + 1:05d}",
            time_zone=rng.choice(TIME_ZONES),
            created_at=created,
            updated_at=random_between(rng, created, latest),
        )
        customer_ids.append(user["id"])
        if index in listed:
            vip_emails.append(email)
        if index in tagged:
            vip_tagged.append(email)

        for opened in history.ticket_times:
            subject, topic = rng.choice(TOPICS)
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
                service_rng, status, priority, opened, updated, history.revenue, is_frustrated
            )
            ticket = sandbox.add_ticket(
                user["id"],
                subject,
                f"{subject}. Could you help?",
                status=status,
                priority=priority,
                group_id=groups[rng.choices(GROUPS, weights=GROUP_WEIGHTS)[0]],
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
            ticket_total += 1
            comment_total += 1
            if status in ("solved", "closed", "pending"):
                sandbox.add_comment(
                    ticket["id"],
                    rng.choice(REPLIES),
                    author_id=ticket["assignee_id"] or agent_ids[0],
                    created_at=updated,
                )
                comment_total += 1

    return SeedSummary(
        seed=seed,
        now=now,
        customers=customers,
        agents=len(agent_ids),
        organizations=len(org_names),
        tickets=ticket_total,
        comments=comment_total,
        groups=groups,
        vip_emails=vip_emails,
        vip_tagged_emails=vip_tagged,
        customer_ids=customer_ids,
        agent_ids=agent_ids,
    )
