"""OpenAI chat fine-tuning JSONL: one row per trajectory, `messages` (with `tool_calls` and tool results)
and `tools` (the project's frozen registry as function tools). Schema: openai_sft.schema.json.

Each step's state (the user / system messages since the previous step) comes first; a tool-call step
is an assistant message with its call (steps of one model turn share one message), followed by the
tool's result; a reply step is an assistant message. Options:
- `apply_corrections`: arguments take the annotators' consensus corrected values;
- `drop_wrong`: steps whose consensus says wrong tool, or process reward −1, are left out with
  their results.
A row ends on an assistant message: trailing tool results after the last assistant turn are cut.

A call's `arguments` is the JSON text of its arguments as OpenAI's examples and `json.dumps` write it (`", "`
and `": "` between items, non-ASCII as is), keys in the order the database gives them — on PostgreSQL
jsonb's, so the text is jsonb's own. On PostgreSQL, without `drop_wrong`, the lines are built by the database
(exports.formats.openai_sft_sql): the same bytes as `rows` written by the export (canonical JSON: sorted keys,
no blanks).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, ClassVar

import orjson
from django.db import connection

from exports.formats.base import Source, StepRow, settled_wrong
from exports.formats.openai_sft_sql import sft_lines
from trajectories.selectors.registries import active_registry_tools_query


def arguments_json(arguments: dict[str, Any]) -> str:
    """A call's arguments as the `arguments` string: JSON as OpenAI's examples and json.dumps write it."""
    return json.dumps(arguments, ensure_ascii=False)


def _arguments_text(step: StepRow, corrected: dict[str, Any]) -> str:
    if isinstance(step.arguments, dict):
        return arguments_json({**step.arguments, **corrected} if corrected else step.arguments)
    return step.arguments_raw or "{}"


class OpenAISftExporter:
    name: ClassVar[str] = "openai_sft"
    label: ClassVar[str] = "OpenAI chat fine-tuning JSONL"
    version: ClassVar[str] = "1.0"
    extension: ClassVar[str] = "jsonl"

    def __init__(self, *, project: Any, options: dict[str, Any]) -> None:
        self.apply_corrections = bool(options.get("apply_corrections"))
        self.drop_wrong = bool(options.get("drop_wrong"))
        self.tools = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in active_registry_tools_query(project).order_by("name")
        ]

    def sql_lines(self) -> Callable[..., Any] | None:
        """How PostgreSQL builds a chunk's lines (a cursor, ids → lines), or None where `rows` must."""
        if self.drop_wrong or connection.vendor != "postgresql":
            return None
        tools = orjson.dumps(self.tools, option=orjson.OPT_SORT_KEYS).decode()
        return partial(sft_lines, tools=tools, corrections=self.apply_corrections)

    def _corrected(self, step: StepRow, consensus: dict[tuple[int | None, str], Any]) -> dict[str, Any]:
        if not self.apply_corrections or not isinstance(step.arguments, dict):
            return {}
        return {
            name: consensus[(step.index, f"corrected:{name}")]
            for name in step.arguments
            if (step.index, f"corrected:{name}") in consensus
        }

    def rows(self, source: Source) -> Iterator[dict[str, Any]]:
        trajectory = source.trajectory
        messages: list[dict[str, Any]] = []
        goal = trajectory.goal_text
        steps = source.steps
        if not any(m.get("role") == "user" for s in steps[:1] for m in s.state) and goal:
            messages.append({"role": "user", "content": goal})
        i = 0
        while i < len(steps):
            step = steps[i]
            for message in step.state:
                role, content = message.get("role"), message.get("content")
                if role in ("system", "user", "assistant") and isinstance(content, str):
                    messages.append({"role": role, "content": content})
            if step.kind != "tool_call":
                if not (self.drop_wrong and settled_wrong(step.index, source.consensus)):
                    reply = step.arguments.get("content") if isinstance(step.arguments, dict) else None
                    messages.append({"role": "assistant", "content": reply if isinstance(reply, str) else step.plan})
                i += 1
                continue
            turn = [step]
            while (
                step.turn_id
                and i + len(turn) < len(steps)
                and steps[i + len(turn)].kind == "tool_call"
                and steps[i + len(turn)].turn_id == step.turn_id
                and not steps[i + len(turn)].state
            ):
                turn.append(steps[i + len(turn)])
            kept = [s for s in turn if not (self.drop_wrong and settled_wrong(s.index, source.consensus))]
            if kept:
                calls = []
                for s in kept:
                    call_id = s.tool_call_id or f"call_{s.index}"
                    calls.append(
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {
                                "name": s.tool_name,
                                "arguments": _arguments_text(s, self._corrected(s, source.consensus)),
                            },
                        }
                    )
                messages.append({"role": "assistant", "content": kept[0].plan or None, "tool_calls": calls})
                for s, call in zip(kept, calls, strict=True):
                    messages.append({"role": "tool", "tool_call_id": call["id"], "content": s.observation or ""})
            i += len(turn)
        while messages and messages[-1]["role"] != "assistant":
            messages.pop()
        if not any(m["role"] == "assistant" for m in messages):
            return
        yield {"messages": messages, "tools": self.tools}
