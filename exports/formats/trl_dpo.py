"""Preference pairs in TRL's conversational DPO format (`prompt`, `chosen`, `rejected`), the pairs and
their order as exports.formats.pairs says: a goal's same-goal pairs, then its runs' alternative pairs.

- Same-goal pair (`pair: "same_goal"`): `prompt` is the goal's opening messages (the preferred run's),
  `chosen` and `rejected` the rest of each run as chat messages (calls and results included).
- Alternative pair (`pair: "alternative"`, e.g. a ToolBench pruned branch): `prompt` is the conversation
  up to the branch point (system, user, assistant calls and tool results), `chosen` the chosen path's
  assistant message there, `rejected` the branch's first step as an assistant message — each one message
  with its thought as content and its call (the chosen call's id on both). `rejected_trajectory` names
  the branch as `<run>/alternatives/<index>`.
Schema: trl_dpo.schema.json.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from exports.formats.base import Source
from exports.formats.openai_sft import OpenAISftExporter
from exports.formats.pairs import Branch, alternative_pairs, branch_point, goal_pairs, reference
from trajectories.models import Trajectory


class TrlDpoExporter:
    name: ClassVar[str] = "trl_dpo"
    label: ClassVar[str] = "Preference pairs (TRL DPO)"
    version: ClassVar[str] = "1.1"
    extension: ClassVar[str] = "jsonl"
    grouped: ClassVar[bool] = True  # rows come from all the batch's runs of one goal at once

    def __init__(self, *, project: Any, options: dict[str, Any]) -> None:
        self.chat = OpenAISftExporter(project=project, options=options)

    def rows(self, source: Source) -> Iterator[dict[str, Any]]:
        return iter(())

    def group_rows(self, group: list[Source]) -> Iterator[tuple[dict[str, Any], list[Trajectory]]]:
        messages: dict[int, list[dict[str, Any]]] = {}

        def run(source: Source) -> list[dict[str, Any]]:
            if source.trajectory.pk not in messages:
                messages[source.trajectory.pk] = next(iter(self.chat.rows(source)), {"messages": []})["messages"]
            return messages[source.trajectory.pk]

        def same_goal(a: Source, b: Source) -> dict[str, Any] | None:
            prompt, chosen = _split(run(a))
            _, rejected = _split(run(b))
            if not (prompt and chosen and rejected):
                return None
            return _row(prompt, chosen, rejected, reference(a.trajectory), reference(b.trajectory), "same_goal")

        yield from goal_pairs(group, same_goal)
        yield from alternative_pairs(group, self._alternative)

    def _alternative(self, source: Source, branch: Branch) -> dict[str, Any] | None:
        point = branch_point(self.chat, source, branch)
        if point is None or not point[0]:
            return None
        prompt, chosen = point
        calls = chosen.get("tool_calls") or []
        rejected = branch.message(calls[0]["id"] if calls else f"call_{branch.branch_from}")
        if rejected == chosen:
            return None
        ref = reference(source.trajectory)
        return _row(prompt, [chosen], [rejected], ref, f"{ref}/alternatives/{branch.index}", "alternative")


def _row(
    prompt: list[dict[str, Any]],
    chosen: list[dict[str, Any]],
    rejected: list[dict[str, Any]],
    chosen_trajectory: str,
    rejected_trajectory: str,
    pair: str,
) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "chosen_trajectory": chosen_trajectory,
        "rejected_trajectory": rejected_trajectory,
        "pair": pair,
    }


def _split(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the opening system / user messages, the rest from the first assistant message on)."""
    first = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
    return messages[:first], messages[first:]
