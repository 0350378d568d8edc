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
spec.py (the records). Each segment dimension's record and parser live with its method in
integration/core/segments/, which builds on this package; integration/core/mapping_file.py (text ->
MappingSpec) sits above both, so neither imports the other back.
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

__all__ = [
    "LEVELS",
    "MULTIPLE",
    "PRIORITIES",
    "ROUTED_FIELDS",
    "And",
    "Between",
    "Compare",
    "DimensionCondition",
    "Expression",
    "FeatureSpec",
    "Features",
    "FieldSet",
    "InList",
    "IsMissing",
    "Literal",
    "MappingError",
    "MappingSpec",
    "Name",
    "Node",
    "Not",
    "Operand",
    "Or",
    "RoutingRule",
    "SlaTarget",
    "TagSpec",
    "Truth",
    "compile_condition",
    "evaluate",
    "explain",
    "format_minutes",
    "format_number",
    "format_value",
    "is_number",
    "parse_expression",
]
