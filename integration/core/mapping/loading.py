"""YAML with line numbers: the mapping as plain data, and where each key of it stands in the file.

``Doc`` keeps the line of every key and list item, and makes the MappingError that names file, line
and dotted key, e.g. ``mappings/default.yaml:12: segments.tier.weights.revenue_12m: ...``.
"""

from __future__ import annotations

from typing import Any

import yaml

from integration.core.mapping.errors import MappingError

_MAX_NODES = 100_000
_MAX_YAML_DEPTH = 50  # the deepest real mapping is under ten levels; Python's recursion ends near 300
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"

Path = tuple[str | int, ...]


def dotted(path: Path) -> str:
    """A path as messages name the key: ``segments.tier.weights[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Doc:
    """The loaded data's line numbers, and the error factory that uses them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[Path, int] = {}
        self.nodes = 0

    def line(self, path: Path) -> int | None:
        """The line of the key, or of the nearest enclosing key that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def error(self, path: Path, message: str) -> MappingError:
        """The MappingError for a problem at ``path``: file, line and dotted key."""
        return MappingError(message, source=self.source, line=self.line(path), key=dotted(path) or None)


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


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: Path, doc: Doc) -> Any:
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
            reason, source=doc.source, line=node.start_mark.line + 1, key=dotted(path) or None
        ) from None


def load_yaml(text: str, doc: Doc) -> Any:
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


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path, doc: Doc) -> Any:
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
                raise MappingError("keys must be plain text", source=doc.source, line=line, key=dotted(path))
            key = _construct(loader, key_node, path, doc)
            if not isinstance(key, str):
                raise MappingError(
                    f"key {key_node.value!r} is read as {type(key).__name__} by YAML; put it in quotes",
                    source=doc.source,
                    line=line,
                    key=dotted(path) or None,
                )
            child = (*path, key)
            if key in out:
                raise MappingError(
                    f"duplicate key {key!r} (first on line {doc.lines[child]})",
                    source=doc.source,
                    line=line,
                    key=dotted(child),
                )
            doc.lines[child] = line
            out[key] = _convert(loader, value_node, child, doc)
        return out
    raise doc.error(path, "unsupported YAML node")  # pragma: no cover - yaml has no other kinds
