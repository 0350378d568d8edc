"""Parse and validate a tierdesk mapping: segment definitions and routing rules.

Pure: the caller reads the file and passes its *text* and name; nothing here touches a disk,
a network or a database. Every problem becomes one `MappingError` that names the file, the line
and the dotted key, e.g.

    mappings/default.yaml:12: segments.tier.weights.revenue_12m: weight must be a number, got 'high'

because an admin editing YAML needs to know exactly where to look. Unknown keys are errors, so a
typo never silently switches a rule off.

This module is also the home of the condition language used by ``when:`` (see docs/mapping.md):
a tokenizer and a recursive-descent parser that build frozen dataclasses, turned once into plain
Python closures. Nothing is ever handed to the Python interpreter as code.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeGuard

import yaml

from integration.core.models import Value

# What conditions and scores read: feature name -> value (None or absent: missing).
Features = collections.abc.Mapping[str, Value]

PRIORITIES = ("low", "normal", "high", "urgent")
ROUTED_FIELDS = ("priority", "sla", "group")
METHODS = ("rules", "score", "percentile", "rfm", "manual")
LEVELS = ("customer", "organization")
MULTIPLE = ("best", "first")

_NAME_RE = re.compile(r"[a-z_][a-z0-9_]*", re.ASCII)
_TAG_RE = re.compile(r"[a-z0-9_]+", re.ASCII)
_TAG_UNSAFE_RE = re.compile(r"[^a-z0-9_]", re.ASCII)


class MappingError(ValueError):
    """A mapping (or one condition in it) is invalid; says where: file, line, dotted key."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "<mapping>",
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.reason = message
        self.source = source
        self.line = line
        self.key = key
        where = source if line is None else f"{source}:{line}"
        text = f"{where}: {key}: {message}" if key else f"{where}: {message}"
        super().__init__(text)


# --------------------------------------------------------------------------------------------------
# Number and value formatting, shared by reasons everywhere so they all read the same.


_FORMATTED: dict[float | int, str] = {}  # reasons repeat the same counts and cut-offs a million times


def format_number(value: float | int) -> str:
    """Numbers for people: thousands separators, at most two decimals, no trailing zeros."""
    if isinstance(value, bool):
        return "true" if value else "false"
    found = _FORMATTED.get(value)
    if found is None:
        found = _format_number(value)
        if len(_FORMATTED) >= 100_000:
            _FORMATTED.clear()
        _FORMATTED[value] = found
    return found


def _format_number(value: float | int) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def format_value(value: Value) -> str:
    """A feature value in a reason: numbers formatted, text quoted, None as 'missing'."""
    if value is None:
        return "missing"
    if isinstance(value, bool | int | float):
        return format_number(value)
    return _quote(str(value))


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_number(value: object) -> TypeGuard[int | float]:
    """True for finite ints and floats; bools are not numbers here."""
    if type(value) is int:  # the common cases first: this runs per customer per attribute
        return True
    if type(value) is float:
        return math.isfinite(value)
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


# --------------------------------------------------------------------------------------------------
# The condition language: tokens -> AST (frozen dataclasses) -> closures.

_KEYWORDS = frozenset({"and", "or", "not", "in", "between", "is", "missing", "present", "true", "false"})
_COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
_DURATION_DAYS = {"d": 1, "w": 7, "y": 365}
_MAX_DEPTH = 60
_MAX_DIGITS = 300  # a float ends near 1.8e308: a longer number could not be compared with a feature anyway

_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[0-9][0-9A-Za-z_.]*)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>['"])
  | (?P<op>[<>=!]+)
  | (?P<punct>[()\[\],-])
    """,
    re.VERBOSE | re.ASCII,
)
_NUMBER_RE = re.compile(
    r"(?P<int>[0-9]+(?:_[0-9]+)*)(?:\.(?P<frac>[0-9]+(?:_[0-9]+)*))?(?P<unit>[dwy])?", re.ASCII
)


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

    @property
    def names(self) -> tuple[str, ...]:
        """Attribute names the condition reads, in order of appearance."""
        return tuple(dict.fromkeys(_names(self.tree)))


@dataclass(frozen=True)
class _Token:
    kind: str  # name number string op punct kw end
    text: str
    column: int  # 1-based
    value: Any = None


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        column = pos + 1
        if match is None:
            raise _ExprError(f"unexpected token {_quote(text[pos])} at column {column}")
        kind = match.lastgroup
        raw = match.group()
        if kind == "space":
            pass
        elif kind == "number":
            tokens.append(_number_token(raw, column))
        elif kind == "word":
            if raw in _KEYWORDS:
                tokens.append(_Token("kw", raw, column))
            elif _NAME_RE.fullmatch(raw):
                tokens.append(_Token("name", raw, column))
            else:
                raise _ExprError(
                    f"unexpected token {_quote(raw)} at column {column} (names and keywords are lowercase)"
                )
        elif kind == "string":
            value, end = _scan_string(text, pos)
            tokens.append(_Token("string", text[pos:end], column, value))
            pos = end
            continue
        elif kind == "op":
            if raw not in _COMPARISONS:
                hint = " (use ==)" if raw == "=" else ""
                raise _ExprError(f"unexpected token {_quote(raw)} at column {column}{hint}")
            tokens.append(_Token("op", raw, column))
        else:
            tokens.append(_Token("punct", raw, column))
        pos = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _number_token(raw: str, column: int) -> _Token:
    match = _NUMBER_RE.fullmatch(raw)
    if match is None:
        raise _ExprError(f"unexpected token {_quote(raw)} at column {column} (not a number)")
    whole = match.group("int").replace("_", "")
    frac = match.group("frac")
    if len(whole) > _MAX_DIGITS:  # int() refuses past 4,300 digits; no feature is that large anyway
        raise _ExprError(f"number at column {column} has more than {_MAX_DIGITS} digits")
    number: float | int = float(f"{whole}.{frac.replace('_', '')}") if frac else int(whole)
    unit = match.group("unit")
    if unit:
        number = number * _DURATION_DAYS[unit]
        if isinstance(number, float) and number.is_integer():
            number = int(number)
    return _Token("number", raw, column, number)


def _scan_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
            continue
        if char == quote:
            return "".join(out), pos + 1
        out.append(char)
        pos += 1
    raise _ExprError(f"unterminated string starting at column {start + 1}")


class _ExprError(Exception):
    """Internal: a parse problem before we know the file, line and key."""


class _Parser:
    """Recursive descent, one method per precedence level: or < and < not < predicate."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise _ExprError("empty expression")
        node = self.or_expr()
        if self.peek().kind != "end":
            raise self.unexpected()
        return node

    # helpers
    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.peek()
        self.pos += 1
        return token

    def at(self, kind: str, text: str | None = None) -> bool:
        token = self.peek()
        return token.kind == kind and (text is None or token.text == text)

    def expect(self, kind: str, text: str) -> _Token:
        if not self.at(kind, text):
            raise self.unexpected(f"expected {_quote(text)}")
        return self.advance()

    def unexpected(self, expected: str | None = None) -> _ExprError:
        token = self.peek()
        if token.kind == "end":
            message = "unexpected end of expression"
        else:
            message = f"unexpected token {_quote(token.text)} at column {token.column}"
        return _ExprError(f"{message} ({expected})" if expected else message)

    def nest(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _ExprError(f"expression is nested too deeply (more than {_MAX_DEPTH} levels)")

    # grammar
    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while self.at("kw", "or"):
            self.advance()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.not_expr()]
        while self.at("kw", "and"):
            self.advance()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def not_expr(self) -> Node:
        if self.at("kw", "not"):
            self.advance()
            self.nest()
            inner = self.not_expr()
            self.depth -= 1
            return Not(inner)
        return self.predicate()

    def predicate(self) -> Node:
        if self.at("punct", "("):
            self.advance()
            self.nest()
            inner = self.or_expr()
            self.depth -= 1
            self.expect("punct", ")")
            return inner
        start = self.peek()
        left = self.operand()
        token = self.peek()
        if token.kind == "op":
            self.advance()
            return Compare(token.text, left, self.operand())
        if token.kind == "kw" and token.text == "in":
            self.advance()
            return InList(left, self.literal_list())
        if token.kind == "kw" and token.text == "not" and self.peek(1).text == "in":
            self.advance()
            self.advance()
            return InList(left, self.literal_list(), negated=True)
        if token.kind == "kw" and token.text == "between":
            self.advance()
            low = self.operand()
            self.expect("kw", "and")
            return Between(left, low, self.operand())
        if token.kind == "kw" and token.text == "is":
            self.advance()
            if self.at("kw", "missing"):
                self.advance()
                return IsMissing(left)
            if self.at("kw", "present"):
                self.advance()
                return IsMissing(left, negated=True)
            raise self.unexpected("expected 'missing' or 'present'")
        if isinstance(left, Name) or isinstance(left.value, bool):
            return Truth(left)
        raise _ExprError(f"expected a comparison after {_quote(start.text)} at column {start.column}")

    def operand(self) -> Operand:
        if self.at("name"):
            return Name(self.advance().text)
        return self.literal()

    def literal(self) -> Literal:
        token = self.peek()
        if token.kind in ("number", "string"):
            self.advance()
            return Literal(token.value, token.text)
        if token.kind == "kw" and token.text in ("true", "false"):
            self.advance()
            return Literal(token.text == "true", token.text)
        if token.kind == "punct" and token.text == "-" and self.peek(1).kind == "number":
            self.advance()
            number = self.advance()
            return Literal(-number.value, "-" + number.text)
        raise self.unexpected()

    def literal_list(self) -> tuple[Literal, ...]:
        self.expect("punct", "[")
        items: list[Literal] = []
        if not self.at("punct", "]"):
            items.append(self.literal())
            while self.at("punct", ","):
                self.advance()
                items.append(self.literal())
        self.expect("punct", "]")
        return tuple(items)


def parse_expression(
    text: str, *, source: str = "<expression>", line: int | None = None, key: str | None = None
) -> Expression:
    """Parse a ``when`` condition; any problem is a MappingError naming the token and column."""
    if not isinstance(text, str):
        raise MappingError(
            f"a condition must be text in quotes, got {text!r}", source=source, line=line, key=key
        )
    try:
        tree = _Parser(text).parse()
    except _ExprError as exc:
        raise MappingError(str(exc), source=source, line=line, key=key) from None
    return Expression(text=text, tree=tree, test=_compile(tree))


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
    segments.py's text-column fallback evaluate the same nodes many times)."""
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
        return _quote(value)
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


# --------------------------------------------------------------------------------------------------
# The mapping records.


@dataclass(frozen=True)
class FieldSet:
    """Ticket fields a routing rule (or the default) sets; None leaves the field alone."""

    priority: str | None = None
    sla: str | None = None
    group: str | None = None

    def get(self, name: str) -> str | None:
        return getattr(self, name)


@dataclass(frozen=True)
class TagSpec:
    """How tags are spelled; the helpdesk's views and triggers key on these exact strings."""

    prefix: str = "tierdesk"
    routed: str = "tierdesk_routed"

    def segment_tag(self, dimension: str, label: str) -> str:
        return _tag(f"{self.prefix}_{dimension}_{label}")

    def sla_tag(self, sla: str) -> str:
        return _tag(f"{self.prefix}_sla_{sla}")


def _tag(text: str) -> str:
    return _TAG_UNSAFE_RE.sub("_", text.lower())


@dataclass(frozen=True)
class FeatureSpec:
    """Knobs for derived features (see segments.features)."""

    cost_per_ticket: float = 25.0
    # attributes added to cost_to_serve when they are numbers (money, same period as revenue_12m)
    cost_attributes: tuple[str, ...] = ("service_cost_12m",)


@dataclass(frozen=True)
class SlaTarget:
    """Targets of one SLA policy, in minutes; None: the mapping sets no such target."""

    first_response_minutes: int | None = None
    resolution_minutes: int | None = None

    @property
    def summary(self) -> str:
        parts = []
        if self.first_response_minutes is not None:
            parts.append(f"first response {format_minutes(self.first_response_minutes)}")
        if self.resolution_minutes is not None:
            parts.append(f"resolution {format_minutes(self.resolution_minutes)}")
        return ", ".join(parts)


def format_minutes(minutes: int) -> str:
    """A duration for people: 90 -> '1h 30m', 1440 -> '1d', 2160 -> '1d 12h'."""
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (mins, "m")) if n]
    return " ".join(parts) or "0m"


@dataclass(frozen=True)
class Rule:
    when: Expression
    then: str


@dataclass(frozen=True)
class RulesDimension:
    """First rule whose condition holds gives the label; otherwise ``default``."""

    name: str
    rules: tuple[Rule, ...]
    default: str | None = None
    description: str = ""
    level: str = "customer"  # customer | organization (computed per organization, given to its users)
    multiple: str = "best"  # a user in several organizations: best | first
    method: ClassVar[str] = "rules"

    @property
    def labels(self) -> tuple[str, ...]:
        found = [rule.then for rule in self.rules]
        if self.default is not None:
            found.append(self.default)
        return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class ScoreDimension:
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


@dataclass(frozen=True)
class Band:
    """One band of a percentile dimension, as written (``top 20%``, ``< 0``)."""

    label: str
    text: str
    kind: str  # top | bottom | compare
    percent: float | None = None  # for top / bottom
    test: Expression | None = None  # for compare


@dataclass(frozen=True)
class PercentileDimension:
    """Bands on one metric, tried in the order written; relative bands use fitted cut-offs."""

    name: str
    metric: str
    bands: tuple[Band, ...]
    default: str | None = None
    description: str = ""
    level: str = "customer"
    multiple: str = "best"
    method: ClassVar[str] = "percentile"

    @property
    def labels(self) -> tuple[str, ...]:
        found = [band.label for band in self.bands]
        if self.default is not None:
            found.append(self.default)
        return tuple(dict.fromkeys(found))


RFM_SCORES = ("r", "f", "m")

# The usual RFM group map on the recency (r) and frequency (f) quintile scores: every (r, f) pair of
# the 5 x 5 grid falls in exactly one group, tried in this order. A mapping may replace it.
DEFAULT_RFM_GROUPS: tuple[tuple[str, str], ...] = (
    ("champions", "r >= 5 and f >= 4"),
    ("loyal", "r between 3 and 4 and f >= 4"),
    ("potential_loyalists", "r >= 4 and f between 2 and 3"),
    ("new_customers", "r == 5 and f == 1"),
    ("promising", "r == 4 and f == 1"),
    ("need_attention", "r == 3 and f == 3"),
    ("about_to_sleep", "r == 3 and f <= 2"),
    ("cant_lose", "r <= 2 and f == 5"),
    ("at_risk", "r <= 2 and f between 3 and 4"),
    ("hibernating", "r <= 2 and f <= 2"),
)


@dataclass(frozen=True)
class RfmDimension:
    """Recency, frequency and monetary quintile scores (1-5) and named groups over them."""

    name: str
    recency: str = "last_purchase_days"  # days since the last purchase: fewer is better
    frequency: str = "purchases_12m"
    monetary: str = "revenue_12m"
    groups: tuple[Rule, ...] = ()  # conditions over r, f, m; the first that holds names the group
    default: str | None = None
    description: str = ""
    level: str = "customer"
    multiple: str = "best"
    method: ClassVar[str] = "rfm"

    @property
    def inputs(self) -> tuple[tuple[str, str], ...]:
        """(score letter, feature) pairs, in R, F, M order."""
        return (("r", self.recency), ("f", self.frequency), ("m", self.monetary))

    @property
    def labels(self) -> tuple[str, ...]:
        found = [rule.then for rule in self.groups]
        if self.default is not None:
            found.append(self.default)
        return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class MatchList:
    """Ids, emails, email domains and source-system tags, normalised for matching."""

    ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()  # lowercased
    domains: tuple[str, ...] = ()  # lowercased, no leading "@"
    tags: tuple[str, ...] = ()  # lowercased
    id_set: frozenset[str] = field(init=False, repr=False, compare=False)
    email_set: frozenset[str] = field(init=False, repr=False, compare=False)
    domain_set: frozenset[str] = field(init=False, repr=False, compare=False)
    tag_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id_set", frozenset(self.ids))
        object.__setattr__(self, "email_set", frozenset(self.emails))
        object.__setattr__(self, "domain_set", frozenset(self.domains))
        object.__setattr__(self, "tag_set", frozenset(self.tags))

    def __bool__(self) -> bool:
        return bool(self.ids or self.emails or self.domains or self.tags)


@dataclass(frozen=True)
class ManualDimension:
    """Hand-kept lists (ids, emails, domains, source tags); a match gives ``label``.

    A match on the ``deny`` lists wins over every allow list (no label), and ``overrides`` lets a
    match force labels in other dimensions, whatever their own method computed.
    """

    name: str
    ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()  # lowercased
    domains: tuple[str, ...] = ()  # lowercased, no leading "@"
    tags: tuple[str, ...] = ()  # lowercased
    label: str = "vip"
    description: str = ""
    deny: MatchList = field(default_factory=MatchList)
    overrides: tuple[tuple[str, str | None], ...] = ()  # (dimension, label or None), in file order
    level: str = "customer"
    multiple: str = "best"
    method: ClassVar[str] = "manual"
    allow: MatchList = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow", MatchList(self.ids, self.emails, self.domains, self.tags))

    @property
    def id_set(self) -> frozenset[str]:
        return self.allow.id_set

    @property
    def email_set(self) -> frozenset[str]:
        return self.allow.email_set

    @property
    def domain_set(self) -> frozenset[str]:
        return self.allow.domain_set

    @property
    def tag_set(self) -> frozenset[str]:
        return self.allow.tag_set

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.label,)


DimensionSpec = RulesDimension | ScoreDimension | PercentileDimension | RfmDimension | ManualDimension


@dataclass(frozen=True)
class DimensionCondition:
    """One entry of a routing ``when`` mapping: a label, any of several, or present/absent."""

    dimension: str
    labels: tuple[str, ...] | None = None  # None: only presence matters
    present: bool = True

    def holds(self, label: str | None) -> bool:
        if self.labels is not None:
            return label in self.labels
        return (label is not None) == self.present

    @property
    def summary(self) -> str:
        if self.labels is not None:
            return f"{self.dimension} is {' or '.join(self.labels)}"
        return f"{self.dimension} {'has a label' if self.present else 'has no label'}"


@dataclass(frozen=True)
class RoutingRule:
    """When ``when`` holds, ``sets`` these fields; each field goes to the first rule setting it."""

    number: int  # 1-based position, as reasons and notes say it
    when: tuple[DimensionCondition, ...] | Expression
    sets: FieldSet
    description: str = ""
    line: int | None = None

    def matches(self, labels: collections.abc.Mapping[str, str | None], env: Features) -> bool:
        """``labels``: dimension -> label; ``env``: features with the labels laid over them."""
        if isinstance(self.when, Expression):
            return self.when.test(env)
        return all(cond.holds(labels.get(cond.dimension)) for cond in self.when)

    @property
    def summary(self) -> str:
        if isinstance(self.when, Expression):
            return self.when.text
        return " and ".join(cond.summary for cond in self.when)


@dataclass(frozen=True)
class MappingSpec:
    """A validated mapping: segment dimensions (in order), routing rules, defaults, tag spelling."""

    source: str
    segments: tuple[DimensionSpec, ...]
    routing: tuple[RoutingRule, ...] = ()
    default: FieldSet = field(default_factory=FieldSet)
    tags: TagSpec = field(default_factory=TagSpec)
    features: FeatureSpec = field(default_factory=FeatureSpec)
    description: str = ""
    # SLA name -> targets from the `slas:` section; an SLA routing sets but this lacks has no targets
    sla_targets: dict[str, SlaTarget] = field(default_factory=dict)

    @property
    def dimension_names(self) -> tuple[str, ...]:
        return tuple(dim.name for dim in self.segments)

    def dimensions_at(self, level: str) -> tuple[DimensionSpec, ...]:
        """The dimensions computed at one level (customer or organization), in mapping order."""
        return tuple(dim for dim in self.segments if dim.level == level)

    def inputs(self, level: str = "customer") -> tuple[str, ...]:
        """Every feature the dimensions of one level read, in order of first use."""
        names: dict[str, None] = {}
        for dim in self.dimensions_at(level):
            names.update(dict.fromkeys(dimension_inputs(dim)))
        return tuple(names)

    def dimension(self, name: str) -> DimensionSpec:
        for dim in self.segments:
            if dim.name == name:
                return dim
        raise KeyError(name)

    def _used(self, name: str) -> frozenset[str]:
        sets = [rule.sets for rule in self.routing] + [self.default]
        return frozenset(value for fs in sets if (value := fs.get(name)) is not None)

    @property
    def slas(self) -> frozenset[str]:
        """Every SLA name the mapping can set."""
        return self._used("sla")

    @property
    def groups(self) -> frozenset[str]:
        """Every group name the mapping can set; the service checks they exist in the helpdesk."""
        return self._used("group")


def dimension_inputs(dim: DimensionSpec) -> tuple[str, ...]:
    """The features one dimension reads (manual lists read the customer record, not features)."""
    found = dim.__dict__.get("_inputs")
    if found is None:
        found = _dimension_inputs(dim)
        object.__setattr__(dim, "_inputs", found)  # not a field: equality and repr ignore it
    return found


def _dimension_inputs(dim: DimensionSpec) -> tuple[str, ...]:
    if isinstance(dim, RulesDimension):
        return tuple(dict.fromkeys(name for rule in dim.rules for name in rule.when.names))
    if isinstance(dim, ScoreDimension):
        return tuple(attr for attr, _ in dim.weights)
    if isinstance(dim, PercentileDimension):
        return (dim.metric,)
    if isinstance(dim, RfmDimension):
        return tuple(feature for _, feature in dim.inputs)
    return ()


# --------------------------------------------------------------------------------------------------
# YAML with line numbers.

_MAX_NODES = 100_000
_MAX_YAML_DEPTH = 50  # the deepest real mapping is under ten levels; Python's recursion ends near 300
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"

Path = tuple[str | int, ...]


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Doc:
    """The loaded data's line numbers, and the error factory that uses them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[Path, int] = {}
        self.nodes = 0

    def line(self, path: Path) -> int | None:
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def error(self, path: Path, message: str) -> MappingError:
        return MappingError(message, source=self.source, line=self.line(path), key=_dotted(path) or None)


class _TooDeep(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark | None) -> None:
        super().__init__(f"the mapping is nested too deeply (more than {_MAX_YAML_DEPTH} levels)")
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer stops at a depth no mapping needs: PyYAML composes nested nodes by
    recursion, so ``[[[[...`` a few hundred deep would end in RecursionError (a 500 in the admin)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > _MAX_YAML_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self.depth -= 1


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: Path, doc: _Doc) -> Any:
    """One scalar as YAML reads it; a value YAML's own constructors choke on is a MappingError.

    PyYAML raises plain ValueError for a 2024-02-30 (no such day) or an integer past Python's 4,300
    digits, which would otherwise escape as a 500.
    """
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, OverflowError, TypeError) as exc:
        shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
        kind = node.tag.rsplit(":", 1)[-1]
        if kind == "int":
            reason = f"the number {shown!r} has too many digits"
        elif kind == "timestamp":
            reason = f"{shown!r} reads as a date or time in YAML but is not a real one ({exc}); quote it"
        else:
            reason = f"YAML cannot read {shown!r} as {kind} ({exc})"
        raise MappingError(
            reason, source=doc.source, line=node.start_mark.line + 1, key=_dotted(path) or None
        ) from None


def _load_yaml(text: str, doc: _Doc) -> Any:
    """yaml.safe_load, but keeping each key's line and refusing duplicate keys."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        doc.lines[()] = node.start_mark.line + 1
        return _convert(loader, node, (), doc)
    except _TooDeep as exc:
        raise MappingError(
            str(exc), source=doc.source, line=exc.mark.line + 1 if exc.mark else None
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            context = exc.context
            if exc.context_mark and mark and exc.context_mark.line != mark.line:
                context += f" (from line {exc.context_mark.line + 1})"
            problem = f"{context}: {exc.problem}"
        raise MappingError(
            f"YAML syntax error: {problem}",
            source=doc.source,
            line=mark.line + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else None
        raise MappingError(f"YAML error: {exc}", source=doc.source, line=line) from None
    finally:
        loader.dispose()


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path, doc: _Doc) -> Any:
    doc.nodes += 1
    if doc.nodes > _MAX_NODES:
        raise doc.error(path, f"the mapping is too large (more than {_MAX_NODES:,} YAML nodes)")
    if isinstance(node, yaml.ScalarNode):
        return _construct(loader, node, path, doc)
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ_TAG:
            raise doc.error(path, f"unsupported YAML tag {node.tag}")
        items = []
        for index, item in enumerate(node.value):
            doc.lines[(*path, index)] = item.start_mark.line + 1
            items.append(_convert(loader, item, (*path, index), doc))
        return items
    if isinstance(node, yaml.MappingNode):
        if node.tag != _MAP_TAG:
            raise doc.error(path, f"unsupported YAML tag {node.tag}")
        loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise MappingError("keys must be plain text", source=doc.source, line=line, key=_dotted(path))
            key = _construct(loader, key_node, path, doc)
            if not isinstance(key, str):
                raise MappingError(
                    f"key {key_node.value!r} is read as {type(key).__name__} by YAML; put it in quotes",
                    source=doc.source,
                    line=line,
                    key=_dotted(path) or None,
                )
            child = (*path, key)
            if key in out:
                raise MappingError(
                    f"duplicate key {key!r} (first on line {doc.lines[child]})",
                    source=doc.source,
                    line=line,
                    key=_dotted(child),
                )
            doc.lines[child] = line
            out[key] = _convert(loader, value_node, child, doc)
        return out
    raise doc.error(path, "unsupported YAML node")  # pragma: no cover - yaml has no other kinds


# --------------------------------------------------------------------------------------------------
# Validation: plain data -> records.

# Every key a mapping may use, by where it may appear. Anything else is an error; docs/mapping.md
# documents each of them (tests/test_mapping.py checks).
KEYS: dict[str, tuple[str, ...]] = {
    "top": ("description", "segments", "routing", "default", "tags", "features", "slas"),
    "dimension": ("method", "description", "level", "multiple"),
    "rules": ("rules", "default"),
    "rule": ("when", "then"),
    "score": ("weights", "thresholds", "bands", "missing"),
    "percentile": ("metric", "bands", "default"),
    "rfm": ("recency", "frequency", "monetary", "groups", "default"),
    "manual": ("ids", "emails", "domains", "tags", "label", "deny", "overrides"),
    "deny": ("ids", "emails", "domains", "tags"),
    "routing": ("when", "set", "description"),
    "fields": ROUTED_FIELDS,
    "tags": ("prefix", "routed"),
    "features": ("cost_per_ticket", "cost_attributes"),
    "sla": ("first_response", "resolution"),
}
_RESERVED_DIMENSIONS = frozenset({"sla"})
_BAND_RELATIVE_RE = re.compile(r"(top|bottom)\s+([0-9]+(?:\.[0-9]+)?)\s*%", re.ASCII)
_BAND_NUMBER = r"-?[0-9]+(?:_[0-9]+)*(?:\.[0-9]+)?"
_BAND_COMPARE_RE = re.compile(rf"(<=|>=|<|>|==|!=)\s*({_BAND_NUMBER})", re.ASCII)
_BAND_BETWEEN_RE = re.compile(rf"between\s+({_BAND_NUMBER})\s+and\s+({_BAND_NUMBER})", re.ASCII)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return _quote(value)
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _check_keys(
    doc: _Doc,
    data: dict[str, Any],
    path: Path,
    allowed: Iterable[str],
    required: Iterable[str] = (),
) -> None:
    allowed = tuple(allowed)
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(allowed)}"
            raise doc.error((*path, key), f"unknown key {key!r} ({hint})")
    for key in required:
        if key not in data:
            raise doc.error(path, f"{key!r} is required")


def _mapping_of(doc: _Doc, value: Any, path: Path, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise doc.error(path, f"{what} must be a mapping of keys, got {_describe(value)}")
    return value


def _list_of(doc: _Doc, value: Any, path: Path, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise doc.error(path, f"{what} must be a list, got {_describe(value)}")
    return value


def _number(doc: _Doc, value: Any, path: Path, what: str) -> float:
    if not is_number(value):
        raise doc.error(path, f"{what} must be a number, got {_describe(value)}")
    try:
        return float(value)
    except OverflowError:  # an int of hundreds of digits: no float holds it
        raise doc.error(
            path, f"{what} is too large a number (over {int(value.bit_length() * 0.30103)} digits)"
        ) from None


def _text(doc: _Doc, value: Any, path: Path, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise doc.error(path, f"{what} must be text, got {_describe(value)}")
    return value.strip()


def _label(doc: _Doc, value: Any, path: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise doc.error(path, f"a label must be text (quote it), got {_describe(value)}")
    return value.strip()


def _optional_label(doc: _Doc, data: dict[str, Any], key: str, path: Path) -> str | None:
    value = data.get(key)
    return None if value is None else _label(doc, value, (*path, key))


def _identifier(doc: _Doc, value: str, path: Path, what: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise doc.error(
            path,
            f"{what} {value!r} must be lowercase letters, digits and _ (not starting with a digit)",
        )
    return value


def parse_mapping(text: str, source: str = "<mapping>") -> MappingSpec:
    """Parse YAML text into a validated MappingSpec; ``source`` is the file name used in messages."""
    doc = _Doc(source)
    data = _load_yaml(text, doc)
    if data is None:
        raise doc.error((), "the mapping is empty (it needs at least 'segments')")
    data = _mapping_of(doc, data, (), "the top level")
    _check_keys(doc, data, (), KEYS["top"], required=("segments",))
    tags = _parse_tags(doc, data.get("tags"), ("tags",))
    features = _parse_features(doc, data.get("features"), ("features",))
    segments = _parse_segments(doc, data["segments"], ("segments",))
    routing = _parse_routing(doc, data.get("routing"), ("routing",), segments)
    default = _parse_fieldset(doc, data.get("default"), ("default",), require_one=False)
    description = data.get("description")
    if description is not None:
        description = _text(doc, description, ("description",), "description")
    sla_targets = _parse_slas(doc, data.get("slas"), ("slas",))
    mapping = MappingSpec(
        source=source,
        segments=segments,
        routing=routing,
        default=default,
        tags=tags,
        features=features,
        description=description or "",
        sla_targets=sla_targets,
    )
    _check_tag_collisions(doc, mapping)
    return mapping


_DURATION_PART_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([mhd])", re.ASCII)
_MINUTES = {"m": 1, "h": 60, "d": 1440}


def parse_duration(text: Any) -> int:
    """Minutes in a duration like ``30m``, ``4h``, ``3d`` or ``1h 30m``; ValueError says what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"a duration must be text like 30m, 4h or 3d, got {_describe(text)}")
    pos, total = 0, 0.0
    spec = text.strip().lower()
    while pos < len(spec):
        match = _DURATION_PART_RE.match(spec, pos)
        if match is None:
            raise ValueError(f"a duration must look like 30m, 4h, 3d or 1h 30m, got {_quote(text)}")
        total += float(match.group(1)) * _MINUTES[match.group(2)]
        pos = match.end()
        while pos < len(spec) and spec[pos] == " ":
            pos += 1
    if not spec:
        raise ValueError("a duration must not be empty")
    if total <= 0 or not total.is_integer():
        raise ValueError(f"a duration must be a whole number of minutes above 0, got {_quote(text)}")
    return int(total)


def _parse_slas(doc: _Doc, value: Any, path: Path) -> dict[str, SlaTarget]:
    if value is None:
        return {}
    data = _mapping_of(doc, value, path, "slas")
    out: dict[str, SlaTarget] = {}
    for name, raw in data.items():
        sla_path = (*path, name)
        _text(doc, name, sla_path, "an SLA name")
        raw = _mapping_of(doc, raw, sla_path, f"SLA {name}")
        _check_keys(doc, raw, sla_path, KEYS["sla"])
        if not raw:
            raise doc.error(sla_path, "name at least one of first_response, resolution")
        minutes: dict[str, int | None] = {}
        for key in KEYS["sla"]:
            if raw.get(key) is None:
                minutes[key] = None
                continue
            try:
                minutes[key] = parse_duration(raw[key])
            except ValueError as exc:
                raise doc.error((*sla_path, key), str(exc)) from None
        first, resolution = minutes["first_response"], minutes["resolution"]
        if first is not None and resolution is not None and first > resolution:
            raise doc.error(
                (*sla_path, "first_response"),
                f"first_response ({format_minutes(first)}) is longer than resolution "
                f"({format_minutes(resolution)})",
            )
        out[name] = SlaTarget(first, resolution)
    return out


def _parse_tags(doc: _Doc, value: Any, path: Path) -> TagSpec:
    if value is None:
        return TagSpec()
    data = _mapping_of(doc, value, path, "tags")
    _check_keys(doc, data, path, KEYS["tags"])
    found = {}
    for key in KEYS["tags"]:
        if key in data:
            tag = _text(doc, data[key], (*path, key), key)
            if not _TAG_RE.fullmatch(tag):
                raise doc.error((*path, key), f"{key} {tag!r} may only use a-z, 0-9 and _")
            found[key] = tag
    return TagSpec(**found)


def _parse_features(doc: _Doc, value: Any, path: Path) -> FeatureSpec:
    if value is None:
        return FeatureSpec()
    data = _mapping_of(doc, value, path, "features")
    _check_keys(doc, data, path, KEYS["features"])
    spec = FeatureSpec()
    if "cost_per_ticket" in data:
        cost = _number(doc, data["cost_per_ticket"], (*path, "cost_per_ticket"), "cost_per_ticket")
        if cost < 0:
            raise doc.error((*path, "cost_per_ticket"), "cost_per_ticket must not be negative")
        spec = FeatureSpec(cost_per_ticket=cost, cost_attributes=spec.cost_attributes)
    if data.get("cost_attributes") is not None:
        attrs_path = (*path, "cost_attributes")
        items = _list_of(doc, data["cost_attributes"], attrs_path, "cost_attributes")
        names = []
        for index, item in enumerate(items):
            item_path = (*attrs_path, index)
            names.append(
                _identifier(doc, _text(doc, item, item_path, "an attribute"), item_path, "attribute")
            )
        spec = FeatureSpec(cost_per_ticket=spec.cost_per_ticket, cost_attributes=tuple(dict.fromkeys(names)))
    return spec


def _parse_segments(doc: _Doc, value: Any, path: Path) -> tuple[DimensionSpec, ...]:
    data = _mapping_of(doc, value, path, "segments")
    dims: list[DimensionSpec] = []
    for name, raw in data.items():
        dim_path = (*path, name)
        _identifier(doc, name, dim_path, "a dimension name")
        if name in _RESERVED_DIMENSIONS:
            raise doc.error(dim_path, f"{name!r} is reserved (it would clash with SLA tags)")
        raw = _mapping_of(doc, raw, dim_path, f"dimension {name}")
        method = raw.get("method")
        if method not in METHODS:
            every_key = {key for method in METHODS for key in KEYS[method]}
            _check_keys(doc, raw, dim_path, KEYS["dimension"] + tuple(sorted(every_key)))
            raise doc.error(
                (*dim_path, "method") if "method" in raw else dim_path,
                f"method must be one of {', '.join(METHODS)}, got {_describe(method)}",
            )
        _check_keys(doc, raw, dim_path, KEYS["dimension"] + KEYS[method])
        description = raw.get("description")
        if description is not None:
            description = _text(doc, description, (*dim_path, "description"), "description")
        parse = _DIM_PARSERS[method]
        dim = parse(doc, name, raw, dim_path, description or "")
        level = raw.get("level", "customer")
        if level not in LEVELS:
            raise doc.error(
                (*dim_path, "level"), f"level must be customer or organization, got {_describe(level)}"
            )
        multiple = raw.get("multiple", "best")
        if multiple not in MULTIPLE:
            raise doc.error(
                (*dim_path, "multiple"), f"multiple must be best or first, got {_describe(multiple)}"
            )
        if "multiple" in raw and level != "organization":
            raise doc.error((*dim_path, "multiple"), "multiple only applies to level: organization")
        if level == "organization" and isinstance(dim, ManualDimension) and (dim.emails or dim.deny.emails):
            raise doc.error(
                (*dim_path, "emails" if dim.emails else "deny"),
                "organizations have no email address: use ids, domains or tags at level organization",
            )
        dims.append(dataclasses.replace(dim, level=level, multiple=multiple))
    _check_overrides(doc, dims, path)
    return tuple(dims)


def _check_overrides(doc: _Doc, dims: list[DimensionSpec], path: Path) -> None:
    """An override must name another dimension and a label that dimension can produce (or null)."""
    labels = {dim.name: dim.labels for dim in dims}
    for dim in dims:
        if not isinstance(dim, ManualDimension):
            continue
        for target, label in dim.overrides:
            key_path = (*path, dim.name, "overrides", target)
            if target == dim.name:
                raise doc.error(key_path, "a dimension cannot override itself")
            if target not in labels:
                raise doc.error(key_path, f"unknown dimension {target!r} (dimensions: {', '.join(labels)})")
            if label is not None and label not in labels[target]:
                can_be = ", ".join(labels[target]) or "no label"
                raise doc.error(
                    key_path, f"unknown label {label!r} for dimension {target} (it can be: {can_be})"
                )


def _parse_rules_dim(
    doc: _Doc, name: str, raw: dict[str, Any], path: Path, description: str
) -> RulesDimension:
    if "rules" not in raw:
        raise doc.error(path, "'rules' is required for method rules")
    items = _list_of(doc, raw["rules"], (*path, "rules"), "rules")
    if not items:
        raise doc.error((*path, "rules"), "rules must list at least one rule")
    rules = []
    for index, item in enumerate(items):
        rule_path = (*path, "rules", index)
        item = _mapping_of(doc, item, rule_path, "a rule")
        _check_keys(doc, item, rule_path, KEYS["rule"], required=("when", "then"))
        when = _expression(doc, item["when"], (*rule_path, "when"))
        rules.append(Rule(when=when, then=_label(doc, item["then"], (*rule_path, "then"))))
    default = _optional_label(doc, raw, "default", path)
    return RulesDimension(name, tuple(rules), default=default, description=description)


def _expression(doc: _Doc, value: Any, path: Path) -> Expression:
    return parse_expression(value, source=doc.source, line=doc.line(path), key=_dotted(path))


def _parse_score_dim(
    doc: _Doc, name: str, raw: dict[str, Any], path: Path, description: str
) -> ScoreDimension:
    for key in ("weights", "bands"):
        if key not in raw:
            raise doc.error(path, f"{key!r} is required for method score")
    weights_path = (*path, "weights")
    weights_raw = _mapping_of(doc, raw["weights"], weights_path, "weights")
    if not weights_raw:
        raise doc.error(weights_path, "weights must name at least one attribute")
    weights: list[tuple[str, float]] = []
    for attr, weight in weights_raw.items():
        attr_path = (*weights_path, attr)
        _identifier(doc, attr, attr_path, "an attribute name")
        number = _number(doc, weight, attr_path, "weight")
        if number <= 0:
            raise doc.error(attr_path, "weight must be greater than 0 (remove the attribute instead)")
        weights.append((attr, number))
    total = sum(weight for _, weight in weights)
    weights = [(attr, weight / total) for attr, weight in weights]

    thresholds: list[tuple[str, tuple[float, ...]]] = []
    if raw.get("thresholds") is not None:
        th_path = (*path, "thresholds")
        th_raw = _mapping_of(doc, raw["thresholds"], th_path, "thresholds")
        for attr, cuts in th_raw.items():
            attr_path = (*th_path, attr)
            if attr not in weights_raw:
                raise doc.error(attr_path, f"{attr!r} has thresholds but no weight")
            cuts = _list_of(doc, cuts, attr_path, "thresholds")
            if len(cuts) != 9:
                raise doc.error(
                    attr_path,
                    f"thresholds need exactly 9 ascending cut-offs (scores 2..10), got {len(cuts)}",
                )
            numbers = tuple(_number(doc, cut, (*attr_path, i), "a threshold") for i, cut in enumerate(cuts))
            if any(b < a for a, b in zip(numbers, numbers[1:], strict=False)):
                raise doc.error(attr_path, "thresholds must be in ascending order")
            thresholds.append((attr, numbers))

    bands_path = (*path, "bands")
    bands_raw = _mapping_of(doc, raw["bands"], bands_path, "bands")
    if not bands_raw:
        raise doc.error(bands_path, "bands must name at least one label")
    bands: list[tuple[str, float]] = []
    for label, cut in bands_raw.items():
        band_path = (*bands_path, label)
        label = _label(doc, label, band_path)
        number = _number(doc, cut, band_path, "a band cut-off")
        if not 0 <= number <= 10:
            raise doc.error(band_path, f"a band cut-off must be between 0 and 10, got {cut!r}")
        if any(number == other for _, other in bands):
            raise doc.error(band_path, f"two bands share the cut-off {format_number(number)}")
        bands.append((label, number))
    bands.sort(key=lambda band: -band[1])

    missing = raw.get("missing", "skip")
    if missing not in ("skip", "low"):
        raise doc.error((*path, "missing"), f"missing must be skip or low, got {_describe(missing)}")
    return ScoreDimension(
        name,
        weights=tuple(weights),
        bands=tuple(bands),
        thresholds=tuple(thresholds),
        missing=missing,
        description=description,
    )


def _parse_band(doc: _Doc, label: str, text: Any, metric: str, path: Path) -> Band:
    if not isinstance(text, str):
        raise doc.error(
            path,
            "a band must be text like 'top 20%', 'bottom 10%', '< 0' or 'between 0 and 100', "
            f"got {_describe(text)}",
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
            "a band must look like 'top 20%', 'bottom 10%', '< 0' or 'between 0 and 100', "
            f"got {_quote(text)}",
        )
    return Band(label, spec, "compare", test=Expression(f"{metric} {spec}", tree, _compile(tree)))


def _band_literal(text: str) -> Literal:
    clean = text.replace("_", "")
    value: float | int = float(clean) if "." in clean else int(clean)
    return Literal(value, text)


def _parse_percentile_dim(
    doc: _Doc, name: str, raw: dict[str, Any], path: Path, description: str
) -> PercentileDimension:
    for key in ("metric", "bands"):
        if key not in raw:
            raise doc.error(path, f"{key!r} is required for method percentile")
    metric = _text(doc, raw["metric"], (*path, "metric"), "metric")
    _identifier(doc, metric, (*path, "metric"), "metric")
    bands_path = (*path, "bands")
    bands_raw = _mapping_of(doc, raw["bands"], bands_path, "bands")
    if not bands_raw:
        raise doc.error(bands_path, "bands must name at least one label")
    bands = tuple(
        _parse_band(doc, _label(doc, label, (*bands_path, label)), spec, metric, (*bands_path, label))
        for label, spec in bands_raw.items()
    )
    default = _optional_label(doc, raw, "default", path)
    return PercentileDimension(name, metric, bands, default=default, description=description)


def _string_list(doc: _Doc, raw: dict[str, Any], key: str, path: Path) -> list[tuple[str, Path]]:
    if raw.get(key) is None:
        return []
    items = _list_of(doc, raw[key], (*path, key), key)
    out = []
    for index, item in enumerate(items):
        item_path = (*path, key, index)
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise doc.error(item_path, f"expected text, got {_describe(item)}")
        text = str(item).strip()
        if not text:
            raise doc.error(item_path, "an entry must not be empty")
        out.append((text, item_path))
    return out


def _match_list(doc: _Doc, raw: dict[str, Any], path: Path) -> MatchList:
    ids = [text for text, _ in _string_list(doc, raw, "ids", path)]
    emails = []
    for text, item_path in _string_list(doc, raw, "emails", path):
        if text.count("@") != 1 or text.startswith("@") or text.endswith("@"):
            raise doc.error(item_path, f"{text!r} is not an email address")
        emails.append(text.lower())
    domains = []
    for text, item_path in _string_list(doc, raw, "domains", path):
        domain = text.lower().removeprefix("@")
        if not domain or "@" in domain or " " in domain:
            raise doc.error(item_path, f"{text!r} is not a domain name")
        domains.append(domain)
    tags = [text.lower() for text, _ in _string_list(doc, raw, "tags", path)]
    return MatchList(
        ids=tuple(dict.fromkeys(ids)),
        emails=tuple(dict.fromkeys(emails)),
        domains=tuple(dict.fromkeys(domains)),
        tags=tuple(dict.fromkeys(tags)),
    )


def _parse_manual_dim(
    doc: _Doc, name: str, raw: dict[str, Any], path: Path, description: str
) -> ManualDimension:
    allow = _match_list(doc, raw, path)
    label = raw.get("label", "vip")
    label = _label(doc, label, (*path, "label"))
    deny = MatchList()
    if raw.get("deny") is not None:
        deny_path = (*path, "deny")
        deny_raw = _mapping_of(doc, raw["deny"], deny_path, "deny")
        _check_keys(doc, deny_raw, deny_path, KEYS["deny"])
        deny = _match_list(doc, deny_raw, deny_path)
    overrides: list[tuple[str, str | None]] = []
    if raw.get("overrides") is not None:
        over_path = (*path, "overrides")
        over_raw = _mapping_of(doc, raw["overrides"], over_path, "overrides")
        for target, forced in over_raw.items():
            target_path = (*over_path, target)
            _identifier(doc, target, target_path, "a dimension name")
            overrides.append((target, None if forced is None else _label(doc, forced, target_path)))
    return ManualDimension(
        name,
        ids=allow.ids,
        emails=allow.emails,
        domains=allow.domains,
        tags=allow.tags,
        label=label,
        description=description,
        deny=deny,
        overrides=tuple(overrides),
    )


def _parse_rfm_dim(doc: _Doc, name: str, raw: dict[str, Any], path: Path, description: str) -> RfmDimension:
    picked: dict[str, str] = {}
    for key in ("recency", "frequency", "monetary"):
        if raw.get(key) is not None:
            feature = _text(doc, raw[key], (*path, key), key)
            picked[key] = _identifier(doc, feature, (*path, key), key)
    groups: list[Rule] = []
    if raw.get("groups") is None:
        for label, text in DEFAULT_RFM_GROUPS:
            groups.append(Rule(parse_expression(text, source="<default rfm groups>"), label))
    else:
        groups_path = (*path, "groups")
        groups_raw = _mapping_of(doc, raw["groups"], groups_path, "groups")
        if not groups_raw:
            raise doc.error(groups_path, "groups must name at least one group")
        for label, text in groups_raw.items():
            group_path = (*groups_path, label)
            label = _label(doc, label, group_path)
            when = _expression(doc, text, group_path)
            unknown = [n for n in when.names if n not in RFM_SCORES]
            if unknown:
                raise doc.error(
                    group_path,
                    f"unknown name {unknown[0]!r} in an RFM group (use r, f and m: the scores 1-5)",
                )
            groups.append(Rule(when, label))
    default = _optional_label(doc, raw, "default", path)
    return RfmDimension(name, groups=tuple(groups), default=default, description=description, **picked)


_DIM_PARSERS: dict[str, Callable[[_Doc, str, dict[str, Any], Path, str], DimensionSpec]] = {
    "rules": _parse_rules_dim,
    "score": _parse_score_dim,
    "percentile": _parse_percentile_dim,
    "rfm": _parse_rfm_dim,
    "manual": _parse_manual_dim,
}


def _parse_fieldset(doc: _Doc, value: Any, path: Path, *, require_one: bool) -> FieldSet:
    if value is None and not require_one:
        return FieldSet()
    data = _mapping_of(doc, value, path, _dotted(path))
    _check_keys(doc, data, path, KEYS["fields"])
    if require_one and not data:
        raise doc.error(path, "set must name at least one of priority, sla, group")
    found = {}
    for key, raw in data.items():
        found[key] = _text(doc, raw, (*path, key), key)
    priority = found.get("priority")
    if priority is not None:
        priority = priority.lower()
        if priority not in PRIORITIES:
            raise doc.error(
                (*path, "priority"),
                f"priority must be one of {', '.join(PRIORITIES)}, got {_quote(found['priority'])}",
            )
    return FieldSet(priority=priority, sla=found.get("sla"), group=found.get("group"))


def _parse_routing(
    doc: _Doc, value: Any, path: Path, segments: tuple[DimensionSpec, ...]
) -> tuple[RoutingRule, ...]:
    if value is None:
        return ()
    items = _list_of(doc, value, path, "routing")
    labels = {dim.name: dim.labels for dim in segments}
    rules = []
    for index, item in enumerate(items):
        rule_path = (*path, index)
        item = _mapping_of(doc, item, rule_path, "a routing rule")
        _check_keys(doc, item, rule_path, KEYS["routing"], required=("when", "set"))
        when_path = (*rule_path, "when")
        raw_when = item["when"]
        when: tuple[DimensionCondition, ...] | Expression
        if isinstance(raw_when, str):
            when = _expression(doc, raw_when, when_path)
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
                f"got {_describe(raw_when)}",
            )
        sets = _parse_fieldset(doc, item["set"], (*rule_path, "set"), require_one=True)
        description = item.get("description")
        if description is not None:
            description = _text(doc, description, (*rule_path, "description"), "description")
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


def _known_label(doc: _Doc, dim: str, label: Any, path: Path, labels: dict[str, tuple[str, ...]]) -> str:
    if not isinstance(label, str):
        raise doc.error(
            path,
            f"expected a label of {dim}, a list of labels, true or false; got {_describe(label)}",
        )
    if label not in labels[dim]:
        can_be = ", ".join(labels[dim]) or "no label"
        raise doc.error(path, f"unknown label {label!r} for dimension {dim} (it can be: {can_be})")
    return label


def _dimension_condition(
    doc: _Doc, dim: str, want: Any, path: Path, labels: dict[str, tuple[str, ...]]
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


def _check_expression_labels(doc: _Doc, node: Node, path: Path, labels: dict[str, tuple[str, ...]]) -> None:
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


def _check_routed_marker(doc: _Doc, mapping: MappingSpec) -> None:
    """Every ticket carrying the routed marker is skipped as "already routed", so the marker must be a tag
    only tierdesk writes: inside tierdesk's namespace (the tag prefix, or ``tierdesk_``) and none of the
    tags the mapping itself reads. A marker like ``vip``, which agents and triggers put on tickets,
    would switch routing off for every such ticket."""
    routed, prefix = mapping.tags.routed, mapping.tags.prefix
    path = ("tags", "routed")
    namespaces = tuple(dict.fromkeys((f"{prefix}_", "tierdesk_")))
    if not routed.startswith(namespaces) or routed in namespaces:
        owned = " or ".join(f"'{n}...'" for n in namespaces)
        raise doc.error(
            path,
            f"the routed marker {routed!r} must be a tag only tierdesk writes, spelled {owned} "
            "(every ticket carrying it is skipped as already routed, so a tag agents or triggers use, "
            "like 'vip', would switch routing off for those tickets)",
        )
    for dim in mapping.segments:
        if isinstance(dim, ManualDimension) and routed in dim.tag_set | dim.deny.tag_set:
            raise doc.error(
                path,
                f"the routed marker {routed!r} is a tag segment {dim.name} reads from customers; "
                "pick a tag only tierdesk writes",
            )


def _check_tag_collisions(doc: _Doc, mapping: MappingSpec) -> None:
    """Two labels spelled into the same tag would be indistinguishable in the helpdesk."""
    _check_routed_marker(doc, mapping)
    seen: dict[str, str] = {mapping.tags.routed: "the routed marker"}
    for dim in mapping.segments:
        for label in dim.labels:
            tag = mapping.tags.segment_tag(dim.name, label)
            what = f"{dim.name} {label}"
            if tag in seen:
                raise doc.error(("segments", dim.name), f"label {what} gives tag {tag}, same as {seen[tag]}")
            seen[tag] = what
    for sla in sorted(mapping.slas):
        tag = mapping.tags.sla_tag(sla)
        if tag in seen and seen[tag] != f"SLA {sla}":
            raise doc.error(("default",), f"SLA {sla} gives tag {tag}, same as {seen[tag]}")
        seen[tag] = f"SLA {sla}"
