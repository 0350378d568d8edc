"""Cut-offs: the definitions every percentile statement relies on ("top 20%", deciles, quintiles)."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from fractions import Fraction

import numpy as np


def _count_for(percent: float, size: int) -> int:
    """How many customers "N%" of ``size`` means: ceil(N% x size), at least 1, exact arithmetic."""
    count = math.ceil(Fraction(str(percent)) * size / 100)
    return max(1, min(size, count))


def top_cutoff(ordered: Sequence[float] | np.ndarray, percent: float) -> float | None:
    """The value where the top N% starts: the k-th highest, k = ceil(N% of n).

    Everyone at or above it is in, so ties at the cut-off make the group a little larger than N%.
    """
    if len(ordered) == 0:
        return None
    return float(ordered[len(ordered) - _count_for(percent, len(ordered))])


def bottom_cutoff(ordered: Sequence[float] | np.ndarray, percent: float) -> float | None:
    """The value where the bottom N% ends: the k-th lowest; everyone at or below it is in."""
    if len(ordered) == 0:
        return None
    return float(ordered[_count_for(percent, len(ordered)) - 1])


def ntile_cutoffs(ordered: Sequence[float] | np.ndarray, parts: int) -> tuple[float, ...]:
    """``parts - 1`` cut-offs so that ``ntile_score`` gives 1 + floor(parts x percentile rank).

    The percentile rank of a value is (customers below it + half of those equal to it) / n, so
    ties share a fair middle score: when 70% have 0 referrals, 0 scores 4 of 10, not 1 and not 7.
    t_s is the smallest population value whose rank reaches s/parts (infinity when none does).
    """
    values = np.asarray(ordered, dtype=np.float64)
    size = len(values)
    if size == 0:
        return (math.inf,) * (parts - 1)
    first = np.empty(size, dtype=bool)
    first[0] = True
    np.not_equal(values[1:], values[:-1], out=first[1:])
    distinct = values[first]
    below = np.flatnonzero(first)  # customers below each distinct value
    upto = np.append(below[1:], size)  # customers at or below it
    doubled_rank = parts * (below + upto)  # parts x 2n x rank, in exact integers
    cuts = []
    for step in range(1, parts):
        at = int(np.searchsorted(doubled_rank, 2 * size * step, side="left"))
        cuts.append(float(distinct[at]) if at < len(distinct) else math.inf)
    return tuple(cuts)


def decile_cutoffs(ordered: Sequence[float] | np.ndarray) -> tuple[float, ...]:
    """Nine cut-offs t1..t9 for 1-10 scores by percentile (see ntile_cutoffs)."""
    return ntile_cutoffs(ordered, 10)


def decile_score(value: float, cuts: Sequence[float]) -> int:
    """1 + the number of cut-offs the value reaches: below t1 -> 1, at or above t9 -> 10."""
    return 1 + bisect_right(cuts, value)
