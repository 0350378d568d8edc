"""The condition language of ``when:`` (see docs/mapping.md): its tree, what it means, how it explains.

A condition is parsed once (condition_parser.py) into frozen dataclasses, turned once into plain
Python closures, and explained with the actual values filled in. Nothing is ever handed to the
Python interpreter as code. segments/masks.py evaluates the same trees over whole columns.
"""

from __future__ import annotations

import collections.abc
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from integration.core.mapping.formatting import format_number, format_value, is_number, quote
from integration.core.models import Value

# What conditions and scores read: feature name -> value (None or absent: missing).
Features = collections.abc.Mapping[str, Value]


@dataclass(frozen=True)
class Name:
    """An attribute (feature) name; in routing conditions also a dimension name."""

    name: str


@dataclass(frozen=True)
class Literal:
    """A constant as written; ``text`` keeps the spelling (``2y``) for explanations."""

    value: float | int | str | bool
    text: str


Operand = Name | Literal


@dataclass(frozen=True)
class Compare:
    op: str  # one of < <= > >= == !=
    left: Operand
    right: Operand


@dataclass(frozen=True)
class InList:
    operand: Operand
    items: tuple[Literal, ...]
    negated: bool = False  # "not in"


@dataclass(frozen=True)
class Between:
    operand: Operand
    low: Operand
    high: Operand


@dataclass(frozen=True)
class IsMissing:
    operand: Operand
    negated: bool = False  # "is present"


@dataclass(frozen=True)
class Truth:
    """A bare name or true/false: holds when the value is present and truthy."""

    operand: Operand


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


Node = Compare | InList | Between | IsMissing | Truth | Not | And | Or


@dataclass(frozen=True)
class Expression:
    """A parsed condition: its text, its tree, and the closure built once from the tree."""

    text: str
    tree: Node
    test: Callable[[Features], bool] = field(compare=False, repr=False)

    def __call__(self, features: Features) -> bool:
        return self.test(features)

    @classmethod
    def build(cls, text: str, tree: Node) -> Expression:
        """The expression for a tree, its closure built now (the parser and percentile bands)."""
        return cls(text=text, tree=tree, test=_compile(tree))

    @property
    def names(self) -> tuple[str, ...]:
        """Attribute names the condition reads, in order of appearance."""
        return tuple(dict.fromkeys(_names(self.tree)))


def evaluate(expr: Expression | Node, features: Features) -> bool:
    """Does the condition hold? A comparison that reads a missing value is False, never an error."""
    if isinstance(expr, Expression):
        return expr.test(features)
    return compile_condition(expr)(features)


# evaluation semantics ----------------------------------------------------------------------------


def _kind(value: object) -> str | None:
    """number | string | bool, or None for missing (None, NaN, anything else)."""
    if type(value) is str:
        return "string"
    if isinstance(value, bool):
        return "bool"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


_ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compare(op: str, left: object, right: object) -> bool:
    left_kind, right_kind = _kind(left), _kind(right)
    if left_kind is None or right_kind is None:
        return False
    if op == "==":
        return left_kind == right_kind and left == right
    if op == "!=":
        return left_kind != right_kind or left != right
    if left_kind != right_kind or left_kind == "bool":
        return False
    return _ORDER_OPS[op](left, right)


def compile_condition(node: Node) -> Callable[[Features], bool]:
    """The closure for one parsed node, built once and kept on the node (explanations and
    segments/masks.py's text-column fallback evaluate the same nodes many times)."""
    test = node.__dict__.get("_compiled")
    if test is None:
        test = _compile(node)
        object.__setattr__(node, "_compiled", test)  # not a field: equality and repr ignore it
    return test


def _getter(operand: Operand) -> Callable[[Features], object]:
    if isinstance(operand, Name):
        name = operand.name
        return lambda features: features.get(name)
    value = operand.value
    return lambda _features: value


def _compile(node: Node) -> Callable[[Features], bool]:
    """Turn the tree into nested closures once, so evaluating a million customers stays cheap."""
    if isinstance(node, Compare):
        op, left, right = node.op, _getter(node.left), _getter(node.right)
        return lambda f: _compare(op, left(f), right(f))
    if isinstance(node, InList):
        get = _getter(node.operand)
        items = tuple(item.value for item in node.items)
        negated = node.negated

        def in_list(f: Features) -> bool:
            value = get(f)
            if _kind(value) is None:
                return False
            found = any(_compare("==", value, item) for item in items)
            return found != negated

        return in_list
    if isinstance(node, Between):
        get, low, high = _getter(node.operand), _getter(node.low), _getter(node.high)

        def between(f: Features) -> bool:
            value = get(f)
            return _compare(">=", value, low(f)) and _compare("<=", value, high(f))

        return between
    if isinstance(node, IsMissing):
        get, negated = _getter(node.operand), node.negated
        return lambda f: (_kind(get(f)) is None) != negated
    if isinstance(node, Truth):
        get = _getter(node.operand)

        def truth(f: Features) -> bool:
            value = get(f)
            return _kind(value) is not None and bool(value)

        return truth
    if isinstance(node, Not):
        inner = _compile(node.operand)
        return lambda f: not inner(f)
    if isinstance(node, And):
        parts = tuple(_compile(part) for part in node.parts)
        return lambda f: all(part(f) for part in parts)
    if isinstance(node, Or):
        parts = tuple(_compile(part) for part in node.parts)
        return lambda f: any(part(f) for part in parts)
    raise TypeError(f"not an expression node: {node!r}")


def _names(node: Node) -> Iterator[str]:
    if isinstance(node, Compare):
        operands: tuple[Operand, ...] = (node.left, node.right)
    elif isinstance(node, InList | IsMissing | Truth):
        operands = (node.operand,)
    elif isinstance(node, Between):
        operands = (node.operand, node.low, node.high)
    elif isinstance(node, Not):
        yield from _names(node.operand)
        return
    else:
        for part in node.parts:
            yield from _names(part)
        return
    for operand in operands:
        if isinstance(operand, Name):
            yield operand.name


# explanations ------------------------------------------------------------------------------------


def explain(expr: Expression | Node, features: Features) -> str:
    """The condition with the actual values filled in, e.g. ``tickets_30d 4 >= 3``.

    Only the parts that decided the outcome are shown: for a true ``or`` the branches that held,
    for a false ``and`` the parts that failed. A comparison reading a missing value says
    ``x is missing``.
    """
    tree = expr.tree if isinstance(expr, Expression) else expr
    return _explain(tree, features)


def _render_literal(literal: Literal) -> str:
    value = literal.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value)
    text = format_number(value)
    if literal.text.endswith(("w", "y")):  # a duration other than days: show both
        return f"{text} ({literal.text})"
    return text


def _render(operand: Operand, features: Features) -> str:
    if isinstance(operand, Literal):
        return _render_literal(operand)
    return f"{operand.name} {format_value(features.get(operand.name))}"


def _missing_name(operands: Iterable[Operand], features: Features) -> str | None:
    for operand in operands:
        if isinstance(operand, Name) and _kind(features.get(operand.name)) is None:
            return operand.name
    return None


def _explain(node: Node, features: Features) -> str:
    if isinstance(node, Compare):
        missing = _missing_name((node.left, node.right), features)
        if missing:
            return f"{missing} is missing"
        return f"{_render(node.left, features)} {node.op} {_render(node.right, features)}"
    if isinstance(node, InList):
        missing = _missing_name((node.operand,), features)
        if missing:
            return f"{missing} is missing"
        items = ", ".join(_render_literal(item) for item in node.items)
        word = "not in" if node.negated else "in"
        return f"{_render(node.operand, features)} {word} [{items}]"
    if isinstance(node, Between):
        missing = _missing_name((node.operand, node.low, node.high), features)
        if missing:
            return f"{missing} is missing"
        parts = (_render(o, features) for o in (node.operand, node.low, node.high))
        return "{} between {} and {}".format(*parts)
    if isinstance(node, IsMissing | Truth):
        operand = node.operand
        if isinstance(operand, Literal):
            return _render_literal(operand)
        value = features.get(operand.name)
        if _kind(value) is None:
            return f"{operand.name} is missing"
        rendered = f"{operand.name} {format_value(value)}"
        return f"{rendered} is present" if isinstance(node, IsMissing) else rendered
    if isinstance(node, Not):
        return f"not ({_explain(node.operand, features)})"
    outcome = evaluate(node, features)
    joiner = " and " if isinstance(node, And) else " or "
    parts = node.parts
    if isinstance(node, And) and not outcome:
        parts = tuple(p for p in parts if not evaluate(p, features))
    elif isinstance(node, Or) and outcome:
        parts = tuple(p for p in parts if evaluate(p, features))
    rendered = []
    for part in parts:
        text = _explain(part, features)
        if isinstance(part, And | Or) and len(parts) > 1:
            text = f"({text})"
        rendered.append(text)
    return joiner.join(rendered)
