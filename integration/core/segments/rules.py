"""Method rules: conditions tried in order; the first that holds gives its label, else ``default``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from integration.core.mapping.conditions import Expression, Features, explain
from integration.core.mapping.formatting import format_value
from integration.core.mapping.loading import Doc, Path
from integration.core.mapping.validation import (
    check_keys,
    expression_at,
    label_of,
    list_of,
    mapping_of,
    optional_label,
)
from integration.core.segments.base import Dimension, DimensionResult, label_codes
from integration.core.segments.fitted import Fitted
from integration.core.segments.masks import condition_mask
from integration.core.segments.population import Population


@dataclass(frozen=True)
class Rule:
    when: Expression
    then: str


@dataclass(frozen=True)
class RulesDimension(Dimension):
    """First rule whose condition holds gives the label; otherwise ``default``."""

    name: str
    rules: tuple[Rule, ...]
    default: str | None = None
    description: str = ""
    level: str = "customer"  # customer | organization (computed per organization, given to its users)
    multiple: str = "best"  # a user in several organizations: best | first
    method: ClassVar[str] = "rules"
    keys: ClassVar[dict[str, tuple[str, ...]]] = {"rules": ("rules", "default"), "rule": ("when", "then")}

    @property
    def labels(self) -> tuple[str, ...]:
        found = [rule.then for rule in self.rules]
        if self.default is not None:
            found.append(self.default)
        return tuple(dict.fromkeys(found))

    @cached_property
    def reads(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for rule in self.rules for name in rule.when.names))

    @classmethod
    def parse(cls, doc: Doc, name: str, raw: dict[str, Any], path: Path, description: str) -> RulesDimension:
        if "rules" not in raw:
            raise doc.error(path, "'rules' is required for method rules")
        items = list_of(doc, raw["rules"], (*path, "rules"), "rules")
        if not items:
            raise doc.error((*path, "rules"), "rules must list at least one rule")
        rules = []
        for index, item in enumerate(items):
            rule_path = (*path, "rules", index)
            item = mapping_of(doc, item, rule_path, "a rule")
            check_keys(doc, item, rule_path, cls.keys["rule"], required=("when", "then"))
            when = expression_at(doc, item["when"], (*rule_path, "when"))
            rules.append(Rule(when=when, then=label_of(doc, item["then"], (*rule_path, "then"))))
        default = optional_label(doc, raw, "default", path)
        return cls(name, tuple(rules), default=default, description=description)

    def compute(self, population: Population, fitted: Fitted) -> DimensionResult:
        count = len(self.rules)
        choice = np.full(population.size, count, dtype=np.int16)
        open_rows = np.ones(population.size, dtype=bool)
        for k, rule in enumerate(self.rules):
            hit = condition_mask(rule.when.tree, population) & open_rows
            choice[hit] = k
            open_rows &= ~hit
        outcomes = [rule.then for rule in self.rules] + [self.default]
        return DimensionResult(self, choice, label_codes(self, choice, outcomes, 0))

    def reasons(
        self, choice: int, detail: Any, feats: Features, fitted: Fitted, population: Population, row: int
    ) -> tuple[str, ...]:
        if choice < len(self.rules):
            return (explain(self.rules[choice].when, feats),)
        names = self.reads
        present = [f"{n} {format_value(feats.get(n))}" for n in names if feats.get(n) is not None]
        missing = [f"{n} is missing" for n in names if feats.get(n) is None]
        first = f"no rule matched ({', '.join(present)})" if present else "no rule matched"
        return (first, *missing)
