"""Which source records are the same person, or the same organization. PURE: plain records in, links out.

Every source keeps its own records (``zendesk:user:7``, ``hubspot:user:301``, ``billing:user:ana@x.com``).
`resolve` groups them into people and organizations by the match rules, and says for each record whether it
is a customer in its own right (``primary``), enriches one (``linked``), or is held back because the match
is ambiguous (``held``, with a `Conflict` explaining why). The store merges a person's linked attributes into
the primary record when it is read, in the precedence `Rules` gives (see `merge_attributes`).

Match rules (each can be switched off in `Rules.match`):

* ``external_id``: a record's id attribute names another source's record, e.g. a CSV row whose
  ``zendesk_id`` column holds a Zendesk user id links to ``zendesk:user:<id>`` (`Rules.id_attributes`);
* ``email``: the same email address, compared case-insensitively (people);
* ``domain``: the same domain (organizations), except free-mail and ignored domains.

Conflicts are reported, never merged silently:

* ``duplicate``: two records of one enrichment source match the same person but disagree (different
  names, or different organizations); both are held back.
* ``ambiguous``: the records matched together contain two records of one helpdesk (e.g. a CRM contact whose
  email is one Zendesk user's and whose zendesk_id is another's). Each helpdesk record stays a customer on
  its own, unenriched; the enrichment records of the group are held back.

Duplicates that agree (same name and organization, or one of them unset) are merged without a conflict.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from integration.core.models import Customer, Organization, Value

MATCH_RULES = ("external_id", "email", "domain")
HELPDESKS = ("zendesk", "freshdesk")
FREE_MAIL = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com", "msn.com",
        "icloud.com", "me.com", "aol.com", "gmx.de", "gmx.net", "web.de", "proton.me", "protonmail.com",
        "yandex.ru", "mail.ru", "qq.com", "163.com",
    }
)  # fmt: skip
DEFAULT_ID_ATTRIBUTES: Mapping[str, str] = {
    "zendesk_id": "zendesk",
    "freshdesk_id": "freshdesk",
    "hubspot_id": "hubspot",
}


@dataclass(frozen=True)
class Rules:
    """How records are matched and whose attributes win; built from settings by the runtime."""

    match: tuple[str, ...] = MATCH_RULES
    helpdesks: tuple[str, ...] = HELPDESKS  # sources whose records are customers in their own right
    precedence: tuple[str, ...] = ()  # attribute precedence, first wins (see `source_order`)
    ignore_domains: frozenset[str] = FREE_MAIL
    id_attributes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ID_ATTRIBUTES))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.match) - set(MATCH_RULES))
        if unknown:
            raise ValueError(f"unknown identity match rule(s) {unknown}; known: {', '.join(MATCH_RULES)}")

    def is_helpdesk(self, source: str) -> bool:
        return source in self.helpdesks

    def source_order(self, sources: Iterable[str]) -> list[str]:
        """Sources, most trusted first: those listed in `precedence` in that order, then the other
        enrichment sources (CRM, billing) alphabetically, then the helpdesks in `helpdesks` order.

        Why enrichment before helpdesks: revenue and lifecycle come from the CRM or the billing system of
        record; a helpdesk's custom field is usually a stale copy of them.
        """
        listed = {s: i for i, s in enumerate(self.precedence)}
        desks = {s: i for i, s in enumerate(self.helpdesks)}
        return sorted(
            set(sources),
            key=lambda s: (
                (0, listed[s], "") if s in listed else (2, desks[s], "") if s in desks else (1, 0, s)
            ),
        )


@dataclass(frozen=True)
class Link:
    """Where one source record belongs."""

    record_key: str
    kind: str  # person | org
    entity_key: str  # the key of the person's (organization's) main record
    role: str  # primary | linked | held
    rule: str  # what joined it: self | external_id | email | domain | conflict
    rank: int  # attribute precedence of its source, 0 first


@dataclass(frozen=True)
class Conflict:
    kind: str  # person | org
    code: str  # duplicate | ambiguous
    keys: tuple[str, ...]
    detail: str


@dataclass(frozen=True)
class Resolution:
    links: tuple[Link, ...]
    conflicts: tuple[Conflict, ...]

    @property
    def people(self) -> int:
        return sum(1 for link in self.links if link.kind == "person" and link.role == "primary")

    @property
    def organizations(self) -> int:
        return sum(1 for link in self.links if link.kind == "org" and link.role == "primary")

    @property
    def linked(self) -> int:
        return sum(1 for link in self.links if link.role == "linked")


# -- normalisation -------------------------------------------------------------------------------


def normalize_email(value: str | None) -> str | None:
    if not value or "@" not in value:
        return None
    return value.strip().casefold()


def normalize_domain(value: str | None) -> str | None:
    if not value:
        return None
    text = value.strip().casefold()
    text = re.sub(r"^[a-z]+://", "", text).split("/", 1)[0].removeprefix("www.")
    return text or None


def _name(value: str | None) -> str | None:
    return " ".join(value.casefold().split()) if value else None


def _source(key: str) -> str:
    return key.split(":", 1)[0]


# -- union-find over record keys --------------------------------------------------------------------


class _Groups:
    def __init__(self, keys: Iterable[str]) -> None:
        self.parent = {k: k for k in keys}
        self.via: dict[str, str] = {}  # record key -> the rule that first joined it to another record

    def find(self, key: str) -> str:
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def join(self, a: str, b: str, rule: str) -> None:
        self.via.setdefault(a, rule)
        self.via.setdefault(b, rule)
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def components(self) -> list[list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for key in self.parent:
            out[self.find(key)].append(key)
        return [sorted(keys) for keys in out.values()]


@dataclass(frozen=True)
class _Rec:
    key: str
    source: str
    name: str | None
    org: str | None  # people: their organization key
    match_keys: tuple[tuple[str, str], ...]  # (rule, normalised value)
    refs: tuple[str, ...]  # record keys named by id attributes
    label: str | None = None  # the name as the source has it, for conflict messages


def _refs(attributes: Mapping[str, Value], rules: Rules, kind: str) -> tuple[str, ...]:
    if "external_id" not in rules.match:
        return ()
    out = []
    for attribute, source in rules.id_attributes.items():
        value = attributes.get(attribute)
        if value is None or value == "":
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        out.append(f"{source}:{'user' if kind == 'person' else 'org'}:{value}")
    return tuple(out)


def _person(c: Customer, rules: Rules) -> _Rec:
    email = normalize_email(c.email) if "email" in rules.match else None
    return _Rec(
        c.key,
        c.source,
        _name(c.name),
        c.organization_key,
        (("email", email),) if email else (),
        _refs(c.attributes, rules, "person"),
        c.name,
    )


def _org(o: Organization, rules: Rules) -> _Rec:
    domains: list[tuple[str, str]] = []
    if "domain" in rules.match:
        for raw in o.domains:
            domain = normalize_domain(raw)
            if domain and domain not in rules.ignore_domains:
                domains.append(("domain", domain))
    return _Rec(
        o.key,
        o.source,
        _name(o.name),
        None,
        tuple(dict.fromkeys(domains)),
        _refs(o.attributes, rules, "org"),
        o.name,
    )


def _disagreement(a: _Rec, b: _Rec, kind: str) -> str | None:
    if a.name and b.name and a.name != b.name:
        return f"names differ ({a.label!r} vs {b.label!r})"
    if kind == "person" and a.org and b.org and a.org != b.org:
        return f"organizations differ ({a.org} vs {b.org})"
    return None


def _resolve_kind(
    records: Sequence[_Rec], kind: str, rules: Rules, ranks: Mapping[str, int]
) -> tuple[list[Link], list[Conflict]]:
    by_key = {r.key: r for r in records}
    groups = _Groups(by_key)
    shared: dict[tuple[str, str], list[str]] = defaultdict(list)
    for rec in records:
        for match_key in rec.match_keys:
            shared[match_key].append(rec.key)
        for ref in rec.refs:
            if ref in by_key and ref != rec.key:
                groups.join(rec.key, ref, "external_id")
    for (rule, _value), keys in sorted(shared.items()):
        for other in keys[1:]:
            groups.join(keys[0], other, rule)

    links: list[Link] = []
    conflicts: list[Conflict] = []
    for keys in groups.components():
        recs = [by_key[k] for k in keys]
        per_source: dict[str, list[_Rec]] = defaultdict(list)
        for rec in recs:
            per_source[rec.source].append(rec)
        problems: list[tuple[str, str]] = []
        for source, same in sorted(per_source.items()):
            if len(same) < 2:
                continue
            if rules.is_helpdesk(source):
                names = ", ".join(r.key for r in same)
                problems.append(("ambiguous", f"matches {len(same)} {source} records ({names})"))
                continue
            for other in same[1:]:
                why = _disagreement(same[0], other, kind)
                if why:
                    problems.append(("duplicate", f"{same[0].key} and {other.key} match but {why}"))
        helpdesk = sorted(
            (r for r in recs if rules.is_helpdesk(r.source)),
            key=lambda r: (rules.helpdesks.index(r.source), r.key),
        )
        if problems:
            code = "ambiguous" if any(c == "ambiguous" for c, _ in problems) else "duplicate"
            evidence = sorted({f"{groups.via.get(k, 'self')}" for k in keys} - {"self"})
            detail = "; ".join(text for _, text in problems) + f" (matched by {', '.join(evidence)})"
            conflicts.append(Conflict(kind, code, tuple(keys), detail))
            for rec in recs:
                if rules.is_helpdesk(rec.source):
                    links.append(Link(rec.key, kind, rec.key, "primary", "conflict", ranks[rec.source]))
                else:
                    links.append(Link(rec.key, kind, rec.key, "held", "conflict", ranks[rec.source]))
            continue
        if helpdesk:
            entity = helpdesk[0].key
            primaries = {r.key for r in helpdesk}
        else:
            entity = min(recs, key=lambda r: (ranks[r.source], r.key)).key
            primaries = {entity}
        for rec in recs:
            role = "primary" if rec.key in primaries else "linked"
            rule = groups.via.get(rec.key, "self") if len(recs) > 1 else "self"
            links.append(Link(rec.key, kind, entity, role, rule, ranks[rec.source]))
    return links, conflicts


def resolve(customers: Iterable[Customer], organizations: Iterable[Organization], rules: Rules) -> Resolution:
    """Group source records into people and organizations; report what cannot be grouped safely."""
    people = [_person(c, rules) for c in customers]
    orgs = [_org(o, rules) for o in organizations]
    order = rules.source_order({r.source for r in people} | {r.source for r in orgs})
    ranks = {source: i for i, source in enumerate(order)}
    person_links, person_conflicts = _resolve_kind(people, "person", rules, ranks)
    org_links, org_conflicts = _resolve_kind(orgs, "org", rules, ranks)
    return Resolution(tuple(person_links + org_links), tuple(person_conflicts + org_conflicts))


# -- merging -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One record's contribution to a merged view."""

    rank: int
    key: str
    attributes: Mapping[str, Value]
    tags: tuple[str, ...] = ()
    created_at: datetime | None = None


def merge_attributes(parts: Iterable[Part]) -> dict[str, Value]:
    """Per attribute, the value of the most trusted record that has one (rank, then key; None is no value)."""
    merged: dict[str, Value] = {}
    for part in sorted(parts, key=lambda p: (p.rank, p.key)):
        for name, value in part.attributes.items():
            if value is not None and merged.get(name) is None:
                merged[name] = value
            else:
                merged.setdefault(name, value)
    return merged


def merge_tags(parts: Iterable[Part]) -> tuple[str, ...]:
    """Tags of every record, in precedence order: a VIP tag in the CRM counts like one in the helpdesk."""
    out: dict[str, None] = {}
    for part in sorted(parts, key=lambda p: (p.rank, p.key)):
        out.update(dict.fromkeys(part.tags))
    return tuple(out)


def earliest(parts: Iterable[Part]) -> datetime | None:
    """Customer since: the earliest creation date any source knows (tenure counts from first contact)."""
    dates = [p.created_at for p in parts if p.created_at is not None]
    return min(dates) if dates else None


@dataclass(frozen=True)
class Overlay:
    """What the other records of a person add to one record, precomputed when identities are resolved.

    The store lays it over the record's own attributes at read time, so a fresh pull of the record itself
    is visible at once: ``high`` wins over the record's own values, ``low`` only fills what it lacks.
    """

    high: dict[str, Value]
    low: dict[str, Value]
    tags: tuple[str, ...] | None  # own tags plus the others', None when the others add none
    created_at: datetime | None  # the earliest creation date among the other records


def _present(values: Mapping[str, Value]) -> dict[str, Value]:
    return {k: v for k, v in values.items() if v is not None}


def overlays(
    resolution: Resolution,
    parts: Mapping[str, Part],
    derived: Mapping[str, Mapping[str, Value]] | None = None,
) -> dict[str, Overlay]:
    """Per record key, the overlay that turns its own values into its person's merged view.

    `parts` holds every record's own attributes, tags and creation date; `derived` holds values computed
    from the record's purchases (revenue_12m...), which count as that record's own, ahead of its stored
    attributes. Held records get nothing: an ambiguous match must not leak attributes.
    """
    derived = derived or {}
    members: dict[str, list[str]] = defaultdict(list)
    for link in resolution.links:
        if link.role != "held":
            members[link.entity_key].append(link.record_key)
    out: dict[str, Overlay] = {}
    for keys in members.values():
        for key in keys:
            own = parts.get(key)
            if own is None:
                continue
            others = [
                Part(p.rank, p.key, {**p.attributes, **derived.get(p.key, {})}, p.tags, p.created_at)
                for k in keys
                if k != key and (p := parts.get(k)) is not None
            ]
            own_derived = derived.get(key, {})
            if not others and not own_derived:
                continue
            ahead = [p for p in others if (p.rank, p.key) < (own.rank, own.key)]
            behind = [p for p in others if (p.rank, p.key) > (own.rank, own.key)]
            high = merge_attributes([*ahead, Part(own.rank, "", own_derived)])
            tags = merge_tags([own, *others])
            out[key] = Overlay(
                high=_present(high),
                low=_present(merge_attributes(behind)),
                tags=tags if set(tags) != set(own.tags) else None,
                created_at=earliest(others),
            )
    return out
