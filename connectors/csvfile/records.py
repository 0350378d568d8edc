"""An export's rows as our records, every cell checked before anything is stored.

The errors name file, line and column (``billing.csv:17: column revenue: 'abc' is not a number``),
up to twenty of them at once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.csvfile.spec import FIELD_TYPES, CsvError, FileSpec
from integration.core.models import Customer, Organization, Purchase, Value

MAX_ERRORS = 20
_NUMBER = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?$")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def _rows(spec: FileSpec, data: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, row) for every row: "billing.csv:17" (physical line) or "crm.json: record 3"."""
    label = spec.path.name
    text = data.decode("utf-8-sig")
    suffix = spec.path.suffix.lower()
    if suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise CsvError(f"{label}:{number}: not valid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise CsvError(f"{label}:{number}: expected a JSON object")
            yield f"{label}:{number}", row
        return
    if suffix == ".json":
        try:
            loaded = json.loads(text)
        except ValueError as e:
            raise CsvError(f"{label}:{e.lineno}: not valid JSON ({e.msg})") from e
        records = loaded.get("records") if isinstance(loaded, dict) else loaded
        if not isinstance(records, list):
            raise CsvError(f'{label}: expected an array of objects (or {{"records": [...]}})')
        for number, row in enumerate(records, start=1):
            if not isinstance(row, dict):
                raise CsvError(f"{label}: record {number}: expected an object")
            yield f"{label}: record {number}", row
        return
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=spec.delimiter)
    header = reader.fieldnames or []
    wanted = list(spec.columns.values()) + [c.column for c in spec.attributes.values()]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise CsvError(
            f"{label}:1: column(s) {', '.join(repr(c) for c in missing)} not in the header "
            f"(it has: {', '.join(header) or 'nothing'})"
        )
    previous = reader.line_num  # the header's last line
    for row in reader:
        yield f"{label}:{previous + 1}", row  # where the row starts, even if a quoted cell spans lines
        previous = reader.line_num


class _Checker:
    """Converts cells to typed values, collecting errors instead of stopping at the first."""

    def __init__(self, spec: FileSpec) -> None:
        self.spec = spec
        self.errors: list[str] = []

    def fail(self, where: str, column: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{where}: column {column}: {message}")

    def cell(self, where: str, row: Mapping[str, Any], column: str, kind: str, required: bool = False) -> Any:
        raw = row.get(column)
        if isinstance(raw, str):
            raw = raw.strip()
        if raw is None or raw == "":
            if required:
                self.fail(where, column, "value is missing")
            return None
        try:
            return self.convert(raw, kind)
        except ValueError as e:
            self.fail(where, column, str(e))
            return None

    def convert(self, raw: Any, kind: str) -> Value:
        if kind == "text":
            return str(raw)
        if kind in ("number", "integer"):
            if isinstance(raw, bool):
                raise ValueError(f"{raw!r} is not a number")
            if isinstance(raw, int | float):
                number = float(raw)
            else:
                text = str(raw).replace(" ", "").replace("\u00a0", "")
                if self.spec.decimal == ",":
                    text = text.replace(".", "").replace(",", ".")
                if not _NUMBER.match(text) or text in ("", "+", "-"):
                    raise ValueError(f"{raw!r} is not a number")
                number = float(text.replace(",", ""))
            if kind == "integer":
                if not number.is_integer():
                    raise ValueError(f"{raw!r} is not a whole number")
                return int(number)
            return number
        if kind == "boolean":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"{raw!r} is not true or false")
        if kind == "date":
            return _date(str(raw), self.spec.date_format).isoformat()
        raise ValueError(f"unknown type {kind}")


def _date(text: str, date_format: str | None) -> datetime:
    try:
        parsed = (
            datetime.strptime(text, date_format)  # noqa: DTZ007 - made aware below
            if date_format
            else datetime.fromisoformat(text.replace("Z", "+00:00"))
        )
    except ValueError as e:
        expected = date_format or "an ISO 8601 date"
        raise ValueError(f"{text!r} is not a date ({expected})") from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _row_id(values: Mapping[str, Any], seen: dict[str, int]) -> str:
    """An id for a row without an id column: its content, plus its occurrence among identical rows."""
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]
    seen[digest] = seen.get(digest, 0) + 1
    return f"{digest}-{seen[digest]}"


@dataclass(frozen=True)
class Parsed:
    customers: list[Customer]
    organizations: list[Organization]
    purchases: list[Purchase]


def parse(spec: FileSpec, data: bytes) -> Parsed:
    """Every row of an export as our records; raises CsvError listing every bad cell (up to 20)."""
    check = _Checker(spec)
    cols = spec.columns
    customers: dict[str, Customer] = {}
    organizations: dict[str, Organization] = {}
    purchases: list[Purchase] = []
    seen: dict[str, int] = {}
    ids: set[str] = set()

    def value(where: str, row: Mapping[str, Any], field_name: str, required: bool = False) -> Any:
        if field_name not in cols:
            return None
        return check.cell(where, row, cols[field_name], FIELD_TYPES.get(field_name, "text"), required)

    for where, row in _rows(spec, data):
        if spec.kind == "purchases":
            amount = value(where, row, "amount", required=True)
            when = value(where, row, "date", required=True)
            email = value(where, row, "email")
            customer_id = value(where, row, "customer_id") or (email.strip().casefold() if email else None)
            if customer_id is None:
                check.fail(where, cols.get("customer_id") or cols["email"], "value is missing")
                continue
            row_id = value(where, row, "id") or _row_id(
                {"customer": customer_id, "amount": amount, "date": when}, seen
            )
            if row_id in ids:
                check.fail(where, cols.get("id", "id"), f"{row_id!r} appears twice")
            ids.add(row_id)
            if amount is None or when is None:
                continue
            previous = customers.get(customer_id)
            if previous is None or not (previous.email and previous.name):
                customers[customer_id] = Customer(  # the first row that names a value wins
                    source=spec.name,
                    external_id=customer_id,
                    email=(previous.email if previous else None) or email,
                    name=(previous.name if previous else None) or value(where, row, "name"),
                )
            purchases.append(
                Purchase(
                    spec.name,
                    row_id,
                    float(amount),
                    datetime.fromisoformat(when),
                    customer_ids=(customer_id,),
                )
            )
            continue
        attributes = {name: check.cell(where, row, c.column, c.type) for name, c in spec.attributes.items()}
        created = value(where, row, "created_at")
        tags = value(where, row, "tags")
        tag_list = tuple(t for t in re.split(r"[\s,;]+", tags) if t) if tags else ()
        if spec.kind == "customers":
            email = value(where, row, "email")
            record_id = value(where, row, "id") or (email.strip().casefold() if email else None)
            if record_id is None:
                check.fail(where, cols.get("id") or cols["email"], "value is missing")
                continue
            if record_id in customers:
                check.fail(where, cols.get("id") or cols["email"], f"{record_id!r} appears twice")
            customers[record_id] = Customer(
                source=spec.name,
                external_id=record_id,
                email=email,
                name=value(where, row, "name"),
                tags=tag_list,
                created_at=datetime.fromisoformat(created) if created else None,
                attributes=attributes,
            )
        else:
            domain = value(where, row, "domain")
            record_id = value(where, row, "id") or (domain.strip().casefold() if domain else None)
            if record_id is None:
                check.fail(where, cols.get("id") or cols["domain"], "value is missing")
                continue
            if record_id in organizations:
                check.fail(where, cols.get("id") or cols["domain"], f"{record_id!r} appears twice")
            organizations[record_id] = Organization(
                source=spec.name,
                external_id=record_id,
                name=value(where, row, "name"),
                domains=(domain,) if domain else (),
                tags=tag_list,
                created_at=datetime.fromisoformat(created) if created else None,
                attributes=attributes,
            )
    if check.errors:
        more = "" if len(check.errors) < MAX_ERRORS else f"\n(stopped after {MAX_ERRORS} errors)"
        raise CsvError("\n".join(check.errors) + more)
    return Parsed(list(customers.values()), list(organizations.values()), purchases)
