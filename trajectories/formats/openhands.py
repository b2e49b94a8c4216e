"""OpenHands runs (FORMATS.md §5): the trajectory export and the evaluation `output.jsonl`.

* The trajectory export is one run per file: a bare JSON list of events (or the API's
  `{"trajectory": [events]}`).
* `output.jsonl` holds one instance per line: `{instance_id, instruction, history, metadata,
  test_result, metrics, error}`; `history` is a list of events or, in older files, a list of
  `[action, observation]` pairs (gotcha 10).

Each agent action event is a step; its observation is the event whose `cause` is the action's
`id` (in a legacy pair, the pair's second half). The tool is the action type (read, run, edit,
browse, think, finish…); an MCP call (`call_tool_mcp`), or an event without an action type,
takes the function name from `tool_call_metadata`. The arguments are `args` without its
`thought`, which is the step's plan (for `think`, whose argument is the thought itself, the plan
is the model's visible text). Actions of one model response share a turn id
(`model_response.id`). A `message` action of the agent without a tool call is a `respond` step.
User messages, the system prompt and observations that answer no step are context (`state`).
`metadata.llm_config` holds API keys: it goes to the run's metadata, which the pipeline scrubs.

A record is read as far as the segmenter reads it (`_read`): the fields it never looks at (two
thirds of a run's bytes are model responses repeated in every event's `tool_call_metadata`) are
checked as JSON but not built. Such a reading gives the fields the segmenter reads exactly as
reading the whole record does, so the run (or the located error) is the same either way.
"""

from __future__ import annotations

import codecs
import functools
from collections.abc import Iterator
from types import ModuleType
from typing import IO, Any, TypedDict

from trajectories.formats.base import ParsedRun, RawRecord, RecordError, RunStep
from trajectories.formats.chat import content_text, observation_success, parse_arguments
from trajectories.formats.reading import iter_document, iter_jsonl, loads_located, sniff_container
from trajectories.formats.times import parse_iso

# Actions that are not the agent's decisions: bookkeeping of the controller and the runtime.
NOT_DECISIONS = frozenset(
    {
        "system",
        "start",
        "null",
        "pause",
        "resume",
        "stop",
        "change_agent_state",
        "recall",
        "condensation",
        "condensation_request",
        "loop_recovery",
    }
)
# Observations that carry nothing the agent saw.
QUIET_OBSERVATIONS = frozenset({"agent_state_changed", "null"})
FAILED_OBSERVATIONS = frozenset({"error", "user_rejected"})
MCP_ACTIONS = frozenset({"call_tool_mcp", "mcp"})
# Tuples, not unions: isinstance takes a tuple 50 ns sooner, and these are asked of every event.
_ID_TYPES = (int, str)
_ARGS_TYPES = (dict, str)


class OpenHandsImporter:
    name = "openhands"
    label = "OpenHands trajectory export (JSON) or evaluation output.jsonl"
    version = "1.0"

    def detect(self, head: bytes) -> int:
        head = head[:65536]
        container = sniff_container(head)
        events = b'"source"' in head and b'"action"' in head and (b'"args"' in head or b'"cause"' in head)
        if container == "array" and events:
            return 85
        if container in ("jsonl", "document"):
            if (
                b'"instance_id"' in head
                and b'"instruction"' in head
                and (b'"history"' in head or b'"test_result"' in head)
            ):
                return 85
            if _api_response(head):
                return 92  # above SWE-agent's claim on any {"trajectory": [...]}: these are events
        return 0

    def container(self, head: bytes) -> str:
        """How records() cuts a file that starts with `head` (its first 4 KB): "document" or "jsonl"."""
        head = head[:4096]
        container = sniff_container(head)
        text = head.lstrip(codecs.BOM_UTF8).lstrip()
        if container == "array" or (container == "document" and text.split(b"\n", 1)[0].strip() == b"{"):
            return "document"  # one run per file: the export, or a pretty-printed instance
        return "jsonl"

    def records(self, stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
        head = stream.read(4096)
        stream.seek(0)
        return iter_document(stream) if self.container(head) == "document" else iter_jsonl(stream)

    def parse(self, record: RawRecord) -> ParsedRun:
        if record.value is None:
            read = _read(record.raw)
            if read is not None:
                try:
                    return _run_of(read, partial=True)
                except _Partial:
                    pass  # read again, whole
        value = record.value if record.value is not None else _read_whole(record)
        return _run_of(value, partial=False)


# The part of a record that the segmenter reads: the keys it looks up, with their values whole (Any), and
# the objects it looks into by type. A record whose objects are not of these types (or not all: a model
# response's choices, say) is read whole instead.
class _Message(TypedDict, total=False):
    content: Any


class _Choice(TypedDict, total=False):
    message: _Message | None


class _Usage(TypedDict, total=False):
    prompt_tokens: Any
    completion_tokens: Any


class _Response(TypedDict, total=False):
    id: Any
    model: Any
    choices: list[_Choice] | None
    usage: _Usage | None


class _Call(TypedDict, total=False):
    function_name: Any
    tool_call_id: Any
    model_response: _Response | None


class _Event(TypedDict, total=False):
    id: Any
    source: Any
    action: Any
    observation: Any
    args: Any
    tool_call_metadata: _Call | None
    cause: Any
    thought: Any
    message: Any
    timestamp: Any
    content: Any
    extras: Any
    success: Any


_Events = list[_Event | list[Any]]  # events, or legacy [action, observation] pairs (read whole)


class _Instance(TypedDict, total=False):
    instance_id: Any
    instruction: Any
    metadata: Any
    history: _Events
    trajectory: _Events | None
    test_result: Any
    metrics: Any
    error: Any


@functools.cache
def _msgspec() -> tuple[ModuleType, Any, Any]:
    """msgspec and its two decoders (the part the segmenter reads, and the whole record), imported where OpenHands
    records are first read: its 5 MB stay out of the processes that never read one."""
    import msgspec

    return msgspec, msgspec.json.Decoder(_Instance | _Events), msgspec.json.Decoder()


class _Partial(Exception):
    """An event read in part is empty: whether it is empty whole (a legacy pair's missing half, skipped) or
    holds only keys the segmenter does not read (an error) takes the whole record to tell."""


def _read(raw: bytes) -> Any:
    """The record as far as the segmenter reads it (see _Instance), or None where it is to be read whole: it
    is not of those types, or not valid JSON (reading it whole says where and why). The fields not read are
    checked as JSON except for the UTF-8 of their strings, which is checked here first."""
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    msgspec, reader, _ = _msgspec()
    try:
        return reader.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # ValidationError (not of these types) is a DecodeError
        return None


def _read_whole(record: RawRecord) -> Any:
    """The whole record's JSON, read as `_read` reads its part (so an integer beyond 64 bits is one either way);
    where that fails, loads_located says where and why."""
    msgspec, _, whole = _msgspec()
    try:
        return whole.decode(record.raw)
    except (msgspec.DecodeError, RecursionError):
        return loads_located(record.raw, record.where, record.line)


def _run_of(value: Any, *, partial: bool) -> ParsedRun:
    if isinstance(value, list):
        return _export_run(value, "", partial=partial)
    if not isinstance(value, dict):
        raise RecordError(f"a record must be a JSON list of events or an object, not {type(value).__name__}")
    if "history" in value:
        return _output_run(value, partial=partial)
    if isinstance(value.get("trajectory"), list):
        return _export_run(value["trajectory"], "/trajectory", partial=partial)
    raise RecordError("neither 'history' (output.jsonl) nor a list of events (trajectory export)", pointer="/history")


def _api_response(head: bytes) -> bool:
    """Does the head open `{"trajectory": [{…event…` (the API's export), with `source` in the first event?"""
    at = head.find(b'"trajectory"')
    if at < 0:
        return False
    rest = head[at + len(b'"trajectory"') :].lstrip()
    if rest[:1] != b":":
        return False
    rest = rest[1:].lstrip()
    if rest[:1] != b"[":
        return False
    rest = rest[1:].lstrip()
    first = rest[:600]
    return first[:1] == b"{" and b'"source"' in first and (b'"action"' in first or b'"observation"' in first)


def _export_run(events: list[Any], pointer: str, *, partial: bool) -> ParsedRun:
    run = _Segmenter(partial)
    run.feed(events, pointer)
    run.check(pointer)
    return ParsedRun(
        goal_text=run.goal_text or "",
        steps=run.steps,
        model=run.model,
        scaffold=f"openhands/{run.agent_class}" if run.agent_class else "openhands",
        final_answer=run.final_answer,
        metadata=run.metadata,
        tools=run.tools,
    )


def _output_run(value: dict[str, Any], *, partial: bool) -> ParsedRun:
    metadata = value.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise RecordError("metadata must be an object", pointer="/metadata")
    llm_config = metadata.get("llm_config")
    if llm_config is not None and not isinstance(llm_config, dict):
        raise RecordError("llm_config must be an object", pointer="/metadata/llm_config")
    instance_id = value.get("instance_id")
    if instance_id is not None and (isinstance(instance_id, bool) or not isinstance(instance_id, str | int)):
        raise RecordError("instance_id must be a string", pointer="/instance_id")
    instruction = value.get("instruction")
    if instruction is not None and not isinstance(instruction, str):
        raise RecordError("instruction must be a string", pointer="/instruction")

    run = _Segmenter(partial)
    history = value["history"]
    if not isinstance(history, list):
        raise RecordError("history must be a list of events or of [action, observation] pairs", pointer="/history")
    run.feed(history, "/history")
    run.check("/history")

    model = (llm_config or {}).get("model") or run.model
    if not isinstance(model, str):
        raise RecordError("model must be a string", pointer="/metadata/llm_config/model")
    agent_class = metadata.get("agent_class") or run.agent_class
    if not isinstance(agent_class, str):
        raise RecordError("agent_class must be a string", pointer="/metadata/agent_class")
    extra: dict[str, Any] = {**run.metadata, **metadata}
    metrics = value.get("metrics")
    if isinstance(metrics, dict):
        extra["metrics"] = {k: v for k, v in metrics.items() if k.startswith("accumulated")}
    if value.get("error") is not None:
        extra["error"] = value["error"]
    return ParsedRun(
        goal_text=instruction if instruction is not None else run.goal_text or "",
        steps=run.steps,
        task={"instance_id": str(instance_id)} if instance_id not in (None, "") else None,
        model=model,
        scaffold=f"openhands/{agent_class}" if agent_class else "openhands",
        final_answer=run.final_answer,
        outcome=_outcome(value.get("test_result")),
        metadata=extra,
        tools=run.tools,
    )


def _outcome(test_result: Any) -> dict[str, Any]:
    """reward 1.0 / 0.0 from report.resolved; the patch and the report's flags as details."""
    if test_result is None:
        return {}
    if not isinstance(test_result, dict):
        raise RecordError("test_result must be an object", pointer="/test_result")
    details: dict[str, Any] = {}
    patch = test_result.get("git_patch")
    if patch is not None:
        if not isinstance(patch, str):
            raise RecordError("git_patch must be a string", pointer="/test_result/git_patch")
        details["git_patch"] = patch
    report = test_result.get("report")
    resolved = test_result.get("resolved")
    pointer = "/test_result/resolved"
    if report is not None:
        if not isinstance(report, dict):
            raise RecordError("report must be an object", pointer="/test_result/report")
        details["report"] = {k: v for k, v in report.items() if v is None or isinstance(v, bool | int | float | str)}
        if "resolved" in report:
            resolved, pointer = report["resolved"], "/test_result/report/resolved"
    outcome: dict[str, Any] = {}
    if resolved is not None:
        if not isinstance(resolved, bool):
            raise RecordError(f"resolved must be true or false, not {resolved!r}", pointer=pointer)
        details["resolved"] = resolved
        outcome["reward"] = 1.0 if resolved else 0.0
    if details:
        outcome["details"] = details
    return outcome


def _text(value: Any, pointer: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise RecordError(f"must be a string, not {type(value).__name__}", pointer=pointer)


def _timestamp(event: dict[str, Any], pointer: str) -> str | None:
    value = event.get("timestamp")
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError("timestamp must be an ISO 8601 string", pointer=f"{pointer}/timestamp")
    if parse_iso(value) is None:
        raise RecordError(f"not an ISO 8601 date-time: {value[:40]!r}", pointer=f"{pointer}/timestamp")
    return value


def _exit_code(extras: Any) -> int | None:
    if not isinstance(extras, dict):
        return None
    code = extras.get("exit_code")
    if code is None and isinstance(extras.get("metadata"), dict):
        code = extras["metadata"].get("exit_code")
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    return None


class _Segmenter:
    """Walks events in order: actions become steps, observations find their action."""

    def __init__(self, partial: bool) -> None:
        self.partial = partial  # events are read in part (see _read); a legacy pair's halves are read whole
        self.steps: list[RunStep] = []
        self.pending_state: list[dict[str, Any]] = []
        self.by_id: dict[Any, RunStep] = {}
        self.by_call_id: dict[str, RunStep] = {}
        self.turns_counted: set[str] = set()
        self.goal_text: str | None = None
        self.final_answer = ""
        self.model = ""
        self.agent_class = ""
        self.tools: list[dict[str, Any]] | None = None
        self.metadata: dict[str, Any] = {}

    def feed(self, items: list[Any], pointer: str) -> None:
        for i, item in enumerate(items):
            where = f"{pointer}/{i}"
            if isinstance(item, list):  # legacy [action, observation] pair
                if len(item) != 2:
                    raise RecordError(
                        f"a history pair must be [action, observation], not {len(item)} items", pointer=where
                    )
                action, observation = item
                step = self.event(action, f"{where}/0", paired=True)
                self.event(observation, f"{where}/1", paired=True, answers=step)
            else:
                self.event(item, where, paired=False)

    def check(self, pointer: str) -> None:
        if not self.steps:
            raise RecordError("no agent action: nothing to segment into steps", pointer=pointer)

    def event(self, event: Any, where: str, *, paired: bool, answers: RunStep | None = None) -> RunStep | None:
        if not isinstance(event, dict):
            raise RecordError("an event must be an object", pointer=where)
        if not event:
            if self.partial and not paired:
                raise _Partial
            return None  # a legacy pair's missing half
        source = event.get("source")
        if source is not None and not isinstance(source, str):
            raise RecordError("source must be a string", pointer=f"{where}/source")
        action = event.get("action")
        if action is not None:
            if not isinstance(action, str):
                raise RecordError("action must be a string", pointer=f"{where}/action")
            return self.action_event(event, action, source, where)
        observation = event.get("observation")
        if observation is not None:
            if not isinstance(observation, str):
                raise RecordError("observation must be a string", pointer=f"{where}/observation")
            self.observation_event(event, observation, where, answers if paired else self.target_of(event, where))
            return None
        if "tool_call_metadata" in event or "args" in event:
            return self.action_event(event, "", source, where)
        raise RecordError("an event needs an 'action' or an 'observation'", pointer=where)

    def target_of(self, event: dict[str, Any], where: str) -> RunStep | None:
        cause = event.get("cause")
        if cause is not None and not isinstance(cause, bool) and isinstance(cause, _ID_TYPES):
            step = self.by_id.get(cause)
            if step is not None:
                return step
        metadata = event.get("tool_call_metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("tool_call_id"), str):
            return self.by_call_id.get(metadata["tool_call_id"])
        return None

    def action_event(self, event: dict[str, Any], action: str, source: str | None, where: str) -> RunStep | None:
        args = event.get("args")
        if args is not None and not isinstance(args, _ARGS_TYPES):
            raise RecordError(f"args must be an object, not {type(args).__name__}", pointer=f"{where}/args")
        args_dict = args if isinstance(args, dict) else {}
        if action == "system":
            self.system(args_dict, where)
            return None
        if action == "message" and (source == "user" or (source is None and self.goal_text is None)):
            text = content_text(args_dict.get("content"), f"{where}/args/content")
            if self.goal_text is None:
                self.goal_text = text
            self.pending_state = [*self.pending_state, {"role": "user", "content": text}]
            return None
        if action in NOT_DECISIONS:
            return None
        if source not in ("agent", None):  # e.g. a command the user ran in the runtime
            text = _text(event.get("message"), f"{where}/message")
            if text:
                self.pending_state = [*self.pending_state, {"role": "user", "content": text}]
            return None
        return self.step(event, action, args, args_dict, where)

    def system(self, args: dict[str, Any], where: str) -> None:
        text = content_text(args.get("content"), f"{where}/args/content")
        if text:
            self.pending_state = [*self.pending_state, {"role": "system", "content": text}]
        tools = args.get("tools")
        if tools is not None:
            if not isinstance(tools, list):
                raise RecordError("tools must be a list", pointer=f"{where}/args/tools")
            self.tools = tools
        for key in ("agent_class", "openhands_version"):
            value = args.get(key)
            if isinstance(value, str) and value:
                self.metadata[key] = value
        if isinstance(args.get("agent_class"), str):
            self.agent_class = args["agent_class"]

    def step(self, event: dict[str, Any], action: str, args: Any, args_dict: dict[str, Any], where: str) -> RunStep:
        call = event.get("tool_call_metadata")
        if call is not None and not isinstance(call, dict):
            raise RecordError("tool_call_metadata must be an object", pointer=f"{where}/tool_call_metadata")
        call = call or {}
        # The usual values are tested in place; _text says what is wrong with any other (every step passes here).
        function_name = call.get("function_name")
        if type(function_name) is not str:
            function_name = _text(function_name, f"{where}/tool_call_metadata/function_name")
        call_id = call.get("tool_call_id")
        if type(call_id) is not str:
            call_id = _text(call_id, f"{where}/tool_call_metadata/tool_call_id")
        response = call.get("model_response")
        response = response if isinstance(response, dict) else {}
        response_id = response.get("id")
        if not isinstance(response_id, str):
            response_id = ""
        event_id = event.get("id")
        turn_id = response_id or (f"event-{event_id}" if event_id is not None else f"event-at-{where}")

        thought_value = args_dict.get("thought") if action != "think" else None
        if thought_value is None:
            thought_value = event.get("thought")
        plan = thought_value if type(thought_value) is str else content_text(thought_value, f"{where}/args/thought")
        if not plan and response_id not in self.turns_counted:  # no thought: the plan is the model's visible text
            plan = _visible_text(response)
        tool = action
        if action in MCP_ACTIONS or not action:
            tool = function_name or _text(args_dict.get("name"), f"{where}/args/name") or action
        if not tool:
            raise RecordError("an action event needs an 'action' type or a tool call's function name", pointer=where)

        if action == "message" and not call_id:
            text = content_text(args_dict.get("content"), f"{where}/args/content")
            plan = content_text(thought_value, f"{where}/args/thought")  # the content is the visible text
            step = RunStep(kind="respond", tool_name="respond", arguments={"content": text}, plan=plan)
            self.final_answer = text
        else:
            if isinstance(args, dict):  # the usual case (every step passes here): parse_arguments' first answer
                if "thought" in args and action != "think":
                    args = args.copy()
                    del args["thought"]
                arguments, raw, error = args, None, ""
            else:
                arguments, raw, error = parse_arguments(args, f"{where}/args")
            step = RunStep(
                kind="tool_call",
                tool_name=tool,
                tool_call_id=call_id,
                arguments=arguments,
                arguments_raw=raw,
                arguments_error=error,
                plan=plan,
            )
            if action == "finish":
                final = args_dict.get("final_thought") or plan or event.get("message")
                self.final_answer = final if isinstance(final, str) else ""
        step.turn_id = turn_id[:100]
        step.state = self.pending_state
        self.pending_state = []
        moment = event.get("timestamp")  # the usual value tested in place; _timestamp says what is wrong with another
        step.started_at = moment if type(moment) is str and parse_iso(moment) is not None else _timestamp(event, where)
        if response_id and response_id not in self.turns_counted:
            self.turns_counted.add(response_id)
            usage = response.get("usage")
            if isinstance(usage, dict):
                step.prompt_tokens = _count(usage.get("prompt_tokens"))
                step.completion_tokens = _count(usage.get("completion_tokens"))
        if not self.model and isinstance(response.get("model"), str):
            self.model = response["model"]
        self.steps.append(step)
        if event_id is not None and not isinstance(event_id, bool) and isinstance(event_id, _ID_TYPES):
            self.by_id[event_id] = step
        if call_id:
            self.by_call_id[call_id] = step
        return step

    def observation_event(self, event: dict[str, Any], kind: str, where: str, target: RunStep | None) -> None:
        text = event.get("content")
        if type(text) is not str:
            text = content_text(text, f"{where}/content")
        if target is not None and target.observation is None and target.kind == "tool_call":
            target.observation = text
            moment = event.get("timestamp")
            target.ended_at = (
                moment if type(moment) is str and parse_iso(moment) is not None else _timestamp(event, where)
            )
            if kind in FAILED_OBSERVATIONS:
                target.success_flag = False
            else:
                code = _exit_code(event.get("extras"))
                success = event.get("success")
                if code is not None:
                    target.success_flag = code == 0
                elif isinstance(success, bool):
                    target.success_flag = success
                else:
                    target.success_flag = observation_success(text)
            return
        if kind in QUIET_OBSERVATIONS:
            return
        if not text:
            text = _text(event.get("message"), f"{where}/message")
        if text:
            self.pending_state = [*self.pending_state, {"role": "environment", "content": text}]


def _visible_text(response: dict[str, Any]) -> str:
    """The assistant text of a model response (function-calling mode), where there is one."""
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
