"""mini-swe-agent `.traj.json` files: one JSON document per run (FORMATS.md §4).

v2 (`trajectory_format: "mini-swe-agent-1.1"`): each message is the model's native message
plus `extra`. An assistant turn's commands are `extra.actions[].command` (with `tool_call_id`
in tool-calling mode); each command is one `bash` step, paired with its observation — a
`role: "tool"` message by `tool_call_id`, a Responses API `function_call_output` by `call_id`,
or (text-based mode) the next `role: "user"` message that carries `extra.returncode`. The
success flag is `returncode == 0`. A submitted run ends with a `role: "exit"` message (the
submission) instead of the last command's observation. Responses API turns are whole response
objects (`object: "response"`, `output: [...]`) without a role.

v1 (`"mini-swe-agent-1"`): plain `{role, content}` messages; the command is the one
```` ```bash ```` block of an assistant message, its observation the next user message
(`<returncode>N</returncode>` when the template printed it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

from trajectories.formats.base import ParsedRun, RawRecord, RecordError, RunStep
from trajectories.formats.chat import content_text, observation_success
from trajectories.formats.reading import iter_document, loads_located

SCAFFOLD = "mini-swe-agent"
# v1's action regex (its default config); v2 records the parsed actions in `extra.actions`.
_V1_ACTION = re.compile(r"```(?:bash|mswea_bash_command)\s*\n(.*?)\n```", re.DOTALL)
_MARKERS = (b'"mini-swe-agent-1', b'"mini_version"', b'"minisweagent.')
_OBSERVATION_TYPES = frozenset({"function_call_output"})


class MiniSweAgentImporter:
    name = "mini_swe_agent"
    label = "mini-swe-agent .traj.json (v1 and v2)"
    version = "1.0"

    def detect(self, head: bytes) -> int:
        text = head[:65536].lstrip(b"\xef\xbb\xbf \t\r\n")
        if not text.startswith(b"{"):
            return 0
        if any(marker in text for marker in _MARKERS):
            return 90
        return 0

    def records(self, stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
        return iter_document(stream)

    def parse(self, record: RawRecord) -> ParsedRun:
        value = record.value if record.value is not None else loads_located(record.raw, record.where, record.line)
        if not isinstance(value, dict):
            raise RecordError(f"a .traj.json file must hold a JSON object, not {type(value).__name__}", pointer="")
        info = value.get("info")
        if info is None:
            info = {}
        if not isinstance(info, dict):
            raise RecordError("info must be an object", pointer="/info")
        if "messages" not in value:
            raise RecordError("missing 'messages'", pointer="/messages")
        segmented = _Segmenter().run(value["messages"])
        if not segmented.steps:
            raise RecordError("no assistant turn: nothing to segment into steps", pointer="/messages")
        exit_extra = segmented.exit_extra
        exit_status = info.get("exit_status", exit_extra.get("exit_status"))
        submission = info.get("submission", exit_extra.get("submission"))
        details: dict[str, Any] = {}
        for key, found in (("exit_status", exit_status), ("submission", submission)):
            if found is not None:
                details[key] = found
        for key in ("exception_str", "traceback"):
            if info.get(key):
                details[key] = info[key]
        instance_id = value.get("instance_id")
        return ParsedRun(
            goal_text=_problem_statement(segmented.goal_text),
            steps=segmented.steps,
            task={"instance_id": instance_id.strip()} if isinstance(instance_id, str) and instance_id.strip() else None,
            model=_model(info),
            scaffold=SCAFFOLD,
            final_answer=submission if isinstance(submission, str) else "",
            outcome={"details": details} if details else {},
            metadata=_metadata(value, info),
        )


class _Segmenter:
    """Walks the messages once: steps, the context before each, and the exit message."""

    def __init__(self) -> None:
        self.steps: list[RunStep] = []
        self.pending_state: list[dict[str, str]] = []
        self.by_call_id: dict[str, RunStep] = {}
        self.unpaired: list[RunStep] = []  # commands of the latest turn still waiting for output
        self.started_at: dict[int, float] = {}  # id(step) → the turn's timestamp
        self.goal_text: str | None = None
        self.exit_extra: dict[str, Any] = {}

    def run(self, messages: Any) -> _Segmenter:
        if not isinstance(messages, list):
            raise RecordError("messages must be a list", pointer="/messages")
        for i, message in enumerate(messages):
            where = f"/messages/{i}"
            if not isinstance(message, dict):
                raise RecordError("a message must be an object", pointer=where)
            extra = message.get("extra")
            if extra is None:
                extra = {}
            if not isinstance(extra, dict):
                raise RecordError("extra must be an object", pointer=f"{where}/extra")
            role = message.get("role")
            kind = message.get("type")
            if message.get("object") == "response":
                self._turn(i, message, extra, *_response_parts(message, where))
            elif role == "assistant":
                text = content_text(message.get("content"), f"{where}/content")
                reasoning = message.get("reasoning_content")
                self._turn(i, message, extra, text, reasoning if isinstance(reasoning, str) else "", {})
            elif role == "tool" or kind in _OBSERVATION_TYPES:
                self._tool_output(message, extra, where)
            elif role == "exit":
                self._exit(message, extra, where)
            elif isinstance(role, str):
                self._context(role, message, extra, where)
            else:
                raise RecordError(
                    "a message needs a 'role' string (or a Responses API 'type')", pointer=f"{where}/role"
                )
        return self

    # -- assistant turns ----------------------------------------------------------------------

    def _turn(
        self,
        i: int,
        message: dict[str, Any],
        extra: dict[str, Any],
        text: str,
        reasoning: str,
        call_names: dict[str, tuple[str, Any]],
    ) -> None:
        where = f"/messages/{i}"
        message_id = message.get("id")
        turn_id = message_id if isinstance(message_id, str) and message_id else f"turn-{i}"
        for call_id, name, raw in _chat_calls(message, where):
            call_names[call_id] = (name, raw)
        commands = _actions(extra, where) if "actions" in extra else _v1_commands(text)
        plan = "\n\n".join(p for p in (reasoning, text) if p)
        prompt_tokens, completion_tokens = _usage(message, extra)
        cost = extra.get("cost")
        cost_usd = float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0 else None
        stamp = _timestamp(extra.get("timestamp"))
        if not commands:
            if text.strip():
                self.steps.append(
                    RunStep(
                        kind="respond",
                        turn_id=turn_id,
                        state=self.pending_state,
                        plan=reasoning,
                        tool_name="respond",
                        arguments={"content": text},
                        prompt_tokens=prompt_tokens,
                        completion_tokens=completion_tokens,
                        cost_usd=cost_usd,
                        started_at=_iso(stamp),
                    )
                )
                self.unpaired = []
                self.pending_state = []
            return
        self.unpaired = []
        for j, (command, call_id) in enumerate(commands):
            name, raw = call_names.get(call_id, ("bash", None)) if call_id else ("bash", None)
            step = RunStep(
                kind="tool_call",
                turn_id=turn_id,
                state=self.pending_state if j == 0 else [],
                plan=plan if j == 0 else "",
                tool_name=name,
                tool_call_id=call_id,
                arguments={"command": command},
                arguments_raw=raw if isinstance(raw, str) else None,
                started_at=_iso(stamp),
            )
            if j == 0:
                step.prompt_tokens, step.completion_tokens, step.cost_usd = prompt_tokens, completion_tokens, cost_usd
            if stamp is not None:
                self.started_at[id(step)] = stamp
            self.steps.append(step)
            self.unpaired.append(step)
            if call_id:
                self.by_call_id[call_id] = step
        self.pending_state = []

    # -- observations -------------------------------------------------------------------------

    def _observe(self, step: RunStep, text: str, returncode: Any, extra: dict[str, Any]) -> None:
        if step in self.unpaired:
            self.unpaired.remove(step)
        step.observation = text
        if isinstance(returncode, int) and not isinstance(returncode, bool):
            step.success_flag = returncode == 0
        else:
            step.success_flag = _v1_success(text)
        ended = _timestamp(extra.get("timestamp"))
        if ended is not None:
            step.ended_at = _iso(ended)
            started = self.started_at.get(id(step))
            if started is not None and ended >= started:
                step.latency_ms = (ended - started) * 1000

    def _tool_output(self, message: dict[str, Any], extra: dict[str, Any], where: str) -> None:
        if message.get("role") == "tool":
            text = content_text(message.get("content"), f"{where}/content")
            call_id = message.get("tool_call_id")
        else:
            text = content_text(message.get("output"), f"{where}/output")
            call_id = message.get("call_id")
        target = self.by_call_id.pop(call_id, None) if isinstance(call_id, str) and call_id else None
        if target is None and self.unpaired and not call_id:
            target = self.unpaired[0]
        if target is not None and target.observation is None:
            self._observe(target, text, extra.get("returncode"), extra)
            return
        self.pending_state = [*self.pending_state, {"role": "tool", "content": text}]

    def _exit(self, message: dict[str, Any], extra: dict[str, Any], where: str) -> None:
        """The terminal message: the submission ends the command that printed it."""
        self.exit_extra = extra
        text = content_text(message.get("content"), f"{where}/content")
        if self.unpaired:
            step = self.unpaired[0]
            self._observe(step, text, None, extra)
            step.success_flag = extra.get("exit_status", "Submitted") == "Submitted"

    def _context(self, role: str, message: dict[str, Any], extra: dict[str, Any], where: str) -> None:
        text = content_text(message.get("content"), f"{where}/content")
        if role == "user" and self.unpaired and "interrupt_type" not in extra:
            # text-based mode (and v1): the command's output comes back as a user message
            returncode = extra.get("returncode")
            if returncode is None:
                returncode = _returncode_in(text)
            self._observe(self.unpaired[0], text, returncode, extra)
            return
        if role == "user" and self.goal_text is None:
            self.goal_text = text
        self.pending_state = [*self.pending_state, {"role": role, "content": text}]


# --- message shapes ------------------------------------------------------------------------------


def _response_parts(message: dict[str, Any], where: str) -> tuple[str, str, dict[str, tuple[str, Any]]]:
    """(text, reasoning, {call id: (name, arguments)}) of a Responses API response object."""
    output = message.get("output")
    if not isinstance(output, list):
        raise RecordError("a response's output must be a list", pointer=f"{where}/output")
    texts: list[str] = []
    reasoning: list[str] = []
    calls: dict[str, tuple[str, Any]] = {}
    for k, item in enumerate(output):
        ip = f"{where}/output/{k}"
        if not isinstance(item, dict):
            raise RecordError("an output item must be an object", pointer=ip)
        kind = item.get("type")
        if kind == "message":
            texts.append(content_text(item.get("content"), f"{ip}/content"))
        elif kind == "reasoning":
            summary = item.get("summary")
            if isinstance(summary, list):
                reasoning.extend(p["text"] for p in summary if isinstance(p, dict) and isinstance(p.get("text"), str))
        elif kind == "function_call":
            call_id = item.get("call_id") or item.get("id")
            name = item.get("name")
            if isinstance(call_id, str) and call_id:
                calls[call_id] = (name if isinstance(name, str) and name else "bash", item.get("arguments"))
    return "\n".join(t for t in texts if t), "\n".join(r for r in reasoning if r), calls


def _chat_calls(message: dict[str, Any], where: str) -> Iterator[tuple[str, str, Any]]:
    tool_calls = message.get("tool_calls")
    if tool_calls is None:
        return
    if not isinstance(tool_calls, list):
        raise RecordError("tool_calls must be a list", pointer=f"{where}/tool_calls")
    for j, call in enumerate(tool_calls):
        if not isinstance(call, dict):
            raise RecordError("a tool call must be an object", pointer=f"{where}/tool_calls/{j}")
        function = call.get("function")
        function = function if isinstance(function, dict) else call
        call_id = call.get("id")
        name = function.get("name")
        if isinstance(call_id, str) and call_id:
            yield call_id, name if isinstance(name, str) and name else "bash", function.get("arguments")


def _actions(extra: dict[str, Any], where: str) -> list[tuple[str, str]]:
    actions = extra["actions"]
    if actions is None:
        return []
    if not isinstance(actions, list):
        raise RecordError("extra.actions must be a list", pointer=f"{where}/extra/actions")
    out = []
    for j, action in enumerate(actions):
        ap = f"{where}/extra/actions/{j}"
        if not isinstance(action, dict):
            raise RecordError("an action must be an object", pointer=ap)
        command = action.get("command")
        if not isinstance(command, str):
            raise RecordError("an action needs a 'command' string", pointer=f"{ap}/command")
        call_id = action.get("tool_call_id")
        out.append((command, call_id if isinstance(call_id, str) else ""))
    return out


def _v1_commands(text: str) -> list[tuple[str, str]]:
    """v1: exactly one bash block is the command; none or several was a format error."""
    if "```" not in text:
        return []
    found = _V1_ACTION.findall(text)
    return [(found[0].strip(), "")] if len(found) == 1 else []


def _returncode_in(text: str) -> int | None:
    """The exit code the observation template printed (`<returncode>N</returncode>`), if any."""
    start = text.find("<returncode>", 0, 200)
    if start < 0:
        return None
    end = text.find("</returncode>", start, start + 40)
    if end < 0:
        return None
    try:
        return int(text[start + len("<returncode>") : end].strip())
    except ValueError:
        return None


def _v1_success(text: str) -> bool | None:
    if "timed out and has been killed" in text[:300]:
        return False
    return observation_success(text)


def _usage(message: dict[str, Any], extra: dict[str, Any]) -> tuple[int | None, int | None]:
    usage = message.get("usage")
    if not isinstance(usage, dict):
        response = extra.get("response")
        usage = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return None, None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    return _count(prompt), _count(completion)


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    return None


def _timestamp(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 32503680000:  # year 3000
        return float(value)
    return None


def _iso(stamp: float | None) -> str | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC).isoformat()


# --- run-level fields ----------------------------------------------------------------------------


def _problem_statement(instance_message: str | None) -> str:
    """The task out of the instance message's `<pr_description>` (the SWE-bench template), else all of it."""
    text = instance_message or ""
    start = text.find("<pr_description>")
    end = text.find("</pr_description>", start + 1) if start >= 0 else -1
    if end < 0:
        return text
    inner = text[start + len("<pr_description>") : end].removeprefix("\n").removesuffix("\n")
    inner = inner.removeprefix("Consider the following PR description:\n")
    return inner if inner.strip() else text


def _model(info: dict[str, Any]) -> str:
    config = info.get("config")
    model = config.get("model") if isinstance(config, dict) else None
    name = model.get("model_name") if isinstance(model, dict) else None
    return name.strip() if isinstance(name, str) else ""


def _metadata(value: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if isinstance(value.get("trajectory_format"), str):
        metadata["trajectory_format"] = value["trajectory_format"]
    for key in ("mini_version", "model_stats", "config"):
        if info.get(key) is not None:
            metadata[key] = info[key]
    return metadata
