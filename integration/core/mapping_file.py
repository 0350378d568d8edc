"""The mapping file: its YAML text -> a validated MappingSpec, or one MappingError saying where.

Unknown keys are errors, so a typo never silently switches a rule off. Each segment dimension is
parsed by its method (integration/core/segments/<method>.py, found by ``method:``); this module
parses the rest of the document (the routing section in routing_rules.py) and checks what spans
dimensions: overrides, tags.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from integration.core.mapping.formatting import format_minutes, quote
from integration.core.mapping.loading import Doc, Path, load_yaml
from integration.core.mapping.routing_rules import KEYS as ROUTING_KEYS
from integration.core.mapping.routing_rules import parse_fieldset, parse_routing
from integration.core.mapping.spec import (
    LEVELS,
    MULTIPLE,
    FeatureSpec,
    MappingSpec,
    SlaTarget,
    TagSpec,
)
from integration.core.mapping.validation import (
    check_keys,
    describe,
    identifier,
    list_of,
    mapping_of,
    number_of,
    text_of,
)
from integration.core.segments.base import Dimension
from integration.core.segments.methods import METHODS, SPECS

_TAG_RE = re.compile(r"[a-z0-9_]+", re.ASCII)

# Every key a mapping may use, by where it may appear. Anything else is an error; docs/mapping.md
# documents each of them (tests/core/test_mapping.py checks). Each method's own keys come with it.
KEYS: dict[str, tuple[str, ...]] = {
    "top": ("description", "segments", "routing", "default", "tags", "features", "slas"),
    "dimension": ("method", "description", "level", "multiple"),
    **{where: keys for spec in SPECS.values() for where, keys in spec.keys.items()},
    **ROUTING_KEYS,
    "tags": ("prefix", "routed"),
    "features": ("cost_per_ticket", "cost_attributes"),
    "sla": ("first_response", "resolution"),
}
_RESERVED_DIMENSIONS = frozenset({"sla"})


def parse_mapping(text: str, source: str = "<mapping>") -> MappingSpec:
    """Parse YAML text into a validated MappingSpec; ``source`` is the file name used in messages."""
    doc = Doc(source)
    data = load_yaml(text, doc)
    if data is None:
        raise doc.error((), "the mapping is empty (it needs at least 'segments')")
    data = mapping_of(doc, data, (), "the top level")
    check_keys(doc, data, (), KEYS["top"], required=("segments",))
    tags = _parse_tags(doc, data.get("tags"), ("tags",))
    features = _parse_features(doc, data.get("features"), ("features",))
    segments = _parse_segments(doc, data["segments"], ("segments",))
    labels = {dim.name: dim.labels for dim in segments}
    routing = parse_routing(doc, data.get("routing"), ("routing",), labels)
    default = parse_fieldset(doc, data.get("default"), ("default",), require_one=False)
    description = data.get("description")
    if description is not None:
        description = text_of(doc, description, ("description",), "description")
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
        raise ValueError(f"a duration must be text like 30m, 4h or 3d, got {describe(text)}")
    pos, total = 0, 0.0
    spec = text.strip().lower()
    while pos < len(spec):
        match = _DURATION_PART_RE.match(spec, pos)
        if match is None:
            raise ValueError(f"a duration must look like 30m, 4h, 3d or 1h 30m, got {quote(text)}")
        total += float(match.group(1)) * _MINUTES[match.group(2)]
        pos = match.end()
        while pos < len(spec) and spec[pos] == " ":
            pos += 1
    if not spec:
        raise ValueError("a duration must not be empty")
    if total <= 0 or not total.is_integer():
        raise ValueError(f"a duration must be a whole number of minutes above 0, got {quote(text)}")
    return int(total)


def _parse_slas(doc: Doc, value: Any, path: Path) -> dict[str, SlaTarget]:
    if value is None:
        return {}
    data = mapping_of(doc, value, path, "slas")
    out: dict[str, SlaTarget] = {}
    for name, raw in data.items():
        sla_path = (*path, name)
        text_of(doc, name, sla_path, "an SLA name")
        raw = mapping_of(doc, raw, sla_path, f"SLA {name}")
        check_keys(doc, raw, sla_path, KEYS["sla"])
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


def _parse_tags(doc: Doc, value: Any, path: Path) -> TagSpec:
    if value is None:
        return TagSpec()
    data = mapping_of(doc, value, path, "tags")
    check_keys(doc, data, path, KEYS["tags"])
    found = {}
    for key in KEYS["tags"]:
        if key in data:
            tag = text_of(doc, data[key], (*path, key), key)
            if not _TAG_RE.fullmatch(tag):
                raise doc.error((*path, key), f"{key} {tag!r} may only use a-z, 0-9 and _")
            found[key] = tag
    return TagSpec(**found)


def _parse_features(doc: Doc, value: Any, path: Path) -> FeatureSpec:
    if value is None:
        return FeatureSpec()
    data = mapping_of(doc, value, path, "features")
    check_keys(doc, data, path, KEYS["features"])
    spec = FeatureSpec()
    if "cost_per_ticket" in data:
        cost = number_of(doc, data["cost_per_ticket"], (*path, "cost_per_ticket"), "cost_per_ticket")
        if cost < 0:
            raise doc.error((*path, "cost_per_ticket"), "cost_per_ticket must not be negative")
        spec = FeatureSpec(cost_per_ticket=cost, cost_attributes=spec.cost_attributes)
    if data.get("cost_attributes") is not None:
        attrs_path = (*path, "cost_attributes")
        items = list_of(doc, data["cost_attributes"], attrs_path, "cost_attributes")
        names = []
        for index, item in enumerate(items):
            item_path = (*attrs_path, index)
            names.append(
                identifier(doc, text_of(doc, item, item_path, "an attribute"), item_path, "attribute")
            )
        spec = FeatureSpec(cost_per_ticket=spec.cost_per_ticket, cost_attributes=tuple(dict.fromkeys(names)))
    return spec


def _parse_segments(doc: Doc, value: Any, path: Path) -> tuple[Dimension, ...]:
    data = mapping_of(doc, value, path, "segments")
    dims: list[Dimension] = []
    for name, raw in data.items():
        dim_path = (*path, name)
        identifier(doc, name, dim_path, "a dimension name")
        if name in _RESERVED_DIMENSIONS:
            raise doc.error(dim_path, f"{name!r} is reserved (it would clash with SLA tags)")
        raw = mapping_of(doc, raw, dim_path, f"dimension {name}")
        method = raw.get("method")
        if method not in METHODS:
            every_key = {key for method in METHODS for key in KEYS[method]}
            check_keys(doc, raw, dim_path, KEYS["dimension"] + tuple(sorted(every_key)))
            raise doc.error(
                (*dim_path, "method") if "method" in raw else dim_path,
                f"method must be one of {', '.join(METHODS)}, got {describe(method)}",
            )
        check_keys(doc, raw, dim_path, KEYS["dimension"] + KEYS[method])
        description = raw.get("description")
        if description is not None:
            description = text_of(doc, description, (*dim_path, "description"), "description")
        dim = SPECS[method].parse(doc, name, raw, dim_path, description or "")
        level = raw.get("level", "customer")
        if level not in LEVELS:
            raise doc.error(
                (*dim_path, "level"), f"level must be customer or organization, got {describe(level)}"
            )
        multiple = raw.get("multiple", "best")
        if multiple not in MULTIPLE:
            raise doc.error(
                (*dim_path, "multiple"), f"multiple must be best or first, got {describe(multiple)}"
            )
        if "multiple" in raw and level != "organization":
            raise doc.error((*dim_path, "multiple"), "multiple only applies to level: organization")
        dim = dataclasses.replace(dim, level=level, multiple=multiple)  # each method's record is a dataclass
        dim.validate(doc, dim_path)
        dims.append(dim)
    _check_overrides(doc, dims, path)
    return tuple(dims)


def _check_overrides(doc: Doc, dims: list[Dimension], path: Path) -> None:
    """An override must name another dimension and a label that dimension can produce (or null)."""
    labels = {dim.name: dim.labels for dim in dims}
    for dim in dims:
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


def _check_routed_marker(doc: Doc, mapping: MappingSpec) -> None:
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
        if routed in dim.tags_read:
            raise doc.error(
                path,
                f"the routed marker {routed!r} is a tag segment {dim.name} reads from customers; "
                "pick a tag only tierdesk writes",
            )


def _check_tag_collisions(doc: Doc, mapping: MappingSpec) -> None:
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
