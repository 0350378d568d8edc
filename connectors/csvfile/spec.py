"""The CSV mapping file: which export is which source, and which column means what.

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
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


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
