"""Three annotators labelling the same trajectories through the real annotation services."""

from __future__ import annotations

from typing import Any

from annotation.models import Assignment, StepLabel, TrajectoryLabel
from annotation.services import assignment_claim_next, assignment_submit, step_label_save, trajectory_label_save
from core.models import Project, Role
from core.services import membership_set
from tests.conftest import make_user

VERDICT = {"goal_completed": True, "overall_success": True, "efficiency": 4, "error_handling": 4}


def team(project: Project, pm, count: int = 3, prefix: str = "annotator") -> list:
    users = [make_user(f"{prefix}{i}") for i in range(count)]
    for user in users:
        membership_set(actor=pm, project=project, user=user, role=Role.ANNOTATOR)
    return users


def step_values(step, *, axes: list[str], **over: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"failure_modes": ["none"], "process_reward": 1, "rubric": {a: 4 for a in axes}}
    if step.kind == "tool_call":
        values |= {
            "argument_verdicts": {name: "valid" for name in step.arguments},
            "tool_verdict": "right",
            "env_feedback": "success",
        }
    for key, value in over.items():
        if key == "rubric":
            values["rubric"] = values["rubric"] | value
        else:
            values[key] = value
    return values


def label_and_submit(
    assignment: Assignment,
    annotator,
    *,
    steps: dict[int, dict[str, Any]] | None = None,
    verdict: dict[str, Any] | None = None,
) -> Assignment:
    """Label every step (defaults: all fine), with per-step-index overrides, then submit."""
    project = assignment.trajectory.project
    axes = [a["key"] for a in project.rubric_axes]
    for step in assignment.trajectory.steps.order_by("index"):
        values = step_values(step, axes=axes, **(steps or {}).get(step.index, {}))
        current = StepLabel.objects.filter(assignment=assignment, step=step).values_list("version", flat=True).first()
        step_label_save(annotator=annotator, assignment=assignment, step=step, values=values, base_version=current or 0)
    current = TrajectoryLabel.objects.filter(assignment=assignment).values_list("version", flat=True).first()
    trajectory_label_save(
        annotator=annotator, assignment=assignment, values=VERDICT | (verdict or {}), base_version=current or 0
    )
    return assignment_submit(annotator=annotator, assignment=assignment)


def claim(project: Project, annotator, trajectory) -> Assignment:
    assignment = assignment_claim_next(annotator=annotator, project=project)
    assert assignment.trajectory_id == trajectory.pk, "the claim order is by id"
    return assignment
