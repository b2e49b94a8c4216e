"""Agreement on set-valued labels, the failure-mode tags (AGREEMENT.md §1.4 "Multi-label", TV14b/c)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from collections.abc import Set as AbstractSet
from typing import Literal

import numpy as np

from audit.agreement.coefficients import (
    Result,
    category_counts,
    coincidence_matrix,
    krippendorff_alpha,
    krippendorff_alpha_counts,
)

type TagSet = AbstractSet[Hashable]
type SetDistance = Callable[[TagSet, TagSet], float]
type Units = Sequence[Sequence[TagSet | None]]


def jaccard_distance(a: TagSet, b: TagSet) -> float:
    """1 − |A∩B|/|A∪B|, with d(∅, ∅) = 0 (§1.4, TV15)."""
    union = len(a | b)
    return 0.0 if union == 0 else 1.0 - len(a & b) / union


def masi_distance(a: TagSet, b: TagSet) -> float:
    """MASI (Passonneau 2006): 1 − J·M, M = 1, 2/3, 1/3 or 0 for equal, nested, overlapping, disjoint; d(∅, ∅) = 0."""
    if a == b:
        return 0.0
    common = len(a & b)
    if common == 0:
        return 1.0
    monotonicity = 2.0 / 3.0 if (a <= b or b <= a) else 1.0 / 3.0
    return 1.0 - common / len(a | b) * monotonicity


def exact_distance(a: TagSet, b: TagSet) -> float:
    """Nominal difference between sets: 0 if equal, else 1."""
    return 0.0 if a == b else 1.0


SET_DISTANCES: dict[str, SetDistance] = {"masi": masi_distance, "jaccard": jaccard_distance, "exact": exact_distance}


def set_alpha(units: Units, distance: Literal["masi", "jaccard", "exact"] | SetDistance = "masi") -> Result:
    """Set-level Krippendorff α: each distinct set is one value, δ the set distance (§1.4, TV14c).

    `units` holds one list per unit of the annotators' tag sets; None is a missing annotation, ∅ a value.
    """
    measure = SET_DISTANCES[distance] if isinstance(distance, str) else distance
    frozen = [[None if s is None else frozenset(s) for s in unit] for unit in units]
    values = list(dict.fromkeys(s for unit in frozen for s in unit if s is not None))
    delta = np.array([[measure(a, b) for b in values] for a in values], dtype=np.float64).reshape(len(values), -1)
    return krippendorff_alpha_counts(category_counts(frozen, values), delta=delta)


def per_tag_alpha(units: Units, tags: Sequence[Hashable]) -> dict[Hashable, Result]:
    """Binary nominal α per tag (tag present or absent in each annotation), the recommended primary (§1.4, TV14c)."""
    annotations = [(u, s) for u, unit in enumerate(units) for s in unit if s is not None]
    unit_of = np.array([u for u, _ in annotations], dtype=np.int64)
    present = np.array([[tag in s for tag in tags] for _, s in annotations], dtype=np.float64).reshape(-1, len(tags))
    positive = np.zeros((len(units), len(tags)))
    np.add.at(positive, unit_of, present)
    m = np.bincount(unit_of, minlength=len(units)).astype(np.float64)
    counts = np.stack([m[:, None] - positive, positive], axis=-1).transpose(1, 0, 2)
    coincidences = coincidence_matrix(counts)
    n_items = int((m >= 2).sum())
    return {tag: krippendorff_alpha(coincidences[t], n_items=n_items) for t, tag in enumerate(tags)}
