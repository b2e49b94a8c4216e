"""OpenAI chat conversations: JSONL, or a JSON array, of {messages, tools?, metadata?}.

The first user message is the goal. Both `tool_calls` and the legacy `function_call` /
`role: "function"` shapes are read. Known metadata keys: model, scaffold, rollout_id (or id),
trial, reward, goal_id, band, tags, instance_id; the rest is kept as metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from trajectories.formats.base import ParsedRun, RawRecord, RecordError
from trajectories.formats.chat import segment_messages
from trajectories.formats.reading import iter_json_array, iter_jsonl, loads_located, sniff_container

BANDS = ("atomic", "composite", "ambiguous")


class OpenAIChatImporter:
    name = "openai_chat"
    label = "OpenAI chat messages (JSONL or JSON array)"
    version = "1.0"

    def detect(self, head: bytes) -> int:
        container = sniff_container(head)
        if container in ("jsonl", "array") and b'"messages"' in head[:65536]:
            return 60
        return 0

    def container(self, head: bytes) -> str:
        """How records() cuts a file that starts with `head` (its first 4 KB): "array" or "jsonl"."""
        return "array" if sniff_container(head[:4096]) == "array" else "jsonl"

    def records(self, stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
        head = stream.read(4096)
        stream.seek(0)
        return iter_json_array(stream) if self.container(head) == "array" else iter_jsonl(stream)

    def parse(self, record: RawRecord) -> ParsedRun:
        value = record.value if record.value is not None else loads_located(record.raw, record.where, record.line)
        if not isinstance(value, dict):
            raise RecordError(f"a record must be a JSON object, not {type(value).__name__}", pointer="")
        if "messages" not in value:
            raise RecordError("missing 'messages'", pointer="/messages")
        steps, goal_text, final_answer = segment_messages(value["messages"])
        if not steps:
            raise RecordError("no assistant message: nothing to segment into steps", pointer="/messages")
        metadata = value.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise RecordError("metadata must be an object", pointer="/metadata")
        tools = value.get("tools")
        if tools is not None and not isinstance(tools, list):
            raise RecordError("tools must be a list", pointer="/tools")
        return ParsedRun(
            goal_text=goal_text,
            steps=steps,
            goal=_goal_of(metadata),
            task={"instance_id": str(metadata["instance_id"])} if metadata.get("instance_id") else None,
            model=_text(metadata.get("model") or value.get("model"), "/metadata/model"),
            scaffold=_text(metadata.get("scaffold"), "/metadata/scaffold"),
            rollout_id=_text(
                metadata.get("rollout_id") or metadata.get("id") or value.get("id"), "/metadata/rollout_id"
            ),
            trial=_trial(metadata.get("trial")),
            final_answer=final_answer,
            outcome=_outcome(metadata.get("reward", value.get("reward"))),
            metadata={k: v for k, v in metadata.items() if k not in _KNOWN},
            tools=tools,
        )


_KNOWN = frozenset(
    {"model", "scaffold", "rollout_id", "id", "trial", "reward", "goal_id", "band", "tags", "instance_id"}
)


def _text(value: Any, pointer: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str | int):
        return str(value)
    raise RecordError(f"must be a string, not {type(value).__name__}", pointer=pointer)


def _trial(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise RecordError("trial must be an integer", pointer="/metadata/trial")


def _outcome(reward: Any) -> dict[str, Any]:
    if reward is None:
        return {}
    if isinstance(reward, bool) or not isinstance(reward, int | float):
        raise RecordError("reward must be a number", pointer="/metadata/reward")
    return {"reward": float(reward)}


def _goal_of(metadata: dict[str, Any]) -> dict[str, Any] | None:
    goal: dict[str, Any] = {}
    if metadata.get("goal_id") is not None:
        goal["external_id"] = _text(metadata["goal_id"], "/metadata/goal_id")
    band = metadata.get("band")
    if band is not None:
        if band not in BANDS:
            raise RecordError(f"band must be one of {', '.join(BANDS)}, not {band!r}", pointer="/metadata/band")
        goal["band"] = band
    tags = metadata.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise RecordError("tags must be a list of strings", pointer="/metadata/tags")
        goal["tags"] = tags
    return goal or None
