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
from collections.abc import Callable, Iterator
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


@dataclass(frozen=True)
class Organization:
    """One synthetic organization (a company), before a vendor seed writes it in its own shapes."""

    index: int
    name: str
    created: datetime
    industry: str
    employees: int
    updated: datetime

    @property
    def domain(self) -> str:
        return f"{self.name.lower().replace(' ', '-')}.example"


def synthetic_organizations(
    rng: random.Random, customers: int, now: datetime, latest: datetime
) -> Iterator[Organization]:
    """The organizations of `customers` customers, one for every ten, drawn lazily like the customers."""
    count = max(1, customers // 10) if customers else 0
    names = [f"{stem} {suffix}" for stem in ORG_STEMS for suffix in ORG_SUFFIXES]
    rng.shuffle(names)
    for index in range(count):
        name = (
            names[index] if index < len(names) else f"{names[index % len(names)]} {index // len(names) + 1}"
        )
        created = random_signup(rng, now)
        yield Organization(
            index=index,
            name=name,
            created=created,
            industry=rng.choice(INDUSTRIES),
            employees=rng.randint(5, 5000),
            updated=random_between(rng, created, latest),
        )


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


@dataclass(frozen=True)
class Customer:
    """One synthetic customer, before a vendor seed writes them in its own shapes."""

    index: int
    first: str
    last: str
    email: str
    created: datetime
    organization_id: int | None  # one of the organization ids given, or None
    history: CustomerHistory
    tagged: bool  # carries the "vip" tag
    listed: bool  # on the manual VIP list (not tagged; the demo's mapping names them)
    frustrated: bool  # writes often, reopens tickets, rates support badly
    fields: dict[str, Any]  # the customer attributes (customer_fields)
    time_zone: str
    updated: datetime

    @property
    def common_fields(self) -> dict[str, Any]:
        """The keyword arguments every helpdesk sandbox's add_user / add_contact names alike."""
        return {
            "tags": ["vip"] if self.tagged else [],
            "time_zone": self.time_zone,
            "created_at": self.created,
            "updated_at": self.updated,
        }

    @property
    def name(self) -> str:
        return f"{self.first.capitalize()} {self.last.capitalize()}"

    @property
    def external_id(self) -> str:
        return f"cust-{self.index + 1:05d}"


def synthetic_customers(
    rng: random.Random, customers: int, now: datetime, latest: datetime, organization_ids: list[int]
) -> Iterator[Customer]:
    """`customers` people, drawn lazily: the vendor seed draws its own values (tickets) from the same
    `rng` between two customers, in the order every seed has always drawn them."""
    tagged, listed, frustrated = pick_special(rng, customers)
    used_emails: set[str] = set()
    for index in range(customers):
        first, last, email = unique_person(rng, used_emails)
        created = random_signup(rng, now)
        organization_id = rng.choice(organization_ids) if organization_ids and rng.random() < 0.7 else None
        history = customer_history(rng, now, latest, created, index in frustrated)
        fields = customer_fields(rng, history)
        time_zone = rng.choice(TIME_ZONES)
        yield Customer(
            index=index,
            first=first,
            last=last,
            email=email,
            created=created,
            organization_id=organization_id,
            history=history,
            tagged=index in tagged,
            listed=index in listed,
            frustrated=index in frustrated,
            fields=fields,
            time_zone=time_zone,
            updated=random_between(rng, created, latest),
        )


@dataclass
class SeedTally:
    """What a helpdesk seed wrote, counted as it goes; `summary` turns it into the SeedSummary."""

    customer_ids: list[int] = field(default_factory=list)
    vip_emails: list[str] = field(default_factory=list)
    vip_tagged_emails: list[str] = field(default_factory=list)
    organizations: int = 0
    tickets: int = 0
    comments: int = 0

    def write_people(
        self,
        rng: random.Random,
        customers: int,
        now: datetime,
        latest: datetime,
        add_organization: Callable[[Organization], int],
        add_customer: Callable[[Customer], dict[str, Any]],
    ) -> Iterator[tuple[Customer, dict[str, Any]]]:
        """Write the organizations (`add_organization` returns the new id), then yield each customer with
        what `add_customer` wrote; the caller writes that customer's tickets before asking for the next."""
        organization_ids = [
            add_organization(org) for org in synthetic_organizations(rng, customers, now, latest)
        ]
        self.organizations = len(organization_ids)
        for customer in synthetic_customers(rng, customers, now, latest, organization_ids):
            yield customer, self.customer(customer, add_customer(customer))

    def customer(self, customer: Customer, record: dict[str, Any]) -> dict[str, Any]:
        """Count a customer the seed wrote (`record` is what the sandbox returned); returns `record`."""
        self.customer_ids.append(record["id"])
        if customer.listed:
            self.vip_emails.append(customer.email)
        if customer.tagged:
            self.vip_tagged_emails.append(customer.email)
        return record

    def summary(self, seed: int, now: datetime, groups: dict[str, int], agent_ids: list[int]) -> SeedSummary:
        return SeedSummary(
            seed=seed,
            now=now,
            customers=len(self.customer_ids),
            agents=len(agent_ids),
            organizations=self.organizations,
            tickets=self.tickets,
            comments=self.comments,
            groups=groups,
            vip_emails=self.vip_emails,
            vip_tagged_emails=self.vip_tagged_emails,
            customer_ids=self.customer_ids,
            agent_ids=agent_ids,
        )
