"""Checks on the plain data of a mapping, each naming file, line and dotted key when it fails.

Shared by the document's parser (parsing.py) and each segmentation method's parser
(integration/core/segments/<method>.py), so every message reads the same.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from integration.core.mapping.condition_parser import NAME_RE, parse_expression
from integration.core.mapping.conditions import Expression
from integration.core.mapping.formatting import is_number, quote
from integration.core.mapping.loading import Doc, Path, dotted


def describe(value: Any) -> str:
    """A value as a message shows what was found instead: text quoted, a mapping, a list, nothing."""
    if isinstance(value, str):
        return quote(value)
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def check_keys(
    doc: Doc,
    data: dict[str, Any],
    path: Path,
    allowed: Iterable[str],
    required: Iterable[str] = (),
) -> None:
    """Unknown keys are errors (with the closest known one), so a typo never switches a rule off."""
    allowed = tuple(allowed)
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(allowed)}"
            raise doc.error((*path, key), f"unknown key {key!r} ({hint})")
    for key in required:
        if key not in data:
            raise doc.error(path, f"{key!r} is required")


def mapping_of(doc: Doc, value: Any, path: Path, what: str) -> dict[str, Any]:
    """``value`` as a mapping of keys, or the error saying ``what`` had to be one."""
    if not isinstance(value, dict):
        raise doc.error(path, f"{what} must be a mapping of keys, got {describe(value)}")
    return value


def list_of(doc: Doc, value: Any, path: Path, what: str) -> list[Any]:
    """``value`` as a list, or the error saying ``what`` had to be one."""
    if not isinstance(value, list):
        raise doc.error(path, f"{what} must be a list, got {describe(value)}")
    return value


def number_of(doc: Doc, value: Any, path: Path, what: str) -> float:
    """``value`` as a float (bools are no numbers), or the error; an int too large for a float too."""
    if not is_number(value):
        raise doc.error(path, f"{what} must be a number, got {describe(value)}")
    try:
        return float(value)
    except OverflowError:  # an int of hundreds of digits: no float holds it
        raise doc.error(
            path, f"{what} is too large a number (over {int(value.bit_length() * 0.30103)} digits)"
        ) from None


def text_of(doc: Doc, value: Any, path: Path, what: str) -> str:
    """Non-empty text, stripped, or the error."""
    if not isinstance(value, str) or not value.strip():
        raise doc.error(path, f"{what} must be text, got {describe(value)}")
    return value.strip()


def label_of(doc: Doc, value: Any, path: Path) -> str:
    """A label: non-empty text (YAML reads an unquoted 1 or yes as something else), stripped."""
    if not isinstance(value, str) or not value.strip():
        raise doc.error(path, f"a label must be text (quote it), got {describe(value)}")
    return value.strip()


def optional_label(doc: Doc, data: dict[str, Any], key: str, path: Path) -> str | None:
    """The label under ``key``, or None when the key is absent or null."""
    value = data.get(key)
    return None if value is None else label_of(doc, value, (*path, key))


def identifier(doc: Doc, value: str, path: Path, what: str) -> str:
    """A name conditions can read: lowercase letters, digits and _, not starting with a digit."""
    if not NAME_RE.fullmatch(value):
        raise doc.error(
            path,
            f"{what} {value!r} must be lowercase letters, digits and _ (not starting with a digit)",
        )
    return value


def expression_at(doc: Doc, value: Any, path: Path) -> Expression:
    """A condition parsed with its file, line and key, so its errors say where it stands."""
    return parse_expression(value, source=doc.source, line=doc.line(path), key=dotted(path))
