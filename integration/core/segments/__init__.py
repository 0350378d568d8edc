"""Customer features and segment assignments: pure, columnar, explainable.

Why columnar: a recompute labels every customer in every dimension, and percentile bands and
percentile scores need the whole population. Per-customer Python (dicts in, reason strings out)
costs ~30 us a customer, 30 s for a million. Here each feature is one numpy array (float64, NaN for
missing; object arrays for text), so fitting is a sort per ranked metric and classifying is a few
vectorised comparisons per dimension. Reasons are not built during the batch (segmentation.py).

The package: one module per segmentation method (rules.py, score.py, percentile.py, rfm.py,
manual.py; listed in methods.py), each holding its part of the mapping, its fitting, its
labelling and its reasons; shared machinery beside them: features.py (what conditions and scores
read), population.py (the columns), cutoffs.py and fitted.py (the fitted model), masks.py
(conditions over columns), base.py (what a method offers), engine.py (fit, segment, classify),
segmentation.py (labels and reasons of a population), organizations.py, quality.py.
"""

from integration.core.segments.base import DimensionResult
from integration.core.segments.cutoffs import (
    bottom_cutoff,
    decile_cutoffs,
    decile_score,
    ntile_cutoffs,
    top_cutoff,
)
from integration.core.segments.engine import classify, classify_all, fit, segment
from integration.core.segments.features import (
    DERIVED,
    ORG_MEANS,
    ORG_MINIMA,
    ORG_SUMS,
    SECONDS_PER_DAY,
    STAT_FIELDS,
    customer_population,
    epoch_us,
    features,
    organization_population,
    stored_attributes,
)
from integration.core.segments.fitted import Fitted
from integration.core.segments.masks import condition_mask
from integration.core.segments.organizations import (
    OrganizationLabel,
    combine_organizations,
    organization_title,
)
from integration.core.segments.population import (
    CustomerTable,
    OrganizationTable,
    Population,
    RowView,
    column_of,
    normalise_email,
    numeric_view,
)
from integration.core.segments.quality import QualityReport, quality_report
from integration.core.segments.segmentation import Segmentation

__all__ = [
    "DERIVED",
    "ORG_MEANS",
    "ORG_MINIMA",
    "ORG_SUMS",
    "SECONDS_PER_DAY",
    "STAT_FIELDS",
    "CustomerTable",
    "DimensionResult",
    "Fitted",
    "OrganizationLabel",
    "OrganizationTable",
    "Population",
    "QualityReport",
    "RowView",
    "Segmentation",
    "bottom_cutoff",
    "classify",
    "classify_all",
    "column_of",
    "combine_organizations",
    "condition_mask",
    "customer_population",
    "decile_cutoffs",
    "decile_score",
    "epoch_us",
    "features",
    "fit",
    "segment",
    "normalise_email",
    "ntile_cutoffs",
    "numeric_view",
    "organization_population",
    "organization_title",
    "quality_report",
    "stored_attributes",
    "top_cutoff",
]
