"""SWE-agent `.traj` files: one JSON document per run (FORMATS.md §3).

Three layouts are read:
- 0.x: `environment`, `trajectory`, `history`, `info`; each step's `state` is a JSON *string*
  holding the environment before the step (open file, working directory);
- 1.x: adds `replay_config` (a JSON string of the run's config: problem statement with the
  instance id, the model) and per-step `execution_time`, `query`, `extra_info`; `state` is an
  object holding the environment after the step;
- function calling (1.x): the assistant items of `history` carry `tool_calls`; each is paired
  with its `trajectory` entry by the action text, and the step takes the call's tool name,
  id and arguments.

Each `trajectory[]` entry is one step (DESIGN.md "Steps"). Without a call, the tool is the
action's first word when that is one of SWE-agent's own commands, with structured arguments
where the command has a known signature; otherwise the action is a shell command: tool
`bash`, arguments {"command": <the action>}. The action as written is kept in `arguments_raw`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator
from typing import IO, Any

import orjson

from trajectories.formats.base import ParsedRun, RawRecord, RecordError, RunStep
from trajectories.formats.chat import content_text, parse_arguments
from trajectories.formats.reading import iter_document, loads_located

SCAFFOLD = "swe-agent"

# SWE-agent's own commands (its tool bundles); any other first word is a shell command.
COMMANDS = frozenset(
    {
        "open",
        "goto",
        "scroll_up",
        "scroll_down",
        "create",
        "edit",
        "insert",
        "append",
        "search_dir",
        "search_file",
        "find_file",
        "filemap",
        "str_replace_editor",
        "submit",
        "exit_forfeit",
    }
)
# Commands whose observation is a file view or a listing: only their first line can say they failed.
_VIEWS = frozenset(COMMANDS - {"submit", "exit_forfeit"})
_MAX_LINE = 2**31 - 1

# A line that starts with an error's name: Python's last traceback line, git's "error:"/"fatal:",
# a command's own "Usage:". Anchored at line starts, so indented source code (`except KeyError:`)
# in a printed file does not count.
_LINE_ERROR = re.compile(r"^(?:(?:[A-Za-z_][\w.]*)?Error|error|ERROR|fatal|Usage|usage):", re.MULTILINE)
_ANYWHERE = ("Traceback (most recent call last)", "command not found")
_FIRST_LINE_FAILURES = (
    "Your proposed edit has introduced",
    "No file open",
    "No replacement was performed",
    "Invalid ",
    "The command timed out",
)


class SweAgentImporter:
    name = "swe_agent"
    label = "SWE-agent .traj (0.x, 1.x, function calling)"
    version = "1.0"

    def detect(self, head: bytes) -> int:
        text = head[:65536].lstrip(b"\xef\xbb\xbf \t\r\n")
        if not text.startswith(b"{"):
            return 0
        at = text.find(b'"trajectory"')
        if at < 0 or b'"action"' not in text:
            return 0
        after = text[at + len(b'"trajectory"') :].lstrip(b" \t\r\n")
        if after[:1] != b":" or after[1:].lstrip(b" \t\r\n")[:1] != b"[":
            return 0
        return 90

    def container(self, head: bytes) -> str:
        """How records() cuts a file: always one "document"."""
        return "document"

    def records(self, stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
        return iter_document(stream)

    def parse(self, record: RawRecord) -> ParsedRun:
        value = record.value if record.value is not None else loads_located(record.raw, record.where, record.line)
        if not isinstance(value, dict):
            raise RecordError(f"a .traj file must hold a JSON object, not {type(value).__name__}", pointer="")
        trajectory = value.get("trajectory")
        if not isinstance(trajectory, list):
            raise RecordError("missing 'trajectory' (a list of steps)", pointer="/trajectory")
        if not trajectory:
            raise RecordError("'trajectory' is empty: nothing to segment into steps", pointer="/trajectory")
        history = value.get("history")
        if history is None:
            history = []
        if not isinstance(history, list):
            raise RecordError("history must be a list", pointer="/history")
        info = value.get("info")
        if info is None:
            info = {}
        if not isinstance(info, dict):
            raise RecordError("info must be an object", pointer="/info")
        replay = _replay_config(value.get("replay_config"))
        context, instance_message, calls = _read_history(history)
        steps = _steps(trajectory, context, calls)
        submission = info.get("submission")
        details = {key: info[key] for key in ("exit_status", "submission") if info.get(key) is not None}
        return ParsedRun(
            goal_text=_goal_text(replay, instance_message),
            steps=steps,
            task=_task(value, info, replay),
            task_hint=_task_from_name(record.source_name),
            model=_model(info, replay),
            scaffold=SCAFFOLD,
            final_answer=submission if isinstance(submission, str) else "",
            outcome={"details": details} if details else {},
            metadata=_metadata(value, info, replay, trajectory),
        )


# --- commands ------------------------------------------------------------------------------------


def _int(text: str) -> int | None:
    try:
        number = int(text)
    except ValueError:
        return None
    return number if 0 <= number <= _MAX_LINE else None


def _open(words: list[str], body: str) -> dict[str, Any] | None:
    if body or not 1 <= len(words) <= 2:
        return None
    if len(words) == 1:
        return {"path": words[0]}
    line = _int(words[1])
    return None if line is None else {"path": words[0], "line_number": line}


def _goto(words: list[str], body: str) -> dict[str, Any] | None:
    line = _int(words[0]) if len(words) == 1 and not body else None
    return None if line is None else {"line_number": line}


def _bare(words: list[str], body: str) -> dict[str, Any] | None:
    return {} if not words and not body else None


def _one_or_two(first: str, second: str) -> Callable[[list[str], str], dict[str, Any] | None]:
    def parse(words: list[str], body: str) -> dict[str, Any] | None:
        if body or not 1 <= len(words) <= 2:
            return None
        return dict(zip((first, second), words, strict=False))

    return parse


def _create(words: list[str], body: str) -> dict[str, Any] | None:
    return {"filename": words[0]} if len(words) == 1 and not body else None


def _edit(words: list[str], body: str) -> dict[str, Any] | None:
    """`edit <start>:<end>` then the replacement lines, up to a line `end_of_edit`."""
    if len(words) != 1 or words[0].count(":") != 1:
        return None
    start_text, end_text = words[0].split(":")
    start, end = _int(start_text), _int(end_text)
    if start is None or end is None:
        return None
    if body == "end_of_edit":
        return {"start_line": start, "end_line": end, "replacement": ""}
    if not body.endswith("\nend_of_edit"):
        return None
    return {"start_line": start, "end_line": end, "replacement": body[: -len("\nend_of_edit")]}


_PARSERS: dict[str, Callable[[list[str], str], dict[str, Any] | None]] = {
    "open": _open,
    "goto": _goto,
    "scroll_up": _bare,
    "scroll_down": _bare,
    "submit": _bare,
    "create": _create,
    "edit": _edit,
    "find_file": _one_or_two("file_name", "dir"),
    "search_dir": _one_or_two("search_term", "dir"),
    "search_file": _one_or_two("search_term", "file"),
}


def parse_command(action: str) -> tuple[str, dict[str, Any]]:
    """(tool name, arguments) of a SWE-agent action written as text.

    SWE-agent's own commands get structured arguments where their signature is known; other
    shapes of them, and every shell command (tool `bash`), get {"command": <the action>}.
    """
    text = action.strip()
    first_line, _, body = text.partition("\n")
    word, _, rest = first_line.partition(" ")
    if word not in COMMANDS:
        return "bash", {"command": text}
    parser = _PARSERS.get(word)
    arguments = None
    if parser is not None:
        try:
            words = shlex.split(rest)
        except ValueError:  # an unclosed quote
            words = None
        if words is not None:
            arguments = parser(words, body.rstrip())
    return word, arguments if arguments is not None else {"command": text}


def observation_ok(tool: str, observation: str | None) -> bool | None:
    """Did the command succeed, judging by its observation's error markers? None when unknown."""
    if observation is None:
        return None
    if tool == "submit":
        return True  # its observation is the patch, whose text may say anything
    if tool in _VIEWS:
        head = observation[:4000].lstrip()
        first = head.split("\n", 1)[0].rstrip()
        return not (
            _LINE_ERROR.match(first)
            or first.startswith(_FIRST_LINE_FAILURES)
            or first.endswith("not found")
            or "command not found" in first
        )
    if any(marker in observation for marker in _ANYWHERE):
        return False
    return _LINE_ERROR.search(observation) is None


# --- history -------------------------------------------------------------------------------------


def _read_history(history: list[Any]) -> tuple[list[dict[str, str]], str, list[tuple[int, Any, dict[str, Any]]]]:
    """(context before the first step, the instance message, [(index, action, tool call)]).

    The context is what the model saw before it acted: system prompt, demonstrations and the
    instance message. The calls are those of the run's own (not demonstration) assistant items.
    """
    context: list[dict[str, str]] = []
    instance_message: str | None = None
    calls: list[tuple[int, Any, dict[str, Any]]] = []
    started = False
    for i, item in enumerate(history):
        where = f"/history/{i}"
        if not isinstance(item, dict):
            raise RecordError("a history item must be an object", pointer=where)
        role = item.get("role")
        if not isinstance(role, str):
            raise RecordError("a history item needs a 'role' string", pointer=f"{where}/role")
        demo = item.get("is_demo") is True
        if role == "assistant" and not demo:
            started = True
            tool_calls = item.get("tool_calls")
            if tool_calls is None:
                continue
            if not isinstance(tool_calls, list):
                raise RecordError("tool_calls must be a list or null", pointer=f"{where}/tool_calls")
            if tool_calls:
                call = tool_calls[0]
                if not isinstance(call, dict):
                    raise RecordError("a tool call must be an object", pointer=f"{where}/tool_calls/0")
                calls.append((i, item.get("action"), call))
            continue
        if started:
            continue  # observations: each is its step's own `observation`
        text = content_text(item.get("content"), f"{where}/content")
        if role == "user" and not demo and instance_message is None:
            instance_message = text
        context.append({"role": role, "content": text})
    return context, instance_message or "", calls


def _between(text: str, start: str, end: str) -> str | None:
    at = text.find(start)
    if at < 0:
        return None
    stop = text.find(end, at + len(start))
    return None if stop < 0 else text[at + len(start) : stop]


def _goal_text(replay: dict[str, Any], instance_message: str) -> str:
    """The problem statement: from the replay config, else cut out of the instance message."""
    statement = replay.get("problem_statement")
    if isinstance(statement, dict) and isinstance(statement.get("text"), str) and statement["text"].strip():
        return statement["text"]
    issue = _between(instance_message, "ISSUE:\n", "\n\nINSTRUCTIONS:")  # 0.x template
    if issue is None:
        issue = _between(instance_message, "<pr_description>\n", "\n</pr_description>")  # 1.x template
    return issue if issue is not None and issue.strip() else instance_message


# --- steps ---------------------------------------------------------------------------------------


def _text_field(entry: dict[str, Any], key: str, pointer: str) -> str:
    value = entry.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"{key} must be a string, not {type(value).__name__}", pointer=f"{pointer}/{key}")
    return value


def _env_state(value: Any, pointer: str) -> str | None:
    """The environment state as text: 0.x gives a JSON string, 1.x an object."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        if not value:
            return None
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:
            raise RecordError("state holds a value that cannot be stored", pointer=pointer) from None
    raise RecordError(
        f"state must be a JSON string (0.x) or an object (1.x), not {type(value).__name__}", pointer=pointer
    )


def _steps(
    trajectory: list[Any], context: list[dict[str, str]], calls: list[tuple[int, Any, dict[str, Any]]]
) -> list[RunStep]:
    steps: list[RunStep] = []
    next_call = 0
    state_after: str | None = None  # 1.x: the state recorded after the previous step
    for i, entry in enumerate(trajectory):
        where = f"/trajectory/{i}"
        if not isinstance(entry, dict):
            raise RecordError("a trajectory step must be an object", pointer=where)
        action = _text_field(entry, "action", where)
        thought = _text_field(entry, "thought", where)
        observation = _text_field(entry, "observation", where) if entry.get("observation") is not None else None
        state: list[dict[str, str]] = list(context) if i == 0 else []
        raw_state = entry.get("state")
        if isinstance(raw_state, str):  # 0.x: the environment the agent saw before acting
            seen = _env_state(raw_state, f"{where}/state")
        else:  # 1.x: the environment after the previous step
            seen, state_after = state_after, _env_state(raw_state, f"{where}/state")
        if seen:
            state.append({"role": "environment", "content": seen})
        step = RunStep(kind="tool_call", turn_id=f"turn-{i}", state=state, plan=thought, observation=observation)
        call = None
        if next_call < len(calls):
            _, call_action, candidate = calls[next_call]
            if call_action is None or call_action == action:
                call = candidate
                call_pointer = f"/history/{calls[next_call][0]}/tool_calls/0"
                next_call += 1
        if call is not None:
            _use_call(step, call, call_pointer)
        elif action.strip():
            step.tool_name, step.arguments = parse_command(action)
            step.arguments_raw = action
        else:  # no command: the model's text (e.g. an exit on a limit) is its answer
            step.kind = "respond"
            step.tool_name = "respond"
            step.arguments = {"content": thought or _text_field(entry, "response", where)}
            step.plan = ""
            step.observation = observation or None
        if step.kind == "tool_call":
            step.success_flag = observation_ok(step.tool_name, observation)
        seconds = entry.get("execution_time")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
            step.latency_ms = float(seconds) * 1000
        steps.append(step)
    return steps


def _use_call(step: RunStep, call: dict[str, Any], pointer: str) -> None:
    function = call.get("function", call)
    if not isinstance(function, dict):
        raise RecordError("function must be an object", pointer=f"{pointer}/function")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise RecordError("a tool call needs a non-empty 'name'", pointer=f"{pointer}/function/name")
    call_id = call.get("id")
    step.tool_name = name
    step.tool_call_id = call_id if isinstance(call_id, str) else ""
    step.arguments, step.arguments_raw, step.arguments_error = parse_arguments(
        function.get("arguments"), f"{pointer}/function/arguments"
    )


# --- run-level fields ----------------------------------------------------------------------------


def _replay_config(value: Any) -> dict[str, Any]:
    """The 1.x replay config (a JSON string, sometimes an object); {} when absent or unreadable."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _task(value: dict[str, Any], info: dict[str, Any], replay: dict[str, Any]) -> dict[str, Any] | None:
    statement = replay.get("problem_statement")
    for candidate in (
        value.get("instance_id"),
        info.get("instance_id"),
        statement.get("id") if isinstance(statement, dict) else None,
    ):
        if isinstance(candidate, str) and candidate.strip():
            return {"instance_id": candidate.strip()}
    return None


def _task_from_name(source_name: str) -> dict[str, Any] | None:
    """SWE-agent names each run `<instance_id>/<instance_id>.traj`: the file name is the instance
    when the document itself names none (the 0.x layout)."""
    name = source_name.rsplit("/", 1)[-1]
    if name.endswith(".traj") and len(name) > len(".traj"):
        return {"instance_id": name.removesuffix(".traj")}
    return None


def _model(info: dict[str, Any], replay: dict[str, Any]) -> str:
    agent = replay.get("agent")
    model = agent.get("model") if isinstance(agent, dict) else None
    for candidate in (
        model.get("name") if isinstance(model, dict) else None,
        info.get("model_name"),
    ):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return ""


def _metadata(
    value: dict[str, Any], info: dict[str, Any], replay: dict[str, Any], trajectory: list[Any]
) -> dict[str, Any]:
    one_x = "replay_config" in value or any(
        isinstance(e, dict) and isinstance(e.get("state"), dict) for e in trajectory
    )
    metadata: dict[str, Any] = {"layout": "1.x" if one_x else "0.x"}
    if isinstance(value.get("environment"), str):
        metadata["environment"] = value["environment"]
    for key in ("model_stats", "swe_agent_version", "swe_agent_hash", "swe_rex_version", "swe_rex_hash"):
        if info.get(key) is not None:
            metadata[key] = info[key]
    if replay:
        metadata["replay_config"] = replay
    return metadata
