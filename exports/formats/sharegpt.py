"""ShareGPT as LLaMA-Factory reads it (formatting "sharegpt" with tools): one row per trajectory,
`conversations` of human / gpt / function_call / observation turns, `system`, `tools` (a JSON string).

LLaMA-Factory's alternation holds on every row: human or observation at even positions, gpt or
function_call at odd ones, starting with human and ending on gpt. A model turn's parallel calls are one
function_call (a JSON list) and their results one observation (a JSON list); arguments that are not JSON
stay the string the agent wrote; the plan beside a call has no place in this format and is left out. Where a trajectory would
break the alternation (two assistant turns, or two inputs of different kinds, in a row) the row stops
before the break, at its last gpt turn; two user messages in a row are joined. Schema: sharegpt.schema.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import orjson

from exports.formats.base import Source
from exports.formats.openai_sft import OpenAISftExporter

INPUTS = ("human", "observation")
OUTPUTS = ("gpt", "function_call")


class ShareGptExporter:
    name: ClassVar[str] = "sharegpt"
    label: ClassVar[str] = "ShareGPT (LLaMA-Factory)"
    version: ClassVar[str] = "1.0"
    extension: ClassVar[str] = "jsonl"

    def __init__(self, *, project: Any, options: dict[str, Any]) -> None:
        self.chat = OpenAISftExporter(project=project, options=options)
        self.tools = json.dumps([t["function"] for t in self.chat.tools], ensure_ascii=False, sort_keys=True)

    def companions(self, data_file: str) -> list[tuple[str, bytes, str]]:
        """LLaMA-Factory's dataset_info.json beside the data (its sharegpt defaults for roles and tags)."""
        columns = {"messages": "conversations", "system": "system", "tools": "tools"}
        return [dataset_info(data_file, columns, what="the rows")]

    def rows(self, source: Source) -> Iterator[dict[str, Any]]:
        for chat in self.chat.rows(source):
            system = "\n\n".join(m["content"] for m in chat["messages"] if m["role"] == "system")
            conversations = alternating(list(chat_turns([m for m in chat["messages"] if m["role"] != "system"])))
            if conversations:
                yield {"conversations": conversations, "system": system, "tools": self.tools}


def _arguments(text: str | None) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:  # arguments that are not JSON stay the string the agent wrote
        return text


def assistant_turn(message: dict[str, Any]) -> dict[str, str]:
    """One assistant chat message as a gpt turn, or — with tool calls — a function_call turn whose value is
    {"name", "arguments"} (a JSON list of them for parallel calls)."""
    if not message.get("tool_calls"):
        return {"from": "gpt", "value": message.get("content") or ""}
    calls = [
        {"name": c["function"]["name"], "arguments": _arguments(c["function"]["arguments"])}
        for c in message["tool_calls"]
    ]
    return {"from": "function_call", "value": json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)}


def chat_turns(messages: list[dict[str, Any]]) -> Iterator[dict[str, str]]:
    """Chat messages (no system ones) as ShareGPT turns, a call's results as one observation."""
    i = 0
    while i < len(messages):
        m = messages[i]
        if m["role"] == "user":
            yield {"from": "human", "value": m["content"]}
        elif m["role"] == "assistant" and m.get("tool_calls"):
            yield assistant_turn(m)
            results = []
            while i + 1 < len(messages) and messages[i + 1]["role"] == "tool":
                i += 1
                results.append(messages[i]["content"])
            yield {
                "from": "observation",
                "value": results[0] if len(results) == 1 else json.dumps(results, ensure_ascii=False),
            }
        elif m["role"] == "assistant":
            yield assistant_turn(m)
        i += 1


def aligned(turns: list[dict[str, str]]) -> tuple[list[dict[str, str]], bool]:
    """(the longest prefix that keeps LLaMA-Factory's alternation — human first, inputs at even positions,
    outputs at odd ones, two user messages or two replies in a row joined —, whether that is all of them)."""
    out: list[dict[str, str]] = []
    for turn in turns:
        expected = INPUTS if len(out) % 2 == 0 else OUTPUTS
        if turn["from"] in expected and (out or turn["from"] == "human"):
            out.append(dict(turn))
        elif (out and turn["from"] == "human" and out[-1]["from"] == "human") or (
            out and out[-1]["from"] == "gpt" and turn["from"] == "gpt"
        ):
            out[-1]["value"] += "\n\n" + turn["value"]
        else:  # e.g. a reply, then a call with no input between: LLaMA-Factory has no such turn
            return out, False
    return out, True


def alternating(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """The longest prefix that keeps LLaMA-Factory's alternation and ends on a gpt turn."""
    out, _ = aligned(turns)
    while out and out[-1]["from"] != "gpt":
        out.pop()
    return out


def dataset_info(
    data_file: str, columns: dict[str, str], *, what: str, ranking: bool = False
) -> tuple[str, bytes, str]:
    """LLaMA-Factory's dataset_info.json for a sharegpt-formatted file, as a companion (name, content, what it is
    for the dataset card): point `dataset_dir` at its folder and `dataset` at the entry (the file's name without
    its extension)."""
    entry_name = data_file.rsplit(".", 1)[0]
    entry: dict[str, Any] = {"file_name": data_file, "formatting": "sharegpt"}
    if ranking:
        entry["ranking"] = True
    entry["columns"] = columns
    content = orjson.dumps({entry_name: entry}, option=orjson.OPT_INDENT_2) + b"\n"
    purpose = f"registers {what} with LLaMA-Factory (`dataset_dir`: this folder, `dataset`: {entry_name})"
    return "dataset_info.json", content, purpose
