"""The synthetic customers every helpdesk sandbox's seed draws from.

Why shared: the Zendesk and Freshdesk demos and tests should show the same segment shapes (a heavy revenue
tail, a few unprofitable customers, new and long-standing customers, VIPs, and a handful of frustrated
customers who write often), and one seed number should give the same people in every helpdesk. The
vendor seeds (sandbox/zendesk/seed.py, sandbox/freshdesk/seed.py) write these people into their sandbox
in that vendor's shapes; every draw comes from the random.Random the vendor seed passes in, in the order
the seeds have always drawn, so a seed number keeps giving the same account.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

GROUPS = ("General", "Senior Support", "Key Accounts", "Self-Service", "Retention", "Onboarding")
GROUP_WEIGHTS = (50, 12, 8, 15, 5, 10)
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


def random_revenue(rng: random.Random) -> float:
    """Heavy tail: ~15% zero, otherwise lognormal; the median customer brings ~2,000, a few 100k+."""
    if rng.random() < 0.15:
        return 0.0
    return round(math.exp(rng.gauss(math.log(2800), 1.5)), 2)


def random_referrals(rng: random.Random) -> int:
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


def random_signup(rng: random.Random, now: datetime) -> datetime:
    """~8% joined in the last 30 days, ~27% between 30 days and 2 years ago, the rest 2-8 years ago."""
    roll = rng.random()
    if roll < 0.08:
        days = rng.uniform(0.01, 29.5)
    elif roll < 0.35:
        days = rng.uniform(30, 730)
    else:
        days = rng.uniform(730, 2920)
    return now - timedelta(days=days, minutes=2)


def random_between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = max(0.0, (end - start).total_seconds())
    return (start + timedelta(seconds=rng.uniform(0, span))).replace(microsecond=0)


def random_ticket_count(rng: random.Random) -> int:
    """Most customers write 0-3 tickets in two years; about one in ten far more."""
    if rng.random() < 0.1:
        return min(40, 4 + int(rng.paretovariate(1.3)))
    return rng.choices((0, 1, 2, 3), weights=(38, 30, 20, 12))[0]


def organization_names(rng: random.Random, customers: int) -> list[str]:
    """Names for the organizations (companies) of `customers` customers: one for every ten, shuffled."""
    count = max(1, customers // 10) if customers else 0
    names = [f"{stem} {suffix}" for stem in ORG_STEMS for suffix in ORG_SUFFIXES]
    rng.shuffle(names)
    return [
        names[index] if index < len(names) else f"{names[index % len(names)]} {index // len(names) + 1}"
        for index in range(count)
    ]


@dataclass(frozen=True)
class CustomerHistory:
    """One customer's money and the times of the tickets they opened (oldest first)."""

    revenue: float
    lifetime: float
    cost: float
    ticket_times: list[datetime]


def customer_history(
    rng: random.Random, now: datetime, latest: datetime, created: datetime, frustrated: bool
) -> CustomerHistory:
    """Revenue and ticket history first: the cost to serve depends on both."""
    revenue = random_revenue(rng)
    history_start = max(created, now - timedelta(days=730))
    count = random_ticket_count(rng)
    if created > now - timedelta(days=30):
        count = min(count, 2)  # new customers have had no time for a long history
    if revenue == 0 and rng.random() < 0.7:
        count = 0  # most non-paying customers are dormant
    times = [random_between(rng, history_start, latest) for _ in range(count)]
    if frustrated:
        recent_start = max(created, now - timedelta(days=30))
        times += [random_between(rng, recent_start, latest) for _ in range(rng.randint(3, 6))]
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
    return CustomerHistory(revenue=revenue, lifetime=lifetime, cost=cost, ticket_times=times)


def customer_fields(rng: random.Random, history: CustomerHistory) -> dict[str, Any]:
    """The customer attributes every helpdesk carries under the same names (user or contact fields)."""
    return {
        "revenue_12m": history.revenue,
        "lifetime_value": max(history.lifetime, history.revenue),
        "referrals": random_referrals(rng),
        "on_time_payment_rate": round(1 - 0.5 * rng.betavariate(1.2, 4), 3),
        "service_cost_12m": history.cost,
    }
