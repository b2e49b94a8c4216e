"""Preference pairs in TRL's conversational DPO format (`prompt`, `chosen`, `rejected`), built from the
batch's trajectories of the same goal: a run is preferred to another when its reward (verified where a
verifier computed one, else the file's) is higher, or — rewards equal — its mean settled rubric score is
higher by at least 0.5. `prompt` is the goal's opening messages (the preferred run's), `chosen` and
`rejected` the rest of each run as chat messages (calls and results included). Each goal gives at most
MAX_PAIRS pairs, the widest gaps first; pairs are in goal order, then preferred run, then other run.
Schema: trl_dpo.schema.json.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from exports.formats.base import Source
from exports.formats.openai_sft import OpenAISftExporter

MAX_PAIRS = 10
RUBRIC_GAP = 0.5


def _score(source: Source) -> tuple[float | None, float | None]:
    t = source.trajectory
    reward = t.verified_reward if t.verified_reward is not None else t.outcome_reward
    scores = [v for (index, field), v in source.consensus.items() if index is not None and field.startswith("rubric:")]
    rubric = sum(scores) / len(scores) if scores else None
    return reward, rubric


def preferred(a: Source, b: Source) -> bool:
    (ra, sa), (rb, sb) = _score(a), _score(b)
    if ra is not None and rb is not None and ra != rb:
        return ra > rb
    return sa is not None and sb is not None and sa - sb >= RUBRIC_GAP


class TrlDpoExporter:
    name: ClassVar[str] = "trl_dpo"
    label: ClassVar[str] = "Preference pairs (TRL DPO)"
    version: ClassVar[str] = "1.0"
    extension: ClassVar[str] = "jsonl"
    grouped: ClassVar[bool] = True  # rows come from all the batch's runs of one goal at once

    def __init__(self, *, project: Any, options: dict[str, Any]) -> None:
        self.chat = OpenAISftExporter(project=project, options=options)

    def rows(self, source: Source) -> Iterator[dict[str, Any]]:
        return iter(())

    def group_rows(self, group: list[Source]) -> Iterator[dict[str, Any]]:
        if group[0].trajectory.goal_id is None:  # runs without a goal are not comparable
            return
        messages: dict[int, list[dict[str, Any]]] = {
            s.trajectory.pk: next(iter(self.chat.rows(s)), {"messages": []})["messages"] for s in group
        }
        pairs = []
        for a in group:
            for b in group:
                if a is not b and preferred(a, b) and messages[a.trajectory.pk] and messages[b.trajectory.pk]:
                    (ra, sa), (rb, sb) = _score(a), _score(b)
                    gap = ((ra or 0) - (rb or 0), (sa or 0) - (sb or 0))
                    pairs.append((gap, a, b))
        pairs.sort(key=lambda p: (-p[0][0], -p[0][1], p[1].trajectory.pk, p[2].trajectory.pk))
        for _, a, b in sorted(pairs[:MAX_PAIRS], key=lambda p: (p[1].trajectory.pk, p[2].trajectory.pk)):
            prompt, chosen = _split(messages[a.trajectory.pk])
            _, rejected = _split(messages[b.trajectory.pk])
            if chosen and rejected:
                yield {
                    "prompt": prompt,
                    "chosen": chosen,
                    "rejected": rejected,
                    "chosen_trajectory": a.trajectory.rollout_id or str(a.trajectory.pk),
                    "rejected_trajectory": b.trajectory.rollout_id or str(b.trajectory.pk),
                }


def _split(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the opening system / user messages, the rest from the first assistant message on)."""
    first = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
    return messages[:first], messages[first:]
