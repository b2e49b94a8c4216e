"""Turning parsed runs into rows: one batch, one transaction, every trajectory whole or absent.

PostgreSQL takes the rows through COPY (the fast path); other databases through bulk_create.
Both write the same values.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from core.models import Project
from trajectories.formats.base import ParsedRun, RawRecord, RecordError, RunStep
from trajectories.formats.canonical import content_sha256, run_to_dict, sha256_hex, spans
from trajectories.models import Goal, SourceFile, Step, SweTask, Trajectory, TrajectoryStatus


@dataclass(slots=True)
class PreparedRun:
    record: RawRecord
    run: ParsedRun
    content_sha256: str
    payload_sha256: str
    spans: list[tuple[int, int]]
    times: list[tuple[datetime | None, datetime | None]]


def _parse_time(value: str | None, pointer: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise RecordError(f"not an ISO 8601 date-time: {value!r}", pointer=pointer) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def prepare(record: RawRecord, run: ParsedRun) -> PreparedRun:
    """Hash and locate a parsed run. Raises RecordError for values the database cannot take."""
    times = []
    for i, step in enumerate(run.steps):
        times.append(
            (
                _parse_time(step.started_at, f"/steps/{i}/timing/started_at"),
                _parse_time(step.ended_at, f"/steps/{i}/timing/ended_at"),
            )
        )
    return PreparedRun(
        record=record,
        run=run,
        content_sha256=content_sha256(run_to_dict(run)),
        payload_sha256=sha256_hex(record.raw),
        spans=spans(run),
        times=times,
    )


def _clean_text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; it is stored as U+FFFD (the payload keeps the original)."""
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd")


def _scrub_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_scrub_nul(v) for v in value]
    if isinstance(value, dict):
        return {_scrub_nul(k): _scrub_nul(v) for k, v in value.items()}
    return value


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    data = orjson.dumps(value)
    if b"\\u0000" in data:
        data = orjson.dumps(_scrub_nul(value))
    return data.decode()


@dataclass(slots=True)
class BatchResult:
    trajectory_ids: list[int]
    steps: int
    duplicates: int
    unknown_tool_calls: int


class BatchWriter:
    """Writes prepared runs of one project; goals, tasks and tools are resolved per batch."""

    def __init__(self, *, project: Project, source_file: SourceFile | None, importer_name: str, importer_version: str, tools: dict[str, int] | None) -> None:
        self.project = project
        self.source_file = source_file
        self.importer_name = importer_name
        self.importer_version = importer_version
        self.tools = tools  # name → Tool id of the active frozen registry; None when there is none
        self.use_copy = connection.vendor == "postgresql"

    def write(self, batch: list[PreparedRun]) -> BatchResult:
        with transaction.atomic():
            fresh, duplicates = self._drop_duplicates(batch)
            if not fresh:
                return BatchResult([], 0, duplicates, 0)
            goal_ids = self._goal_ids(fresh)
            task_ids = self._task_ids(fresh)
            if self.use_copy:
                ids, steps, unknown = self._copy(fresh, goal_ids, task_ids)
            else:
                ids, steps, unknown = self._bulk_create(fresh, goal_ids, task_ids)
        return BatchResult(ids, steps, duplicates, unknown)

    def _drop_duplicates(self, batch: list[PreparedRun]) -> tuple[list[PreparedRun], int]:
        hashes = {p.content_sha256 for p in batch}
        existing = set(
            Trajectory.objects.filter(project=self.project, content_sha256__in=hashes).values_list("content_sha256", flat=True)
        )
        fresh, seen = [], set(existing)
        for prepared in batch:
            if prepared.content_sha256 in seen:
                continue
            seen.add(prepared.content_sha256)
            fresh.append(prepared)
        return fresh, len(batch) - len(fresh)

    def _goal_ids(self, runs: list[PreparedRun]) -> list[int | None]:
        by_external: dict[str, PreparedRun] = {}
        by_prompt: dict[str, PreparedRun] = {}
        keys: list[tuple[str, str]] = []
        for p in runs:
            external = (p.run.goal or {}).get("external_id") or ""
            if external:
                by_external.setdefault(external, p)
                keys.append(("e", external))
            elif p.run.goal_text:
                digest = sha256_hex(p.run.goal_text.encode("utf-8", "surrogatepass"))
                by_prompt.setdefault(digest, p)
                keys.append(("p", digest))
            else:
                keys.append(("", ""))
        found: dict[tuple[str, str], int] = {}
        for goal_id, external in Goal.objects.filter(project=self.project, external_id__in=list(by_external)).values_list("id", "external_id"):
            found[("e", external)] = goal_id
        for goal_id, digest in (
            Goal.objects.filter(project=self.project, prompt_sha256__in=list(by_prompt)).order_by("id").values_list("id", "prompt_sha256")
        ):
            found.setdefault(("p", digest), goal_id)
        missing = [(("e", k), p) for k, p in by_external.items() if ("e", k) not in found]
        missing += [(("p", k), p) for k, p in by_prompt.items() if ("p", k) not in found]
        if missing:
            goals = [
                Goal(
                    project=self.project,
                    external_id=key[1] if key[0] == "e" else "",
                    prompt=_clean_text(p.run.goal_text) or "",
                    prompt_sha256=sha256_hex(p.run.goal_text.encode("utf-8", "surrogatepass")),
                    band=(p.run.goal or {}).get("band", ""),
                    tags=(p.run.goal or {}).get("tags", []),
                    expected_actions=(p.run.goal or {}).get("expected_actions"),
                    expected_outputs=(p.run.goal or {}).get("expected_outputs"),
                )
                for key, p in missing
            ]
            created = Goal.objects.bulk_create(goals)
            for (key, _), goal in zip(missing, created, strict=True):
                found[key] = goal.pk
        return [found.get(key) if key[0] else None for key in keys]

    def _task_ids(self, runs: list[PreparedRun]) -> list[int | None]:
        wanted = {p.run.task["instance_id"] for p in runs if p.run.task}
        if not wanted:
            return [None] * len(runs)
        found = dict(SweTask.objects.filter(project=self.project, instance_id__in=wanted).values_list("instance_id", "id"))
        return [found.get(p.run.task["instance_id"]) if p.run.task else None for p in runs]

    def _tool_of(self, step: RunStep) -> tuple[int | None, bool | None]:
        if step.kind != "tool_call" or self.tools is None:
            return None, None
        tool_id = self.tools.get(step.tool_name)
        return tool_id, tool_id is not None

    def _trajectory_values(self, p: PreparedRun, goal_id: int | None, task_id: int | None, unknown: int) -> dict[str, Any]:
        run = p.run
        reward = run.outcome.get("reward") if isinstance(run.outcome, dict) else None
        return {
            "project_id": self.project.pk,
            "goal_id": goal_id,
            "swe_task_id": task_id,
            "source_file_id": self.source_file.pk if self.source_file else None,
            "source_pointer": p.record.where[:100],
            "source_format": self.importer_name,
            "importer_version": self.importer_version,
            "model_name": run.model[:200],
            "scaffold": run.scaffold[:100],
            "rollout_id": run.rollout_id[:200],
            "trial": run.trial,
            "goal_text": _clean_text(run.goal_text) or "",
            "content_sha256": p.content_sha256,
            "payload": zlib.compress(p.record.raw, 1),
            "payload_sha256": p.payload_sha256,
            "final_answer": _clean_text(run.final_answer) or "",
            "outcome_reward": float(reward) if isinstance(reward, int | float) and not isinstance(reward, bool) else None,
            "outcome": run.outcome,
            "metadata": run.metadata,
            "status": TrajectoryStatus.IMPORTED,
            "step_count": len(run.steps),
            "unknown_tool_count": unknown,
        }

    def _step_values(self, p: PreparedRun, i: int, step: RunStep) -> dict[str, Any]:
        tool_id, known = self._tool_of(step)
        started, ended = p.times[i]
        start, end = p.spans[i]
        return {
            "index": i,
            "kind": step.kind,
            "turn_id": step.turn_id[:100],
            "state": step.state,
            "plan": _clean_text(step.plan),
            "tool_name": step.tool_name[:200],
            "tool_call_id": step.tool_call_id[:200],
            "tool_id": tool_id,
            "tool_known": known,
            "arguments": step.arguments,
            "arguments_raw": _clean_text(step.arguments_raw),
            "arguments_error": step.arguments_error[:300],
            "observation": _clean_text(step.observation),
            "reflection": _clean_text(step.reflection),
            "success_flag": step.success_flag,
            "started_at": started,
            "ended_at": ended,
            "latency_ms": step.latency_ms,
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
            "cost_usd": step.cost_usd,
            "char_start": start,
            "char_end": end,
        }

    def _unknown(self, run: ParsedRun) -> int:
        if self.tools is None:
            return 0
        return sum(1 for s in run.steps if s.kind == "tool_call" and s.tool_name not in self.tools)

    def _bulk_create(self, runs: list[PreparedRun], goal_ids: list[int | None], task_ids: list[int | None]) -> tuple[list[int], int, int]:
        trajectories = []
        unknown_total = 0
        for p, goal_id, task_id in zip(runs, goal_ids, task_ids, strict=True):
            unknown = self._unknown(p.run)
            unknown_total += unknown
            values = self._trajectory_values(p, goal_id, task_id, unknown)
            values["metadata"] = _scrub_nul(values["metadata"])
            trajectories.append(Trajectory(**values))
        Trajectory.objects.bulk_create(trajectories, batch_size=500)
        steps = []
        for p, trajectory in zip(runs, trajectories, strict=True):
            for i, step in enumerate(p.run.steps):
                values = self._step_values(p, i, step)
                values["state"] = _scrub_nul(values["state"])
                values["arguments"] = _scrub_nul(values["arguments"])
                steps.append(Step(trajectory_id=trajectory.pk, **values))
        Step.objects.bulk_create(steps, batch_size=1000)
        return [t.pk for t in trajectories], len(steps), unknown_total

    def _copy(self, runs: list[PreparedRun], goal_ids: list[int | None], task_ids: list[int | None]) -> tuple[list[int], int, int]:
        now = timezone.now()
        with connection.cursor() as wrapper:
            cursor = wrapper.cursor
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [Trajectory._meta.db_table, len(runs)],
            )
            ids = [row[0] for row in cursor.fetchall()]
            unknown_total = 0
            with cursor.copy(f"COPY {Trajectory._meta.db_table} ({TRAJECTORY_COLUMNS}) FROM STDIN") as copy:
                for p, trajectory_id, goal_id, task_id in zip(runs, ids, goal_ids, task_ids, strict=True):
                    unknown = self._unknown(p.run)
                    unknown_total += unknown
                    v = self._trajectory_values(p, goal_id, task_id, unknown)
                    copy.write_row(
                        (
                            trajectory_id,
                            *(
                                _json_text(v[c]) if c in ("outcome", "metadata") else v[c]
                                for c in TRAJECTORY_FIELDS
                            ),
                            now,
                        )
                    )
            count = 0
            with cursor.copy(f"COPY {Step._meta.db_table} ({STEP_COLUMNS}) FROM STDIN") as copy:
                for p, trajectory_id in zip(runs, ids, strict=True):
                    for i, step in enumerate(p.run.steps):
                        v = self._step_values(p, i, step)
                        v["state"] = _json_text(v["state"])
                        v["arguments"] = _json_text(v["arguments"])
                        copy.write_row((trajectory_id, *(v[c] for c in STEP_FIELDS)))
                        count += 1
        return ids, count, unknown_total


TRAJECTORY_FIELDS = (
    "project_id", "goal_id", "swe_task_id", "source_file_id", "source_pointer", "source_format",
    "importer_version", "model_name", "scaffold", "rollout_id", "trial", "goal_text", "content_sha256",
    "payload", "payload_sha256", "final_answer", "outcome_reward", "outcome", "metadata", "status",
    "step_count", "unknown_tool_count",
)
TRAJECTORY_COLUMNS = ", ".join(("id", *TRAJECTORY_FIELDS, "created_at"))
STEP_FIELDS = (
    "index", "kind", "turn_id", "state", "plan", "tool_name", "tool_call_id", "tool_id", "tool_known",
    "arguments", "arguments_raw", "arguments_error", "observation", "reflection", "success_flag",
    "started_at", "ended_at", "latency_ms", "prompt_tokens", "completion_tokens", "cost_usd",
    "char_start", "char_end",
)
STEP_COLUMNS = ", ".join(("trajectory_id", *(f'"{c}"' for c in STEP_FIELDS)))
