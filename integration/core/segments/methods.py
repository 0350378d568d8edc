"""The segmentation methods a mapping can name: one module each, listed here in the order that
docs and messages give them. A new method is a new module and one more entry below."""

from __future__ import annotations

from integration.core.segments.manual import ManualDimension
from integration.core.segments.percentile import PercentileDimension
from integration.core.segments.rfm import RfmDimension
from integration.core.segments.rules import RulesDimension
from integration.core.segments.score import ScoreDimension

DimensionSpec = RulesDimension | ScoreDimension | PercentileDimension | RfmDimension | ManualDimension

SPECS: dict[str, type[DimensionSpec]] = {
    spec.method: spec
    for spec in (RulesDimension, ScoreDimension, PercentileDimension, RfmDimension, ManualDimension)
}
METHODS = tuple(SPECS)  # ("rules", "score", "percentile", "rfm", "manual")
