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

from annotation.models import Assignment, AssignmentStatus, StepLabel, TrajectoryLabel
from audit.models import Consensus, Escalation, EscalationStatus
from exports.formats.base import Source, StepRow
from trajectories.formats.canonical import FORMAT_NAME, FORMAT_VERSION
from trajectories.models import Step
from verification.models import CheckRun, Finding

LABEL_FIELDS = (
    "argument_verdicts",
    "corrected_arguments",
    "tool_verdict",
    "correct_tool",
    "failure_modes",
    "rubric",
    "process_reward",
    "env_feedback",
    "next_action",
    "comment",
)


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

    def rows(self, source: Source) -> Iterator[dict[str, Any]]:
        t = source.trajectory
        extra = {
            index: (started, ended, latency, prompt, completion, cost)
            for index, started, ended, latency, prompt, completion, cost in Step.objects.filter(
                trajectory=t
            ).values_list(
                "index", "started_at", "ended_at", "latency_ms", "prompt_tokens", "completion_tokens", "cost_usd"
            )
        }
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
            "labels": self._labels(t.pk),
            "consensus": self._consensus(t.pk),
            "evidence": self._evidence(t.pk),
        }

    def _labels(self, trajectory_id: int) -> list[dict[str, Any]]:
        index = dict(Step.objects.filter(trajectory_id=trajectory_id).values_list("id", "index"))
        out = []
        for a in Assignment.objects.filter(trajectory_id=trajectory_id, status=AssignmentStatus.SUBMITTED).order_by(
            "submitted_at", "id"
        ):
            steps = {
                str(index[label.step_id]): {f: getattr(label, f) for f in LABEL_FIELDS}
                for label in StepLabel.objects.filter(assignment=a).order_by("step__index")
            }
            verdict = TrajectoryLabel.objects.filter(assignment=a).first()
            out.append(
                {
                    "annotator": self.pseudonym(self.project.pk, a.annotator_id),
                    "gold": a.is_gold,
                    "submitted_at": a.submitted_at.isoformat() if a.submitted_at else None,
                    "time_spent_ms": a.time_spent_ms,
                    "guideline_version": verdict.guideline_version if verdict else None,
                    "steps": steps,
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

    def _consensus(self, trajectory_id: int) -> dict[str, Any]:
        steps: dict[str, dict[str, Any]] = {}
        verdict: dict[str, Any] = {}
        for c in (
            Consensus.objects.filter(trajectory_id=trajectory_id)
            .select_related("step")
            .order_by("step__index", "field")
        ):
            entry = {"value": c.value, "method": c.method, "agreement": c.agreement}
            if c.step is None:
                verdict[c.field] = entry
            else:
                steps.setdefault(str(c.step.index), {})[c.field] = entry
        adjudications = [
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
            for e in Escalation.objects.filter(trajectory_id=trajectory_id, status=EscalationStatus.RESOLVED)
            .select_related("step")
            .order_by("step__index", "field", "source")
        ]
        return {"steps": steps, "verdict": verdict, "adjudications": adjudications}

    def _evidence(self, trajectory_id: int) -> list[dict[str, Any]]:
        latest: dict[str, CheckRun] = {}
        for run in CheckRun.objects.filter(trajectory_id=trajectory_id).order_by("kind", "-id"):
            latest.setdefault(run.kind, run)
        out = []
        for kind, run in sorted(latest.items()):
            findings = [
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
                for f in Finding.objects.filter(check_run=run).select_related("step").order_by("step__index", "id")
            ]
            out.append(
                {"kind": kind, "status": run.status, "verifier_version": run.verifier_version, "findings": findings}
            )
        return out
