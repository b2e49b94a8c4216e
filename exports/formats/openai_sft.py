"""OpenAI chat fine-tuning JSONL: one row per trajectory, `messages` (with `tool_calls` and tool results)
and `tools` (the project's frozen registry as function tools). Schema: openai_sft.schema.json.

The messages are trajectories.chat's: each step's state (the user / system messages since the previous step)
first; a tool-call step is an assistant message with its call (steps of one model turn share one message),
followed by the tool's result; a reply step is an assistant message; a row ends on an assistant message. The
goal comes first, as a user message, where the first step's state holds none. Options:
- `apply_corrections`: arguments take the annotators' consensus corrected values;
- `drop_wrong`: steps whose consensus says wrong tool, or process reward −1, are left out with
  their results.

A call's `arguments` is the canonical JSON text of its arguments (keys sorted, no blanks, non-ASCII as is;
trajectories.chat.arguments_json).

`lines` writes a chunk of trajectories: from the messages each trajectory keeps since its import
(Trajectory.chat: one compressed blob a trajectory, no step read) wherever the options leave its steps as they
are, else from `rows`: the same bytes either way (canonical JSON: sorted keys, no blanks).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import orjson

from exports.formats.base import Source, settled_wrong, sources
from exports.selectors import Origin, kept_chats, steps_changed_by
from trajectories.chat import chat_messages, starts_with_user
from trajectories.models import PayloadDictionary
from trajectories.selectors.registries import active_registry_tools_query
from trajectories.selectors.runs import chat_unpacker


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
        self._head = b'{"messages":['
        self._tail = b'],"tools":' + orjson.dumps(self.tools, option=orjson.OPT_SORT_KEYS) + b"}\n"
        self._unpacker = chat_unpacker()  # reads a dictionary only when a blob needs one

    def lines(self, ids: list[int]) -> list[tuple[Origin, bytes]]:
        """The lines of a chunk of trajectories (in the given order) with the trajectory each came from."""
        kept = kept_chats(ids)
        changed = steps_changed_by(
            [pk for pk, (_, chat) in kept.items() if chat is not None],
            corrections=self.apply_corrections,
            drop_wrong=self.drop_wrong,
        )
        bodies: dict[int, bytes] = {}
        for pk, (_, chat) in kept.items():
            if chat is not None and pk not in changed:
                try:
                    bodies[pk] = self._unpacker.unpack(chat.packed)
                except PayloadDictionary.DoesNotExist:  # deleted by hand: the steps are still there
                    continue
        rebuilt = [pk for pk in ids if pk in kept and pk not in bodies]
        built = {
            source.trajectory.pk: [orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n" for row in self.rows(source)]
            for source in (sources([rebuilt]) if rebuilt else ())
        }
        lines = []
        for pk in ids:
            if pk not in kept:
                continue
            (origin, goal), chat = kept[pk]
            body = bodies.get(pk)
            if body is None:
                lines += [(origin, line) for line in built.get(pk, ())]
            elif body:
                head = self._head if not goal or (chat and chat.first_user) else self._head + self._goal(goal) + b","
                lines.append((origin, head + body + self._tail))
        return lines

    @staticmethod
    def _goal(goal: str) -> bytes:
        return orjson.dumps({"role": "user", "content": goal}, option=orjson.OPT_SORT_KEYS)

    @staticmethod
    def _corrected(index: int, step: Any, consensus: dict[tuple[int | None, str], Any]) -> dict[str, Any]:
        return {
            name: consensus[(index, f"corrected:{name}")]
            for name in step.arguments
            if (index, f"corrected:{name}") in consensus
        }

    def rows(self, source: Source) -> Iterator[dict[str, Any]]:
        """The trajectory's row built from its steps' rows."""
        steps = source.steps
        consensus = source.consensus
        dropped = (lambda index: settled_wrong(index, consensus)) if self.drop_wrong else None
        corrected = (lambda index, step: self._corrected(index, step, consensus)) if self.apply_corrections else None
        messages = chat_messages(steps, [s.index for s in steps], dropped=dropped, corrected=corrected)
        if not messages:
            return
        goal = source.trajectory.goal_text
        if goal and not starts_with_user(steps):
            messages.insert(0, {"role": "user", "content": goal})
        yield {"messages": messages, "tools": self.tools}
