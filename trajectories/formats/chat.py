"""Segmenting a list of chat messages (OpenAI shape) into steps, as DESIGN.md "Steps" says.

Shared by every importer whose runs are chat messages (OpenAI, τ-bench, ShareGPT, …).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from trajectories.formats.base import RecordError, RunStep

_ERROR_START = re.compile(r"^\s*(error|exception|traceback|failed|fatal)\b", re.IGNORECASE)
CONTEXT_ROLES = frozenset({"system", "developer", "user", "tool", "function", "environment", "ipython", "observation"})


def content_text(content: Any, pointer: str) -> str:
    """A message's content as text: strings as they are, parts joined, images named."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for i, part in enumerate(content):
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                kind = part.get("type")
                if kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
                    out.append(part["text"])
                elif kind:
                    out.append(f"[{kind}]")
                else:
                    raise RecordError("a content part has no 'type'", pointer=f"{pointer}/{i}")
            else:
                raise RecordError("a content part must be a string or an object", pointer=f"{pointer}/{i}")
        return "\n".join(out)
    if isinstance(content, dict):
        try:
            return orjson.dumps(content).decode()
        except TypeError:
            raise RecordError(
                "content holds a value that cannot be stored (an integer beyond 64 bits?)", pointer=pointer
            ) from None
    raise RecordError(
        f"content must be a string, a list of parts or null, not {type(content).__name__}", pointer=pointer
    )


def parse_arguments(value: Any, pointer: str) -> tuple[dict[str, Any] | None, str | None, str]:
    """(arguments as an object, arguments as written, why they did not parse)."""
    if value is None:
        return {}, None, ""
    if isinstance(value, dict):
        return value, None, ""
    if isinstance(value, str):
        if not value.strip():
            return {}, value, ""
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return None, value, f"arguments are not valid JSON: {exc.msg.split(':')[0]} at character {exc.pos}"
        if not isinstance(parsed, dict):
            return None, value, f"arguments must be a JSON object, not {type(parsed).__name__}"
        return parsed, value, ""
    raise RecordError(f"arguments must be a JSON string or an object, not {type(value).__name__}", pointer=pointer)


def observation_success(observation: str | None) -> bool | None:
    """Did the call succeed, judging by the observation's error markers? None when unknown."""
    if observation is None:
        return None
    if _ERROR_START.match(observation):
        return False
    head = observation.lstrip()[:1]
    # Parsing a large observation only to look for an "error" key is the costly part: without the
    # word "error" (or a \u escape that could spell it), no such key can be there.
    if head == "{" and ("error" in observation or "\\u" in observation):
        try:
            parsed = orjson.loads(observation)
        except orjson.JSONDecodeError:
            return True
        if isinstance(parsed, dict) and (parsed.get("error") or parsed.get("errors")):
            return False
    return True


def _int_or_none(value: Any, pointer: str) -> int | None:
    """A count the format reported; absent or not a number → None; negative → RecordError."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    if value < 0:
        raise RecordError(f"must be a whole number ≥ 0, not {value}", pointer=pointer)
    return value


def _num_or_none(value: Any, pointer: str) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if value < 0:
        raise RecordError(f"must be a number ≥ 0, not {value}", pointer=pointer)
    return float(value)


def segment_messages(messages: Any, pointer: str = "/messages") -> tuple[list[RunStep], str, str]:
    """(steps, goal text, final answer) from OpenAI-shaped chat messages.

    Each tool call is a step (parallel calls of one message share its turn id); each assistant
    message with text and no call is a `respond` step; other messages are context (`state`).
    A tool result pairs with its call by id, or by position when the message carries none.
    """
    if not isinstance(messages, list):
        raise RecordError("messages must be a list", pointer=pointer)
    steps: list[RunStep] = []
    pending_state: list[dict[str, Any]] = []
    by_call_id: dict[str, RunStep] = {}
    unpaired: list[RunStep] = []  # calls of the latest turn still waiting for their result
    goal_text: str | None = None
    final_answer = ""
    for i, message in enumerate(messages):
        where = f"{pointer}/{i}"
        if not isinstance(message, dict):
            raise RecordError("a message must be an object", pointer=where)
        role = message.get("role")
        if not isinstance(role, str):
            raise RecordError("a message needs a 'role' string", pointer=f"{where}/role")
        if role == "assistant":
            text = content_text(message.get("content"), f"{where}/content")
            reasoning = message.get("reasoning_content")
            plan_extra = reasoning if isinstance(reasoning, str) else ""
            calls = _calls_of(message, where)
            usage: dict[str, Any] = message["usage"] if isinstance(message.get("usage"), dict) else {}
            turn_id = str(message.get("id") or f"turn-{i}")
            if calls:
                unpaired = []
                for j, (call_id, name, args_value, args_pointer) in enumerate(calls):
                    arguments, raw, error = parse_arguments(args_value, args_pointer)
                    step = RunStep(
                        kind="tool_call",
                        turn_id=turn_id,
                        state=pending_state if j == 0 else [],
                        plan="\n\n".join(p for p in (plan_extra, text) if p) if j == 0 else "",
                        tool_name=name,
                        tool_call_id=call_id,
                        arguments=arguments,
                        arguments_raw=raw,
                        arguments_error=error,
                    )
                    if j == 0:
                        step.prompt_tokens = _int_or_none(usage.get("prompt_tokens"), f"{where}/usage/prompt_tokens")
                        step.completion_tokens = _int_or_none(
                            usage.get("completion_tokens"), f"{where}/usage/completion_tokens"
                        )
                        step.cost_usd = _num_or_none(message.get("cost"), f"{where}/cost")
                    steps.append(step)
                    unpaired.append(step)
                    if call_id:
                        by_call_id[call_id] = step
                pending_state = []
            elif text.strip():
                step = RunStep(
                    kind="respond",
                    turn_id=turn_id,
                    state=pending_state,
                    plan=plan_extra,
                    tool_name="respond",
                    arguments={"content": text},
                    prompt_tokens=_int_or_none(usage.get("prompt_tokens"), f"{where}/usage/prompt_tokens"),
                    completion_tokens=_int_or_none(usage.get("completion_tokens"), f"{where}/usage/completion_tokens"),
                    cost_usd=_num_or_none(message.get("cost"), f"{where}/cost"),
                )
                steps.append(step)
                unpaired = []
                pending_state = []
                final_answer = text
            continue
        if role not in CONTEXT_ROLES:
            raise RecordError(f"unknown role {role!r}", pointer=f"{where}/role")
        text = content_text(message.get("content"), f"{where}/content")
        if role in ("tool", "function", "ipython"):
            result_id = message.get("tool_call_id") or message.get("id") or ""
            target = by_call_id.pop(result_id, None) if isinstance(result_id, str) and result_id else None
            if target is None and not result_id and unpaired:
                result_name = message.get("name")
                target = next((s for s in unpaired if not result_name or s.tool_name == result_name), unpaired[0])
            if target is not None and target.observation is None:
                if target in unpaired:
                    unpaired.remove(target)
                target.observation = text
                target.success_flag = observation_success(text)
                continue
        elif role == "user" and goal_text is None:
            goal_text = text
        pending_state = [*pending_state, {"role": role, "content": text}]
    return steps, goal_text or "", final_answer


def _calls_of(message: dict[str, Any], where: str) -> list[tuple[str, str, Any, str]]:
    """[(call id, tool name, arguments as given, pointer to them)] of an assistant message."""
    calls = []
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if not isinstance(tool_calls, list):
            raise RecordError("tool_calls must be a list", pointer=f"{where}/tool_calls")
        for j, call in enumerate(tool_calls):
            cp = f"{where}/tool_calls/{j}"
            if not isinstance(call, dict):
                raise RecordError("a tool call must be an object", pointer=cp)
            function = call.get("function", call)
            if not isinstance(function, dict):
                raise RecordError("function must be an object", pointer=f"{cp}/function")
            name = function.get("name")
            if not isinstance(name, str) or not name:
                fp = f"{cp}/function/name" if "function" in call else f"{cp}/name"
                raise RecordError("a tool call needs a non-empty 'name'", pointer=fp)
            ap = f"{cp}/function/arguments" if "function" in call else f"{cp}/arguments"
            call_id = call.get("id")
            calls.append((call_id if isinstance(call_id, str) else "", name, function.get("arguments"), ap))
    function_call = message.get("function_call")
    if function_call is not None:
        if not isinstance(function_call, dict):
            raise RecordError("function_call must be an object", pointer=f"{where}/function_call")
        name = function_call.get("name")
        if not isinstance(name, str) or not name:
            raise RecordError("function_call needs a non-empty 'name'", pointer=f"{where}/function_call/name")
        calls.append(("", name, function_call.get("arguments"), f"{where}/function_call/arguments"))
    return calls
