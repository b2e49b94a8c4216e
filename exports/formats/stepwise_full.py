"""Stepwise JSONL, everything: the run in the canonical format (what `trajectories.formats.stepwise` reads),
its provenance, every submitted label (annotators as pseudonyms), the settled values with how they were
reached, the adjudications, and the machine evidence. One row per trajectory; schema: stepwise.schema.json
(the run) with `labels`, `consensus` and `evidence` as documented here.

- `labels`: [{annotator, guideline_version, submitted_at, time_spent_ms, gold, steps: {index: {field: value}},
  verdict: {...}}], in submission order;
- `consensus`: {steps: {index: {field: {value, method, agreement}}}, verdict: {...}, adjudications: [{step,
  field, choice, value, kind, reason, lead}]};
- `evidence`: [{kind, status, verifier_version, findings: [{step, code, failure_mode, argument, pointer,
  rule, value, message}]}] — the latest run of each check kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from annotation.models import STEP_LABEL_FIELDS, Assignment, AssignmentStatus, StepLabel, TrajectoryLabel
from audit.models import Consensus, Escalation, EscalationStatus
from exports.formats.base import Source, StepRow
from trajectories.formats.canonical import FORMAT_NAME, FORMAT_VERSION
from trajectories.models import Step
from verification.models import CheckRun, Finding


def _step_dict(step: StepRow, timing: dict[str, Any] | None, usage: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "index": step.index,
        "kind": step.kind,
        "turn_id": step.turn_id,
        "state": step.state,
        "plan": step.plan,
        "tool_call": {"name": step.tool_name, "id": step.tool_call_id} if step.tool_name else None,
        "arguments": step.arguments,
        "arguments_raw": step.arguments_raw,
        "observation": step.observation,
        "reflection": step.reflection,
        "success_flag": step.success_flag,
        "timing": timing,
        "usage": usage,
    }


class StepwiseFullExporter:
    name: ClassVar[str] = "stepwise"
    label: ClassVar[str] = "Stepwise JSONL (everything)"
    version: ClassVar[str] = "1.0"
    extension: ClassVar[str] = "jsonl"

    def __init__(self, *, project: Any, options: dict[str, Any]) -> None:
        from exports.services.jobs import pseudonym

        self.project = project
        self.pseudonym = pseudonym
        self._extra: dict[int, dict[int, tuple[Any, ...]]] = {}
        self._step_index: dict[int, int] = {}
        self._labels_by: dict[int, list[dict[str, Any]]] = {}
        self._consensus_by: dict[int, dict[str, Any]] = {}
        self._evidence_by: dict[int, list[dict[str, Any]]] = {}

    def prefetch(self, ids: list[int]) -> None:
        """Everything of a chunk of trajectories in a fixed number of queries (not a few per trajectory)."""
        self._extra = {}
        self._step_index = {}
        for step_id, t, index, *rest in Step.objects.filter(trajectory_id__in=ids).values_list(
            "id",
            "trajectory_id",
            "index",
            "started_at",
            "ended_at",
            "latency_ms",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
        ):
            self._extra.setdefault(t, {})[index] = tuple(rest)
            self._step_index[step_id] = index
        self._labels_by = self._labels(ids)
        self._consensus_by = self._consensus(ids)
        self._evidence_by = self._evidence(ids)

    def rows(self, source: Source) -> Iterator[dict[str, Any]]:
        t = source.trajectory
        extra = self._extra.get(t.pk, {})
        steps = []
        for s in source.steps:
            started, ended, latency, prompt, completion, cost = extra.get(s.index, (None,) * 6)
            timing = None
            if started or ended or latency is not None:
                timing = {
                    "started_at": started.isoformat() if started else None,
                    "ended_at": ended.isoformat() if ended else None,
                    "latency_ms": latency,
                }
            usage = None
            if prompt is not None or completion is not None or cost is not None:
                usage = {"prompt_tokens": prompt, "completion_tokens": completion, "cost_usd": cost}
            steps.append(_step_dict(s, timing, usage))
        goal: dict[str, Any] = {"prompt": t.goal_text}
        if t.goal is not None:
            for key in ("external_id", "band", "tags"):
                if getattr(t.goal, key):
                    goal[key] = getattr(t.goal, key)
        yield {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "goal": goal,
            "task": {"instance_id": t.swe_task.instance_id} if t.swe_task_id and t.swe_task else None,
            "model": t.model_name,
            "scaffold": t.scaffold,
            "rollout_id": t.rollout_id,
            "trial": t.trial,
            "steps": steps,
            "final_answer": t.final_answer,
            "outcome": t.outcome,
            "metadata": t.metadata,
            "source": {
                "content_sha256": t.content_sha256,
                "payload_sha256": t.payload_sha256,
                "importer": t.source_format,
                "importer_version": t.importer_version,
                "pointer": t.source_pointer,
                "verified_reward": t.verified_reward,
            },
            "labels": self._labels_by.get(t.pk, []),
            "consensus": self._consensus_by.get(t.pk, {"steps": {}, "verdict": {}, "adjudications": []}),
            "evidence": self._evidence_by.get(t.pk, []),
        }

    def _labels(self, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        index = self._step_index
        assignments = list(
            Assignment.objects.filter(trajectory_id__in=ids, status=AssignmentStatus.SUBMITTED).order_by(
                "trajectory_id", "submitted_at", "id"
            )
        )
        steps: dict[int, dict[str, dict[str, Any]]] = {}
        for label in StepLabel.objects.filter(assignment__in=assignments).order_by("assignment_id", "step_id"):
            steps.setdefault(label.assignment_id, {})[str(index[label.step_id])] = {
                f: getattr(label, f) for f in STEP_LABEL_FIELDS
            }
        verdicts = {v.assignment_id: v for v in TrajectoryLabel.objects.filter(assignment__in=assignments)}
        out: dict[int, list[dict[str, Any]]] = {}
        for a in assignments:
            verdict = verdicts.get(a.pk)
            out.setdefault(a.trajectory_id, []).append(
                {
                    "annotator": self.pseudonym(self.project.pk, a.annotator_id),
                    "gold": a.is_gold,
                    "submitted_at": a.submitted_at.isoformat() if a.submitted_at else None,
                    "time_spent_ms": a.time_spent_ms,
                    "guideline_version": verdict.guideline_version if verdict else None,
                    "steps": dict(sorted(steps.get(a.pk, {}).items(), key=lambda kv: int(kv[0]))),
                    "verdict": None
                    if verdict is None
                    else {
                        "goal_completed": verdict.goal_completed,
                        "overall_success": verdict.overall_success,
                        "efficiency": verdict.efficiency,
                        "error_handling": verdict.error_handling,
                        "first_failing_step": index.get(verdict.first_failing_step_id or 0),
                        "comment": verdict.comment,
                    },
                }
            )
        return out

    def _consensus(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for t, index, field, value, method, agreement in (
            Consensus.objects.filter(trajectory_id__in=ids)
            .order_by("trajectory_id", "step__index", "field")
            .values_list("trajectory_id", "step__index", "field", "value", "method", "agreement")
        ):
            entry = out.setdefault(t, {"steps": {}, "verdict": {}, "adjudications": []})
            value_entry = {"value": value, "method": method, "agreement": agreement}
            if index is None:
                entry["verdict"][field] = value_entry
            else:
                entry["steps"].setdefault(str(index), {})[field] = value_entry
        for e in (
            Escalation.objects.filter(trajectory_id__in=ids, status=EscalationStatus.RESOLVED)
            .select_related("step")
            .order_by("trajectory_id", "step__index", "field", "source")
        ):
            out.setdefault(e.trajectory_id, {"steps": {}, "verdict": {}, "adjudications": []})["adjudications"].append(
                {
                    "step": e.step.index if e.step else None,
                    "field": e.field,
                    "source": e.source,
                    "reason": e.reason,
                    "choice": e.decision_source,
                    "value": e.decision,
                    "kind": e.decision_kind,
                    "explanation": e.decision_reason,
                }
            )
        return out

    def _evidence(self, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        latest: dict[tuple[int, str], CheckRun] = {}
        for run in CheckRun.objects.filter(trajectory_id__in=ids).order_by("trajectory_id", "kind", "-id"):
            latest.setdefault((run.trajectory_id, run.kind), run)
        findings: dict[int, list[dict[str, Any]]] = {}
        for f in (
            Finding.objects.filter(check_run__in=[r.pk for r in latest.values()])
            .select_related("step")
            .order_by("check_run_id", "step__index", "id")
        ):
            findings.setdefault(f.check_run_id, []).append(
                {
                    "step": f.step.index if f.step else None,
                    "code": f.code,
                    "failure_mode": f.failure_mode,
                    "argument": f.argument,
                    "pointer": f.pointer,
                    "rule": f.rule,
                    "value": f.value,
                    "message": f.message,
                }
            )
        out: dict[int, list[dict[str, Any]]] = {}
        for (t, kind), run in sorted(latest.items()):
            out.setdefault(t, []).append(
                {
                    "kind": kind,
                    "status": run.status,
                    "verifier_version": run.verifier_version,
                    "findings": findings.get(run.pk, []),
                }
            )
        return out
