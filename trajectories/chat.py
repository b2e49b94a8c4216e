"""A run as chat messages in OpenAI's chat format, and the compressed copy of them a trajectory keeps.

`chat_messages` is what the OpenAI SFT export writes for a trajectory's steps (exports.formats.openai_sft):
each step's state (the user / system messages since the previous step) first; a tool-call step is an
assistant message with its call (steps of one model turn share one message) followed by the tool's
result; a reply step is an assistant message; trailing messages after the last assistant message are cut.

An import keeps these messages beside each trajectory (`Trajectory.chat`), built from the step values as
they are stored, so that an export reads one small blob a trajectory instead of rebuilding every step's
messages from its rows. The blob:

    CHAT_VERSION (1 byte) · 1 if the first step's state holds a user message, else 0 (1 byte) ·
    the messages as canonical JSON objects joined by "," (no brackets), compressed as a payload is
    (trajectories.blobs: alone, or against the import's payload dictionary)

An export uses the blob only where it is of this CHAT_VERSION and the export's options leave the
trajectory's steps as they are; everywhere else it builds the messages from the rows.

A call's `arguments` is the JSON text of its arguments as `json.dumps` writes it (`", "` and `": "`
between items, non-ASCII as is), keys sorted: the same text whatever order the database keeps keys in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import orjson

CHAT_VERSION = 1
_HEAD = 2  # the version and the first-user flag


class ChatStep(Protocol):
    """What a step's messages are made of (read only: a stored row, a parsed step)."""

    @property
    def kind(self) -> str: ...

    @property
    def turn_id(self) -> str: ...

    @property
    def state(self) -> list[dict[str, Any]]: ...

    @property
    def plan(self) -> str: ...

    @property
    def tool_name(self) -> str: ...

    @property
    def tool_call_id(self) -> str: ...

    @property
    def arguments(self) -> Any: ...

    @property
    def arguments_raw(self) -> str | None: ...

    @property
    def observation(self) -> str | None: ...


def arguments_json(arguments: dict[str, Any]) -> str:
    """A call's arguments as the `arguments` string."""
    return json.dumps(arguments, ensure_ascii=False, sort_keys=True)


def starts_with_user(steps: Sequence[ChatStep]) -> bool:
    """Does the first step's state hold a user message (else an export puts the goal first)?"""
    return bool(steps) and any(m.get("role") == "user" for m in steps[0].state)


def chat_messages(
    steps: Sequence[ChatStep],
    indices: Sequence[int],
    *,
    dropped: Callable[[int], bool] | None = None,
    corrected: Callable[[int, ChatStep], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The steps' messages, cut after the last assistant message ([] when there is none). `indices` are the
    steps' indices; `dropped(index)` leaves a step out with its result, `corrected(index, step)` gives the
    argument values that replace the step's own."""
    messages: list[dict[str, Any]] = []
    i = 0
    while i < len(steps):
        step = steps[i]
        for message in step.state:
            role, content = message.get("role"), message.get("content")
            if role in ("system", "user", "assistant") and isinstance(content, str):
                messages.append({"role": role, "content": content})
        if step.kind != "tool_call":
            if dropped is None or not dropped(indices[i]):
                reply = step.arguments.get("content") if isinstance(step.arguments, dict) else None
                messages.append({"role": "assistant", "content": reply if isinstance(reply, str) else step.plan})
            i += 1
            continue
        end = i + 1
        while (
            step.turn_id
            and end < len(steps)
            and steps[end].kind == "tool_call"
            and steps[end].turn_id == step.turn_id
            and not steps[end].state
        ):
            end += 1
        kept = [k for k in range(i, end) if dropped is None or not dropped(indices[k])]
        if kept:
            calls = []
            for k in kept:
                s = steps[k]
                if isinstance(s.arguments, dict):
                    fix = corrected(indices[k], s) if corrected is not None else None
                    arguments = arguments_json({**s.arguments, **fix} if fix else s.arguments)
                else:
                    arguments = s.arguments_raw or "{}"
                calls.append(
                    {
                        "id": s.tool_call_id or f"call_{indices[k]}",
                        "type": "function",
                        "function": {"name": s.tool_name, "arguments": arguments},
                    }
                )
            messages.append({"role": "assistant", "content": steps[kept[0]].plan or None, "tool_calls": calls})
            for k, call in zip(kept, calls, strict=True):
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": steps[k].observation or ""})
        i = end
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()
    return messages


def chat_body(messages: list[dict[str, Any]]) -> bytes:
    """The messages as canonical JSON (sorted keys, no blanks) joined by ","."""
    return b",".join([orjson.dumps(m, option=orjson.OPT_SORT_KEYS) for m in messages])


def chat_blob(steps: Sequence[ChatStep], compress: Callable[[bytes], bytes]) -> bytes:
    """What `Trajectory.chat` keeps for these steps (stored values, indices 0, 1, …); `compress` packs the
    body as a payload is packed."""
    body = chat_body(chat_messages(steps, range(len(steps))))
    return bytes((CHAT_VERSION, starts_with_user(steps))) + compress(body)


@dataclass(frozen=True, slots=True)
class KeptChat:
    first_user: bool
    packed: bytes  # the body, as trajectories.blobs packs it


def kept_chat(blob: bytes | memoryview | None) -> KeptChat | None:
    """A trajectory's kept messages, or None where there are none of this CHAT_VERSION (they are built anew)."""
    if blob is None or len(blob) < _HEAD or blob[0] != CHAT_VERSION:
        return None
    return KeptChat(bool(blob[1]), bytes(blob[_HEAD:]))


# Floats whose value comes back from PostgreSQL's jsonb otherwise than as the float went in: jsonb keeps
# numbers as numeric and prints them without exponent, so 1e16 reads back as the integer 10000000000000000,
# and -0.0 as 0.0. orjson writes such a float with a positive exponent, or as -0.0.
_CHANGED_NUMBER = re.compile(rb"[0-9]e\+?[0-9]|-0\.0(?![0-9])")


def as_stored(value: Any, dumped: bytes) -> Any:
    """`value` (dumped as `dumped`, canonical JSON) as a jsonb column gives it back to Python."""
    if _CHANGED_NUMBER.search(dumped) is None:
        return value
    return _as_stored(value)


def _as_stored(value: Any) -> Any:
    if isinstance(value, float):
        if value == 0.0:
            return 0.0
        text = orjson.dumps(value).decode()
        if "e" in text:
            mantissa, exponent = text.split("e")
            digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
            if int(exponent) >= digits:  # no digits after the point: printed as an integer
                return int(Decimal(text))
        return value
    if isinstance(value, list):
        return [_as_stored(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_stored(v) for k, v in value.items()}
    return value
