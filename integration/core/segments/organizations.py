"""Organization-level labels as users get them: from the organization(s) they belong to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from integration.core.models import Assignment
from integration.core.segments.base import Dimension
from integration.core.segments.population import Population


@dataclass(frozen=True)
class OrganizationLabel:
    """A user's organization-level label: which organization gave it (row; -1 none)."""

    row: int
    assignment: Assignment


def org_title(population: Population, row: int) -> str:
    """How reasons name the organization on one row of an organization population."""
    return organization_title(population.names[row], population.external_ids[row])


def organization_title(name: str | None, external_id: str) -> str:
    """How reasons name an organization: its name, else its id."""
    return f"organization {name}" if name else f"organization {external_id}"


def combine_organizations(dim: Dimension, candidates: Sequence[tuple[str, Assignment]]) -> Assignment:
    """A user's label in an organization-level dimension, from the organizations they belong to.

    ``multiple: best`` takes the organization whose label comes first in the dimension's label
    order (score bands highest first, rules, bands and groups as written), ``first`` the first
    organization the connector lists; with one organization both are that one. Reasons say
    which organization it was.
    """
    if not candidates:
        return Assignment(dim.name, None, ("not in an organization",))
    chosen = candidates[0]
    if dim.multiple == "best":
        order = {label: i for i, label in enumerate(dim.labels)}
        labelled = [c for c in candidates if c[1].label is not None]
        if labelled:
            chosen = min(labelled, key=lambda c: order.get(c[1].label or "", len(order)))
    title, assignment = chosen
    reasons = tuple(f"{title}: {reason}" for reason in assignment.reasons) or (title,)
    return Assignment(dim.name, assignment.label, reasons)
