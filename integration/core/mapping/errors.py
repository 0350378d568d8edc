"""The one error a mapping can raise: it says where, so an admin editing YAML knows where to look."""

from __future__ import annotations


class MappingError(ValueError):
    """A mapping (or one condition in it) is invalid; says where: file, line, dotted key."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "<mapping>",
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.reason = message
        self.source = source
        self.line = line
        self.key = key
        where = source if line is None else f"{source}:{line}"
        text = f"{where}: {key}: {message}" if key else f"{where}: {message}"
        super().__init__(text)
