"""Method score: weighted 1-10 scores per attribute; the label is the highest band the score reaches.

An attribute scores by its decile in the population (cut-offs fitted) or by fixed ``thresholds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from integration.core.mapping.conditions import Features
from integration.core.mapping.formatting import format_number, format_value, is_number
from integration.core.mapping.loading import Doc, Path
from integration.core.mapping.validation import describe, identifier, label_of, list_of, mapping_of, number_of
from integration.core.segments.base import Dimension, DimensionResult, label_codes
from integration.core.segments.cutoffs import decile_cutoffs, decile_score
from integration.core.segments.fitted import Fitted, Fitting
from integration.core.segments.population import Population


@dataclass(frozen=True)
class ScoreDimension(Dimension):
    """Weighted 1-10 scores per attribute; the label is the highest band the score reaches."""

    name: str
    weights: tuple[tuple[str, float], ...]  # normalised: the weights sum to 1
    bands: tuple[tuple[str, float], ...]  # highest cut-off first
    thresholds: tuple[tuple[str, tuple[float, ...]], ...] = ()  # attr -> 9 ascending cut-offs
    missing: str = "skip"  # skip | low
    description: str = ""
    level: str = "customer"
    multiple: str = "best"
    method: ClassVar[str] = "score"
    keys: ClassVar[dict[str, tuple[str, ...]]] = {"score": ("weights", "thresholds", "bands", "missing")}

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for label, _ in self.bands)

    def thresholds_for(self, attribute: str) -> tuple[float, ...] | None:
        for name, cuts in self.thresholds:
            if name == attribute:
                return cuts
        return None

    @property
    def ranked_attributes(self) -> tuple[str, ...]:
        """Attributes scored by percentile within the population (no fixed thresholds)."""
        fixed = {name for name, _ in self.thresholds}
        return tuple(name for name, _ in self.weights if name not in fixed)

    @cached_property
    def reads(self) -> tuple[str, ...]:
        return tuple(attr for attr, _ in self.weights)

    def cuts(self, attr: str, fitted: Fitted) -> tuple[float, ...] | None:
        """The nine cut-offs an attribute scores by: its fixed thresholds, else its fitted deciles."""
        return self.thresholds_for(attr) or fitted.deciles.get(attr)

    @classmethod
    def parse(cls, doc: Doc, name: str, raw: dict[str, Any], path: Path, description: str) -> ScoreDimension:
        for key in ("weights", "bands"):
            if key not in raw:
                raise doc.error(path, f"{key!r} is required for method score")
        weights_path = (*path, "weights")
        weights_raw = mapping_of(doc, raw["weights"], weights_path, "weights")
        if not weights_raw:
            raise doc.error(weights_path, "weights must name at least one attribute")
        weights: list[tuple[str, float]] = []
        for attr, weight in weights_raw.items():
            attr_path = (*weights_path, attr)
            identifier(doc, attr, attr_path, "an attribute name")
            number = number_of(doc, weight, attr_path, "weight")
            if number <= 0:
                raise doc.error(attr_path, "weight must be greater than 0 (remove the attribute instead)")
            weights.append((attr, number))
        total = sum(weight for _, weight in weights)
        weights = [(attr, weight / total) for attr, weight in weights]

        thresholds: list[tuple[str, tuple[float, ...]]] = []
        if raw.get("thresholds") is not None:
            th_path = (*path, "thresholds")
            th_raw = mapping_of(doc, raw["thresholds"], th_path, "thresholds")
            for attr, cuts in th_raw.items():
                attr_path = (*th_path, attr)
                if attr not in weights_raw:
                    raise doc.error(attr_path, f"{attr!r} has thresholds but no weight")
                cuts = list_of(doc, cuts, attr_path, "thresholds")
                if len(cuts) != 9:
                    raise doc.error(
                        attr_path,
                        f"thresholds need exactly 9 ascending cut-offs (scores 2..10), got {len(cuts)}",
                    )
                numbers = tuple(
                    number_of(doc, cut, (*attr_path, i), "a threshold") for i, cut in enumerate(cuts)
                )
                if any(b < a for a, b in zip(numbers, numbers[1:], strict=False)):
                    raise doc.error(attr_path, "thresholds must be in ascending order")
                thresholds.append((attr, numbers))

        bands_path = (*path, "bands")
        bands_raw = mapping_of(doc, raw["bands"], bands_path, "bands")
        if not bands_raw:
            raise doc.error(bands_path, "bands must name at least one label")
        bands: list[tuple[str, float]] = []
        for label, cut in bands_raw.items():
            band_path = (*bands_path, label)
            label = label_of(doc, label, band_path)
            number = number_of(doc, cut, band_path, "a band cut-off")
            if not 0 <= number <= 10:
                raise doc.error(band_path, f"a band cut-off must be between 0 and 10, got {cut!r}")
            if any(number == other for _, other in bands):
                raise doc.error(band_path, f"two bands share the cut-off {format_number(number)}")
            bands.append((label, number))
        bands.sort(key=lambda band: -band[1])

        missing = raw.get("missing", "skip")
        if missing not in ("skip", "low"):
            raise doc.error((*path, "missing"), f"missing must be skip or low, got {describe(missing)}")
        return cls(
            name,
            weights=tuple(weights),
            bands=tuple(bands),
            thresholds=tuple(thresholds),
            missing=missing,
            description=description,
        )

    def fit(self, fitting: Fitting) -> None:
        for attr in self.ranked_attributes:
            values = fitting.ordered(attr)
            fitting.counts[attr] = len(values)
            if len(values):
                fitting.deciles[attr] = decile_cutoffs(values)

    def compute(self, population: Population, fitted: Fitted) -> DimensionResult:
        size = population.size
        scored: list[tuple[np.ndarray, np.ndarray, float]] = []  # ok, points, weight
        total = np.zeros(size)
        for attr, weight in self.weights:
            values = population.numeric(attr)
            cuts = self.cuts(attr, fitted)
            if cuts is None:
                ok = np.zeros(size, dtype=bool)
                points = np.ones(size)
            else:
                ok = ~np.isnan(values)
                points = 1.0 + np.searchsorted(np.asarray(cuts, dtype=np.float64), values, side="right")
            if self.missing == "low":
                points = np.where(ok, points, 1.0)
                ok = np.ones(size, dtype=bool)
            scored.append((ok, points, weight))
            total += np.where(ok, weight, 0.0)
        score = np.zeros(size)
        with np.errstate(invalid="ignore", divide="ignore"):
            for ok, points, weight in scored:
                score += np.where(ok, points * (weight / total), 0.0)
        nothing = total == 0
        score = np.round(score, 6)
        score[nothing] = np.nan
        choice = np.full(size, -1, dtype=np.int16)
        open_rows = ~nothing
        for k, (_, cut) in enumerate(self.bands):
            hit = open_rows & (score >= cut)
            choice[hit] = k
            open_rows &= ~hit
        choice[nothing] = -2
        outcomes = [None, None] + [label for label, _ in self.bands]
        return DimensionResult(self, choice, label_codes(self, choice, outcomes, -2), detail=score)

    def reasons(
        self, choice: int, detail: Any, feats: Features, fitted: Fitted, population: Population, row: int
    ) -> tuple[str, ...]:
        score: float = detail
        scored: list[tuple[str, int, float]] = []
        notes: list[str] = []
        left_out: list[str] = []
        for attr, weight in self.weights:
            value = feats.get(attr)
            cuts = self.cuts(attr, fitted)
            if value is None:
                problem = f"{attr} is missing"
            elif not is_number(value):
                problem = f"{attr} {format_value(value)} is not a number"
            elif cuts is None:
                why = "no customer has a value" if attr in fitted.counts else "no population fitted"
                problem = f"{attr} {format_value(value)} cannot be ranked ({why})"
            else:
                scored.append((attr, decile_score(value, cuts), weight))
                continue
            if self.missing == "low":
                scored.append((attr, 1, weight))
                notes.append(f"{problem}, scored 1/10")
            else:
                left_out.append(attr)
                notes.append(problem)
        if choice == -2 or not scored:
            return ("no scored attribute has a value", *notes)
        if left_out:
            notes.append(f"left out {', '.join(left_out)}; the other weights were renormalised")
        total = sum(weight for _, _, weight in scored)
        weighted = ", ".join(f"{attr} {points}/10 x {weight / total:.2f}" for attr, points, weight in scored)
        if choice >= 0:
            _, cut = self.bands[choice]
            return (f"score {format_number(score)} >= {format_number(cut)} ({weighted})", *notes)
        lowest_label, lowest = self.bands[-1]
        reason = (
            f"score {format_number(score)} is below every band "
            f"(lowest: {lowest_label} {format_number(lowest)}) ({weighted})"
        )
        return (reason, *notes)
