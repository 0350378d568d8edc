"""Deterministic synthetic customers, organizations and ticket history for the Zendesk sandbox.

Why: segments only show something when the data has the shapes real accounts have: a heavy revenue tail,
a few unprofitable customers, brand-new and long-standing customers, VIPs, and a handful of frustrated
customers who write often, reopen tickets and rate support badly. Everything comes from one
random.Random(seed), so the same seed (and `now`) always gives the same account.

Records are written straight into the sandbox (no HTTP, no triggers), and every timestamp is at least two
minutes old so an incremental export from "a minute ago" starts empty.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.zendesk import ZendeskSandbox

GROUPS = ("General", "Senior Support", "Key Accounts", "Self-Service", "Retention", "Onboarding")
TICKET_COST = 25  # the cost-to-serve per ticket the profitability share below is tuned against

FIRST_NAMES = (
    "ana", "ben", "carla", "david", "elena", "farid", "greta", "hugo", "ines", "jonas", "kira", "liam",
    "maria", "nils", "olga", "pedro", "quinn", "rosa", "sami", "tara", "umar", "vera", "wen", "ximena",
    "yusuf", "zoe", "amir", "bianca", "chen", "dara", "emil", "fatima", "goran", "hana", "ivan", "julia",
    "kofi", "lena", "marco", "nora",
)  # fmt: skip
LAST_NAMES = (
    "silva", "meyer", "rossi", "kowalski", "nguyen", "okafor", "jensen", "garcia", "tanaka", "novak",
    "dubois", "haddad", "smith", "larsen", "costa", "yilmaz", "fischer", "moreau", "patel", "berg",
    "santos", "ivanova", "murphy", "kim", "lopez", "weber", "almeida", "nakamura", "popescu", "svensson",
)  # fmt: skip
ORG_STEMS = (
    "Northwind", "Contoso", "Fabrikam", "Globex", "Initech", "Umbrella", "Acme", "Wonka", "Tyrell",
    "Cyberdyne", "Hooli", "Vandelay", "Soylent", "Gringotts", "Oscorp", "Aperture", "Stark", "Wayne",
    "Massive Dynamic", "Pied Piper", "Dunder Mifflin", "Blue Sun", "Monarch", "Nakatomi", "Virtucon",
    "Duff", "Krusty", "Sirius", "Tessier", "Zorg", "Bluth", "Prestige", "Gekko", "Rekall", "Yoyodyne",
    "Axiom", "Ollivander", "Sterling", "Wernham", "Vehement",
)  # fmt: skip
ORG_SUFFIXES = ("Ltd", "GmbH", "Inc", "LLC", "SA", "BV", "AB", "Oy", "plc", "Co")
INDUSTRIES = ("retail", "software", "manufacturing", "logistics", "finance", "health", "education")
TIME_ZONES = ("UTC", "Europe/Berlin", "Europe/Lisbon", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
TOPICS = (
    ("Cannot log in", "login"),
    ("Invoice shows the wrong amount", "billing"),
    ("Refund request", "refund"),
    ("Order has not arrived", "shipping"),
    ("Export fails with an error", "bug"),
    ("How do I add a colleague?", "how_to"),
    ("Please add dark mode", "feature_request"),
    ("Password reset email never came", "login"),
    ("Charged twice this month", "billing"),
    ("App is very slow today", "performance"),
)
REPLIES = (
    "Thanks for reaching out, this is fixed now.",
    "We have issued the correction; please check again.",
    "Closing this one, let us know if anything else comes up.",
)


@dataclass(frozen=True)
class SeedSummary:
    """What was seeded: counts for the demo's banner, VIP emails, and group ids by name."""

    seed: int
    now: datetime
    customers: int
    agents: int
    organizations: int
    tickets: int
    comments: int
    groups: dict[str, int]
    vip_emails: list[str]  # the manual VIP list: not tagged in Zendesk, named by the demo's mapping
    vip_tagged_emails: list[str]  # customers carrying the "vip" tag in Zendesk
    customer_ids: list[int] = field(default_factory=list)
    agent_ids: list[int] = field(default_factory=list)


def _revenue(rng: random.Random) -> float:
    """Heavy tail: ~15% zero, otherwise lognormal; the median customer brings ~2,000, a few 100k+."""
    if rng.random() < 0.15:
        return 0.0
    return round(math.exp(rng.gauss(math.log(2800), 1.5)), 2)


def _referrals(rng: random.Random) -> int:
    return rng.choices(range(11), weights=(45, 25, 13, 7, 4, 2, 1.5, 1, 0.7, 0.5, 0.3))[0]


def pick_special(rng: random.Random, customers: int) -> tuple[set[int], set[int], set[int]]:
    """Which customer indexes carry the vip tag (~2%), are on the VIP list (~1%), and ticket a lot (~5%).

    Shared by every helpdesk's seed, so one seed number gives the same people everywhere."""
    picks = list(range(customers))
    rng.shuffle(picks)
    n_tagged = max(1, round(customers * 0.02)) if customers else 0
    n_listed = max(1, round(customers * 0.01)) if customers else 0
    tagged = set(picks[:n_tagged])
    listed = set(picks[n_tagged : n_tagged + n_listed])
    frustrated = set(rng.sample(range(customers), round(customers * 0.05)))
    return tagged, listed, frustrated


def unique_person(rng: random.Random, used_emails: set[str]) -> tuple[str, str, str]:
    """(first name, last name, email) with an email no earlier customer has; records it as used."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = f"{first}.{last}{rng.randint(1, 99)}@example.com"
    while email in used_emails:
        email = f"{first}.{last}{rng.randint(100, 9999)}@example.com"
    used_emails.add(email)
    return first, last, email


def _created_at(rng: random.Random, now: datetime) -> datetime:
    """~8% joined in the last 30 days, ~27% between 30 days and 2 years ago, the rest 2-8 years ago."""
    roll = rng.random()
    if roll < 0.08:
        days = rng.uniform(0.01, 29.5)
    elif roll < 0.35:
        days = rng.uniform(30, 730)
    else:
        days = rng.uniform(730, 2920)
    return now - timedelta(days=days, minutes=2)


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = max(0.0, (end - start).total_seconds())
    return (start + timedelta(seconds=rng.uniform(0, span))).replace(microsecond=0)


def _ticket_count(rng: random.Random) -> int:
    """Most customers write 0-3 tickets in two years; about one in ten far more."""
    if rng.random() < 0.1:
        return min(40, 4 + int(rng.paretovariate(1.3)))
    return rng.choices((0, 1, 2, 3), weights=(38, 30, 20, 12))[0]


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
    group_weights = (50, 12, 8, 15, 5, 10)

    agent_ids = [
        sandbox.add_user(
            f"{first.capitalize()} Agent",
            f"{first}.agent@support.example.com",
            role="agent",
            created_at=now - timedelta(days=2500),
        )["id"]
        for first in ("alex", "sam", "robin")
    ]

    org_count = max(1, customers // 10) if customers else 0
    names = [f"{stem} {suffix}" for stem in ORG_STEMS for suffix in ORG_SUFFIXES]
    rng.shuffle(names)
    org_ids: list[int] = []
    for index in range(org_count):
        name = (
            names[index] if index < len(names) else f"{names[index % len(names)]} {index // len(names) + 1}"
        )
        slug = name.lower().replace(" ", "-")
        created = _created_at(rng, now)
        org_ids.append(
            sandbox.add_organization(
                name,
                domain_names=[f"{slug}.example"],
                organization_fields={"industry": rng.choice(INDUSTRIES), "employees": rng.randint(5, 5000)},
                external_id=f"org-{index + 1:04d}",
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
    comment_total = 0
    for index in range(customers):
        first, last, email = unique_person(rng, used_emails)
        created = _created_at(rng, now)
        organization_id = rng.choice(org_ids) if org_ids and rng.random() < 0.7 else None
        is_frustrated = index in frustrated

        # revenue and ticket history first: the cost to serve depends on both
        revenue = _revenue(rng)
        history_start = max(created, now - timedelta(days=730))
        count = _ticket_count(rng)
        if created > now - timedelta(days=30):
            count = min(count, 2)  # new customers have had no time for a long history
        if revenue == 0 and rng.random() < 0.7:
            count = 0  # most non-paying customers are dormant
        times = [_between(rng, history_start, latest) for _ in range(count)]
        if is_frustrated:
            recent_start = max(created, now - timedelta(days=30))
            times += [_between(rng, recent_start, latest) for _ in range(rng.randint(3, 6))]
        times.sort()
        last_year = sum(1 for t in times if t >= now - timedelta(days=365))

        tenure_years = (now - created).days / 365
        lifetime = round(revenue * rng.uniform(1.0, 1.0 + 0.9 * tenure_years), 2)
        if revenue == 0 and rng.random() < 0.5:
            lifetime = round(rng.uniform(100, 6000), 2)  # a former paying customer
        headroom = revenue - last_year * TICKET_COST
        if revenue == 0:
            cost = 0.0 if rng.random() < 0.85 else round(rng.uniform(20, 300), 2)
        elif headroom > 0 and revenue < 2800 and rng.random() < 0.05:
            cost = round(min(3000.0, headroom + rng.uniform(20, 400)), 2)  # costs more than it brings
        else:
            cost = round(min(3000.0, max(0.0, headroom) * rng.uniform(0.05, 0.6)), 2)

        tags = ["vip"] if index in tagged else []
        user = sandbox.add_user(
            f"{first.capitalize()} {last.capitalize()}",
            email,
            organization_id=organization_id,
            tags=tags,
            user_fields={
                "revenue_12m": revenue,
                "lifetime_value": max(lifetime, revenue),
                "referrals": _referrals(rng),
                "on_time_payment_rate": round(1 - 0.5 * rng.betavariate(1.2, 4), 3),
                "service_cost_12m": cost,
            },
            external_id=f"cust-{index + 1:05d}",
            time_zone=rng.choice(TIME_ZONES),
            created_at=created,
            updated_at=_between(rng, created, latest),
        )
        customer_ids.append(user["id"])
        if index in listed:
            vip_emails.append(email)
        if index in tagged:
            vip_tagged.append(email)

        for opened in times:
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
                service_rng, status, priority, opened, updated, revenue, is_frustrated
            )
            ticket = sandbox.add_ticket(
                user["id"],
                subject,
                f"{subject}. Could you help?",
                status=status,
                priority=priority,
                group_id=groups[rng.choices(GROUPS, weights=group_weights)[0]],
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
        organizations=org_count,
        tickets=ticket_total,
        comments=comment_total,
        groups=groups,
        vip_emails=vip_emails,
        vip_tagged_emails=vip_tagged,
        customer_ids=customer_ids,
        agent_ids=agent_ids,
    )
