"""Parse and validate a tierdesk mapping: segment definitions and routing rules.

Pure: the caller reads the file and passes its *text* and name; nothing here touches a disk,
a network or a database. Every problem becomes one `MappingError` that names the file, the line
and the dotted key, e.g.

    mappings/default.yaml:12: segments.tier.weights.revenue_12m: weight must be a number, got 'high'

because an admin editing YAML needs to know exactly where to look. Unknown keys are errors, so a
typo never silently switches a rule off.

The package, from the bottom up: errors.py (MappingError), formatting.py (numbers and values as
reasons show them), conditions.py and condition_parser.py (the condition language of ``when:``),
loading.py (YAML with line numbers), validation.py (checks that name file, line and key),
spec.py (the records), parsing.py (text -> MappingSpec). Each segment dimension's record and
parser live with its method in integration/core/segments/; the names are handed on here too.
"""

from integration.core.mapping.condition_parser import parse_expression
from integration.core.mapping.conditions import (
    And,
    Between,
    Compare,
    Expression,
    Features,
    InList,
    IsMissing,
    Literal,
    Name,
    Node,
    Not,
    Operand,
    Or,
    Truth,
    compile_condition,
    evaluate,
    explain,
)
from integration.core.mapping.errors import MappingError
from integration.core.mapping.formatting import format_minutes, format_number, format_value, is_number
from integration.core.mapping.parsing import KEYS, parse_duration, parse_mapping
from integration.core.mapping.spec import (
    LEVELS,
    MULTIPLE,
    PRIORITIES,
    ROUTED_FIELDS,
    DimensionCondition,
    FeatureSpec,
    FieldSet,
    MappingSpec,
    RoutingRule,
    SlaTarget,
    TagSpec,
)
from integration.core.segments.base import dimension_inputs
from integration.core.segments.manual import ManualDimension, MatchList
from integration.core.segments.methods import METHODS, DimensionSpec
from integration.core.segments.percentile import Band, PercentileDimension
from integration.core.segments.rfm import DEFAULT_RFM_GROUPS, RFM_SCORES, RfmDimension
from integration.core.segments.rules import Rule, RulesDimension
from integration.core.segments.score import ScoreDimension

__all__ = [
    "DEFAULT_RFM_GROUPS",
    "KEYS",
    "LEVELS",
    "METHODS",
    "MULTIPLE",
    "PRIORITIES",
    "RFM_SCORES",
    "ROUTED_FIELDS",
    "And",
    "Band",
    "Between",
    "Compare",
    "DimensionCondition",
    "DimensionSpec",
    "Expression",
    "FeatureSpec",
    "Features",
    "FieldSet",
    "InList",
    "IsMissing",
    "Literal",
    "ManualDimension",
    "MappingError",
    "MappingSpec",
    "MatchList",
    "Name",
    "Node",
    "Not",
    "Operand",
    "Or",
    "PercentileDimension",
    "RfmDimension",
    "RoutingRule",
    "Rule",
    "RulesDimension",
    "ScoreDimension",
    "SlaTarget",
    "TagSpec",
    "Truth",
    "compile_condition",
    "dimension_inputs",
    "evaluate",
    "explain",
    "format_minutes",
    "format_number",
    "format_value",
    "is_number",
    "parse_duration",
    "parse_expression",
    "parse_mapping",
]
