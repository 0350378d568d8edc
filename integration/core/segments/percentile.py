"""Method percentile: bands on one metric, tried in the order written.

A band is relative (``top 20%``, ``bottom 10%``: cut-offs fitted on the population) or a
comparison (``< 0``, ``between 0 and 100``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from integration.core.mapping.conditions import (
    Between,
    Compare,
    Expression,
    Features,
    Literal,
    Name,
    Node,
    explain,
)
from integration.core.mapping.formatting import format_number, format_value, is_number, quote
from integration.core.mapping.loading import Doc, Path
from integration.core.mapping.validation import (
    describe,
    identifier,
    label_of,
    mapping_of,
    optional_label,
    text_of,
)
from integration.core.segments.base import Dimension, DimensionResult, label_codes
from integration.core.segments.cutoffs import bottom_cutoff, top_cutoff
from integration.core.segments.fitted import Fitted, Fitting
from integration.core.segments.masks import Columns, condition_mask
from integration.core.segments.population import Population, missing_mask, numeric_view

_BAND_RELATIVE_RE = re.compile(r"(top|bottom)\s+([0-9]+(?:\.[0-9]+)?)\s*%", re.ASCII)
_BAND_NUMBER = r"-?[0-9]+(?:_[0-9]+)*(?:\.[0-9]+)?"
_BAND_COMPARE_RE = re.compile(rf"(<=|>=|<|>|==|!=)\s*({_BAND_NUMBER})", re.ASCII)
_BAND_BETWEEN_RE = re.compile(rf"between\s+({_BAND_NUMBER})\s+and\s+({_BAND_NUMBER})", re.ASCII)


@dataclass(frozen=True)
class Band:
    """One band of a percentile dimension, as written (``top 20%``, ``< 0``)."""

    label: str
    text: str
    kind: str  # top | bottom | compare
    percent: float | None = None  # for top / bottom
    test: Expression | None = None  # for compare


@dataclass(frozen=True)
class PercentileDimension(Dimension):
    """Bands on one metric, tried in the order written; relative bands use fitted cut-offs."""

    name: str
    metric: str
    bands: tuple[Band, ...]
    default: str | None = None
    description: str = ""
    level: str = "customer"
    multiple: str = "best"
    method: ClassVar[str] = "percentile"
    keys: ClassVar[dict[str, tuple[str, ...]]] = {"percentile": ("metric", "bands", "default")}

    @property
    def labels(self) -> tuple[str, ...]:
        found = [band.label for band in self.bands]
        if self.default is not None:
            found.append(self.default)
        return tuple(dict.fromkeys(found))

    @cached_property
    def reads(self) -> tuple[str, ...]:
        return (self.metric,)

    @classmethod
    def parse(
        cls, doc: Doc, name: str, raw: dict[str, Any], path: Path, description: str
    ) -> PercentileDimension:
        for key in ("metric", "bands"):
            if key not in raw:
                raise doc.error(path, f"{key!r} is required for method percentile")
        metric = text_of(doc, raw["metric"], (*path, "metric"), "metric")
        identifier(doc, metric, (*path, "metric"), "metric")
        bands_path = (*path, "bands")
        bands_raw = mapping_of(doc, raw["bands"], bands_path, "bands")
        if not bands_raw:
            raise doc.error(bands_path, "bands must name at least one label")
        bands = tuple(
            _parse_band(doc, label_of(doc, label, (*bands_path, label)), spec, metric, (*bands_path, label))
            for label, spec in bands_raw.items()
        )
        default = optional_label(doc, raw, "default", path)
        return cls(name, metric, bands, default=default, description=description)

    def fit(self, fitting: Fitting) -> None:
        if all(band.kind == "compare" for band in self.bands):
            return
        values = fitting.ordered(self.metric)
        fitting.counts[self.metric] = len(values)
        cuts = fitting.bands.setdefault(self.name, {})
        for band in self.bands:
            if band.kind == "top":
                cuts[band.label] = top_cutoff(values, band.percent or 0)
            elif band.kind == "bottom":
                cuts[band.label] = bottom_cutoff(values, band.percent or 0)

    def compute(self, population: Population, fitted: Fitted) -> DimensionResult:
        size = population.size
        raw = population.column(self.metric)
        values = numeric_view(raw)
        present = ~np.isnan(values)
        choice = np.full(size, -1, dtype=np.int16)
        choice[~present] = -2
        if raw.dtype == object:
            choice[~present & ~missing_mask(raw)] = -3
        cutoffs = fitted.bands.get(self.name, {})
        open_rows = present.copy()
        for k, band in enumerate(self.bands):
            if band.test is not None:
                hit = condition_mask(band.test.tree, Columns(size, {self.metric: values}))
            else:
                cut = cutoffs.get(band.label)
                if cut is None:
                    continue
                with np.errstate(invalid="ignore"):
                    hit = values >= cut if band.kind == "top" else values <= cut
            hit &= open_rows
            choice[hit] = k
            open_rows &= ~hit
        outcomes = [self.default, self.default, self.default] + [band.label for band in self.bands]
        return DimensionResult(self, choice, label_codes(self, choice, outcomes, -3))

    def reasons(
        self, choice: int, detail: Any, feats: Features, fitted: Fitted, population: Population, row: int
    ) -> tuple[str, ...]:
        metric = self.metric
        value = feats.get(metric)
        if choice in (-2, -3) or not is_number(value):
            problem = "is missing" if value is None else f"{format_value(value)} is not a number"
            return (f"{metric} {problem}",)
        shown = f"{metric} {format_value(value)}"
        cutoffs = fitted.bands.get(self.name, {})
        if choice >= 0:
            band = self.bands[choice]
            if band.test is not None:
                return (explain(band.test, feats),)
            cut = cutoffs.get(band.label)
            percent = format_number(band.percent or 0)
            return (f"{shown} is in the {band.kind} {percent}% (cut-off {format_number(cut or 0)})",)
        notes = []
        for band in self.bands:
            if band.test is None and cutoffs.get(band.label) is None:
                why = "no customer has a value" if band.label in cutoffs else "no population fitted"
                notes.append(f"the {band.text} of {metric} is not known ({why})")
        return (f"{shown} is in none of the bands", *notes)


def _parse_band(doc: Doc, label: str, text: Any, metric: str, path: Path) -> Band:
    if not isinstance(text, str):
        raise doc.error(
            path,
            "a band must be text like 'top 20%', 'bottom 10%', '< 0' or 'between 0 and 100', "
            f"got {describe(text)}",
        )
    spec = " ".join(text.split()).lower()
    relative = _BAND_RELATIVE_RE.fullmatch(spec)
    if relative:
        percent = float(relative.group(2))
        if not 0 < percent <= 100:
            raise doc.error(path, f"a percentage must be above 0 and at most 100, got {spec!r}")
        return Band(label, spec, relative.group(1), percent=percent)
    compare = _BAND_COMPARE_RE.fullmatch(spec)
    between = _BAND_BETWEEN_RE.fullmatch(spec)
    if compare:
        tree: Node = Compare(compare.group(1), Name(metric), _band_literal(compare.group(2)))
    elif between:
        low, high = (_band_literal(between.group(i)) for i in (1, 2))
        tree = Between(Name(metric), low, high)
    else:
        raise doc.error(
            path,
            f"a band must look like 'top 20%', 'bottom 10%', '< 0' or 'between 0 and 100', got {quote(text)}",
        )
    return Band(label, spec, "compare", test=Expression.build(f"{metric} {spec}", tree))


def _band_literal(text: str) -> Literal:
    clean = text.replace("_", "")
    value: float | int = float(clean) if "." in clean else int(clean)
    return Literal(value, text)
