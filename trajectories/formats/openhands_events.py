"""OpenHands events as the segmenter reads them, and the segmenter (see openhands.py for the format).

This module is imported where OpenHands records are first read (openhands._events): msgspec's 5 MB of
RSS stay out of the processes that never read one (a τ-bench import's three processes among them).

A record is decoded as far as the segmenter reads it (`READER`): each event into an `Event`, a Struct
of the keys the segmenter looks up, its values whole (Any) except the objects it looks into by type
(`Call`, `Response`…). The fields it never looks at (two thirds of a run's bytes are model responses
repeated in every event's `tool_call_metadata`) are checked as JSON but not built, and reading a
Struct's attribute is quicker than looking a key up in a dict.

A record whose objects are not all of those types is decoded whole instead (`WHOLE`: plain dicts and
lists), and `event_of` makes each of its events the Event the partial reading would have made, with a
value of any other type kept as it is. The segmenter refuses such a value where it would refuse it in
the whole record; so the run, or the located error, is the same whichever reading it walks.
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec

from trajectories.formats.base import RecordError, RunStep
from trajectories.formats.chat import content_text, observation_success, parse_arguments
from trajectories.formats.times import parse_iso

UNSET: Any = msgspec.UNSET

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


# gc=False: decoded JSON holds no reference cycles, so these need not be tracked by the collector.
class Message(msgspec.Struct, gc=False):
    content: Any = None


class Choice(msgspec.Struct, gc=False):
    message: Message | None = None


class Usage(msgspec.Struct, gc=False):
    prompt_tokens: Any = None
    completion_tokens: Any = None


class Response(msgspec.Struct, gc=False):
    id: Any = None
    model: Any = None
    choices: list[Choice] | None = None
    usage: Usage | None = None


class Call(msgspec.Struct, gc=False):
    function_name: Any = None
    tool_call_id: Any = None
    model_response: Response | None = None


class ExitMetadata(msgspec.Struct, gc=False):
    exit_code: Any = None


class Extras(msgspec.Struct, gc=False):
    exit_code: Any = None
    metadata: ExitMetadata | None = None


class Event(msgspec.Struct, gc=False):
    id: Any = None
    source: Any = None
    action: Any = None
    observation: Any = None
    args: Any = UNSET  # UNSET where the key is missing (an event with args is an action, even null ones)
    tool_call_metadata: Call | msgspec.UnsetType | None = UNSET  # …likewise
    cause: Any = None
    thought: Any = None
    message: Any = None
    timestamp: Any = None
    content: Any = None
    extras: Extras | None = None
    success: Any = None


Events = list[Event | list[Any]]  # events, or legacy [action, observation] pairs (read whole)


class Instance(TypedDict, total=False):
    instance_id: Any
    instruction: Any
    metadata: Any
    history: Events
    trajectory: Events | None
    test_result: Any
    metrics: Any
    error: Any


READER = msgspec.json.Decoder(Instance | Events)
WHOLE = msgspec.json.Decoder()
DecodeError = msgspec.DecodeError  # ValidationError (not of the reader's types) is one too

_NO_CALL = Call()  # never changed: what an action without tool_call_metadata has
_NO_RESPONSE = Response()
# The objects a Struct's fields hold, by field: what event_of makes Structs of.
_INNER: dict[type[msgspec.Struct], dict[str, type[msgspec.Struct]]] = {
    Event: {"tool_call_metadata": Call, "extras": Extras},
    Extras: {"metadata": ExitMetadata},
    ExitMetadata: {},
    Call: {"model_response": Response},
    Response: {"usage": Usage, "choices": Choice},  # choices: a list of them
    Choice: {"message": Message},
    Message: {},
    Usage: {},
}


def event_of(value: dict[str, Any]) -> Event:
    """An event read whole, as the Event that READER would have made of it; a value not of the type READER
    takes is kept as it is (READER would have refused the record: the segmenter says what is wrong)."""
    return _struct(Event, value)  # type: ignore[return-value]


def _struct(cls: type[msgspec.Struct], value: dict[str, Any]) -> msgspec.Struct:
    fields = {name: value[name] for name in cls.__struct_fields__ if name in value}
    for name, inner in _INNER[cls].items():
        held = fields.get(name)
        if isinstance(held, dict):
            fields[name] = _struct(inner, held)
        elif name == "choices" and isinstance(held, list):
            fields[name] = [_struct(inner, item) if isinstance(item, dict) else item for item in held]
    return cls(**fields)


_POINTERS: dict[str, tuple[str, ...]] = {}  # "/history" → ("/history/0", "/history/1", …)
_KEPT_POINTERS = 4096  # at most this many kept for each list of events


def _pointers(pointer: str, count: int) -> tuple[str, ...]:
    """The pointers `pointer`/0 … `pointer`/(count - 1), made once for the records of a process: every event
    has one and most are never read (only an error names its event)."""
    kept = _POINTERS.get(pointer, ())
    if len(kept) >= count:
        return kept
    made = tuple(f"{pointer}/{i}" for i in range(count))
    if count <= _KEPT_POINTERS:
        _POINTERS[pointer] = made  # a whole tuple at once: threads that import at the same time may share it
    return made


class Partial(Exception):
    """An event read in part is neither an action nor an observation: whether it is empty whole (skipped) or
    holds other keys (an error) takes the whole record to tell."""


def _text(value: Any, pointer: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise RecordError(f"must be a string, not {type(value).__name__}", pointer=pointer)


def _timestamp(value: Any, pointer: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError("timestamp must be an ISO 8601 string", pointer=f"{pointer}/timestamp")
    if parse_iso(value) is None:
        raise RecordError(f"not an ISO 8601 date-time: {value[:40]!r}", pointer=f"{pointer}/timestamp")
    return value


def _exit_code(extras: Any) -> int | None:
    if type(extras) is not Extras:
        return None
    code = extras.exit_code
    if code is None and type(extras.metadata) is ExitMetadata:
        code = extras.metadata.exit_code
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    return None


class Segmenter:
    """Walks events in order: actions become steps, observations find their action."""

    def __init__(self) -> None:
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
        wheres = _pointers(pointer, len(items))
        for i, item in enumerate(items):
            where = wheres[i]
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
        read_in_part = type(event) is Event
        if not read_in_part:  # read whole (and a legacy pair's halves are, either way)
            if not isinstance(event, dict):
                raise RecordError("an event must be an object", pointer=where)
            if not event:
                return None  # a legacy pair's missing half
            event = event_of(event)
        source = event.source
        if source is not None and not isinstance(source, str):
            raise RecordError("source must be a string", pointer=f"{where}/source")
        action = event.action
        if action is not None:
            if not isinstance(action, str):
                raise RecordError("action must be a string", pointer=f"{where}/action")
            return self.action_event(event, action, source, where)
        observation = event.observation
        if observation is not None:
            if not isinstance(observation, str):
                raise RecordError("observation must be a string", pointer=f"{where}/observation")
            self.observation_event(event, observation, where, answers if paired else self.target_of(event))
            return None
        if event.tool_call_metadata is not UNSET or event.args is not UNSET:
            return self.action_event(event, "", source, where)
        if read_in_part:
            raise Partial
        raise RecordError("an event needs an 'action' or an 'observation'", pointer=where)

    def target_of(self, event: Event) -> RunStep | None:
        cause = event.cause
        if cause is not None and not isinstance(cause, bool) and isinstance(cause, _ID_TYPES):
            step = self.by_id.get(cause)
            if step is not None:
                return step
        metadata = event.tool_call_metadata
        if type(metadata) is Call and isinstance(metadata.tool_call_id, str):
            return self.by_call_id.get(metadata.tool_call_id)
        return None

    def action_event(self, event: Event, action: str, source: str | None, where: str) -> RunStep | None:
        args = event.args
        if args is UNSET:
            args = None
        elif args is not None and not isinstance(args, _ARGS_TYPES):
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
            text = _text(event.message, f"{where}/message")
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

    def step(self, event: Event, action: str, args: Any, args_dict: dict[str, Any], where: str) -> RunStep:
        call = event.tool_call_metadata
        if type(call) is not Call:
            if call is not None and call is not UNSET:
                raise RecordError("tool_call_metadata must be an object", pointer=f"{where}/tool_call_metadata")
            call = _NO_CALL
        # The usual values are tested in place; _text says what is wrong with any other (every step passes here).
        function_name = call.function_name
        if type(function_name) is not str:
            function_name = _text(function_name, f"{where}/tool_call_metadata/function_name")
        call_id = call.tool_call_id
        if type(call_id) is not str:
            call_id = _text(call_id, f"{where}/tool_call_metadata/tool_call_id")
        response = call.model_response
        if type(response) is not Response:
            response = _NO_RESPONSE
        response_id = response.id
        if not isinstance(response_id, str):
            response_id = ""
        event_id = event.id
        turn_id = response_id or (f"event-{event_id}" if event_id is not None else f"event-at-{where}")

        thought_value = args_dict.get("thought") if action != "think" else None
        if thought_value is None:
            thought_value = event.thought
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
                final = args_dict.get("final_thought") or plan or event.message
                self.final_answer = final if isinstance(final, str) else ""
        step.turn_id = turn_id[:100]
        step.state = self.pending_state
        self.pending_state = []
        moment = event.timestamp  # the usual value tested in place; _timestamp says what is wrong with another
        step.started_at = moment if type(moment) is str and parse_iso(moment) is not None else _timestamp(moment, where)
        if response_id and response_id not in self.turns_counted:
            self.turns_counted.add(response_id)
            usage = response.usage
            if type(usage) is Usage:
                step.prompt_tokens = _count(usage.prompt_tokens)
                step.completion_tokens = _count(usage.completion_tokens)
        if not self.model and isinstance(response.model, str):
            self.model = response.model
        self.steps.append(step)
        if event_id is not None and not isinstance(event_id, bool) and isinstance(event_id, _ID_TYPES):
            self.by_id[event_id] = step
        if call_id:
            self.by_call_id[call_id] = step
        return step

    def observation_event(self, event: Event, kind: str, where: str, target: RunStep | None) -> None:
        text = event.content
        if type(text) is not str:
            text = content_text(text, f"{where}/content")
        if target is not None and target.observation is None and target.kind == "tool_call":
            target.observation = text
            moment = event.timestamp
            target.ended_at = (
                moment if type(moment) is str and parse_iso(moment) is not None else _timestamp(moment, where)
            )
            if kind in FAILED_OBSERVATIONS:
                target.success_flag = False
            else:
                code = _exit_code(event.extras)
                success = event.success
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
            text = _text(event.message, f"{where}/message")
        if text:
            self.pending_state = [*self.pending_state, {"role": "environment", "content": text}]


def _visible_text(response: Response) -> str:
    """The assistant text of a model response (function-calling mode), where there is one."""
    choices = response.choices
    if isinstance(choices, list) and choices and type(choices[0]) is Choice:
        message = choices[0].message
        if type(message) is Message and isinstance(message.content, str):
            return message.content
    return ""


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
