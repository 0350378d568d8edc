"""Data quality of a segmentation: inputs nobody has, and segments too small or too big to act on."""

from __future__ import annotations

from dataclasses import dataclass

from integration.core.segments.segmentation import Segmentation


@dataclass(frozen=True)
class QualityReport:
    """What `tierdesk segment --report` prints besides the distribution."""

    customers: int
    organizations: int
    missing: dict[str, int]  # customer-level input -> customers without a value
    organization_missing: dict[str, int]  # organization-level input -> organizations without one
    warnings: tuple[str, ...]


def quality_report(seg: Segmentation, min_share: float = 0.01, max_share: float = 0.80) -> QualityReport:
    """How many rows lack each input the mapping reads, and segments that are too small or too big.

    A label held by fewer than ``min_share`` of the customers (over-segmentation: a segment too
    small to act on) or more than ``max_share`` (under-segmentation: it no longer separates
    anyone) gets a warning; so does a label nobody has.
    """
    pop = seg.population
    mapping = seg.mapping
    missing = {name: pop.missing(name) for name in mapping.inputs("customer")}
    org_missing: dict[str, int] = {}
    org_size = 0
    if seg.organizations is not None:
        org_size = seg.organizations.population.size
        org_missing = {
            name: seg.organizations.population.missing(name) for name in mapping.inputs("organization")
        }
    warnings: list[str] = []
    total = pop.size
    distribution = seg.distribution()
    for dim in mapping.segments:
        counts = distribution.get(dim.name, {})
        for label in dim.labels:
            n = counts.get(label, 0)
            share = n / total if total else 0.0
            if n == 0:
                warnings.append(f"{dim.name} {label}: nobody has this label")
            elif share < min_share:
                warnings.append(
                    f"{dim.name} {label}: {n:,} customers ({share:.1%}) is under {min_share:.0%}: "
                    "over-segmented, too small to act on?"
                )
            elif share > max_share:
                warnings.append(
                    f"{dim.name} {label}: {n:,} customers ({share:.1%}) is over {max_share:.0%}: "
                    "under-segmented, it separates almost nobody"
                )
    for name, n in missing.items():
        if total and n == total:
            warnings.append(f"no customer has {name}: every dimension reading it falls back")
    return QualityReport(total, org_size, missing, org_missing, tuple(warnings))
