"""Wire formats the Zendesk and Freshdesk sandboxes share: timestamps, stored records, placeholders."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from copy import deepcopy
from datetime import UTC, datetime
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


def iso(value: datetime | None) -> str | None:
    """The helpdesks' timestamp format: UTC, whole seconds, trailing Z."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(value: str) -> datetime:
    """An ISO-8601 timestamp (Z or offset; naive means UTC) as the helpdesks keep it: UTC, whole seconds."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0)


def export_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record as the API shows it: private ("_") keys left out, times in `iso`, values copied."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key.startswith("_"):
            continue
        out[key] = iso(value) if isinstance(value, datetime) else deepcopy(value)
    return out


def fill_placeholders(template: str, values: Mapping[str, str], *, json_escape: bool = True) -> str:
    """Replace {{placeholders}} with text; unknown ones become empty. With `json_escape` each value is
    JSON-escaped so a quote in a subject cannot break a JSON body (a sandbox choice)."""

    def replace(match: re.Match[str]) -> str:
        value = values.get(match.group(1), "")
        return json.dumps(value)[1:-1] if json_escape else value

    return _PLACEHOLDER.sub(replace, template)
