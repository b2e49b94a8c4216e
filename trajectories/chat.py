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

A call's `arguments` is the canonical JSON text of its arguments (trajectories.formats.canonical: keys
sorted, no blanks, non-ASCII as is): the same text whatever order the database keeps keys in, and, for a
step as the import stores it, the very text the import dumped for the step's row and content hash (so it
is written once, not twice: CHAT_VERSION 1 wrote `json.dumps`'s text, with blanks, made anew).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

import orjson

from trajectories.formats.canonical import canonical_json

CHAT_VERSION = 2
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


class StoredStep(NamedTuple):
    """A step's values as the database keeps them, which its messages are made of (a ChatStep)."""

    kind: str
    turn_id: str
    state: list[dict[str, Any]]
    plan: str
    tool_name: str
    tool_call_id: str
    arguments: Any
    arguments_raw: str | None
    observation: str | None


def arguments_json(arguments: dict[str, Any]) -> str:
    """A call's arguments as the `arguments` string: their canonical JSON (what `canonical_json` writes). Where
    orjson cannot write a value that the database gives back (jsonb keeps 1e300 as an integer of 301 digits),
    `json.dumps` writes it, with the same separators and keys sorted."""
    try:
        return canonical_json(arguments).decode()
    except TypeError:
        return json.dumps(arguments, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


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
    """The steps' messages, cut after the last assistant message ([] when there is none): `chat_body` read."""
    return orjson.loads(b"[" + chat_body(steps, indices, dropped=dropped, corrected=corrected) + b"]")


_ROLES = {"system": b',"role":"system"}', "user": b',"role":"user"}', "assistant": b',"role":"assistant"}'}
# A call, its result and the assistant message with the calls, filled in by %-formatting (one copy, where
# joining with + copies once a piece).
_CALL = b'{"function":{"arguments":%b,"name":%b},"id":%b,"type":"function"}'
_RESULT = b'{"content":%b,"role":"tool","tool_call_id":%b}'
_CALLS = b'{"content":%b,"role":"assistant","tool_calls":[%b]}'


def chat_body(
    steps: Sequence[ChatStep],
    indices: Sequence[int],
    *,
    dropped: Callable[[int], bool] | None = None,
    corrected: Callable[[int, ChatStep], dict[str, Any]] | None = None,
    arguments_texts: Sequence[str | None] | None = None,
) -> bytes:
    """The steps' messages as canonical JSON objects (sorted keys, no blanks) joined by ",", cut after the last
    assistant message (b"" when there is none). `indices` are the steps' indices; `dropped(index)` leaves a
    step out with its result, `corrected(index, step)` gives the argument values that replace the step's own.
    `arguments_texts`, where given, holds each step's `arguments_json(step.arguments)` (None for a step
    without), already written.
    Written piece by piece, each string by orjson: the bytes orjson writes for the message objects."""
    dumps = orjson.dumps
    pieces: list[bytes] = []
    kept_to = 0  # the pieces up to the last assistant message
    count = len(steps)
    i = 0
    while i < count:
        step = steps[i]
        if step.state:
            for message in step.state:
                role, content = message.get("role"), message.get("content")
                if isinstance(role, str) and role in _ROLES and isinstance(content, str):
                    pieces.append(b'{"content":' + dumps(content) + _ROLES[role])
                    if role == "assistant":
                        kept_to = len(pieces)
        if step.kind != "tool_call":
            if dropped is None or not dropped(indices[i]):
                reply = step.arguments.get("content") if isinstance(step.arguments, dict) else None
                pieces.append(
                    b'{"content":' + dumps(reply if isinstance(reply, str) else step.plan) + _ROLES["assistant"]
                )
                kept_to = len(pieces)
            i += 1
            continue
        end = i + 1
        turn = step.turn_id
        while (
            turn
            and end < count
            and steps[end].kind == "tool_call"
            and steps[end].turn_id == turn
            and not steps[end].state
        ):
            end += 1
        kept = range(i, end) if dropped is None else [k for k in range(i, end) if not dropped(indices[k])]
        if kept:
            calls, results = [], []
            for k in kept:
                s = steps[k]
                if isinstance(s.arguments, dict):
                    fix = corrected(indices[k], s) if corrected is not None else None
                    if fix:
                        arguments = arguments_json({**s.arguments, **fix})
                    elif arguments_texts is not None and (text := arguments_texts[k]) is not None:
                        arguments = text
                    else:
                        arguments = arguments_json(s.arguments)
                else:
                    arguments = s.arguments_raw or "{}"
                call_id = dumps(s.tool_call_id or f"call_{indices[k]}")
                calls.append(_CALL % (dumps(arguments), dumps(s.tool_name), call_id))
                results.append(_RESULT % (dumps(s.observation or ""), call_id))
            plan = steps[kept[0]].plan
            pieces.append(_CALLS % (dumps(plan) if plan else b"null", b",".join(calls)))
            kept_to = len(pieces)
            pieces += results
        i = end
    return b",".join(pieces[:kept_to])


def chat_blob(
    steps: Sequence[ChatStep],
    compress: Callable[[bytes], bytes],
    arguments_texts: Sequence[str | None] | None = None,
) -> bytes:
    """What `Trajectory.chat` keeps for these steps (stored values, indices 0, 1, …); `compress` packs the
    body as a payload is packed. `arguments_texts`: as chat_body takes them."""
    body = chat_body(steps, range(len(steps)), arguments_texts=arguments_texts)
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
# and -0.0 as 0.0. orjson writes a float with a positive exponent from 1e16 on.
_LARGE = 1e15  # at or beyond this, a float may be written with a positive exponent (a margin below 1e16)


def as_stored(value: Any) -> Any:
    """`value` (from JSON) as a jsonb column gives it back to Python: `value` itself where no float would
    change (the usual case, found by a walk over its containers, with no copy)."""
    t = type(value)
    if t is float:
        return _as_stored(value) if value == 0.0 or abs(value) >= _LARGE else value
    if (t is dict or t is list) and _changes(value):
        return _as_stored(value)
    return value


def _changes(value: Any) -> bool:
    item: Any
    for item in value.values() if type(value) is dict else value:
        t = type(item)
        if t is float:
            if item == 0.0 or abs(item) >= _LARGE:
                return True
        elif (t is dict or t is list) and _changes(item):
            return True
    return False


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
