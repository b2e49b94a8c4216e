"""Consensus of a trajectory's submitted labels, per step and field and on the verdict.

`trajectory_consensus_compute` is idempotent: it rebuilds every non-adjudicated Consensus row
from the (immutable) submitted labels, opens an Escalation once per unsettled field (never
twice, whatever happened to the first), keeps adjudicated values, and moves the trajectory to
`escalated` or `audited`. Adjudicated values feed the fields that depend on them (a corrected
value is only settled for an argument judged invalid; the right tool only for a wrong one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Count

from annotation.models import Assignment, AssignmentStatus, StepLabel, TrajectoryLabel
from audit import consensus as rules_
from audit.consensus import canonical
from audit.models import (
    Consensus,
    ConsensusMethod,
    Escalation,
    EscalationSource,
    EscalationStatus,
    Review,
)
from audit.rules import Rules, rules_for
from core.models import Membership, Project, Role
from core.services import audit_record
from trajectories.models import Step, StepKind, Trajectory, TrajectoryStatus

UNSURE = "unsure"
VERDICT_FIELDS = ("goal_completed", "overall_success", "efficiency", "error_handling", "first_failing_step")
NO_FAILING_STEP = "none"


@dataclass(slots=True)
class ConsensusReport:
    trajectory_id: int
    project_id: int
    labels: int = 0
    settled: int = 0
    escalated: int = 0
    new_escalations: int = 0
    waiting: str = ""
    status: str = ""
    reviewed: bool = False
    fields: dict[str, int] = field(default_factory=dict)


# --- votes --------------------------------------------------------------------------------------


def step_label_vote(label: StepLabel | None, key: str) -> Any:
    """One annotator's value for a step field key (None: no value)."""
    if label is None:
        return None
    kind, _, name = key.partition(":")
    if kind == "argument":
        return label.argument_verdicts.get(name) or None
    if kind == "corrected":
        return label.corrected_arguments.get(name) if name in label.corrected_arguments else None
    if kind == "rubric":
        return label.rubric.get(name)
    if key == "failure_modes":
        return list(label.failure_modes) or None
    if key == "process_reward":
        return label.process_reward
    if key == "correct_tool":
        return (label.correct_tool or None) if label.tool_verdict == "wrong" else None
    if key in ("tool_verdict", "env_feedback"):
        return getattr(label, key) or None
    raise KeyError(key)


def verdict_vote(label: TrajectoryLabel | None, key: str, step_index: dict[int, int]) -> Any:
    if label is None:
        return None
    if key == "first_failing_step":
        if label.first_failing_step_id is None:
            return NO_FAILING_STEP
        return step_index.get(label.first_failing_step_id)
    return getattr(label, key)


def _step_keys(step: Step, labels: list[StepLabel | None], axes: list[str]) -> list[str]:
    keys: list[str] = []
    if step.kind == StepKind.TOOL_CALL:
        arguments = step.arguments if isinstance(step.arguments, dict) else {}
        keys += [f"argument:{name}" for name in arguments]
        keys += ["tool_verdict", "env_feedback"]
    keys += ["failure_modes", *(f"rubric:{axis}" for axis in axes), "process_reward"]
    extra = {"env_feedback", "tool_verdict"} - set(keys)  # given on a respond step all the same
    keys += sorted(k for k in extra if any(step_label_vote(label, k) is not None for label in labels))
    return keys


def decide(key: str, votes: list[rules_.Vote], *, rules: Rules, step: Step | None) -> rules_.Outcome:
    """The rule of AGREEMENT.md §5 that settles (or escalates) this field."""
    critical = step is not None and step.tool_name in rules.critical_tools
    kind, _, name = key.partition(":")
    if kind == "argument":
        return rules_.exact(votes, abstain=[UNSURE], critical=critical)
    if kind == "rubric":
        return rules_.ordinal(votes, critical=name in rules.critical_axes)
    if key in ("efficiency", "error_handling"):
        return rules_.ordinal(votes)
    if key == "failure_modes":
        return rules_.tags(votes, high_severity=rules.high_severity_tags)
    if key == "env_feedback":
        return rules_.exact(votes, critical=critical)
    return rules_.exact(votes)


@dataclass(slots=True)
class FieldState:
    step: Step | None
    key: str
    votes: list[rules_.Vote]
    outcome: rules_.Outcome


def field_states(
    *,
    trajectory: Trajectory,
    assignments: list[Assignment],
    rules: Rules,
    adjudicated: dict[tuple[int | None, str], Any],
) -> Iterator[FieldState]:
    """Every field of the trajectory with its votes and outcome (adjudicated values win)."""
    project = trajectory.project
    axes = [str(a.get("key")) for a in project.rubric_axes if isinstance(a, dict)]
    ids = [a.pk for a in assignments]
    labels: dict[tuple[int, int], StepLabel] = {
        (label.assignment_id, label.step_id): label for label in StepLabel.objects.filter(assignment_id__in=ids)
    }
    steps = list(
        Step.objects.filter(trajectory=trajectory)
        .only("id", "index", "kind", "tool_name", "arguments")
        .order_by("index")
    )
    for step in steps:
        step_labels = [labels.get((a, step.pk)) for a in ids]
        settled: dict[str, Any] = {}
        for key in _step_keys(step, step_labels, axes):
            yield from _field(step, key, step_labels, rules, adjudicated, settled)
        for key in list(settled):
            if key.startswith("argument:") and settled[key] == "invalid":
                name = key.partition(":")[2]
                corrected = f"corrected:{name}"
                if any(step_label_vote(label, corrected) is not None for label in step_labels):
                    yield from _field(step, corrected, step_labels, rules, adjudicated, settled)
        if settled.get("tool_verdict") == "wrong" and any(
            step_label_vote(label, "correct_tool") is not None for label in step_labels
        ):
            yield from _field(step, "correct_tool", step_labels, rules, adjudicated, settled)
    index = {s.pk: s.index for s in steps}
    verdicts = {v.assignment_id: v for v in TrajectoryLabel.objects.filter(assignment_id__in=ids)}
    for key in VERDICT_FIELDS:
        votes = [(v.pk, verdict_vote(v, key, index)) for a in ids if (v := verdicts.get(a)) is not None]
        if (None, key) in adjudicated:
            outcome = rules_.Outcome(True, adjudicated[(None, key)], reason="adjudicated")
        else:
            outcome = decide(key, votes, rules=rules, step=None)
        yield FieldState(None, key, votes, outcome)


def _field(
    step: Step,
    key: str,
    step_labels: list[StepLabel | None],
    rules: Rules,
    adjudicated: dict[tuple[int | None, str], Any],
    settled: dict[str, Any],
) -> Iterator[FieldState]:
    votes = [(label.pk, step_label_vote(label, key)) for label in step_labels if label is not None]
    if (step.pk, key) in adjudicated:
        outcome = rules_.Outcome(True, adjudicated[(step.pk, key)], reason="adjudicated")
    else:
        outcome = decide(key, votes, rules=rules, step=step)
    if outcome.settled:
        settled[key] = outcome.value
    yield FieldState(step, key, votes, outcome)


# --- writing ------------------------------------------------------------------------------------


def _method(outcome: rules_.Outcome) -> str:
    if outcome.reason == "adjudicated":
        return ConsensusMethod.ADJUDICATED
    held, _, total = outcome.agreement.partition("/")
    if total == "1":
        return ConsensusMethod.SINGLE
    return ConsensusMethod.UNANIMOUS if held == total else ConsensusMethod.MAJORITY


class Router:
    """Hands new escalations to the project's QA leads: least loaded first, or in turn."""

    def __init__(self, project: Project, rules: Rules) -> None:
        self.leads = list(
            Membership.objects.filter(project=project, role=Role.QA_LEAD, user__is_active=True)
            .order_by("user_id")
            .values_list("user_id", flat=True)
        )
        self.routing = rules.routing
        self.load = dict(
            Escalation.objects.filter(project=project, status=EscalationStatus.OPEN, assigned_to__in=self.leads)
            .values_list("assigned_to")
            .annotate(n=Count("id"))
            .values_list("assigned_to", "n")
        )
        last = (
            Escalation.objects.filter(project=project, assigned_to__in=self.leads)
            .order_by("-id")
            .values_list("assigned_to", flat=True)
            .first()
        )
        self.turn = self.leads.index(last) + 1 if last in self.leads else 0

    def next(self) -> int | None:
        if not self.leads:
            return None
        if self.routing == "round_robin":
            lead = self.leads[self.turn % len(self.leads)]
            self.turn += 1
        else:
            lead = min(self.leads, key=lambda u: (self.load.get(u, 0), u))
        self.load[lead] = self.load.get(lead, 0) + 1
        return lead


def submitted_label_ids(*, trajectory: Trajectory, step_id: int | None) -> list[int]:
    """The submitted labels of a step (or the verdicts, for step None), in the order they are shown."""
    assignments = Assignment.objects.filter(
        trajectory=trajectory, status=AssignmentStatus.SUBMITTED, is_gold=False
    ).order_by("submitted_at", "id")
    ids = list(assignments.values_list("id", flat=True))
    if step_id is None:
        by_assignment = dict(TrajectoryLabel.objects.filter(assignment_id__in=ids).values_list("assignment_id", "id"))
    else:
        by_assignment = dict(
            StepLabel.objects.filter(assignment_id__in=ids, step_id=step_id).values_list("assignment_id", "id")
        )
    return [by_assignment[a] for a in ids if a in by_assignment]


def review_sampled(trajectory: Trajectory, rate: float) -> bool:
    """Deterministic sample of `rate` of the trajectories (by content hash): reruns pick the same ones."""
    digest = hashlib.sha256(f"review:{trajectory.content_sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


@transaction.atomic
def trajectory_consensus_compute(*, trajectory_id: int) -> ConsensusReport:
    """Consensus and escalations for one trajectory once all its annotators submitted."""
    trajectory = Trajectory.objects.select_for_update().select_related("project").get(pk=trajectory_id)
    project = trajectory.project
    report = ConsensusReport(trajectory_id=trajectory.pk, project_id=project.pk)
    assignments = list(
        Assignment.objects.filter(trajectory=trajectory, status=AssignmentStatus.SUBMITTED, is_gold=False).order_by(
            "submitted_at", "id"
        )
    )
    report.labels = len(assignments)
    if len(assignments) < project.overlap:
        report.waiting = f"{len(assignments)} of {project.overlap} annotators submitted"
        report.status = trajectory.status
        return report
    rules = rules_for(project)
    existing = list(Consensus.objects.filter(trajectory=trajectory))
    adjudicated = {(c.step_id, c.field): c.value for c in existing if c.method == ConsensusMethod.ADJUDICATED}
    previous = {
        (c.step_id, c.field): (canonical(c.value), c.method)
        for c in existing
        if c.method != ConsensusMethod.ADJUDICATED
    }
    escalated: dict[tuple[int | None, str], str] = {
        (step_id, key): status
        for step_id, key, status in Escalation.objects.filter(trajectory=trajectory).values_list(
            "step_id", "field", "status"
        )
    }
    Consensus.objects.filter(trajectory=trajectory).exclude(method=ConsensusMethod.ADJUDICATED).delete()
    rows: list[Consensus] = []
    new: list[Escalation] = []
    router: Router | None = None
    open_left = 0
    for state in field_states(trajectory=trajectory, assignments=assignments, rules=rules, adjudicated=adjudicated):
        step_id = state.step.pk if state.step else None
        outcome = state.outcome
        report.fields[state.key.partition(":")[0]] = report.fields.get(state.key.partition(":")[0], 0) + 1
        if outcome.settled:
            report.settled += 1
            if outcome.reason == "adjudicated":
                continue
            rows.append(
                Consensus(
                    trajectory=trajectory,
                    step_id=step_id,
                    field=state.key,
                    value=outcome.value,
                    method=_method(outcome),
                    agreement=outcome.agreement,
                    source_labels=list(outcome.source_labels),
                    outliers=list(outcome.outliers),
                )
            )
            continue
        report.escalated += 1
        status = escalated.get((step_id, state.key))
        if status == EscalationStatus.OPEN:
            open_left += 1
        if status is not None:
            continue
        router = router or Router(project, rules)
        new.append(
            Escalation(
                project=project,
                trajectory=trajectory,
                step_id=step_id,
                field=state.key,
                source=EscalationSource.CONSENSUS,
                reason=_reason(outcome),
                tool_name=state.step.tool_name if state.step else "",
                label_ids=[label for label, _ in state.votes],
                assigned_to_id=router.next(),
            )
        )
    Consensus.objects.bulk_create(rows, batch_size=1000)
    Escalation.objects.bulk_create(new, batch_size=1000)
    report.new_escalations = len(new)
    open_left += len(new)
    open_left += Escalation.objects.filter(
        trajectory=trajectory, status=EscalationStatus.OPEN, source=EscalationSource.REVIEW
    ).count()
    before = trajectory.status
    trajectory.status = TrajectoryStatus.ESCALATED if open_left else TrajectoryStatus.AUDITED
    if trajectory.status != before:
        trajectory.save(update_fields=["status"])
    if (
        trajectory.status == TrajectoryStatus.AUDITED
        and not Escalation.objects.filter(trajectory=trajectory).exists()
        and review_sampled(trajectory, project.review_rate)
    ):
        _, created = Review.objects.get_or_create(trajectory=trajectory, defaults={"project": project})
        report.reviewed = created
    report.status = trajectory.status
    changed = previous != {(c.step_id, c.field): (canonical(c.value), c.method) for c in rows}
    if changed or new or trajectory.status != before:
        audit_record(
            actor=None,
            verb="consensus.compute",
            target=trajectory,
            project=project,
            before={"status": before},
            after={
                "status": trajectory.status,
                "settled": report.settled,
                "escalated": report.escalated,
                "new_escalations": report.new_escalations,
                "review": report.reviewed,
            },
        )
    return report


def _reason(outcome: rules_.Outcome) -> str:
    tags = outcome.details.get("tags")
    return f"{outcome.reason}: {', '.join(tags)}" if tags else outcome.reason
