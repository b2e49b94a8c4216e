"""Preference pairs as LLaMA-Factory reads them (formatting "sharegpt", ranking true): `conversations` of
human / gpt / function_call / observation turns, `chosen` and `rejected` one gpt or function_call turn
each, `system`, `tools` (a JSON string) — turns written as the ShareGPT exporter writes them
(exports.formats.sharegpt: a call is {"name", "arguments"}, its results one observation, the plan beside a
call left out). The pairs and their order are exports.formats.pairs': a goal's same-goal pairs, then its
runs' alternative pairs.

- Same-goal pair (`pair: "same_goal"`): the two runs' longest common prefix of turns is the conversation,
  their first differing turns the chosen (the preferred run's) and the rejected one. Runs whose first
  difference is not the agent's (a different input or result), or where one run ends, or whose system
  prompts differ, give no row.
- Alternative pair (`pair: "alternative"`, e.g. a ToolBench pruned branch): the conversation up to the
  branch point, the chosen path's turn there and the branch's first step as a function_call.
  `rejected_trajectory` names the branch as `<run>/alternatives/<index>`; a branch that differs from the
  chosen step only in its thought gives no row here.

LLaMA-Factory's alternation holds on every row: the conversation starts with human, inputs (human,
observation) at even positions and outputs (gpt, function_call) at odd ones, and ends on an input, so its
length is odd and chosen / rejected are the next output. A pair whose conversation would break it (e.g. a
user message right after a tool result) is not written. `dataset_info.json` beside the data registers the
file with LLaMA-Factory (`dataset_info`). Schema: llamafactory_dpo.schema.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from exports.formats.base import Source
from exports.formats.openai_sft import OpenAISftExporter
from exports.formats.pairs import Branch, alternative_pairs, branch_point, goal_pairs, reference
from exports.formats.sharegpt import aligned, assistant_turn, chat_turns, dataset_info
from trajectories.models import Trajectory

Turn = dict[str, str]


def conversation(messages: list[dict[str, Any]]) -> tuple[str, list[Turn], bool]:
    """(the system prompt, the turns that keep the alternation, whether that is all of the messages)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns, complete = aligned(list(chat_turns([m for m in messages if m["role"] != "system"])))
    return system, turns, complete


class LlamaFactoryDpoExporter:
    name: ClassVar[str] = "llamafactory_dpo"
    label: ClassVar[str] = "Preference pairs (LLaMA-Factory)"
    version: ClassVar[str] = "1.0"
    extension: ClassVar[str] = "jsonl"
    grouped: ClassVar[bool] = True  # rows come from all the batch's runs of one goal at once

    def __init__(self, *, project: Any, options: dict[str, Any]) -> None:
        self.chat = OpenAISftExporter(project=project, options=options)
        self.tools = json.dumps([t["function"] for t in self.chat.tools], ensure_ascii=False, sort_keys=True)

    def rows(self, source: Source) -> Iterator[dict[str, Any]]:
        return iter(())

    def group_rows(self, group: list[Source]) -> Iterator[tuple[dict[str, Any], list[Trajectory]]]:
        runs: dict[int, tuple[str, list[Turn], bool]] = {}

        def run(source: Source) -> tuple[str, list[Turn], bool]:
            if source.trajectory.pk not in runs:
                chat: dict[str, Any] = next(iter(self.chat.rows(source)), {"messages": []})
                runs[source.trajectory.pk] = conversation(chat["messages"])
            return runs[source.trajectory.pk]

        def same_goal(a: Source, b: Source) -> dict[str, Any] | None:
            (system, ta, _), (other_system, tb, _) = run(a), run(b)
            if system != other_system:
                return None
            k = 0
            while k < len(ta) and k < len(tb) and ta[k] == tb[k]:
                k += 1
            if k % 2 == 0 or k >= len(ta) or k >= len(tb):  # not an agent's turn, or one run ends there
                return None
            return self._row(
                ta[:k], ta[k], tb[k], system, reference(a.trajectory), reference(b.trajectory), "same_goal"
            )

        yield from goal_pairs(group, same_goal)
        yield from alternative_pairs(group, self._alternative)

    def _alternative(self, source: Source, branch: Branch) -> dict[str, Any] | None:
        point = branch_point(self.chat, source, branch)
        if point is None:
            return None
        prompt, chosen_message = point
        system, turns, complete = conversation(prompt)
        if not complete or len(turns) % 2 == 0:
            return None
        calls = chosen_message.get("tool_calls") or []
        chosen = assistant_turn(chosen_message)
        rejected = assistant_turn(branch.message(calls[0]["id"] if calls else f"call_{branch.branch_from}"))
        if chosen == rejected:
            return None
        ref = reference(source.trajectory)
        return self._row(turns, chosen, rejected, system, ref, f"{ref}/alternatives/{branch.index}", "alternative")

    def _row(
        self,
        conversations: list[Turn],
        chosen: Turn,
        rejected: Turn,
        system: str,
        chosen_trajectory: str,
        rejected_trajectory: str,
        pair: str,
    ) -> dict[str, Any]:
        return {
            "conversations": conversations,
            "chosen": chosen,
            "rejected": rejected,
            "system": system,
            "tools": self.tools,
            "chosen_trajectory": chosen_trajectory,
            "rejected_trajectory": rejected_trajectory,
            "pair": pair,
        }

    def companions(self, data_file: str) -> list[tuple[str, bytes, str]]:
        """Files written beside the data: (name, content, what it is for the dataset card)."""
        columns = {
            "messages": "conversations",
            "chosen": "chosen",
            "rejected": "rejected",
            "system": "system",
            "tools": "tools",
        }
        return [dataset_info(data_file, columns, what="the pairs", ranking=True)]
