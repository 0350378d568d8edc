"""Conditions over columns: where a condition holds, for every row of a population at once."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from integration.core.mapping.conditions import (
    And,
    Between,
    Compare,
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
)
from integration.core.mapping.formatting import is_number
from integration.core.models import Value
from integration.core.segments.population import Population


class Columns:
    """A few named float columns, for evaluating RFM groups over the r, f, m scores."""

    def __init__(self, size: int, columns: dict[str, np.ndarray]) -> None:
        self.size = size
        self.columns = columns

    def column(self, name: str) -> np.ndarray:
        return self.columns.get(name, np.full(self.size, np.nan))


def condition_mask(node: Node, population: Population | Columns) -> np.ndarray:
    """Where a condition holds, for every row at once; the same answers as mapping.evaluate.

    Numeric columns are compared with numpy (NaN compares false, which is exactly "a comparison
    that reads a missing value is false"); a condition touching a text column falls back to the
    scalar closure row by row, so both paths share one definition of the semantics.
    """
    size = population.size
    if isinstance(node, Not):
        return ~condition_mask(node.operand, population)
    if isinstance(node, And | Or):
        out = condition_mask(node.parts[0], population)
        for part in node.parts[1:]:
            out = (
                (out & condition_mask(part, population))
                if isinstance(node, And)
                else (out | condition_mask(part, population))
            )
        return out
    operands = _node_operands(node)
    if any(isinstance(op, Name) and population.column(op.name).dtype == object for op in operands):
        return _scalar_mask(node, population)
    if isinstance(node, Compare):
        return _compare_mask(node.op, node.left, node.right, population)
    if isinstance(node, Between):
        low = _compare_mask(">=", node.operand, node.low, population)
        return low & _compare_mask("<=", node.operand, node.high, population)
    if isinstance(node, InList):
        if isinstance(node.operand, Literal):
            return np.full(size, compile_condition(node)({}))
        values = population.column(node.operand.name)
        numbers = [item.value for item in node.items if is_number(item.value)]
        hit = np.isin(values, np.array(numbers, dtype=np.float64)) if numbers else np.zeros(size, bool)
        return (~np.isnan(values) & ~hit) if node.negated else hit
    if isinstance(node, IsMissing):
        if isinstance(node.operand, Literal):
            return np.full(size, compile_condition(node)({}))
        missing = np.isnan(population.column(node.operand.name))
        return ~missing if node.negated else missing
    if isinstance(node, Truth):
        if isinstance(node.operand, Literal):
            return np.full(size, compile_condition(node)({}))
        values = population.column(node.operand.name)
        return ~np.isnan(values) & (values != 0)
    raise TypeError(f"not an expression node: {node!r}")  # pragma: no cover


def _node_operands(node: Node) -> tuple[Operand, ...]:
    if isinstance(node, Compare):
        return (node.left, node.right)
    if isinstance(node, Between):
        return (node.operand, node.low, node.high)
    if isinstance(node, InList | IsMissing | Truth):
        return (node.operand,)
    return ()


_NUMPY_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
}


def _compare_mask(op: str, left: Operand, right: Operand, population: Population | Columns) -> np.ndarray:
    size = population.size
    if isinstance(left, Literal) and isinstance(right, Literal):
        return np.full(size, compile_condition(Compare(op, left, right))({}))
    sides = []
    for operand in (left, right):
        if isinstance(operand, Literal):
            if not is_number(operand.value):  # text or true/false against a number column
                other = right if operand is left else left
                assert isinstance(other, Name)  # noqa: S101 - both literals handled above
                present = ~np.isnan(population.column(other.name))
                return present if op == "!=" else np.zeros(size, dtype=bool)
            sides.append(float(operand.value))
        else:
            sides.append(population.column(operand.name))
    a, b = sides
    if op == "!=":
        with np.errstate(invalid="ignore"):
            return ~np.isnan(a) & ~np.isnan(b) & (np.not_equal(a, b))
    with np.errstate(invalid="ignore"):
        return np.asarray(_NUMPY_OPS[op](a, b), dtype=bool)


def _scalar_mask(node: Node, population: Population | Columns) -> np.ndarray:
    test = compile_condition(node)
    names = [op.name for op in _node_operands(node) if isinstance(op, Name)]
    columns = [population.column(name) for name in names]

    def value(col: np.ndarray, i: int) -> Value:
        item = col[i]
        if col.dtype != object:
            return None if math.isnan(item) else float(item)
        return item

    return np.fromiter(
        (
            test({name: value(col, i) for name, col in zip(names, columns, strict=True)})
            for i in range(population.size)
        ),
        dtype=bool,
        count=population.size,
    )
