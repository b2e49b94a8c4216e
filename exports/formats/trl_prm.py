"""Process reward in TRL's stepwise-supervision format: one row per trajectory, `prompt` (the goal and
the context before the first step), `completions` (one text per step: its plan, its call or reply, and
what came back) and `labels` (booleans from the consensus process reward: +1 and 0 → true, −1 → false),
plus `first_failing_step` (the consensus verdict's, or null). The native −1 / 0 / +1 values stay in the
Stepwise JSONL. A step without a settled reward ends the row before it. Schema: trl_prm.schema.json.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import orjson

from exports.formats.base import Source, StepRow


def context_text(step: StepRow) -> list[str]:
    return [
        f"[{m['role']}] {m['content']}"
        for m in step.state
        if isinstance(m.get("content"), str) and m.get("role") in ("user", "system")
    ]


def completion_text(step: StepRow, *, with_context: bool = True) -> str:
    parts = context_text(step) if with_context else []
    if step.plan:
        parts.append(step.plan)
    if step.kind == "tool_call":
        arguments = (
            orjson.dumps(step.arguments).decode() if isinstance(step.arguments, dict) else step.arguments_raw or ""
        )
        parts.append(f"CALL {step.tool_name} {arguments}")
        if step.observation is not None:
            parts.append(f"OBSERVATION {step.observation}")
    elif isinstance(step.arguments, dict) and isinstance(step.arguments.get("content"), str):
        parts.append(step.arguments["content"])
    return "\n".join(parts)


class TrlPrmExporter:
    name: ClassVar[str] = "trl_prm"
    label: ClassVar[str] = "Process reward (TRL stepwise supervision)"
    version: ClassVar[str] = "1.0"
    extension: ClassVar[str] = "jsonl"

    def __init__(self, *, project: Any, options: dict[str, Any]) -> None:
        self.options = options

    def rows(self, source: Source) -> Iterator[dict[str, Any]]:
        completions: list[str] = []
        labels: list[bool] = []
        for step in source.steps:
            reward = source.consensus.get((step.index, "process_reward"))
            if reward not in (-1, 0, 1):
                break
            completions.append(completion_text(step, with_context=bool(completions)))
            labels.append(reward != -1)
        if not completions:
            return
        first = source.consensus.get((None, "first_failing_step"))
        context = context_text(source.steps[0])
        yield {
            "prompt": "\n".join(context) if context else source.trajectory.goal_text,
            "completions": completions,
            "labels": labels,
            "first_failing_step": first if isinstance(first, int) else None,
        }
