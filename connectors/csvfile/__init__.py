"""CSV and JSON exports: the mapping file (spec.py), rows as records (records.py) and the pull-only
source per file (connector.py). The names callers use are importable from here."""

from connectors.csvfile.connector import BATCH_SIZE, CsvFileConnector
from connectors.csvfile.records import MAX_ERRORS, Parsed, parse
from connectors.csvfile.spec import (
    FIELD_TYPES,
    KINDS,
    RESERVED,
    STREAMS,
    TYPES,
    Column,
    CsvError,
    FileSpec,
    load_mapping,
    parse_mapping,
)

__all__ = [
    "BATCH_SIZE",
    "FIELD_TYPES",
    "KINDS",
    "MAX_ERRORS",
    "RESERVED",
    "STREAMS",
    "TYPES",
    "Column",
    "CsvError",
    "CsvFileConnector",
    "FileSpec",
    "Parsed",
    "load_mapping",
    "parse",
    "parse_mapping",
]
