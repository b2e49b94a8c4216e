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
checked as JSON but not built, and events are read into Structs (openhands_events). Such a reading
gives the fields the segmenter reads exactly as reading the whole record does, so the run (or the
located error) is the same either way.
"""

from __future__ import annotations

import codecs
import functools
from collections.abc import Iterator
from types import ModuleType
from typing import IO, Any

from trajectories.formats.base import ParsedRun, RawRecord, RecordError
from trajectories.formats.reading import iter_document, iter_jsonl, loads_located, sniff_container


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
                    return _run_of(read)
                except _events().Partial:
                    pass  # read again, whole
        value = record.value if record.value is not None else _read_whole(record)
        return _run_of(value)


@functools.cache
def _events() -> ModuleType:
    """The events' Structs, their decoders and the segmenter (openhands_events), imported where OpenHands
    records are first read: msgspec's 5 MB stay out of the processes that never read one."""
    from trajectories.formats import openhands_events

    return openhands_events


def _read(raw: bytes) -> Any:
    """The record as far as the segmenter reads it (openhands_events.READER), or None where it is to be read
    whole: it is not of those types, or not valid JSON (reading it whole says where and why). The fields not
    read are checked as JSON except for the UTF-8 of their strings, which is checked here first."""
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    events = _events()
    try:
        return events.READER.decode(raw)
    except (events.DecodeError, RecursionError):
        return None


def _read_whole(record: RawRecord) -> Any:
    """The whole record's JSON, read as `_read` reads its part (so an integer beyond 64 bits is one either way);
    where that fails, loads_located says where and why."""
    events = _events()
    try:
        return events.WHOLE.decode(record.raw)
    except (events.DecodeError, RecursionError):
        return loads_located(record.raw, record.where, record.line)


def _run_of(value: Any) -> ParsedRun:
    if isinstance(value, list):
        return _export_run(value, "")
    if not isinstance(value, dict):
        raise RecordError(f"a record must be a JSON list of events or an object, not {type(value).__name__}")
    if "history" in value:
        return _output_run(value)
    if isinstance(value.get("trajectory"), list):
        return _export_run(value["trajectory"], "/trajectory")
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


def _export_run(events: list[Any], pointer: str) -> ParsedRun:
    run = _events().Segmenter()
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


def _output_run(value: dict[str, Any]) -> ParsedRun:
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

    run = _events().Segmenter()
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
