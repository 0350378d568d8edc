"""The parsed mapping as records: what routing sets, how tags are spelled, SLA targets, the whole.

Each segment dimension is a record of its method's own (integration/core/segments/<method>.py);
``MappingSpec.segments`` holds them in mapping order.
"""

from __future__ import annotations

import collections.abc
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from integration.core.mapping.conditions import Expression, Features
from integration.core.mapping.formatting import format_minutes

if TYPE_CHECKING:  # the records of each method subclass it; they load after this module (see segments/)
    from integration.core.segments.base import Dimension

PRIORITIES = ("low", "normal", "high", "urgent")
ROUTED_FIELDS = ("priority", "sla", "group")
LEVELS = ("customer", "organization")
MULTIPLE = ("best", "first")

_TAG_UNSAFE_RE = re.compile(r"[^a-z0-9_]", re.ASCII)


@dataclass(frozen=True)
class FieldSet:
    """Ticket fields a routing rule (or the default) sets; None leaves the field alone."""

    priority: str | None = None
    sla: str | None = None
    group: str | None = None

    def get(self, name: str) -> str | None:
        return getattr(self, name)


@dataclass(frozen=True)
class TagSpec:
    """How tags are spelled; the helpdesk's views and triggers key on these exact strings."""

    prefix: str = "tierdesk"
    routed: str = "tierdesk_routed"

    def segment_tag(self, dimension: str, label: str) -> str:
        return _tag(f"{self.prefix}_{dimension}_{label}")

    def sla_tag(self, sla: str) -> str:
        return _tag(f"{self.prefix}_sla_{sla}")


def _tag(text: str) -> str:
    return _TAG_UNSAFE_RE.sub("_", text.lower())


@dataclass(frozen=True)
class FeatureSpec:
    """Knobs for derived features (see segments.features)."""

    cost_per_ticket: float = 25.0
    # attributes added to cost_to_serve when they are numbers (money, same period as revenue_12m)
    cost_attributes: tuple[str, ...] = ("service_cost_12m",)


@dataclass(frozen=True)
class SlaTarget:
    """Targets of one SLA policy, in minutes; None: the mapping sets no such target."""

    first_response_minutes: int | None = None
    resolution_minutes: int | None = None

    @property
    def summary(self) -> str:
        parts = []
        if self.first_response_minutes is not None:
            parts.append(f"first response {format_minutes(self.first_response_minutes)}")
        if self.resolution_minutes is not None:
            parts.append(f"resolution {format_minutes(self.resolution_minutes)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class DimensionCondition:
    """One entry of a routing ``when`` mapping: a label, any of several, or present/absent."""

    dimension: str
    labels: tuple[str, ...] | None = None  # None: only presence matters
    present: bool = True

    def holds(self, label: str | None) -> bool:
        if self.labels is not None:
            return label in self.labels
        return (label is not None) == self.present

    @property
    def summary(self) -> str:
        if self.labels is not None:
            return f"{self.dimension} is {' or '.join(self.labels)}"
        return f"{self.dimension} {'has a label' if self.present else 'has no label'}"


@dataclass(frozen=True)
class RoutingRule:
    """When ``when`` holds, ``sets`` these fields; each field goes to the first rule setting it."""

    number: int  # 1-based position, as reasons and notes say it
    when: tuple[DimensionCondition, ...] | Expression
    sets: FieldSet
    description: str = ""
    line: int | None = None

    def matches(self, labels: collections.abc.Mapping[str, str | None], env: Features) -> bool:
        """``labels``: dimension -> label; ``env``: features with the labels laid over them."""
        if isinstance(self.when, Expression):
            return self.when.test(env)
        return all(cond.holds(labels.get(cond.dimension)) for cond in self.when)

    @property
    def summary(self) -> str:
        if isinstance(self.when, Expression):
            return self.when.text
        return " and ".join(cond.summary for cond in self.when)


@dataclass(frozen=True)
class MappingSpec:
    """A validated mapping: segment dimensions (in order), routing rules, defaults, tag spelling."""

    source: str
    segments: tuple[Dimension, ...]
    routing: tuple[RoutingRule, ...] = ()
    default: FieldSet = field(default_factory=FieldSet)
    tags: TagSpec = field(default_factory=TagSpec)
    features: FeatureSpec = field(default_factory=FeatureSpec)
    description: str = ""
    # SLA name -> targets from the `slas:` section; an SLA routing sets but this lacks has no targets
    sla_targets: dict[str, SlaTarget] = field(default_factory=dict)

    @property
    def dimension_names(self) -> tuple[str, ...]:
        return tuple(dim.name for dim in self.segments)

    def dimensions_at(self, level: str) -> tuple[Dimension, ...]:
        """The dimensions computed at one level (customer or organization), in mapping order."""
        return tuple(dim for dim in self.segments if dim.level == level)

    def inputs(self, level: str = "customer") -> tuple[str, ...]:
        """Every feature the dimensions of one level read, in order of first use."""
        names: dict[str, None] = {}
        for dim in self.dimensions_at(level):
            names.update(dict.fromkeys(dim.reads))
        return tuple(names)

    def dimension(self, name: str) -> Dimension:
        for dim in self.segments:
            if dim.name == name:
                return dim
        raise KeyError(name)

    def _used(self, name: str) -> frozenset[str]:
        sets = [rule.sets for rule in self.routing] + [self.default]
        return frozenset(value for fs in sets if (value := fs.get(name)) is not None)

    @property
    def slas(self) -> frozenset[str]:
        """Every SLA name the mapping can set."""
        return self._used("sla")

    @property
    def groups(self) -> frozenset[str]:
        """Every group name the mapping can set; the service checks they exist in the helpdesk."""
        return self._used("group")
