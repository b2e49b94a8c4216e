"""ShareGPT conversations as LLaMA-Factory reads them: JSONL, or a JSON array, of
`{"conversations": [{"from", "value"}…], "system"?, "tools"?}` (FORMATS.md §7.2).

Roles are LLaMA-Factory's default tags only — human, gpt, function_call, observation,
system; a dataset whose `dataset_info.json` remaps them must be converted first.
`function_call.value` is a JSON string `{"name", "arguments"}`, or a JSON list of such objects
for parallel calls (consecutive steps sharing one turn id). An `observation` answers the
preceding function_call turn by position. `tools` is a JSON *string* of a list (bare
`{name, description, parameters}` or wrapped `{"type": "function", "function": …}`).

Preference rows (`chosen` / `rejected`) become the conversation followed by the chosen turn,
the rejected turn kept as an alternative; a KTO row's `kto_tag` is kept as metadata.

LLaMA-Factory's OpenAI-style alternative, `{"messages": [{"role", "content"}…]}` with roles
user / assistant / system / function_call / observation (and `tool_calls`, `role: "tool"`), is
read too, but detection leaves plain OpenAI chat files to the openai_chat importer: it claims
a "messages" file only when it uses the function_call or observation roles.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

import orjson

from trajectories.formats.base import ParsedRun, RawRecord, RecordError, RunStep
from trajectories.formats.chat import content_text, observation_success, parse_arguments
from trajectories.formats.reading import iter_json_array, iter_jsonl, loads_located, sniff_container

ROLES = ("human", "gpt", "function_call", "observation", "system")
_OPENAI_ROLES = {
    "user": "human",
    "assistant": "gpt",
    "system": "system",
    "function_call": "function_call",
    "observation": "observation",
    "tool": "observation",
}
_STATE_ROLE = {"human": "user", "system": "system", "observation": "tool"}
_LLAMA_FACTORY_ROLE = re.compile(rb'"role"\s*:\s*"(?:function_call|observation)"')
# How LLaMA-Factory joins the results of parallel calls into one observation.
_TOOL_RESPONSE_JOIN = re.compile(r"\s*</tool_response>\s*<tool_response>\s*")
_KNOWN = frozenset({"conversations", "messages", "system", "tools", "chosen", "rejected", "id", "model"})

Call = tuple[str, str, Any, str]  # (call id, tool name, arguments as given, pointer to them)
Turn = tuple[str, str, list[Call], str]  # (role, text, calls, id of the call a result answers)


class ShareGPTImporter:
    name = "sharegpt"
    label = "ShareGPT conversations, as LLaMA-Factory reads them (JSONL or JSON array)"
    version = "1.0"

    def detect(self, head: bytes) -> int:
        if sniff_container(head) not in ("jsonl", "array"):
            return 0
        window = head[:65536]
        if b'"conversations"' in window and b'"from"' in window and b'"value"' in window:
            return 85
        if b'"messages"' in window and _LLAMA_FACTORY_ROLE.search(window):
            return 65  # above openai_chat's 60: it cannot read these roles
        return 0

    def records(self, stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
        head = stream.read(4096)
        stream.seek(0)
        if sniff_container(head) == "array":
            return iter_json_array(stream)
        return iter_jsonl(stream)

    def parse(self, record: RawRecord) -> ParsedRun:
        value = record.value if record.value is not None else loads_located(record.raw, record.where, record.line)
        if not isinstance(value, dict):
            raise RecordError(f"a record must be a JSON object, not {type(value).__name__}", pointer="")
        if "conversations" in value:
            turns = _turns(value["conversations"], "/conversations", role_key="from", content_key="value")
            role_key, content_key, pointer = "from", "value", "/conversations"
        elif "messages" in value:
            turns = _turns(value["messages"], "/messages", role_key="role", content_key="content")
            role_key, content_key, pointer = "role", "content", "/messages"
        else:
            raise RecordError("missing 'conversations' (a list of {from, value} turns)", pointer="/conversations")
        alternatives = []
        chosen = value.get("chosen")
        if chosen is not None:
            turns.append(_chosen_turn(chosen, "/chosen", role_key, content_key))
            rejected = value.get("rejected")
            if rejected is not None:
                _chosen_turn(rejected, "/rejected", role_key, content_key)  # checked, kept as the source gave it
                alternatives.append({"rejected": rejected})
        system = value.get("system")
        if system is not None and not isinstance(system, str):
            raise RecordError("system must be a string", pointer="/system")
        if turns and turns[0][0] == "system":
            system = None  # as LLaMA-Factory: a leading system turn takes the place of the system column
        steps, goal_text, final_answer = _segment(turns, system or "")
        if not steps:
            raise RecordError("no gpt or function_call turn: nothing to segment into steps", pointer=pointer)
        metadata = {k: v for k, v in value.items() if k not in _KNOWN}
        return ParsedRun(
            goal_text=goal_text,
            steps=steps,
            model=_text(value.get("model"), "/model"),
            rollout_id=_text(value.get("id"), "/id"),
            final_answer=final_answer,
            metadata=metadata,
            tools=_tools(value.get("tools")),
            alternatives=alternatives,
        )


def _text(value: Any, pointer: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    raise RecordError(f"must be a string, not {type(value).__name__}", pointer=pointer)


# --- turns: (role, text, calls, pointer) -----------------------------------------------------------


def _turns(items: Any, pointer: str, *, role_key: str, content_key: str) -> list[Turn]:
    if not isinstance(items, list):
        raise RecordError(f"{pointer[1:]} must be a list", pointer=pointer)
    return [_turn(item, f"{pointer}/{i}", role_key, content_key) for i, item in enumerate(items)]


def _turn(item: Any, where: str, role_key: str, content_key: str) -> Turn:
    if not isinstance(item, dict):
        raise RecordError("a turn must be an object", pointer=where)
    raw_role = item.get(role_key)
    openai = role_key == "role"
    role = _OPENAI_ROLES.get(raw_role) if openai and isinstance(raw_role, str) else raw_role
    if role not in ROLES:
        known = ", ".join(_OPENAI_ROLES) if openai else ", ".join(ROLES)
        raise RecordError(
            f"unknown role {raw_role!r}; known: {known} (LLaMA-Factory's default tags; remapped tags are not read)",
            pointer=f"{where}/{role_key}",
        )
    content_pointer = f"{where}/{content_key}"
    if openai:
        text = content_text(item.get(content_key), content_pointer)
    else:
        value = item.get(content_key)
        if not isinstance(value, str):
            raise RecordError(f"{content_key} must be a string", pointer=content_pointer)
        text = value
    calls: list[Call] = []
    tool_calls = item.get("tool_calls") if openai else None
    if role == "gpt" and tool_calls:
        calls = _openai_calls(tool_calls, f"{where}/tool_calls")
        role = "function_call"
    elif role == "function_call":
        calls = _function_call_value(text, content_pointer)
        text = ""
    result_id = item.get("tool_call_id") if openai and role == "observation" else None
    return role, text, calls, result_id if isinstance(result_id, str) else ""


def _chosen_turn(item: Any, pointer: str, role_key: str, content_key: str) -> Turn:
    turn = _turn(item, pointer, role_key, content_key)
    if turn[0] not in ("gpt", "function_call"):
        raise RecordError(
            f"a preference answer must be a gpt or function_call turn, not {item.get(role_key)!r}",
            pointer=f"{pointer}/{role_key}",
        )
    return turn


def _function_call_value(text: str, pointer: str) -> list[Call]:
    """The calls of a function_call turn: its value is a JSON object, or a list of them."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise RecordError(
            f"function_call value is not JSON: {exc.msg.split(':')[0]} at character {exc.pos}", pointer=pointer
        ) from None
    items = parsed if isinstance(parsed, list) else [parsed]
    if not items:
        raise RecordError("function_call value is an empty list", pointer=pointer)
    calls = []
    for j, call in enumerate(items):
        label = f"call {j} of the function_call value" if isinstance(parsed, list) else "the function_call value"
        if not isinstance(call, dict):
            raise RecordError(f"{label} must be an object {{name, arguments}}", pointer=pointer)
        name = call.get("name")
        if not isinstance(name, str) or not name:
            raise RecordError(f"{label} needs a non-empty 'name'", pointer=pointer)
        call_id = call.get("id")
        calls.append((call_id if isinstance(call_id, str) else "", name, call.get("arguments"), pointer))
    return calls


def _openai_calls(tool_calls: Any, pointer: str) -> list[Call]:
    if not isinstance(tool_calls, list):
        raise RecordError("tool_calls must be a list", pointer=pointer)
    calls = []
    for j, call in enumerate(tool_calls):
        cp = f"{pointer}/{j}"
        if not isinstance(call, dict):
            raise RecordError("a tool call must be an object", pointer=cp)
        function = call.get("function", call)
        if not isinstance(function, dict):
            raise RecordError("function must be an object", pointer=f"{cp}/function")
        name = function.get("name")
        fp = f"{cp}/function" if "function" in call else cp
        if not isinstance(name, str) or not name:
            raise RecordError("a tool call needs a non-empty 'name'", pointer=f"{fp}/name")
        call_id = call.get("id")
        calls.append((call_id if isinstance(call_id, str) else "", name, function.get("arguments"), f"{fp}/arguments"))
    return calls


# --- segmentation -----------------------------------------------------------------------------------


def _segment(turns: list[Turn], system: str) -> tuple[list[RunStep], str, str]:
    """(steps, goal text, final answer), as DESIGN.md "Steps" says.

    A gpt turn directly followed by a function_call turn (two assistant turns in a row, which
    LLaMA-Factory itself would skip) is read as the call's plan rather than a reply."""
    steps: list[RunStep] = []
    state: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    unpaired: list[RunStep] = []  # calls of the latest function_call turn still waiting for a result
    reply: tuple[str, int] | None = None  # a gpt turn not yet known to be a reply or a plan
    goal_text: str | None = None
    final_answer = ""

    def flush_reply() -> None:
        nonlocal reply, state, final_answer
        if reply is not None:
            text, index = reply
            steps.append(
                RunStep(
                    kind="respond",
                    turn_id=f"turn-{index}",
                    state=state,
                    tool_name="respond",
                    arguments={"content": text},
                )
            )
            state, reply, final_answer = [], None, text

    for i, (role, text, calls, result_id) in enumerate(turns):
        if role == "function_call":
            plan = "\n\n".join(t for t in (reply[0] if reply else "", text) if t.strip())
            reply = None
            unpaired = []
            for j, (call_id, name, args_value, args_pointer) in enumerate(calls):
                arguments, raw, error = parse_arguments(args_value, args_pointer)
                step = RunStep(
                    kind="tool_call",
                    turn_id=f"turn-{i}",
                    state=state if j == 0 else [],
                    plan=plan if j == 0 else "",
                    tool_name=name,
                    tool_call_id=call_id,
                    arguments=arguments,
                    arguments_raw=raw,
                    arguments_error=error,
                )
                steps.append(step)
                unpaired.append(step)
            state = []
            continue
        flush_reply()
        if role == "gpt":
            if text.strip():
                reply = (text, i)
            unpaired = []
        elif role == "observation" and unpaired:
            unpaired = _pair_observation(text, unpaired, result_id)
        else:
            if role == "human" and goal_text is None:
                goal_text = text
            state = [*state, {"role": _STATE_ROLE[role], "content": text}]
    flush_reply()
    return steps, goal_text or "", final_answer


def _pair_observation(text: str, unpaired: list[RunStep], result_id: str) -> list[RunStep]:
    """Give an observation to the waiting calls; the calls still waiting afterwards."""
    by_id = next((s for s in unpaired if result_id and s.tool_call_id == result_id), None)
    if by_id is not None:  # an OpenAI-style tool message that names its call
        by_id.observation = text
        by_id.success_flag = observation_success(text)
        return [s for s in unpaired if s is not by_id]
    pieces = _split_results(text, len(unpaired)) if len(unpaired) > 1 else None
    if pieces is None:
        # One result for one call — or results that cannot be told apart (no separator, or not as
        # many pieces as calls): then the whole text goes to the first waiting call, and a
        # further observation turn (OpenAI-style rows keep one per call) goes to the next one.
        pieces, rest = [text], unpaired[1:]
    else:
        rest = []
    for step, piece in zip(unpaired, pieces, strict=False):
        step.observation = piece
        step.success_flag = observation_success(piece)
    return rest


def _split_results(text: str, count: int) -> list[str] | None:
    """The results of `count` parallel calls in one observation, when they can be told apart:
    joined as LLaMA-Factory joins them (`</tool_response><tool_response>`), or a JSON list."""
    if "</tool_response>" in text:
        body = text.strip()
        body = body.removeprefix("<tool_response>").removesuffix("</tool_response>")
        parts = _TOOL_RESPONSE_JOIN.split(body)
        return [p.strip() for p in parts] if len(parts) == count else None
    if text.lstrip().startswith("["):
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if isinstance(parsed, list) and len(parsed) == count:
            return [p if isinstance(p, str) else orjson.dumps(p).decode() for p in parsed]
    return None


def _tools(value: Any) -> list[dict[str, Any]] | None:
    """The tools, in OpenAI's wrapped form; `tools` is a JSON string of a list (a list is taken too)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise RecordError(
                f"tools is not JSON: {exc.msg.split(':')[0]} at character {exc.pos}", pointer="/tools"
            ) from None
    if not isinstance(value, list):
        raise RecordError("tools must be a JSON list of tool definitions", pointer="/tools")
    tools = []
    for i, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise RecordError(f"tool {i} must be an object", pointer="/tools")
        tools.append(tool if isinstance(tool.get("function"), dict) else {"type": "function", "function": tool})
    return tools
