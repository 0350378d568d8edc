"""Method manual: hand-kept lists (ids, emails, domains, source tags); a match gives ``label``.

A match on the ``deny`` lists wins over every allow list, and ``overrides`` lets a match force
labels in other dimensions (the engine applies them last, in mapping order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from integration.core.mapping.conditions import Features
from integration.core.mapping.loading import Doc, Path
from integration.core.mapping.validation import (
    check_keys,
    describe,
    identifier,
    label_of,
    list_of,
    mapping_of,
)
from integration.core.segments.base import Dimension, DimensionResult
from integration.core.segments.fitted import Fitted
from integration.core.segments.population import Population

_SOURCE_NAMES = {"zendesk": "Zendesk", "freshdesk": "Freshdesk", "hubspot": "HubSpot", "csv": "the CSV file"}


@dataclass(frozen=True)
class MatchList:
    """Ids, emails, email domains and source-system tags, normalised for matching."""

    ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()  # lowercased
    domains: tuple[str, ...] = ()  # lowercased, no leading "@"
    tags: tuple[str, ...] = ()  # lowercased
    id_set: frozenset[str] = field(init=False, repr=False, compare=False)
    email_set: frozenset[str] = field(init=False, repr=False, compare=False)
    domain_set: frozenset[str] = field(init=False, repr=False, compare=False)
    tag_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id_set", frozenset(self.ids))
        object.__setattr__(self, "email_set", frozenset(self.emails))
        object.__setattr__(self, "domain_set", frozenset(self.domains))
        object.__setattr__(self, "tag_set", frozenset(self.tags))

    def __bool__(self) -> bool:
        return bool(self.ids or self.emails or self.domains or self.tags)


@dataclass(frozen=True)
class ManualDimension(Dimension):
    """Hand-kept lists (ids, emails, domains, source tags); a match gives ``label``.

    A match on the ``deny`` lists wins over every allow list (no label), and ``overrides`` lets a
    match force labels in other dimensions, whatever their own method computed.
    """

    name: str
    ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()  # lowercased
    domains: tuple[str, ...] = ()  # lowercased, no leading "@"
    tags: tuple[str, ...] = ()  # lowercased
    label: str = "vip"
    description: str = ""
    deny: MatchList = field(default_factory=MatchList)
    overrides: tuple[tuple[str, str | None], ...] = ()  # (dimension, label or None), in file order
    level: str = "customer"
    multiple: str = "best"
    method: ClassVar[str] = "manual"
    allow: MatchList = field(init=False, repr=False, compare=False)
    keys: ClassVar[dict[str, tuple[str, ...]]] = {
        "manual": ("ids", "emails", "domains", "tags", "label", "deny", "overrides"),
        "deny": ("ids", "emails", "domains", "tags"),
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow", MatchList(self.ids, self.emails, self.domains, self.tags))

    @property
    def id_set(self) -> frozenset[str]:
        return self.allow.id_set

    @property
    def email_set(self) -> frozenset[str]:
        return self.allow.email_set

    @property
    def domain_set(self) -> frozenset[str]:
        return self.allow.domain_set

    @property
    def tag_set(self) -> frozenset[str]:
        return self.allow.tag_set

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.label,)

    @property
    def tags_read(self) -> frozenset[str]:
        return self.tag_set | self.deny.tag_set

    @classmethod
    def parse(cls, doc: Doc, name: str, raw: dict[str, Any], path: Path, description: str) -> ManualDimension:
        allow = _match_list(doc, raw, path)
        label = raw.get("label", "vip")
        label = label_of(doc, label, (*path, "label"))
        deny = MatchList()
        if raw.get("deny") is not None:
            deny_path = (*path, "deny")
            deny_raw = mapping_of(doc, raw["deny"], deny_path, "deny")
            check_keys(doc, deny_raw, deny_path, cls.keys["deny"])
            deny = _match_list(doc, deny_raw, deny_path)
        overrides: list[tuple[str, str | None]] = []
        if raw.get("overrides") is not None:
            over_path = (*path, "overrides")
            over_raw = mapping_of(doc, raw["overrides"], over_path, "overrides")
            for target, forced in over_raw.items():
                target_path = (*over_path, target)
                identifier(doc, target, target_path, "a dimension name")
                overrides.append((target, None if forced is None else label_of(doc, forced, target_path)))
        return cls(
            name,
            ids=allow.ids,
            emails=allow.emails,
            domains=allow.domains,
            tags=allow.tags,
            label=label,
            description=description,
            deny=deny,
            overrides=tuple(overrides),
        )

    def validate(self, doc: Doc, path: Path) -> None:
        if self.level == "organization" and (self.emails or self.deny.emails):
            raise doc.error(
                (*path, "emails" if self.emails else "deny"),
                "organizations have no email address: use ids, domains or tags at level organization",
            )

    def compute(self, population: Population, fitted: Fitted) -> DimensionResult:
        allowed = _list_matches(self.allow, population)
        denied = _list_matches(self.deny, population) if self.deny else np.zeros(population.size, dtype=bool)
        choice = np.where(denied, 2, np.where(allowed, 1, 0)).astype(np.int16)
        label = np.where(choice == 1, 0, -1).astype(np.int16)
        return DimensionResult(self, choice, label)

    def reasons(
        self, choice: int, detail: Any, feats: Features, fitted: Fitted, population: Population, row: int
    ) -> tuple[str, ...]:
        if choice == 0:
            return ()
        where = "VIP list" if self.label.lower() == "vip" else f"{self.name} list"
        allow = _match_reasons(self.allow, population, row, where)
        if not self.deny:
            return allow
        deny = _match_reasons(self.deny, population, row, f"{where.removesuffix(' list')} deny list")
        if not deny:
            return allow
        if allow:
            return (*deny, f"the deny list wins over: {'; '.join(allow)}")
        return deny


def _string_list(doc: Doc, raw: dict[str, Any], key: str, path: Path) -> list[tuple[str, Path]]:
    if raw.get(key) is None:
        return []
    items = list_of(doc, raw[key], (*path, key), key)
    out = []
    for index, item in enumerate(items):
        item_path = (*path, key, index)
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise doc.error(item_path, f"expected text, got {describe(item)}")
        text = str(item).strip()
        if not text:
            raise doc.error(item_path, "an entry must not be empty")
        out.append((text, item_path))
    return out


def _match_list(doc: Doc, raw: dict[str, Any], path: Path) -> MatchList:
    ids = [text for text, _ in _string_list(doc, raw, "ids", path)]
    emails = []
    for text, item_path in _string_list(doc, raw, "emails", path):
        if text.count("@") != 1 or text.startswith("@") or text.endswith("@"):
            raise doc.error(item_path, f"{text!r} is not an email address")
        emails.append(text.lower())
    domains = []
    for text, item_path in _string_list(doc, raw, "domains", path):
        domain = text.lower().removeprefix("@")
        if not domain or "@" in domain or " " in domain:
            raise doc.error(item_path, f"{text!r} is not a domain name")
        domains.append(domain)
    tags = [text.lower() for text, _ in _string_list(doc, raw, "tags", path)]
    return MatchList(
        ids=tuple(dict.fromkeys(ids)),
        emails=tuple(dict.fromkeys(emails)),
        domains=tuple(dict.fromkeys(domains)),
        tags=tuple(dict.fromkeys(tags)),
    )


def _list_matches(lists: MatchList, population: Population) -> np.ndarray:
    """Rows on any of the lists: a set look-up per row and list, skipping empty lists."""
    size = population.size
    hit = np.zeros(size, dtype=bool)
    if lists.id_set:
        id_set = lists.id_set
        hit |= np.fromiter((x in id_set for x in population.external_ids), dtype=bool, count=size)
    if lists.email_set:
        email_set = lists.email_set
        hit |= np.fromiter((e in email_set for e in population.emails), dtype=bool, count=size)
    if lists.domain_set:
        cache: dict[str, bool] = {}
        domain_set = lists.domain_set

        def listed(domain: str) -> bool:
            found = cache.get(domain)
            if found is None:
                found = cache[domain] = _listed_domain(domain, domain_set) is not None
            return found

        if population.level == "organization":
            hit |= np.fromiter((any(map(listed, ds)) for ds in population.domains), dtype=bool, count=size)
        else:
            hit |= np.fromiter(
                (listed(e.rpartition("@")[2]) if e else False for e in population.emails),
                dtype=bool,
                count=size,
            )
    if lists.tag_set:
        tag_set = lists.tag_set
        for i, tags in enumerate(population.tags):
            if tags and any(tag.lower() in tag_set for tag in tags):
                hit[i] = True
    return hit


def _match_reasons(lists: MatchList, population: Population, row: int, where: str) -> tuple[str, ...]:
    reasons = []
    external_id = population.external_ids[row]
    if external_id in lists.id_set:
        reasons.append(f"id {external_id} is on the {where}")
    email = population.emails[row]
    if email:
        if email in lists.email_set:
            reasons.append(f"email {email} is on the {where}")
        domain = email.rpartition("@")[2]
        listed = _listed_domain(domain, lists.domain_set)
        if listed == domain:
            reasons.append(f"email domain {domain} is on the {where}")
        elif listed:
            reasons.append(f"email domain {domain} is under {listed}, on the {where}")
    for domain in population.domains[row]:
        listed = _listed_domain(domain, lists.domain_set)
        if listed == domain:
            reasons.append(f"domain {domain} is on the {where}")
        elif listed:
            reasons.append(f"domain {domain} is under {listed}, on the {where}")
    if lists.tag_set:
        source = population.sources[row]
        system = _SOURCE_NAMES.get(source, source or "the source system")
        for tag in population.tags[row]:
            if tag.lower() in lists.tag_set:
                reasons.append(f"tag {tag} in {system}")
    return tuple(reasons)


def _listed_domain(domain: str, listed: frozenset[str]) -> str | None:
    """The listed domain that ``domain`` is, or is a subdomain of (eu.acme.com under acme.com)."""
    if not domain or not listed:
        return None
    labels = domain.split(".")
    for start in range(len(labels)):
        candidate = ".".join(labels[start:])
        if candidate in listed:
            return candidate
    return None
