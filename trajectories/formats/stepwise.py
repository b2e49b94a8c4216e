"""The canonical Stepwise format (JSONL), validated against stepwise.schema.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import IO, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from trajectories.formats.base import ParsedRun, RawRecord, RecordError, RunStep
from trajectories.formats.chat import parse_arguments
from trajectories.formats.reading import iter_jsonl, loads_located, sniff_container

SCHEMA_PATH = Path(__file__).with_name("stepwise.schema.json")
# Keys a full export adds beside the run: passed on as they are (see ParsedRun.sections), for the app
# that wrote them to restore (exports registers with trajectories.hooks.register_runs_stored).
SECTIONS = ("source", "labels", "consensus", "evidence")


@cache
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _pointer(path: Any) -> str:
    return "".join(f"/{str(part).replace('~', '~0').replace('/', '~1')}" for part in path)


class StepwiseImporter:
    name = "stepwise"
    label = "Stepwise canonical JSONL"
    version = "1.0"

    def detect(self, head: bytes) -> int:
        if sniff_container(head) == "jsonl" and b'"stepwise.trajectory"' in head.split(b"\n", 1)[0]:
            return 100
        return 0

    def records(self, stream: IO[bytes]) -> Iterator[RawRecord | RecordError]:
        return iter_jsonl(stream)

    def parse(self, record: RawRecord) -> ParsedRun:
        value = loads_located(record.raw, record.where, record.line)
        error = best_match(validator().iter_errors(value))
        if error is not None:
            raise RecordError(
                f"{error.message} (schema rule: {error.validator})", pointer=_pointer(error.absolute_path)
            )
        steps = []
        for i, s in enumerate(value["steps"]):
            if s["index"] != i:
                raise RecordError(
                    f"steps must be numbered 0, 1, …; found {s['index']} at position {i}", pointer=f"/steps/{i}/index"
                )
            call = s["tool_call"] or {}
            arguments = s["arguments"]
            raw = s.get("arguments_raw")
            error_text = ""
            if arguments is None and raw is not None:
                _, _, error_text = parse_arguments(raw, f"/steps/{i}/arguments_raw")
            timing = s.get("timing") or {}
            usage = s.get("usage") or {}
            steps.append(
                RunStep(
                    kind=s["kind"],
                    turn_id=s.get("turn_id", ""),
                    state=s["state"],
                    plan=s["plan"],
                    tool_name=call.get("name", ""),
                    tool_call_id=call.get("id", ""),
                    arguments=arguments,
                    arguments_raw=raw,
                    arguments_error=error_text,
                    observation=s["observation"],
                    reflection=s["reflection"],
                    success_flag=s["success_flag"],
                    started_at=timing.get("started_at"),
                    ended_at=timing.get("ended_at"),
                    latency_ms=timing.get("latency_ms"),
                    prompt_tokens=usage.get("prompt_tokens"),
                    completion_tokens=usage.get("completion_tokens"),
                    cost_usd=usage.get("cost_usd"),
                )
            )
        goal = dict(value["goal"])
        goal_text = goal.pop("prompt")
        return ParsedRun(
            goal_text=goal_text,
            steps=steps,
            goal=goal or None,
            task=value.get("task"),
            model=value.get("model", ""),
            scaffold=value.get("scaffold", ""),
            rollout_id=value.get("rollout_id", ""),
            trial=value.get("trial"),
            final_answer=value.get("final_answer", ""),
            outcome=value.get("outcome") or {},
            metadata=value.get("metadata") or {},
            sections={key: value[key] for key in SECTIONS if key in value},
        )
