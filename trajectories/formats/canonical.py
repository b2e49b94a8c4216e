"""The canonical form of a run: its JSON (hashed for idempotency) and its text rendering.

Canonical JSON: UTF-8, keys sorted, no insignificant whitespace (orjson, OPT_SORT_KEYS).
The content hash covers the run itself — goal, model, scaffold, rollout id, trial, steps,
final answer, outcome — never labels, evidence or provenance.

Canonical rendering (the one kind of offset in the project): steps are rendered in order as

    GOAL\n<goal text>\n\n
    STEP <n> · <kind>[ · <tool>]\n
    [STATE\n<role>: <content>\n ...]
    [PLAN\n<plan>\n]
    [CALL <tool> <arguments as canonical JSON, or as written when they did not parse>\n]
    [OBSERVATION\n<observation>\n]
    [REFLECTION\n<reflection>\n]
    \n

A step's span [char_start, char_end) covers its block from "STEP" to the blank line, in
Python str (code point) offsets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson

from trajectories.formats.base import ParsedRun, RunStep

FORMAT_NAME = "stepwise.trajectory"
FORMAT_VERSION = 1


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def step_to_dict(step: RunStep, index: int, dumped: tuple[bytes, bytes | None] | None = None) -> dict[str, Any]:
    """The step in the canonical schema. `dumped` is its state and arguments already as canonical
    JSON (what `canonical_json` makes of them): they go in as they are, not dumped again."""
    timing = None
    if step.started_at or step.ended_at or step.latency_ms is not None:
        timing = {"started_at": step.started_at, "ended_at": step.ended_at, "latency_ms": step.latency_ms}
    usage = None
    if step.prompt_tokens is not None or step.completion_tokens is not None or step.cost_usd is not None:
        usage = {
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
            "cost_usd": step.cost_usd,
        }
    state: Any = step.state
    arguments: Any = step.arguments
    if dumped is not None:
        state = orjson.Fragment(dumped[0])
        if dumped[1] is not None:
            arguments = orjson.Fragment(dumped[1])
    return {
        "index": index,
        "kind": step.kind,
        "turn_id": step.turn_id,
        "state": state,
        "plan": step.plan,
        "tool_call": {"name": step.tool_name, "id": step.tool_call_id} if step.tool_name else None,
        "arguments": arguments,
        "arguments_raw": step.arguments_raw,
        "observation": step.observation,
        "reflection": step.reflection,
        "success_flag": step.success_flag,
        "timing": timing,
        "usage": usage,
    }


def run_to_dict(run: ParsedRun, dumped: list[tuple[bytes, bytes | None]] | None = None) -> dict[str, Any]:
    """The run's content in the canonical schema (without provenance, labels or evidence).

    `dumped` holds each step's state and arguments as canonical JSON (see step_to_dict); the dict
    then holds them as orjson fragments, which only `canonical_json` can take."""
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "goal": {"prompt": run.goal_text, **(run.goal or {})},
        "task": run.task,
        "model": run.model,
        "scaffold": run.scaffold,
        "rollout_id": run.rollout_id,
        "trial": run.trial,
        "steps": [step_to_dict(step, i, dumped[i] if dumped is not None else None) for i, step in enumerate(run.steps)],
        "final_answer": run.final_answer,
        "outcome": run.outcome,
        "metadata": run.metadata,
    }


def content_json(run_dict: dict[str, Any]) -> bytes:
    """The canonical JSON that content_sha256 hashes: the run's content, without metadata."""
    content = {
        key: run_dict[key]
        for key in ("goal", "task", "model", "scaffold", "rollout_id", "trial", "steps", "final_answer", "outcome")
    }
    return canonical_json(content)


def content_sha256(run_dict: dict[str, Any]) -> str:
    return sha256_hex(content_json(run_dict))


def _arguments_text(step: RunStep) -> str:
    if step.arguments is not None:
        return orjson.dumps(step.arguments, option=orjson.OPT_SORT_KEYS).decode()
    return step.arguments_raw or ""


def _step_pieces(step: RunStep, number: int) -> Iterator[str]:
    head = f"STEP {number} · {step.kind}"
    yield f"{head} · {step.tool_name}\n" if step.tool_name else f"{head}\n"
    if step.state:
        yield "STATE\n"
        for message in step.state:
            yield f"{message.get('role', '')}: {message.get('content', '')}\n"
    if step.plan:
        yield f"PLAN\n{step.plan}\n"
    if step.tool_name:
        yield f"CALL {step.tool_name} {_arguments_text(step)}\n"
    if step.observation is not None:
        yield f"OBSERVATION\n{step.observation}\n"
    if step.reflection:
        yield f"REFLECTION\n{step.reflection}\n"
    yield "\n"


def render(run: ParsedRun) -> str:
    parts = [f"GOAL\n{run.goal_text}\n\n"]
    for number, step in enumerate(run.steps, start=1):
        parts.extend(_step_pieces(step, number))
    return "".join(parts)


def spans(run: ParsedRun, arguments_texts: list[str | None] | None = None) -> list[tuple[int, int]]:
    """Each step's [start, end) in `render(run)`, computed without building the string.

    `arguments_texts` are the steps' arguments as canonical JSON text (None where they are None),
    when the caller has them already."""
    offset = len(run.goal_text) + 7
    result = []
    for number, step in enumerate(run.steps, start=1):
        start = offset
        offset += _step_length(step, number, arguments_texts[number - 1] if arguments_texts is not None else None)
        result.append((start, offset))
    return result


def _text_len(value: Any) -> int:
    return len(value) if type(value) is str else len(f"{value}")


def _step_length(step: RunStep, number: int, arguments_text: str | None = None) -> int:
    """len() of the step's block as _step_pieces writes it, by arithmetic.

    Every imported step goes through here; adding up lengths is cheaper than formatting
    pieces (a step's state repeats the whole system prompt) only to measure them.
    """
    kind = step.kind
    # "STEP <n> · <kind>" and its newline, and the blank line that ends the block
    length = 10 + len(str(number)) + (len(kind) if type(kind) is str else len(f"{kind}"))
    tool = step.tool_name
    if tool:
        if arguments_text is None:
            arguments_text = _arguments_text(step)
        # " · <tool>" on the STEP line, and "CALL <tool> <arguments>\n"
        length += 10 + 2 * len(tool) + len(arguments_text)
    if step.state:
        length += 6  # "STATE\n"
        for message in step.state:
            role, content = message.get("role", ""), message.get("content", "")
            length += 3 + (len(role) if type(role) is str else len(f"{role}"))
            length += len(content) if type(content) is str else len(f"{content}")
    plan = step.plan
    if plan:
        length += 6 + (len(plan) if type(plan) is str else len(f"{plan}"))  # "PLAN\n<plan>\n"
    observation = step.observation
    if observation is not None:  # "OBSERVATION\n<observation>\n"
        length += 13 + (len(observation) if type(observation) is str else len(f"{observation}"))
    if step.reflection:
        length += 12 + _text_len(step.reflection)  # "REFLECTION\n<reflection>\n"
    return length
