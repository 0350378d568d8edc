"""CSV and JSON exports (billing systems, CRMs without an API): a pull-only source per file.

Which column means what is declared in a mapping file (TIERDESK_CSV_MAPPING, YAML; docs/connectors.md
"CSV files" has the full reference)::

    files:
      billing:                      # the source name: records become billing:user:..., billing:purchase:...
        path: exports/billing.csv   # relative to the mapping file; .csv, .json (array) or .jsonl
        kind: purchases             # purchases | customers | organizations
        columns:                    # our field -> the file's column
          id: invoice_id
          email: customer_email
          amount: revenue
          date: paid_on
        date_format: "%d.%m.%Y"     # optional (default ISO 8601)
      crm:
        path: crm.csv
        kind: customers
        columns: {id: customer_id, email: email, name: full_name, created_at: signup_date}
        attributes:                 # more columns -> customer attributes, with a type
          referrals: {column: refs, type: integer}
          plan: plan                # text unless a type is given
          zendesk_id: zd_user       # an id attribute: links the row to zendesk:user:<value>

Why a whole file at once: an export is a snapshot. Every row is checked before anything is stored (the
errors name file, line and column: ``billing.csv:17: column revenue: 'abc' is not a number``), the file's
digest is the cursor (the same file again changes nothing), and after a changed file is imported, records
it no longer has are forgotten (sync.pull sweeps snapshot sources).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from connectors.base import Batch, WebhookRejected
from integration.core.models import Customer, Organization, Purchase, TicketEvent, Value

KINDS = {
    # kind -> (required fields, optional fields); one of the fields in each required tuple must be mapped
    "purchases": ((("amount",), ("date",), ("email", "customer_id")), ("id", "name")),
    "customers": ((("id", "email"),), ("name", "created_at", "tags")),
    "organizations": ((("id", "domain"),), ("name", "created_at", "tags")),
}
STREAMS = {"purchases": ("users", "purchases"), "customers": ("users",), "organizations": ("organizations",)}
TYPES = ("text", "number", "integer", "date", "boolean")
FIELD_TYPES = {"amount": "number", "date": "date", "created_at": "date"}
RESERVED = frozenset({"zendesk", "freshdesk", "hubspot"})
BATCH_SIZE = 1000
MAX_ERRORS = 20
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_NUMBER = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?$")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


class CsvError(ValueError):
    """A mapping or an export we cannot use; the message names the file, the line and the column."""


@dataclass(frozen=True)
class Column:
    column: str
    type: str = "text"


@dataclass(frozen=True)
class FileSpec:
    """One export, as the mapping file declares it."""

    name: str
    path: Path
    kind: str
    columns: Mapping[str, str]  # our field -> file column
    attributes: Mapping[str, Column] = field(default_factory=dict)
    date_format: str | None = None
    delimiter: str = ","
    decimal: str = "."

    @property
    def digest(self) -> str:
        """What the import depends on besides the file: a changed mapping re-imports the file."""
        described = json.dumps(
            {
                "kind": self.kind,
                "columns": dict(self.columns),
                "attributes": {k: [v.column, v.type] for k, v in self.attributes.items()},
                "date_format": self.date_format,
                "delimiter": self.delimiter,
                "decimal": self.decimal,
            },
            sort_keys=True,
        )
        return hashlib.sha256(described.encode()).hexdigest()[:12]


# -- the mapping file ----------------------------------------------------------------------------------


def _where(source: str, key: str) -> str:
    return f"{source}: {key}"


def load_mapping(path: str | Path) -> list[FileSpec]:
    """Read and check a CSV mapping file; errors name the file and the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CsvError(f"{path}: cannot read the CSV mapping ({e.strerror})") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise CsvError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)})") from e
    return parse_mapping(data, path)


def parse_mapping(data: Any, path: Path) -> list[FileSpec]:
    source = str(path)
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict) or not data["files"]:
        raise CsvError(_where(source, "files: expected a mapping of source names to file entries"))
    specs = []
    for name, entry in data["files"].items():
        key = f"files.{name}"
        if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED:
            raise CsvError(
                _where(
                    source,
                    f"{key}: a source name is lower-case letters, digits and _, not a connector's name",
                )
            )
        if not isinstance(entry, dict):
            raise CsvError(_where(source, f"{key}: expected path, kind and columns"))
        unknown = sorted(
            set(entry) - {"path", "kind", "columns", "attributes", "date_format", "delimiter", "decimal"}
        )
        if unknown:
            raise CsvError(_where(source, f"{key}: unknown key(s) {', '.join(unknown)}"))
        kind = entry.get("kind")
        if kind not in KINDS:
            raise CsvError(_where(source, f"{key}.kind: expected one of {', '.join(KINDS)}, got {kind!r}"))
        if not isinstance(entry.get("path"), str) or not entry["path"]:
            raise CsvError(_where(source, f"{key}.path: the export's path is required"))
        columns = entry.get("columns")
        if not isinstance(columns, dict) or not all(isinstance(v, str) and v for v in columns.values()):
            raise CsvError(_where(source, f"{key}.columns: expected our field -> column name"))
        required, optional = KINDS[kind]
        allowed = {f for group in required for f in group} | set(optional)
        extra = sorted(set(columns) - allowed)
        if extra:
            raise CsvError(
                _where(source, f"{key}.columns: {', '.join(extra)} not used for kind {kind} (use attributes)")
            )
        for group in required:
            if not any(f in columns for f in group):
                raise CsvError(
                    _where(source, f"{key}.columns: {' or '.join(group)} is required for kind {kind}")
                )
        attributes: dict[str, Column] = {}
        raw_attributes = entry.get("attributes") or {}
        if not isinstance(raw_attributes, dict):
            raise CsvError(_where(source, f"{key}.attributes: expected attribute -> column"))
        if raw_attributes and kind == "purchases":
            raise CsvError(_where(source, f"{key}.attributes: purchases carry no attributes"))
        for attribute, spec in raw_attributes.items():
            where = f"{key}.attributes.{attribute}"
            if isinstance(spec, str):
                spec = {"column": spec}
            if not isinstance(spec, dict) or not isinstance(spec.get("column"), str):
                raise CsvError(_where(source, f"{where}: expected a column name or {{column, type}}"))
            kind_of = spec.get("type", "text")
            if kind_of not in TYPES:
                raise CsvError(
                    _where(source, f"{where}.type: expected one of {', '.join(TYPES)}, got {kind_of!r}")
                )
            attributes[str(attribute)] = Column(spec["column"], kind_of)
        decimal = str(entry.get("decimal", "."))
        if decimal not in (".", ","):
            raise CsvError(_where(source, f"{key}.decimal: expected '.' or ','"))
        delimiter = str(entry.get("delimiter", ","))
        if len(delimiter) != 1:
            raise CsvError(_where(source, f"{key}.delimiter: one character"))
        file_path = Path(entry["path"])
        specs.append(
            FileSpec(
                name=name,
                path=file_path if file_path.is_absolute() else path.parent / file_path,
                kind=kind,
                columns=dict(columns),
                attributes=attributes,
                date_format=entry.get("date_format"),
                delimiter=delimiter,
                decimal=decimal,
            )
        )
    return specs


# -- reading and checking an export ---------------------------------------------------------------------


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


# -- the connector ------------------------------------------------------------------------------------------


class CsvFileConnector:
    """One export file as a pull-only source; the file's digest is the cursor."""

    pull_only = True
    snapshot = True  # sync.pull forgets records a newer version of the file no longer has

    def __init__(self, spec: FileSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.streams = STREAMS[spec.kind]

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        raise WebhookRejected("unknown_source", f"{self.name} is a file import; it has no webhook", 404)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> TicketEvent:
        raise WebhookRejected("unknown_source", f"{self.name} is a file import; it has no webhook", 404)

    def check_groups(self, names: set[str]) -> None:
        """A file has no routing groups to check."""

    def _read(self) -> bytes:
        try:
            return self.spec.path.read_bytes()
        except OSError as e:
            raise CsvError(f"{self.spec.path}: cannot read the export ({e.strerror})") from e

    def cursor_for(self, data: bytes) -> str:
        return f"{hashlib.sha256(data).hexdigest()[:32]}:{self.spec.digest}"

    def estimate(self, stream: str, cursor: str | None) -> int | None:
        data = self._read()
        if cursor == self.cursor_for(data):
            return 0
        return max(0, data.count(b"\n") - (1 if self.spec.path.suffix.lower() == ".csv" else 0))

    def pull(self, stream: str, cursor: str | None) -> Iterator[Batch]:
        """Nothing when the file is unchanged since `cursor`; else every record of `stream` in it."""
        if stream not in self.streams:
            raise ValueError(f"{self.name} ({self.spec.kind}) has no stream {stream!r}")
        data = self._read()
        digest = self.cursor_for(data)
        if cursor == digest:
            return
        parsed = parse(self.spec, data)
        records: list[Any] = {
            "users": parsed.customers,
            "organizations": parsed.organizations,
            "purchases": parsed.purchases,
        }[stream]
        if not records:
            yield Batch(stream, [], digest)
            return
        for start in range(0, len(records), BATCH_SIZE):
            chunk = records[start : start + BATCH_SIZE]
            done = start + BATCH_SIZE >= len(records)
            yield Batch(stream, chunk, digest if done else cursor)  # a crash midway imports it all again
