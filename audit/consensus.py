"""The consensus rules (AGREEMENT.md §5), as pure functions of the votes on one field.

A vote is `(label_id, value)`; `value` is None when that annotator gave no value. Each rule
returns an `Outcome`: settled with the value and the labels it came from, or escalated with a
reason. Values are compared by their canonical JSON, so `{"a": 1}` and `{ "a":1 }` match.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

Vote = tuple[int, Any]
NONE_TAG = "none"


@dataclass(frozen=True, slots=True)
class Outcome:
    settled: bool
    value: Any = None
    agreement: str = ""  # "3/3", "2/3", … : how many votes hold the settled value
    source_labels: tuple[int, ...] = ()
    outliers: tuple[int, ...] = ()
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def canonical(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _escalate(reason: str, **details: Any) -> Outcome:
    return Outcome(settled=False, reason=reason, details=details)


def exact(votes: Sequence[Vote], *, abstain: Iterable[Any] = (), critical: bool = False) -> Outcome:
    """At least two identical definitive votes, more than any other value → that value.

    `abstain` values (e.g. "unsure") are no vote. One annotator alone settles with "1/1".
    With `critical`, any split among the definitive votes escalates.
    """
    skip = {canonical(v) for v in abstain}
    definitive = [(label, value) for label, value in votes if value is not None and canonical(value) not in skip]
    total = len(votes)
    if not definitive:
        return _escalate("no definitive vote" if total > 1 else "no vote")
    counts = Counter(canonical(value) for _, value in definitive)
    ranked = counts.most_common()
    top_key, top = ranked[0]
    second = ranked[1][1] if len(ranked) > 1 else 0
    winners = tuple(label for label, value in definitive if canonical(value) == top_key)
    value = next(value for _, value in definitive if canonical(value) == top_key)
    if total == 1:
        return Outcome(True, value, "1/1", winners)
    if top < 2 or top == second:
        return _escalate("votes differ" if len(counts) > 1 else "fewer than two matching votes")
    if critical and len(counts) > 1:
        return _escalate("split on a critical step")
    outliers = tuple(label for label, value in definitive if canonical(value) != top_key)
    return Outcome(True, value, f"{top}/{total}", winners, outliers)


def ordinal(votes: Sequence[Vote], *, critical: bool = False) -> Outcome:
    """Rubric scores 1–5: range ≤ 1 → the median; an exact pair and an outlier → the pair (the
    outlier flagged; escalated when the axis is critical); all apart → escalate."""
    scored = [(label, int(value)) for label, value in votes if value is not None]
    total = len(votes)
    if not scored:
        return _escalate("no score")
    values = [v for _, v in scored]
    if total == 1:
        return Outcome(True, values[0], "1/1", (scored[0][0],))
    if len(scored) < 2:
        return _escalate("fewer than two scores")
    if max(values) - min(values) <= 1:
        if len(values) % 2 == 0 and len(set(values)) > 1:
            counts = Counter(values).most_common()
            if len(counts) > 1 and counts[0][1] == counts[1][1]:
                return _escalate("scores split evenly")
            median = counts[0][0]
        else:
            median = int(statistics.median(values))
        holders = tuple(label for label, v in scored if v == median)
        return Outcome(True, median, f"{len(holders)}/{total}", holders)
    counts = Counter(values).most_common()
    if counts[0][1] >= 2 and (len(counts) == 1 or counts[0][1] > counts[1][1]):
        mode = counts[0][0]
        holders = tuple(label for label, v in scored if v == mode)
        outliers = tuple(label for label, v in scored if abs(v - mode) > 1)
        if critical and outliers:
            return _escalate("an outlier on a critical axis", mode=mode)
        return Outcome(True, mode, f"{len(holders)}/{total}", holders, outliers)
    return _escalate("scores differ by 2 or more")


def tags(votes: Sequence[Vote], *, high_severity: Iterable[str] = ()) -> Outcome:
    """Failure modes: each tag (the explicit "none" too) is in the consensus set when a majority
    chose it. Escalate on a split over a high-severity tag, when no tag has a majority, or when a
    set of two or more tags matches no annotator's own set (AGREEMENT.md §5, TV14c)."""
    sets = [(label, frozenset(value)) for label, value in votes if value is not None]
    total = len(votes)
    if not sets:
        return _escalate("no failure modes chosen")
    if total == 1:
        return Outcome(True, sorted(sets[0][1]), "1/1", (sets[0][0],))
    counts = Counter(tag for _, chosen in sets for tag in chosen)
    severe = set(high_severity)
    split = sorted(tag for tag, n in counts.items() if tag in severe and n < len(sets))
    if split:
        return _escalate("split on a high-severity failure mode", tags=split)
    chosen = frozenset(tag for tag, n in counts.items() if 2 * n > total)
    if not chosen:
        return _escalate("no failure mode has a majority")
    if NONE_TAG in chosen and len(chosen) > 1:
        return _escalate('"none" and a failure mode both have a majority')
    holders = tuple(label for label, s in sets if s == chosen)
    if len(chosen) >= 2 and not holders:
        return _escalate("the majority set matches no annotator's set", tags=sorted(chosen))
    outliers = tuple(label for label, s in sets if s != chosen)
    return Outcome(True, sorted(chosen), f"{len(holders)}/{total}", holders, outliers)
