"""The demo's audited work: the three demo annotators label the first trajectories of the airline project
through the annotation services — mostly agreeing, with planted disagreements — so consensus, escalations
for the QA lead, the review sample and agreement figures are there to look at. Idempotent."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from annotation.models import Assignment, AssignmentStatus
from annotation.services import NoWork, assignment_claim_next, assignment_submit, step_label_save, trajectory_label_save
from audit.services.agreement import project_agreement_compute
from audit.services.consensus import trajectory_consensus_compute
from core.models import Project
from trajectories.models import Step, Trajectory

LABELLED = 12
ANNOTATORS = ("ann1", "ann2", "ann3")


def _values(step: Step, axes: list[str], *, trajectory_no: int, annotator_no: int) -> dict[str, Any]:
    values: dict[str, Any] = {"failure_modes": ["none"], "process_reward": 1, "rubric": dict.fromkeys(axes, 4)}
    if step.kind == "tool_call":
        values |= {
            "argument_verdicts": dict.fromkeys(step.arguments or {}, "valid"),
            "tool_verdict": "right",
            "env_feedback": "success" if step.success_flag is not False else "failure",
        }
    if step.index == 0:
        if trajectory_no % 4 == 0:  # −1 / 0 / +1: three different rewards, for the QA lead
            values["process_reward"] = annotator_no - 1
        if trajectory_no % 3 == 1 and annotator_no == 2 and axes:  # an outlier the rubric rule flags
            values["rubric"] = {**values["rubric"], axes[0]: 1}
        if trajectory_no % 5 == 2 and annotator_no == 1:  # a 2–1 split on a high-severity failure mode
            values["failure_modes"] = ["wrong_tool"]
    return values


def demo_audit_seed(*, project: Project) -> dict[str, int]:
    """Label, submit and settle the first LABELLED trajectories; then compute agreement."""
    users = [User.objects.get(username=name) for name in ANNOTATORS]
    axes = [str(a.get("key")) for a in project.rubric_axes if isinstance(a, dict)]
    wanted = list(Trajectory.objects.filter(project=project).order_by("id").values_list("id", flat=True)[:LABELLED])
    settled = 0
    for number, trajectory_id in enumerate(wanted):
        for annotator_no, user in enumerate(users):
            if Assignment.objects.filter(trajectory_id=trajectory_id, annotator=user).exists():
                continue
            try:
                assignment = assignment_claim_next(annotator=user, project=project)
            except NoWork:
                return {"labelled": settled}
            if assignment.trajectory_id != trajectory_id:  # someone else's claim got there first: leave it be
                continue
            for step in Step.objects.filter(trajectory_id=trajectory_id).order_by("index"):
                values = _values(step, axes, trajectory_no=number, annotator_no=annotator_no)
                step_label_save(annotator=user, assignment=assignment, step=step, values=values, base_version=0)
            verdict = {"goal_completed": True, "overall_success": True, "efficiency": 4, "error_handling": 4}
            trajectory_label_save(annotator=user, assignment=assignment, values=verdict, base_version=0)
            assignment_submit(annotator=user, assignment=assignment)
        if Assignment.objects.filter(trajectory_id=trajectory_id, status=AssignmentStatus.SUBMITTED).count() >= 3:
            trajectory_consensus_compute(trajectory_id=trajectory_id)  # the worker does it too; it is idempotent
            settled += 1
    project_agreement_compute(project_id=project.pk)
    return {"labelled": settled}
