"""Segment engine benchmark: a full recompute of synthetic customers at 100k and 1M.

    .venv/bin/python bench/segments.py                # 100k and 1M, each in its own process
    .venv/bin/python bench/segments.py --size 200000  # one size only
    .venv/bin/python bench/segments.py --profile      # cProfile of the 100k run, top functions

What is timed is what `sync.recompute` runs between reading the store and writing it: deriving the
features from the raw columns the store hands over (created_at, ISO purchase dates, ticket counts,
attributes as sent), fitting every cut-off, labelling every customer and organization in every
dimension, and the distribution. The mapping is mappings/default.yaml (manual VIP list, score
tier, percentile value, two rules dimensions, an organization-level percentile) plus an RFM
dimension. Rendering reasons is timed apart, per customer: it happens only for notes, the "why"
page and the rows the store writes.

Synthetic data has the shapes real accounts have: revenue with a heavy (lognormal) tail and 8%
zero, ticket counts with a long tail, so that about 5-10% of customers cost more than they
bring; a few percent of values are missing. Each size runs in a fresh process so its peak memory
(max RSS, everything included: interpreter, numpy, the synthetic input) is its own.

Goal on a 2-core machine: 1M customers in <= 10 s and <= 1.5 GB, and 1M / 100k time <= 11.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration.core import segments  # noqa: E402
from integration.core.mapping_file import parse_mapping  # noqa: E402

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
RFM = """
  rfm:
    method: rfm
    recency: last_purchase_days
    frequency: purchases_12m
    monetary: revenue_12m
"""


def bench_mapping():
    text = (ROOT / "mappings" / "default.yaml").read_text()
    text = text.replace("\n# Routing:", RFM + "\n# Routing:", 1)
    return parse_mapping(text, "bench:default.yaml+rfm")


def synthetic(size: int, seed: int = 7) -> tuple[segments.CustomerTable, segments.OrganizationTable]:
    """Raw columns as the store hands them over, for ``size`` customers and size / 20 organizations."""
    rng = np.random.default_rng(seed)
    org_count = max(1, size // 20)
    now_s = NOW.timestamp()

    revenue = np.round(np.exp(rng.normal(np.log(2800), 1.5, size)), 2)
    revenue[rng.random(size) < 0.08] = 0.0
    revenue_list: list = revenue.tolist()
    for i in np.flatnonzero(rng.random(size) < 0.03):  # 3% without revenue on record
        revenue_list[i] = None
    service: list = np.round(rng.exponential(40, size), 2).tolist()
    for i in np.flatnonzero(rng.random(size) < 0.6):  # 60% have no extra service cost on record
        service[i] = None
    referrals = rng.choice(11, size, p=_norm([45, 25, 13, 7, 4, 2, 1.5, 1, 0.7, 0.5, 0.3])).tolist()
    on_time = np.round(rng.beta(8, 2, size), 3).tolist()
    for i in np.flatnonzero(rng.random(size) < 0.05):
        on_time[i] = None

    tenure = np.where(
        rng.random(size) < 0.08, rng.uniform(0, 30, size), rng.uniform(30, 2920, size)
    )  # 8% onboarding
    created = np.floor(now_s - tenure * 86_400)
    created[rng.random(size) < 0.02] = np.nan

    bought = rng.random(size) >= 0.12  # 12% never bought anything
    last_days = rng.exponential(90, size)
    stamps = (np.datetime64("2025-06-01T12:00:00") - (last_days * 86_400).astype("timedelta64[s]")).astype(
        str
    )
    last_purchase = [f"{s}Z" if b else None for s, b in zip(stamps.tolist(), bought.tolist(), strict=True)]
    purchases = np.where(bought, 1 + rng.poisson(3, size), 0).tolist()

    heavy = rng.random(size) < 0.10
    yearly = np.where(heavy, 4 + np.minimum(36, rng.pareto(1.3, size)).astype(int), rng.choice(4, size))
    d90 = rng.binomial(yearly, 0.3)
    d30 = rng.binomial(d90, 0.35)
    total = yearly + rng.poisson(1, size)
    reopened = rng.binomial(d90, 0.1)
    rated = rng.binomial(yearly, 0.4)
    good = rng.binomial(rated, np.where(heavy, 0.4, 0.9))
    bad = rated - good

    keys = [f"bench:user:{i:07d}" for i in range(size)]
    org_of = rng.integers(0, org_count, size)
    has_org = rng.random(size) < 0.7
    org_keys = [
        f"bench:org:{o:06d}" if h else None for o, h in zip(org_of.tolist(), has_org.tolist(), strict=True)
    ]
    tags: list[tuple[str, ...]] = [()] * size
    for i in np.flatnonzero(rng.random(size) < 0.005):
        tags[i] = ("vip",)
    customers = segments.CustomerTable(
        keys=keys,
        sources=["bench"] * size,
        external_ids=[str(i) for i in range(size)],
        emails=[f"user{i}@company{i % 20_000}.example" for i in range(size)],
        tags=tags,
        organization_keys=org_keys,
        created_at=created,
        attributes={
            "revenue_12m": revenue_list,
            "service_cost_12m": service,
            "referrals": referrals,
            "on_time_payment_rate": on_time,
            "last_purchase_at": last_purchase,
            "purchases_12m": purchases,
        },
        stats={
            "tickets_30d": d30,
            "tickets_90d": d90,
            "tickets_365d": yearly,
            "tickets_total": total,
            "reopened_90d": reopened,
            "csat_good": good,
            "csat_bad": bad,
        },
    )
    organizations = segments.OrganizationTable(
        keys=[f"bench:org:{o:06d}" for o in range(org_count)],
        sources=["bench"] * org_count,
        external_ids=[f"org-{o}" for o in range(org_count)],
        names=[f"Company {o}" for o in range(org_count)],
        domains=[(f"company{o}.example",) for o in range(org_count)],
        tags=[()] * org_count,
        created_at=np.floor(now_s - rng.uniform(0, 4000, org_count) * 86_400),
        attributes={"employees": rng.integers(5, 5000, org_count).tolist()},
    )
    return customers, organizations


def _norm(weights: list[float]) -> np.ndarray:
    array = np.asarray(weights, dtype=float)
    return array / array.sum()


def run(size: int, profile: bool = False) -> dict:
    mapping = bench_mapping()
    customers, organizations = synthetic(size)
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    population = segments.customer_population(customers, mapping, NOW, organizations)
    orgs = segments.organization_population(organizations, population, mapping, NOW)
    seg = segments.segment(population, mapping, organizations=orgs)
    distribution = seg.distribution()
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started

    rows = min(size, 20_000)  # rendered row after row, as the store's rows are
    render_started = time.perf_counter()
    for row in range(rows):
        seg.assignments(row)
    render_us = (time.perf_counter() - render_started) / rows * 1e6

    profit = population.numeric("profit_12m")
    out = {
        "customers": size,
        "seconds": round(seconds, 3),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "render_us_per_customer": round(render_us, 1),
        "negative_profit_share": round(float(np.mean(profit[~np.isnan(profit)] < 0)), 4),
        "distribution": {
            dim: {label if label is not None else "-": n for label, n in labels.items()}
            for dim, labels in distribution.items()
        },
        "example": {d: list(a.reasons) for d, a in seg.assignments(size // 2).items()},
    }
    if profiler:
        stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative")
        stats.print_stats(25)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, help="run one size in this process and print its JSON")
    parser.add_argument("--profile", action="store_true", help="cProfile the 100k run")
    args = parser.parse_args()
    if args.size:
        print(json.dumps(run(args.size, profile=args.profile)))
        return
    if args.profile:
        run(100_000, profile=True)
        return
    results = {}
    for size in (100_000, 1_000_000):
        done = subprocess.run(  # noqa: S603 - this same script, with a number
            [sys.executable, __file__, "--size", str(size)], capture_output=True, text=True, check=True
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        results[size] = result
        print(
            f"{size:>9,} customers: {result['seconds']:.2f} s, peak {result['peak_mb']:,.0f} MB "
            f"(whole process), reasons rendered on demand in {result['render_us_per_customer']:.0f} us "
            f"per customer, {result['negative_profit_share']:.1%} with negative profit"
        )
        for dimension, labels in result["distribution"].items():
            total = sum(labels.values())
            parts = ", ".join(f"{label} {n / total:.1%}" for label, n in labels.items())
            print(f"    {dimension:<10} {parts}")
    example = results[1_000_000]["example"]
    print("one customer's reasons:")
    for dimension, reasons in example.items():
        print(f"    {dimension}: {'; '.join(reasons)}")
    ratio = results[1_000_000]["seconds"] / results[100_000]["seconds"]
    print(f"1M / 100k time ratio: {ratio:.2f}")
    big = results[1_000_000]
    print(
        json.dumps(
            {
                "customers": 1_000_000,
                "seconds": big["seconds"],
                "peak_mb": big["peak_mb"],
                "ratio_1m_100k": round(ratio, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
