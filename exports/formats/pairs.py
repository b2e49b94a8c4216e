"""Which preference pairs a batch gives, whichever format writes them (trl_dpo, llamafactory_dpo).

Same-goal pairs. The batch's runs of one goal are compared two by two: a run is preferred to another when
its reward (verified where a verifier computed one, else the file's) is higher, or — rewards equal or
unknown — its mean settled rubric score is higher by at least RUBRIC_GAP. The pairs are ranked widest gap
first (reward, then rubric, then run ids); a goal gives the first MAX_PAIRS of them that the format can
write, in preferred run order, then other run.

Alternative pairs. An abandoned branch a run kept in `alternatives` in the ToolBench importer's shape
(`branch_from`: the index of the chosen step it replaces; `steps`: its steps, each with `tool`,
`arguments` or `arguments_raw`, `thought`) gives one pair at the point where it left the chosen path:
the conversation up to that point as the prompt, the chosen path's step there as chosen, the branch's
first step as rejected. The conversation is the chosen path's up to the observation before the branch
point (the task's opening messages when the branch replaces the first step): the context the chosen step
saw beyond it — DFSDT's notes on the branches already tried, written for its retry only — is not shared
by the branch and is left out. Only a run whose chosen path is the better one gives such pairs: it ended
in a final answer, its reward (where known) is above 0 — a give_up run's chosen path is merely the last
branch tried — and the annotators did not settle its step at the branch point as wrong (wrong tool, or
process reward −1). A branch that starts beyond the chosen path, or with one of a model turn's parallel
calls, gives none; branches that begin alike give one pair (the first), and a branch whose first step is
the chosen one gives none. They come in run order, then in the order of the run's alternatives.

A goal's rows are its same-goal pairs, then its runs' alternative pairs; runs without a goal are not
comparable with each other and give only alternative pairs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from exports.formats.base import Source, settled_wrong
from exports.formats.openai_sft import OpenAISftExporter
from trajectories.chat import arguments_json
from trajectories.models import Trajectory

MAX_PAIRS = 10
RUBRIC_GAP = 0.5

Row = dict[str, Any]
Message = dict[str, Any]


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


def reference(trajectory: Trajectory) -> str:
    """How a row names the run it came from: its rollout id, else its id."""
    return trajectory.rollout_id or str(trajectory.pk)


def goal_pairs(
    group: list[Source], build: Callable[[Source, Source], Row | None]
) -> Iterator[tuple[Row, list[Trajectory]]]:
    """The goal's pairs as rows (`build(preferred run, other run)`, None when the format cannot write the
    pair), each with the two runs it came from."""
    if group[0].trajectory.goal_id is None:  # runs without a goal are not comparable
        return
    ranked = []
    for a in group:
        for b in group:
            if a is not b and preferred(a, b):
                (ra, sa), (rb, sb) = _score(a), _score(b)
                gap = ((ra or 0) - (rb or 0), (sa or 0) - (sb or 0))
                ranked.append((gap, a, b))
    ranked.sort(key=lambda p: (-p[0][0], -p[0][1], p[1].trajectory.pk, p[2].trajectory.pk))
    kept = []
    for _, a, b in ranked:
        row = build(a, b)
        if row is not None:
            kept.append(((a.trajectory.pk, b.trajectory.pk), row, [a.trajectory, b.trajectory]))
            if len(kept) == MAX_PAIRS:
                break
    for _, row, origin in sorted(kept, key=lambda k: k[0]):
        yield row, origin


@dataclass(frozen=True, slots=True)
class Branch:
    """An abandoned branch of a run, at the chosen step it replaces."""

    index: int  # its place in the run's alternatives
    branch_from: int  # the index of the chosen step it replaces
    step: dict[str, Any]  # its first step, as the importer kept it

    def message(self, call_id: str) -> Message:
        """Its first step as an assistant chat message with one tool call (the chosen call's id)."""
        arguments = self.step.get("arguments")
        raw = self.step.get("arguments_raw")
        text = arguments_json(arguments) if isinstance(arguments, dict) else raw if isinstance(raw, str) else "{}"
        thought = self.step.get("thought")
        return {
            "role": "assistant",
            "content": thought if isinstance(thought, str) and thought else None,
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": self.step["tool"], "arguments": text}}
            ],
        }


def branches(source: Source) -> Iterator[Branch]:
    """The run's abandoned branches that give a pair (the module's rule)."""
    t = source.trajectory
    reward = t.verified_reward if t.verified_reward is not None else t.outcome_reward
    if not t.final_answer or (reward is not None and reward <= 0):
        return
    steps = source.steps
    for index, alternative in enumerate(t.alternatives if isinstance(t.alternatives, list) else []):
        if not isinstance(alternative, dict):
            continue
        at, taken = alternative.get("branch_from"), alternative.get("steps")
        if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at < len(steps):
            continue
        if not isinstance(taken, list) or not taken or not isinstance(taken[0], dict):
            continue
        first = taken[0]
        if not isinstance(first.get("tool"), str) or not first["tool"]:
            continue
        chosen = steps[at]
        if settled_wrong(chosen.index, source.consensus):
            continue
        if at > 0 and chosen.turn_id and steps[at - 1].turn_id == chosen.turn_id:
            continue  # one of a turn's parallel calls: its turn began before the branch point
        yield Branch(index, at, first)


def branch_point(chat: OpenAISftExporter, source: Source, branch: Branch) -> tuple[list[Message], Message] | None:
    """(the conversation up to the branch point, the chosen path's assistant message there) as chat messages
    (`branches` gave no branch whose chosen step `drop_wrong` would leave out); None when nothing renders."""
    at = branch.branch_from
    steps = source.steps[: at + 1]
    if at > 0:
        steps[at] = dataclasses.replace(steps[at], state=[])
    rendered = next(iter(chat.rows(Source(source.trajectory, steps, source.consensus))), None)
    if rendered is None:
        return None
    messages: list[Message] = rendered["messages"]
    return messages[:-1], messages[-1]


def alternative_pairs(
    group: list[Source], build: Callable[[Source, Branch], Row | None]
) -> Iterator[tuple[Row, list[Trajectory]]]:
    """The runs' alternative pairs as rows (`build(run, branch)`, None when the format cannot write the pair),
    each with the run it came from; rows alike but for the branch they name are written once per run."""
    for source in group:
        seen: set[bytes] = set()
        for branch in branches(source):
            row = build(source, branch)
            if row is None:
                continue
            key = orjson.dumps(
                {k: v for k, v in row.items() if k != "rejected_trajectory"}, option=orjson.OPT_SORT_KEYS
            )
            if key not in seen:
                seen.add(key)
                yield row, [source.trajectory]
