"""The routing section of a mapping, and the ticket fields a rule or the default sets.

A ``when:`` names dimensions and the labels they can give (``{tier: A}``), or is a condition in
quotes; either way every label must be one its dimension can produce.
"""

from __future__ import annotations

from typing import Any

from integration.core.mapping.conditions import (
    And,
    Compare,
    Expression,
    InList,
    Literal,
    Name,
    Node,
    Not,
    Operand,
    Or,
)
from integration.core.mapping.formatting import quote
from integration.core.mapping.loading import Doc, Path, dotted
from integration.core.mapping.spec import PRIORITIES, ROUTED_FIELDS, DimensionCondition, FieldSet, RoutingRule
from integration.core.mapping.validation import (
    check_keys,
    describe,
    expression_at,
    list_of,
    mapping_of,
    text_of,
)

# The keys of the routing section and of the fields it sets (the mapping's KEYS hands them on).
KEYS: dict[str, tuple[str, ...]] = {"routing": ("when", "set", "description"), "fields": ROUTED_FIELDS}


def parse_fieldset(doc: Doc, value: Any, path: Path, *, require_one: bool) -> FieldSet:
    """The fields a rule sets (``require_one``) or the default sets (may be empty)."""
    if value is None and not require_one:
        return FieldSet()
    data = mapping_of(doc, value, path, dotted(path))
    check_keys(doc, data, path, KEYS["fields"])
    if require_one and not data:
        raise doc.error(path, "set must name at least one of priority, sla, group")
    found = {}
    for key, raw in data.items():
        found[key] = text_of(doc, raw, (*path, key), key)
    priority = found.get("priority")
    if priority is not None:
        priority = priority.lower()
        if priority not in PRIORITIES:
            raise doc.error(
                (*path, "priority"),
                f"priority must be one of {', '.join(PRIORITIES)}, got {quote(found['priority'])}",
            )
    return FieldSet(priority=priority, sla=found.get("sla"), group=found.get("group"))


def parse_routing(
    doc: Doc, value: Any, path: Path, labels: dict[str, tuple[str, ...]]
) -> tuple[RoutingRule, ...]:
    """The routing rules in order; every label they name must be in ``labels`` (dimension -> labels)."""
    if value is None:
        return ()
    items = list_of(doc, value, path, "routing")
    rules = []
    for index, item in enumerate(items):
        rule_path = (*path, index)
        item = mapping_of(doc, item, rule_path, "a routing rule")
        check_keys(doc, item, rule_path, KEYS["routing"], required=("when", "set"))
        when_path = (*rule_path, "when")
        raw_when = item["when"]
        when: tuple[DimensionCondition, ...] | Expression
        if isinstance(raw_when, str):
            when = expression_at(doc, raw_when, when_path)
            _check_expression_labels(doc, when.tree, when_path, labels)
        elif isinstance(raw_when, dict):
            if not raw_when:
                raise doc.error(when_path, "when must name at least one dimension")
            when = tuple(
                _dimension_condition(doc, dim, want, (*when_path, dim), labels)
                for dim, want in raw_when.items()
            )
        else:
            raise doc.error(
                when_path,
                "when must map dimensions to labels (e.g. {tier: A}) or be a condition in quotes, "
                f"got {describe(raw_when)}",
            )
        sets = parse_fieldset(doc, item["set"], (*rule_path, "set"), require_one=True)
        description = item.get("description")
        if description is not None:
            description = text_of(doc, description, (*rule_path, "description"), "description")
        rules.append(
            RoutingRule(
                number=index + 1,
                when=when,
                sets=sets,
                description=description or "",
                line=doc.line(rule_path),
            )
        )
    return tuple(rules)


def _known_label(doc: Doc, dim: str, label: Any, path: Path, labels: dict[str, tuple[str, ...]]) -> str:
    if not isinstance(label, str):
        raise doc.error(
            path,
            f"expected a label of {dim}, a list of labels, true or false; got {describe(label)}",
        )
    if label not in labels[dim]:
        can_be = ", ".join(labels[dim]) or "no label"
        raise doc.error(path, f"unknown label {label!r} for dimension {dim} (it can be: {can_be})")
    return label


def _dimension_condition(
    doc: Doc, dim: str, want: Any, path: Path, labels: dict[str, tuple[str, ...]]
) -> DimensionCondition:
    if dim not in labels:
        known = ", ".join(labels) or "none"
        raise doc.error(path, f"unknown dimension {dim!r} (dimensions: {known})")
    if isinstance(want, bool):
        return DimensionCondition(dim, present=want)
    if isinstance(want, list):
        if not want:
            raise doc.error(path, "the list of labels is empty")
        found = [_known_label(doc, dim, item, (*path, i), labels) for i, item in enumerate(want)]
        return DimensionCondition(dim, labels=tuple(dict.fromkeys(found)))
    return DimensionCondition(dim, labels=(_known_label(doc, dim, want, path, labels),))


def _check_expression_labels(doc: Doc, node: Node, path: Path, labels: dict[str, tuple[str, ...]]) -> None:
    """A routing condition comparing a dimension with a label must use a label it can produce."""

    def check(name: Operand, literal: Operand) -> None:
        if isinstance(name, Name) and name.name in labels and isinstance(literal, Literal):
            _known_label(doc, name.name, literal.value, path, labels)

    if isinstance(node, Compare) and node.op in ("==", "!="):
        check(node.left, node.right)
        check(node.right, node.left)
    elif isinstance(node, InList):
        for item in node.items:
            check(node.operand, item)
    elif isinstance(node, Not):
        _check_expression_labels(doc, node.operand, path, labels)
    elif isinstance(node, And | Or):
        for part in node.parts:
            _check_expression_labels(doc, part, path, labels)
