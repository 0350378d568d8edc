"""The condition language's parser: a tokenizer and a recursive descent that build the tree of
conditions.py. Every problem becomes a MappingError naming the token and its column."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from integration.core.mapping.conditions import (
    And,
    Between,
    Compare,
    Expression,
    InList,
    IsMissing,
    Literal,
    Name,
    Node,
    Not,
    Operand,
    Or,
    Truth,
)
from integration.core.mapping.errors import MappingError
from integration.core.mapping.formatting import quote

NAME_RE = re.compile(r"[a-z_][a-z0-9_]*", re.ASCII)  # attribute, dimension and mapping key names
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
            raise _ExprError(f"unexpected token {quote(text[pos])} at column {column}")
        kind = match.lastgroup
        raw = match.group()
        if kind == "space":
            pass
        elif kind == "number":
            tokens.append(_number_token(raw, column))
        elif kind == "word":
            if raw in _KEYWORDS:
                tokens.append(_Token("kw", raw, column))
            elif NAME_RE.fullmatch(raw):
                tokens.append(_Token("name", raw, column))
            else:
                raise _ExprError(
                    f"unexpected token {quote(raw)} at column {column} (names and keywords are lowercase)"
                )
        elif kind == "string":
            value, end = _scan_string(text, pos)
            tokens.append(_Token("string", text[pos:end], column, value))
            pos = end
            continue
        elif kind == "op":
            if raw not in _COMPARISONS:
                hint = " (use ==)" if raw == "=" else ""
                raise _ExprError(f"unexpected token {quote(raw)} at column {column}{hint}")
            tokens.append(_Token("op", raw, column))
        else:
            tokens.append(_Token("punct", raw, column))
        pos = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _number_token(raw: str, column: int) -> _Token:
    match = _NUMBER_RE.fullmatch(raw)
    if match is None:
        raise _ExprError(f"unexpected token {quote(raw)} at column {column} (not a number)")
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
            raise self.unexpected(f"expected {quote(text)}")
        return self.advance()

    def unexpected(self, expected: str | None = None) -> _ExprError:
        token = self.peek()
        if token.kind == "end":
            message = "unexpected end of expression"
        else:
            message = f"unexpected token {quote(token.text)} at column {token.column}"
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
        raise _ExprError(f"expected a comparison after {quote(start.text)} at column {start.column}")

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
    return Expression.build(text, tree)
