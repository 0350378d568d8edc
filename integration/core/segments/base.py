"""What every segmentation method offers, and what computing one dimension over a population gives.

A method is one module of this package (rules.py, score.py, percentile.py, rfm.py, manual.py)
holding a frozen dataclass, a subclass of `Dimension`, with everything about it together: the
YAML it reads (``keys``, ``parse``), the cut-offs it needs from the population (``fit``), how it
labels every row at once (``compute``) and how it says why for one row (``reasons``). methods.py
lists them; the mapping's parser and the engine call them without knowing which is which.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Self

import numpy as np

from integration.core.mapping.conditions import Features
from integration.core.mapping.loading import Doc, Path
from integration.core.segments.fitted import Fitted, Fitting
from integration.core.segments.population import Population


class Dimension(ABC):
    """One dimension of a mapping's ``segments:``; each method's dataclass has these fields and its own."""

    method: ClassVar[str]  # the ``method:`` that selects it
    keys: ClassVar[dict[str, tuple[str, ...]]]  # its YAML keys by where they appear (the mapping's KEYS)

    name: str
    description: str
    level: str  # customer | organization (computed per organization, given to its users)
    multiple: str  # a user in several organizations: best | first
    # labels a match forces in other dimensions, (dimension, label or None) in file order: manual only
    overrides: tuple[tuple[str, str | None], ...] = ()

    @property
    @abstractmethod
    def labels(self) -> tuple[str, ...]:
        """Every label it can give, in its order of preference (``multiple: best`` picks the first)."""

    @cached_property
    def reads(self) -> tuple[str, ...]:
        """The features it reads, in order of first use (manual lists read the customer record)."""
        return ()

    @property
    def tags_read(self) -> frozenset[str]:
        """Tags it reads from customers' records: the routed marker must be none of them."""
        return frozenset()

    @classmethod
    @abstractmethod
    def parse(cls, doc: Doc, name: str, raw: dict[str, Any], path: Path, description: str) -> Self:
        """Its part of the YAML (keys already checked against ``keys``) as a record."""

    def validate(self, doc: Doc, path: Path) -> None:  # noqa: B027 - optional: most methods have no such check
        """Checks that need the whole record, its level included (run after ``parse``)."""

    def fit(self, fitting: Fitting) -> None:  # noqa: B027 - optional
        """Keep the population cut-offs it needs in ``fitting`` (most need none)."""

    @abstractmethod
    def compute(self, population: Population, fitted: Fitted) -> DimensionResult:
        """Every row's choice and label at once."""

    @abstractmethod
    def reasons(
        self, choice: int, detail: Any, feats: Features, fitted: Fitted, population: Population, row: int
    ) -> tuple[str, ...]:
        """Why one row got its label, in plain words with the numbers; ``detail`` is the row's
        `DimensionResult.detail` (None where the method keeps none)."""


def dimension_inputs(dim: Dimension) -> tuple[str, ...]:
    """The features one dimension reads (manual lists read the customer record, not features)."""
    return dim.reads


@dataclass
class DimensionResult:
    """One dimension over one population: what decided (``choice``) and the label (``label``).

    ``choice`` by method -- rules: the rule index, len(rules) for the default; score: the band
    index, -1 below every band, -2 nothing scored; percentile: the band index, -1 none fits, -2
    missing, -3 not a number; rfm: the group index, -1 no group, -2 an input missing; manual: 1
    on a list, 0 not, 2 denied. ``label`` indexes dim.labels, -1 for no label.
    """

    dim: Dimension
    choice: np.ndarray
    label: np.ndarray
    detail: np.ndarray | None = None  # score: the weighted score; rfm: (n, 3) scores 1-5, 0 where missing


def label_codes(
    dim: Dimension, choice: np.ndarray, outcomes: Sequence[str | None], offset: int
) -> np.ndarray:
    """Map choice values (offset .. offset + len(outcomes) - 1) to label indexes."""
    table = np.array([dim.labels.index(o) if o is not None else -1 for o in outcomes], dtype=np.int16)
    return table[choice.astype(np.int64) - offset]
