"""τ²-bench (τ³-bench) results, in either storage format (FORMATS.md §1.6).

* `"json"`: one file `{timestamp, info, tasks: [Task], simulations: [SimulationRun]}`. The
  `simulations` array is streamed element by element; `info` and `tasks` (written before it)
  give each simulation its model, domain and task.
* `"dir"`: `results.json` is only an index (`simulation_index`): it is refused with a message
  saying so; each `simulations/<id>.json` is one SimulationRun document and imports on its own
  (its model and domain are in the directory's results.json, not in it: they stay empty).
* A JSON array, or JSONL, of SimulationRuns is read too.

Steps: each assistant tool call (`tool_calls[]`, arguments as an object) is a step, paired with
the `role: "tool"` message whose `id` is the call's; an assistant text without calls is a
`respond` step. User messages — with the user's own tool calls (`requestor: "user"`, telecom)
and their results — are context. A tool message's `error` flag gives success_flag.

Goal: `tau2-bench:<domain>:<task_id>` (task ids are strings, unique within a domain), or
`tau2-bench:<task_id>` when the domain is not known; its text is the first user message, or
the task's `ticket` in solo mode. Outcome: `reward_info.reward` with the reward_info and the
termination reason as details; the simulations τ² leaves out of its metrics
(`infrastructure_error`, `context_window_exceeded`) have no reward.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from trajectories.formats.base import ParsedRun, RawRecord, RecordError, RunStep
from trajectories.formats.chat import content_text, observation_success, parse_arguments
from trajectories.formats.reading import (
    CHUNK,
    MAX_RECORD_BYTES,
    iter_document,
    iter_json_array,
    iter_jsonl,
    loads_located,
    sniff_container,
    utf8_error,
)
from trajectories.formats.times import parse_iso

SCAFFOLD = "tau2-bench"
NOT_EVALUABLE = frozenset({"infrastructure_error", "context_window_exceeded"})
_META_KEYS = (
    "termination_reason",
    "agent_cost",
    "user_cost",
    "duration",
    "start_time",
    "end_time",
    "timestamp",
    "seed",
    "mode",
)
_decoder = json.JSONDecoder()
_WS = " \t\r\n"


@dataclass(frozen=True, slots=True)
class _Context:
    """What the results file says about all its simulations (shared, never copied)."""

    model: str
    domain: str
    tasks: dict[str, Any]
    run_info: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Simulation:
    value: Any
    context: _Context


class Tau2BenchImporter:
    name = "tau2_bench"
    label = "τ²-bench results (results JSON, or one simulation of a results directory)"
    version = "1.0"

    def detect(self, head: bytes) -> int:
        head = head[:65536]
        if not sniff_container(head):
            return 0
        if b'"simulation_index"' in head or (b'"simulations"' in head and b'"tasks"' in head):
            return 92
        if b'"termination_reason"' in head and b'"task_id"' in head:
            return 92
        return 0

    def records(self, stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
        head = stream.read(4096)
        stream.seek(0)
        container = sniff_container(head)
        if container == "array":
            yield from iter_json_array(stream)
            return
        if container == "":
            yield RecordError("expected a JSON object or array at the start of the file", where="line 1", line=1)
            return
        reader = _ObjectReader(stream)
        yield from reader.records()
        if reader.simulations_seen or reader.error:
            return
        if "simulations" in reader.keys:
            yield RecordError("'simulations' must be a list", where="line 1", line=1)
            return
        if "simulation_index" in reader.keys:
            yield RecordError(
                "this is the index (results.json) of a τ²-bench results directory: it holds no conversations; "
                "import the files in its simulations/ folder",
                where="line 1",
                line=1,
            )
            return
        if not reader.keys & {"messages", "ticks", "task_id"}:
            yield RecordError(
                "not a τ²-bench results file (no 'simulations') nor a simulation (no 'messages')",
                where="line 1",
                line=1,
            )
            return
        stream.seek(0)  # one SimulationRun per file (or per line): read it as it is
        yield from (iter_jsonl(stream) if container == "jsonl" else iter_document(stream))

    def parse(self, record: RawRecord) -> ParsedRun:
        context = _NO_CONTEXT
        value = record.value
        if isinstance(value, _Simulation):
            value, context = value.value, value.context
        elif value is None:
            value = loads_located(record.raw, record.where, record.line)
        if not isinstance(value, dict):
            raise RecordError(f"a simulation must be a JSON object, not {type(value).__name__}", pointer="")
        return _parse_simulation(value, context)


_NO_CONTEXT = _Context(model="", domain="", tasks={}, run_info={})


def _parse_simulation(sim: dict[str, Any], context: _Context) -> ParsedRun:
    task_id = sim.get("task_id")
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        task_id = str(task_id)
    if not isinstance(task_id, str) or not task_id:
        raise RecordError("a simulation needs a 'task_id' string", pointer="/task_id")
    messages = sim.get("messages")
    if messages is None:
        if sim.get("ticks") is not None:
            raise RecordError("a full-duplex (voice) simulation: only 'messages' can be imported", pointer="/ticks")
        raise RecordError("missing 'messages'", pointer="/messages")
    steps, first_user, final_answer = _segment(messages)
    if not steps:
        raise RecordError("no assistant message: nothing to segment into steps", pointer="/messages")
    task = context.tasks.get(task_id)
    goal_text = first_user
    if not goal_text and isinstance(task, dict) and isinstance(task.get("ticket"), str):
        goal_text = task["ticket"]
    domain = context.domain
    goal: dict[str, Any] = {"external_id": f"tau2-bench:{domain}:{task_id}" if domain else f"tau2-bench:{task_id}"}
    if domain:
        goal["tags"] = [domain]
    if isinstance(task, dict):
        goal.update(_expected(task))
    trial = sim.get("trial")
    if trial is not None and (isinstance(trial, bool) or not isinstance(trial, int)):
        raise RecordError(f"trial must be an integer, not {type(trial).__name__}", pointer="/trial")
    rollout_id = sim.get("id")
    if rollout_id is not None and not isinstance(rollout_id, str):
        raise RecordError(f"id must be a string, not {type(rollout_id).__name__}", pointer="/id")
    metadata: dict[str, Any] = {"task_id": task_id}
    if domain:
        metadata["domain"] = domain
    for key in _META_KEYS:
        if sim.get(key) is not None:
            metadata[key] = sim[key]
    if context.run_info:
        metadata["run"] = context.run_info
    return ParsedRun(
        goal_text=goal_text,
        steps=steps,
        goal=goal,
        model=context.model,
        scaffold=SCAFFOLD,
        rollout_id=rollout_id or "",
        trial=trial,
        final_answer=final_answer,
        outcome=_outcome(sim.get("reward_info"), sim.get("termination_reason")),
        metadata=metadata,
    )


def _outcome(reward_info: Any, termination: Any) -> dict[str, Any]:
    if reward_info is not None and not isinstance(reward_info, dict):
        raise RecordError("reward_info must be an object or null", pointer="/reward_info")
    details: dict[str, Any] = {}
    if isinstance(termination, str):
        details["termination_reason"] = termination
    reward = None
    if reward_info:
        reward = reward_info.get("reward")
        if reward is not None and (isinstance(reward, bool) or not isinstance(reward, int | float)):
            raise RecordError(f"reward must be a number, not {type(reward).__name__}", pointer="/reward_info/reward")
        details["reward_info"] = reward_info
    if termination in NOT_EVALUABLE:
        reward = None  # τ² leaves these out of its metrics: no reward, rather than a failure
    return {"reward": float(reward) if reward is not None else None, "details": details}


def _expected(task: dict[str, Any]) -> dict[str, Any]:
    """The goal's expected actions and outputs from the task's evaluation criteria."""
    criteria = task.get("evaluation_criteria")
    if not isinstance(criteria, dict):
        return {}
    out: dict[str, Any] = {}
    actions = criteria.get("actions")
    if isinstance(actions, list):
        expected = []
        for action in actions:
            if not isinstance(action, dict) or not isinstance(action.get("name"), str):
                continue  # the task list is context, not this record: a bad entry costs only itself
            arguments = action.get("arguments")
            item: dict[str, Any] = {
                "name": action["name"],
                "arguments": arguments if isinstance(arguments, dict) else {},
            }
            if action.get("requestor") not in (None, "assistant"):
                item["requestor"] = action["requestor"]
            if isinstance(action.get("compare_args"), list):
                item["compare_args"] = action["compare_args"]
            expected.append(item)
        out["expected_actions"] = expected
    communicate = criteria.get("communicate_info")
    if isinstance(communicate, list) and all(isinstance(c, str) for c in communicate):
        out["expected_outputs"] = communicate
    return out


def _iso(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value if parse_iso(value) is not None else None


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    return None


def _cost(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _segment(messages: Any) -> tuple[list[RunStep], str, str]:
    """(steps, first user message, last assistant text) of τ² messages."""
    if not isinstance(messages, list):
        raise RecordError("messages must be a list", pointer="/messages")
    steps: list[RunStep] = []
    state: list[dict[str, Any]] = []
    by_id: dict[str, RunStep] = {}
    first_user: str | None = None
    final_answer = ""
    for i, message in enumerate(messages):
        where = f"/messages/{i}"
        if not isinstance(message, dict):
            raise RecordError("a message must be an object", pointer=where)
        role = message.get("role")
        text = content_text(message.get("content"), f"{where}/content")
        calls = message.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise RecordError("tool_calls must be a list or null", pointer=f"{where}/tool_calls")
        if role == "assistant":
            usage: dict[str, Any] = message["usage"] if isinstance(message.get("usage"), dict) else {}
            turn = message.get("turn_idx")
            turn_id = str(turn) if isinstance(turn, int) and not isinstance(turn, bool) else f"turn-{i}"
            started = _iso(message.get("timestamp"))
            seconds = message.get("generation_time_seconds")
            latency = (
                float(seconds) * 1000 if isinstance(seconds, int | float) and not isinstance(seconds, bool) else None
            )
            new: list[RunStep] = []
            for j, call in enumerate(calls or []):
                cp = f"{where}/tool_calls/{j}"
                if not isinstance(call, dict):
                    raise RecordError("a tool call must be an object", pointer=cp)
                name = call.get("name")
                if not isinstance(name, str) or not name:
                    raise RecordError("a tool call needs a non-empty 'name'", pointer=f"{cp}/name")
                call_id = call.get("id")
                arguments, raw, error = parse_arguments(call.get("arguments"), f"{cp}/arguments")
                step = RunStep(
                    kind="tool_call",
                    turn_id=turn_id,
                    tool_name=name,
                    tool_call_id=call_id if isinstance(call_id, str) else "",
                    arguments=arguments,
                    arguments_raw=raw,
                    arguments_error=error,
                )
                new.append(step)
                if step.tool_call_id:
                    by_id[step.tool_call_id] = step
            if not new and text.strip():
                new.append(RunStep(kind="respond", turn_id=turn_id, tool_name="respond", arguments={"content": text}))
                final_answer = text
            if new:
                first = new[0]
                first.state = state
                if first.kind == "tool_call":
                    first.plan = text
                first.started_at = started
                first.latency_ms = latency
                first.prompt_tokens = _count(usage.get("prompt_tokens"))
                first.completion_tokens = _count(usage.get("completion_tokens"))
                first.cost_usd = _cost(message.get("cost"))
                steps.extend(new)
                state = []
            continue
        if role == "tool":
            call_id = message.get("id")
            target = by_id.pop(call_id, None) if isinstance(call_id, str) and call_id else None
            if target is not None and message.get("requestor", "assistant") == "assistant":
                target.observation = text
                flag = message.get("error")
                target.success_flag = not flag if isinstance(flag, bool) else observation_success(text)
                target.ended_at = _iso(message.get("timestamp"))
                continue
            state = [*state, {"role": "tool", "content": text}]
            continue
        if role not in ("user", "system"):
            raise RecordError(f"unknown role {role!r}", pointer=f"{where}/role")
        if role == "user" and first_user is None and text.strip():
            first_user = text
        for j, call in enumerate(calls or []):  # the user's own tool calls (telecom): context
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise RecordError("a tool call needs a 'name'", pointer=f"{where}/tool_calls/{j}")
            try:
                shown = orjson.dumps(call.get("arguments"), option=orjson.OPT_SORT_KEYS).decode()
            except TypeError:
                shown = str(call.get("arguments"))
            text = f"{text}\n[calls {call['name']} {shown}]" if text else f"[calls {call['name']} {shown}]"
        state = [*state, {"role": role, "content": text}]
    return steps, first_user or "", final_answer


class _ObjectReader:
    """Streams a top-level JSON object: the `simulations` array element by element, other keys whole.

    Memory stays bounded by the largest value (MAX_RECORD_BYTES), as in reading.iter_json_array.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self.keys: set[str] = set()
        self.header: dict[str, Any] = {}
        self.simulations_seen = False
        self.error = False

    def fill(self) -> bool:
        if self.eof:
            return False
        data = self.stream.read(CHUNK)
        self.buf = self.buf[self.pos :] + self.decoder.decode(data, final=not data)
        self.pos = 0
        if not data:
            self.eof = True
            return False
        return True

    def skip_ws(self) -> str:
        """The next non-blank character ('' at the end of the file)."""
        while True:
            buf, pos = self.buf, self.pos
            while pos < len(buf) and buf[pos] in _WS:
                if buf[pos] == "\n":
                    self.line += 1
                pos += 1
            self.pos = pos
            if pos < len(buf):
                return buf[pos]
            if not self.fill():
                return ""

    def value(self, what: str) -> tuple[Any, str]:
        """(the JSON value at the cursor, its text)."""
        while True:
            try:
                value, end = _decoder.raw_decode(self.buf, self.pos)
                break
            except json.JSONDecodeError as exc:
                # More data can only help when the fault is at the end of what has been read.
                at_end = exc.msg.startswith("Unterminated string") or not self.buf[exc.pos :].strip()
                at = self.line + self.buf.count("\n", self.pos, exc.pos)
                if not (at_end or exc.pos >= len(self.buf) - 64):
                    raise RecordError(f"malformed JSON in {what}: {exc.msg}", line=at) from None
                if len(self.buf) - self.pos > MAX_RECORD_BYTES:
                    raise RecordError(f"{what} is larger than {MAX_RECORD_BYTES >> 20} MB", line=self.line) from None
                if not self.fill():
                    if at_end:
                        raise RecordError(f"the file ends inside {what} (truncated?): {exc.msg}", line=at) from None
                    raise RecordError(f"malformed JSON in {what}: {exc.msg}", line=at) from None
        text = self.buf[self.pos : end]
        self.line += text.count("\n")
        self.pos = end
        if self.pos > CHUNK:
            self.buf, self.pos = self.buf[self.pos :], 0
        return value, text

    def expect(self, chars: str, after: str) -> str:
        found = self.skip_ws()
        if not found or found not in chars:
            shown = repr(found) if found else "the end of the file"
            want = " or ".join(repr(c) for c in chars)
            raise RecordError(f"expected {want} {after}, found {shown}", line=self.line)
        self.pos += 1
        return found

    def records(self) -> Iterator[RawRecord | RecordError]:
        try:
            yield from self._records()
        except RecordError as exc:
            self.error = True
            exc.line = exc.line or self.line
            exc.where = exc.where or f"line {exc.line}"
            yield exc

    def _records(self) -> Iterator[RawRecord | RecordError]:
        if self.skip_ws() == "\ufeff":
            self.pos += 1
        self.expect("{", "at the start of the file")
        if self.skip_ws() == "}":
            self.pos += 1
            return
        while True:
            if self.skip_ws() != '"':
                raise RecordError("expected a key (a string) in the top-level object", line=self.line)
            key, _ = self.value("a key")
            self.keys.add(key)
            self.expect(":", f"after the key {key!r}")
            if key == "simulations" and self.skip_ws() == "[":
                self.simulations_seen = True
                self.pos += 1
                yield from self._simulations()
            else:
                self.skip_ws()
                value, _ = self.value(f"the value of {key!r}")
                if key in ("info", "tasks"):
                    self.header[key] = value
            if self.expect(",}", f"after the value of {key!r}") == "}":
                break
        if self.skip_ws():
            raise RecordError("unexpected data after the end of the top-level object", line=self.line)

    def _context(self) -> _Context:
        info: dict[str, Any] = self.header["info"] if isinstance(self.header.get("info"), dict) else {}
        agent: dict[str, Any] = info["agent_info"] if isinstance(info.get("agent_info"), dict) else {}
        env: dict[str, Any] = info["environment_info"] if isinstance(info.get("environment_info"), dict) else {}
        user: dict[str, Any] = info["user_info"] if isinstance(info.get("user_info"), dict) else {}
        tasks: dict[str, Any] = {}
        if isinstance(self.header.get("tasks"), list):
            for task in self.header["tasks"]:
                if isinstance(task, dict) and isinstance(task.get("id"), str | int):
                    tasks[str(task["id"])] = task
        model = agent.get("llm")
        domain = env.get("domain_name")
        run_info: dict[str, Any] = {
            key: info[key] for key in ("git_commit", "num_trials", "max_steps", "max_errors", "seed") if key in info
        }
        if agent:
            run_info["agent"] = {k: agent[k] for k in ("implementation", "llm", "llm_args") if k in agent}
        if user:
            run_info["user"] = {k: user[k] for k in ("implementation", "llm", "llm_args") if k in user}
        return _Context(
            model=model[:200] if isinstance(model, str) else "",
            domain=domain[:60] if isinstance(domain, str) else "",
            tasks=tasks,
            run_info=run_info,
        )

    def _simulations(self) -> Iterator[RawRecord | RecordError]:
        context = self._context()
        index = 0
        if self.skip_ws() == "]":
            self.pos += 1
            return
        while True:
            start = self.line
            where = f"simulation {index} (line {start})"
            self.skip_ws()
            try:
                value, text = self.value(f"simulation {index}")
            except RecordError as exc:
                exc.where = where
                raise
            try:
                raw = text.encode("utf-8")
            except UnicodeEncodeError:
                raw = text.encode("utf-8", "surrogateescape")
                yield utf8_error(raw, where, start) or RecordError("not valid UTF-8", where=where, line=start)
            else:
                yield RawRecord(raw=raw, where=where, line=start, index=index, value=_Simulation(value, context))
            index += 1
            if self.expect(",]", f"after simulation {index - 1}") == "]":
                return
