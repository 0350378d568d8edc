"""Number and value formatting, shared by reasons everywhere so they all read the same."""

from __future__ import annotations

import math
from typing import TypeGuard

from integration.core.models import Value

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
    return quote(str(value))


def quote(text: str) -> str:
    """Text in single quotes, as messages and explanations show it (quotes inside escaped)."""
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


def format_minutes(minutes: int) -> str:
    """A duration for people: 90 -> '1h 30m', 1440 -> '1d', 2160 -> '1d 12h'."""
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (mins, "m")) if n]
    return " ".join(parts) or "0m"
