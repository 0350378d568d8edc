"""Record keys: ``zendesk:user:7``, ``hubspot:org:301``, ``billing:purchase:inv-9``.

The store, the identity resolver and the admin use these strings to name a record of one source. They are
built and taken apart here only, so the format has one definition (an external id may itself hold colons,
e.g. a billing e-mail or a HubSpot URN: the source and kind never do).
"""

from __future__ import annotations

from typing import Literal, NamedTuple, cast

Kind = Literal["user", "org", "ticket", "purchase"]
KINDS: tuple[Kind, ...] = ("user", "org", "ticket", "purchase")


class RecordKey(NamedTuple):
    source: str
    kind: Kind
    external_id: str

    def __str__(self) -> str:
        return f"{self.source}:{self.kind}:{self.external_id}"


def key(source: str, kind: Kind, external_id: str | int) -> str:
    return f"{source}:{kind}:{external_id}"


def user(source: str, external_id: str | int) -> str:
    return key(source, "user", external_id)


def org(source: str, external_id: str | int) -> str:
    return key(source, "org", external_id)


def ticket(source: str, external_id: str | int) -> str:
    return key(source, "ticket", external_id)


def purchase(source: str, external_id: str | int) -> str:
    return key(source, "purchase", external_id)


def parse(text: str) -> RecordKey:
    """ValueError for anything that is not ``source:kind:id`` with a known kind and a non-empty id."""
    source, sep, rest = text.partition(":")
    kind, sep2, external_id = rest.partition(":")
    if not (sep and sep2 and source and external_id) or kind not in KINDS:
        raise ValueError(
            f"not a record key: {text!r} (expected source:kind:id, kind one of {', '.join(KINDS)})"
        )
    return RecordKey(source, cast(Kind, kind), external_id)


def external_id(text: str) -> str:
    """The source's own id of a record key (``zendesk:ticket:1612`` -> ``1612``)."""
    return parse(text).external_id
