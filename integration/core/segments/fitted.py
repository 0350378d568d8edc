"""The fitted model: the population cut-offs a mapping needs, and the pass that gathers them.

`fit` (engine.py) reads the population once and keeps only cut-off values (where "top 20%"
starts, the nine decile cut-offs of each attribute a score ranks by percentile, the RFM quintile
cut-offs): each dimension takes what it needs from a shared `Fitting`, one sort per metric. The
result, `Fitted`, is small and JSON-safe; the service stores it next to the segments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from integration.core.segments.population import Population


@dataclass(frozen=True)
class Fitted:
    """Population cut-offs for one mapping; small and JSON-safe so the service can store it."""

    population: int = 0  # rows seen by fit()
    counts: dict[str, int] = field(default_factory=dict)  # metric -> rows with a value
    bands: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # dimension -> relative band label -> cut-off value (None: nobody had a value to rank)
    deciles: dict[str, tuple[float, ...]] = field(default_factory=dict)
    # attribute -> nine cut-offs (math.inf: a score nobody reaches); absent: no values to rank
    quintiles: dict[str, dict[str, tuple[float, ...]]] = field(default_factory=dict)
    # rfm dimension -> r / f / m -> four cut-offs (recency on minus days, so fewer days rank higher)
    organization: Fitted | None = None  # the same, over organizations, for level: organization

    FORMAT: ClassVar[int] = 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (infinity becomes null)."""

        def cuts(values: tuple[float, ...]) -> list[float | None]:
            return [None if math.isinf(cut) else cut for cut in values]

        out: dict[str, Any] = {
            "format": self.FORMAT,
            "population": self.population,
            "counts": dict(self.counts),
            "bands": {dim: dict(cut) for dim, cut in self.bands.items()},
            "deciles": {attr: cuts(values) for attr, values in self.deciles.items()},
            "quintiles": {
                dim: {letter: cuts(values) for letter, values in scores.items()}
                for dim, scores in self.quintiles.items()
            },
        }
        if self.organization is not None:
            out["organization"] = self.organization.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fitted:
        """The inverse of to_dict; raises ValueError on anything it did not write."""
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise ValueError(f"not a fitted-segments record of format {cls.FORMAT}")

        def cuts(values: list[float | None]) -> tuple[float, ...]:
            return tuple(math.inf if cut is None else float(cut) for cut in values)

        try:
            return cls(
                population=int(data["population"]),
                counts={str(k): int(v) for k, v in data["counts"].items()},
                bands={
                    str(dim): {
                        str(label): None if cut is None else float(cut) for label, cut in values.items()
                    }
                    for dim, values in data["bands"].items()
                },
                deciles={str(attr): cuts(values) for attr, values in data["deciles"].items()},
                quintiles={
                    str(dim): {str(letter): cuts(values) for letter, values in scores.items()}
                    for dim, scores in data.get("quintiles", {}).items()
                },
                organization=cls.from_dict(data["organization"]) if data.get("organization") else None,
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"bad fitted-segments record: {exc}") from exc


class Fitting:
    """What fit() gathers while each dimension ranks its metrics: sorted values, shared, and the
    cut-offs kept from them (the fields of `Fitted`)."""

    def __init__(self, population: Population) -> None:
        self.population = population
        self.counts: dict[str, int] = {}
        self.bands: dict[str, dict[str, float | None]] = {}
        self.deciles: dict[str, tuple[float, ...]] = {}
        self.quintiles: dict[str, dict[str, tuple[float, ...]]] = {}
        self._sorted: dict[str, np.ndarray] = {}

    def ordered(self, metric: str, negate: bool = False) -> np.ndarray:
        """The metric's numbers in ascending order (negated first if asked), missing ones left out."""
        key = f"-{metric}" if negate else metric
        if key not in self._sorted:
            values = self.population.numeric(metric)
            values = values[~np.isnan(values)]
            self._sorted[key] = np.sort(-values if negate else values, kind="stable")
        return self._sorted[key]

    def fitted(self, organization: Fitted | None = None) -> Fitted:
        """What was gathered, as the small JSON-safe record the service stores."""
        return Fitted(
            population=self.population.size,
            counts=self.counts,
            bands=self.bands,
            deciles=self.deciles,
            quintiles=self.quintiles,
            organization=organization,
        )
