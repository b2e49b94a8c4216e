"""Reads of the audit app that depend on who asks.

QA leads and project managers see escalations of their projects; reviewers see the review
sample; an annotator sees only the settled outcome of their own submitted items, never another
annotator's labels or name. Anyone else gets Http404.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, StepLabel, TrajectoryLabel
from annotation.selectors import AssignmentLabels, assignment_labels, latest_check_runs
from audit.models import (
    AgreementRun,
    AgreementSnapshot,
    CalibrationFlag,
    Consensus,
    ConsensusMethod,
    Escalation,
    EscalationStatus,
    Review,
    ReviewStatus,
)
from audit.services.consensus import step_label_vote, verdict_vote
from audit.services.escalations import escalation_votes
from audit.services.escalations import letter as column_letter
from core.models import Membership, Project, Role
from core.selectors import UserLike, check_role
from trajectories.models import Step, Trajectory, TrajectoryStatus
from verification.models import Finding

LEAD_ROLES = frozenset({Role.QA_LEAD, Role.PROJECT_MANAGER})
REVIEWER_ROLES = frozenset({Role.REVIEWER, Role.QA_LEAD, Role.PROJECT_MANAGER})
PAGE = 50
FIELD_KINDS = {
    "argument": "Argument validity",
    "corrected": "Corrected value",
    "tool_verdict": "Tool verdict",
    "correct_tool": "Right tool",
    "env_feedback": "Environment feedback",
    "failure_modes": "Failure modes",
    "rubric": "Rubric",
    "process_reward": "Process reward",
    "goal_completed": "Goal completed",
    "overall_success": "Overall success",
    "efficiency": "Efficiency",
    "error_handling": "Error handling",
    "first_failing_step": "First failing step",
}


def field_label(key: str) -> str:
    kind, _, name = key.partition(":")
    base = FIELD_KINDS.get(kind, kind)
    return f"{base} · {name}" if name else base


def lead_project_ids(user: UserLike) -> QuerySet[Project] | None:
    """Projects whose escalations the user may see; None means every project (staff)."""
    if not isinstance(user, User):
        return Project.objects.none()
    if user.is_staff:
        return None
    return Project.objects.filter(memberships__user=user, memberships__role__in=LEAD_ROLES)


# --- the escalation queue ---------------------------------------------------------------------------


@dataclass
class QueueFilters:
    project: str = ""
    status: str = EscalationStatus.OPEN
    reason: str = ""
    field_kind: str = ""
    tool: str = ""
    band: str = ""
    model: str = ""
    older_than_hours: int | None = None
    mine: bool = False

    @classmethod
    def from_query(cls, query: Any) -> QueueFilters:
        hours = query.get("older_than", "")
        return cls(
            project=query.get("project", "")[:80],
            status=query.get("status", EscalationStatus.OPEN)
            if query.get("status") in (*EscalationStatus.values, "all")
            else EscalationStatus.OPEN,
            reason=query.get("reason", "")[:200],
            field_kind=query.get("kind", "")[:40],
            tool=query.get("tool", "")[:200],
            band=query.get("band", "")[:16],
            model=query.get("model", "")[:200],
            older_than_hours=int(hours) if hours.isdigit() and int(hours) < 100000 else None,
            mine=query.get("mine") == "1",
        )


@dataclass
class QueueRow:
    escalation: Escalation
    field_label: str
    age: timedelta


@dataclass
class QueuePage:
    rows: list[QueueRow]
    total: int
    page: int
    pages: int
    projects: list[Project]
    reasons: list[str]
    tools: list[str]
    filters: QueueFilters
    kinds: list[tuple[str, str]] = field(default_factory=lambda: list(FIELD_KINDS.items()))


def escalation_queue(*, user: UserLike, filters: QueueFilters, page: int = 1) -> QueuePage:
    """One page of the escalations the user may see, oldest first, with the filter choices."""
    allowed = lead_project_ids(user)
    projects = list((Project.objects.all() if allowed is None else allowed.distinct()).order_by("name"))
    ids = [p.pk for p in projects]
    if filters.project:
        ids = [p.pk for p in projects if p.slug == filters.project]
    base = Escalation.objects.filter(project_id__in=ids)
    qs = base
    if filters.status != "all":
        qs = qs.filter(status=filters.status)
    if filters.reason:
        qs = qs.filter(reason=filters.reason)
    if filters.field_kind:
        qs = qs.filter(Q(field=filters.field_kind) | Q(field__startswith=f"{filters.field_kind}:"))
    if filters.tool:
        qs = qs.filter(tool_name=filters.tool)
    if filters.band:
        qs = qs.filter(trajectory__goal__band=filters.band)
    if filters.model:
        qs = qs.filter(trajectory__model_name=filters.model)
    if filters.older_than_hours is not None:
        qs = qs.filter(created_at__lte=timezone.now() - timedelta(hours=filters.older_than_hours))
    if filters.mine and isinstance(user, User):
        qs = qs.filter(assigned_to=user)
    total = qs.count()
    pages = max(1, -(-total // PAGE))
    page = min(max(1, page), pages)
    now = timezone.now()
    # The page's ids first (an index scan in created_at order, stopped after one page), then their rows.
    page_ids = list(qs.order_by("created_at", "id").values_list("id", flat=True)[(page - 1) * PAGE : page * PAGE])
    fetched = {
        e.pk: e
        for e in Escalation.objects.filter(pk__in=page_ids)
        .select_related("project", "assigned_to", "step", "trajectory")
        .only(
            "id",
            "field",
            "reason",
            "status",
            "created_at",
            "tool_name",
            "source",
            "decision_kind",
            "project__name",
            "project__slug",
            "assigned_to__username",
            "step__index",
            "trajectory__rollout_id",
            "trajectory__model_name",
        )
    }
    rows = [QueueRow(e, field_label(e.field), now - e.created_at) for pk in page_ids if (e := fetched.get(pk))]
    scope = base.filter(status=EscalationStatus.OPEN).order_by()
    pairs = list(scope.values_list("reason", "tool_name").distinct()[:2000])  # the filter choices, one query
    reasons = sorted({r for r, _ in pairs})
    tools = sorted({t for _, t in pairs if t})
    return QueuePage(rows, total, page, pages, projects, reasons, tools, filters)


# --- one escalation ---------------------------------------------------------------------------------


def escalation_get_for_user(*, user: UserLike, escalation_id: int) -> Escalation:
    escalation = (
        Escalation.objects.select_related("project", "trajectory", "step", "assigned_to", "resolved_by")
        .filter(pk=escalation_id)
        .first()
    )
    if escalation is None or not isinstance(user, User):
        raise Http404("No such escalation.")
    if (
        not user.is_staff
        and not Membership.objects.filter(user=user, project_id=escalation.project_id, role__in=LEAD_ROLES).exists()
    ):
        raise Http404("No such escalation.")
    return escalation


@dataclass
class VoteColumn:
    letter: str
    label_id: int
    value: Any
    other_fields: list[tuple[str, Any]]
    annotator: str  # only once the decision is recorded
    comment: str


@dataclass
class EscalationDetail:
    escalation: Escalation
    field_label: str
    field_kind: str
    columns: list[VoteColumn]
    step: Step | None
    findings: list[Finding]
    choices: list[tuple[Any, str]]
    leads: list[User]
    next_id: int | None
    related: list[Escalation]


def _choices(escalation: Escalation) -> list[tuple[Any, str]]:
    key = escalation.field
    kind, _, _name = key.partition(":")
    project = escalation.project
    if kind == "argument":
        return [("valid", "Valid"), ("invalid", "Invalid")]
    if kind == "rubric" or key in ("efficiency", "error_handling"):
        return [(n, str(n)) for n in range(1, 6)]
    if key == "process_reward":
        return [(-1, "−1"), (0, "0"), (1, "+1")]
    if key == "env_feedback":
        return [("success", "Success"), ("partial", "Partial"), ("failure", "Failure")]
    if key == "tool_verdict":
        return [("right", "Right tool"), ("wrong", "Wrong tool")]
    if key in ("goal_completed", "overall_success"):
        return [(True, "Yes"), (False, "No")]
    if key == "failure_modes":
        tags = [(str(t.get("key")), str(t.get("label") or t.get("key"))) for t in project.failure_taxonomy]
        return [*tags, ("none", "None")]
    return []


def _label_fields(label: StepLabel | TrajectoryLabel | None, skip: str) -> list[tuple[str, Any]]:
    if label is None:
        return []
    if isinstance(label, TrajectoryLabel):
        keys = ["goal_completed", "overall_success", "efficiency", "error_handling"]
        return [(field_label(k), getattr(label, k)) for k in keys if k != skip]
    out: list[tuple[str, Any]] = []
    for name, verdict in label.argument_verdicts.items():
        if f"argument:{name}" != skip:
            out.append((field_label(f"argument:{name}"), verdict))
    for key in ("tool_verdict", "env_feedback", "failure_modes", "process_reward"):
        value = step_label_vote(label, key)
        if key != skip and value is not None:
            out.append((field_label(key), value))
    for axis, score in label.rubric.items():
        if f"rubric:{axis}" != skip:
            out.append((field_label(f"rubric:{axis}"), score))
    return out


def escalation_detail(*, escalation: Escalation) -> EscalationDetail:
    votes = escalation_votes(escalation)
    ids = [pk for _, pk, _ in votes]
    labels: dict[int, StepLabel | TrajectoryLabel]
    if escalation.step_id is None:
        labels = {v.pk: v for v in TrajectoryLabel.objects.filter(pk__in=ids).select_related("assignment__annotator")}
    else:
        labels = {v.pk: v for v in StepLabel.objects.filter(pk__in=ids).select_related("assignment__annotator")}
    decided = escalation.status == EscalationStatus.RESOLVED
    columns = []
    for letter, pk, value in votes:
        label = labels.get(pk)
        columns.append(
            VoteColumn(
                letter=letter,
                label_id=pk,
                value=value,
                other_fields=_label_fields(label, escalation.field),
                annotator=label.assignment.annotator.username if decided and label is not None else "",
                comment=label.comment if label is not None else "",
            )
        )
    findings: list[Finding] = []
    if escalation.step_id is not None:
        findings = list(
            Finding.objects.filter(
                check_run_id__in=latest_check_runs(escalation.trajectory_id), step_id=escalation.step_id
            ).order_by("id")
        )
    leads = list(
        User.objects.filter(memberships__project=escalation.project, memberships__role=Role.QA_LEAD).order_by(
            "username"
        )
    )
    open_here = Escalation.objects.filter(project=escalation.project, status=EscalationStatus.OPEN)
    next_id = (
        open_here.filter(
            Q(created_at__gt=escalation.created_at) | Q(created_at=escalation.created_at, id__gt=escalation.pk)
        )
        .order_by("created_at", "id")
        .values_list("id", flat=True)
        .first()
    )
    related = list(
        Escalation.objects.filter(trajectory_id=escalation.trajectory_id)
        .exclude(pk=escalation.pk)
        .select_related("step")
        .order_by("id")[:50]
    )
    return EscalationDetail(
        escalation=escalation,
        field_label=field_label(escalation.field),
        field_kind=escalation.field.partition(":")[0],
        columns=columns,
        step=escalation.step,
        findings=findings,
        choices=_choices(escalation),
        leads=leads,
        next_id=next_id,
        related=related,
    )


def guideline_backlog(*, project: Project) -> QuerySet[Escalation]:
    return (
        Escalation.objects.filter(project=project, status=EscalationStatus.RESOLVED, decision_kind="ambiguous")
        .select_related("step", "trajectory", "resolved_by")
        .order_by("-resolved_at")
    )


# --- reviews ---------------------------------------------------------------------------------------


def reviews_for_project(*, project: Project, status: str = ReviewStatus.PENDING) -> QuerySet[Review]:
    qs = Review.objects.filter(project=project).select_related("trajectory", "reviewer")
    if status != "all":
        qs = qs.filter(status=status)
    return qs.order_by("created_at", "id")


def review_get(*, project: Project, review_id: int) -> Review:
    review = Review.objects.filter(project=project, pk=review_id).select_related("trajectory").first()
    if review is None:
        raise Http404("No such review.")
    return review


@dataclass
class ConsensusStep:
    step: Step | None
    values: list[Consensus]


def consensus_by_step(*, trajectory_id: int) -> list[ConsensusStep]:
    """The settled values of a trajectory, step by step (the verdict last)."""
    rows = list(
        Consensus.objects.filter(trajectory_id=trajectory_id).select_related("step").order_by("step__index", "field")
    )
    groups: dict[int | None, ConsensusStep] = {}
    for row in rows:
        key = row.step.index if row.step else None
        groups.setdefault(key, ConsensusStep(row.step, [])).values.append(row)
    ordered = sorted(k for k in groups if k is not None)
    return [groups[k] for k in ordered] + ([groups[None]] if None in groups else [])


# --- an annotator's feedback -------------------------------------------------------------------------


@dataclass
class FeedbackRow:
    assignment: Assignment
    step_index: int | None
    field_label: str
    yours: Any
    settled: Any
    method: str
    explanation: str


def feedback_for_annotator(*, user: User, project: Project, limit: int = 200) -> list[FeedbackRow]:
    """Where the settled outcome of the user's own submitted items differs from their label, or a lead
    adjudicated it: their value and the outcome, never anyone else's label or name."""
    assignments = {
        a.pk: a
        for a in Assignment.objects.filter(
            annotator=user, trajectory__project=project, status=AssignmentStatus.SUBMITTED, is_gold=False
        ).select_related("trajectory")
    }
    if not assignments:
        return []
    by_trajectory = {a.trajectory_id: a for a in assignments.values()}
    labels = {
        (label.assignment_id, label.step_id): label for label in StepLabel.objects.filter(assignment_id__in=assignments)
    }
    verdicts = {v.assignment_id: v for v in TrajectoryLabel.objects.filter(assignment_id__in=assignments)}
    rows: list[FeedbackRow] = []
    settled = (
        Consensus.objects.filter(trajectory_id__in=by_trajectory)
        .select_related("step", "escalation")
        .order_by("-trajectory_id", "step__index", "field")
    )
    index_cache: dict[int, dict[int, int]] = {}
    for row in settled.iterator():
        assignment = by_trajectory[row.trajectory_id]
        if row.step_id is None:
            if row.trajectory_id not in index_cache:
                index_cache[row.trajectory_id] = dict(
                    Step.objects.filter(trajectory_id=row.trajectory_id).values_list("id", "index")
                )
            yours = verdict_vote(verdicts.get(assignment.pk), row.field, index_cache[row.trajectory_id])
        else:
            yours = step_label_vote(labels.get((assignment.pk, row.step_id)), row.field)
        if yours == row.value and row.method != ConsensusMethod.ADJUDICATED:
            continue
        explanation = ""
        if row.escalation is not None:
            explanation = row.escalation.decision_reason
        rows.append(
            FeedbackRow(
                assignment=assignment,
                step_index=row.step.index if row.step else None,
                field_label=field_label(row.field),
                yours=yours,
                settled=row.value,
                method=row.get_method_display(),
                explanation=explanation,
            )
        )
        if len(rows) >= limit:
            break
    return rows


# --- quality -----------------------------------------------------------------------------------------------


@dataclass
class QualityView:
    run: AgreementRun | None
    definition: dict[str, Any]
    headline: AgreementSnapshot | None
    project_rows: list[AgreementSnapshot]
    slices: list[AgreementSnapshot]
    annotators: list[tuple[AgreementSnapshot, AgreementSnapshot | None]]
    pair_names: list[str]
    pair_matrix: list[tuple[str, list[AgreementSnapshot | None]]]
    history: list[tuple[datetime, float | None]]
    history_slice: str
    slice_keys: list[str]
    escalation_rate: float | None
    escalations_open: int
    throughput: list[tuple[str, int]]
    flags: list[CalibrationFlag]


def latest_run(project: Project) -> AgreementRun | None:
    return AgreementRun.objects.filter(project=project).order_by("-started_at", "-id").first()


def quality_view(*, project: Project, slice_key: str = "") -> QualityView:
    run = latest_run(project)
    snaps = (
        list(
            AgreementSnapshot.objects.filter(run=run)
            .select_related("annotator", "other")
            .order_by("scope", "slice_key")
        )
        if run
        else []
    )
    headline = next(
        (s for s in snaps if s.scope == "project" and s.measure == "target" and s.coefficient.startswith("cohen")), None
    )
    project_rows = [s for s in snaps if s.scope == "project"]
    slices = [s for s in snaps if s.scope == "slice"]
    gold = {s.annotator_id: s for s in snaps if s.scope == "annotator_gold" and s.measure == "target"}
    annotators = [(s, gold.get(s.annotator_id)) for s in snaps if s.scope == "annotator" and s.measure == "target"]
    annotators.sort(key=lambda pair: pair[0].annotator.username if pair[0].annotator else "")
    pairs = [s for s in snaps if s.scope == "pair" and s.measure == "target"]
    names = sorted({u.username for s in pairs for u in (s.annotator, s.other) if u is not None})
    cell = {}
    for s in pairs:
        if s.annotator and s.other:
            cell[(s.annotator.username, s.other.username)] = s
            cell[(s.other.username, s.annotator.username)] = s
    matrix = [(a, [cell.get((a, b)) for b in names]) for a in names]
    over_time = AgreementSnapshot.objects.filter(project=project, measure="target", coefficient__startswith="cohen")
    over_time = over_time.filter(scope="slice", slice_key=slice_key) if slice_key else over_time.filter(scope="project")
    history = [(s.computed_at, s.value) for s in over_time.order_by("-computed_at")[:60]][::-1]
    audited = Consensus.objects.filter(trajectory__project=project).values("trajectory_id").distinct().count()
    escalated = Escalation.objects.filter(project=project).values("trajectory_id").distinct().count()
    since = timezone.now() - timedelta(days=13)
    per_day: dict[str, int] = {}
    for day in Assignment.objects.filter(
        trajectory__project=project, status=AssignmentStatus.SUBMITTED, submitted_at__gte=since
    ).values_list("submitted_at", flat=True):
        if day is not None:
            key = timezone.localtime(day).strftime("%m-%d")
            per_day[key] = per_day.get(key, 0) + 1
    days = [(timezone.localtime(since + timedelta(days=i)).strftime("%m-%d")) for i in range(14)]
    return QualityView(
        run=run,
        definition=run.definition if run else {},
        headline=headline,
        project_rows=project_rows,
        slices=slices,
        annotators=annotators,
        pair_names=names,
        pair_matrix=matrix,
        history=history,
        history_slice=slice_key,
        slice_keys=sorted({s.slice_key for s in slices if s.measure == "target"}),
        escalation_rate=escalated / audited if audited else None,
        escalations_open=Escalation.objects.filter(project=project, status=EscalationStatus.OPEN).count(),
        throughput=[(d, per_day.get(d, 0)) for d in days],
        flags=list(
            CalibrationFlag.objects.filter(project=project, cleared_at__isnull=True).select_related("annotator")
        ),
    )


def snapshot_rows(*, project: Project, table: str) -> tuple[list[str], list[list[Any]]]:
    """One table of the latest run as CSV rows."""
    run = latest_run(project)
    header = [
        "scope", "slice", "measure", "annotator", "other", "coefficient", "value", "reason", "n_items",
        "raw_agreement", "ac1", "ci_low", "ci_high", "computed_at",
    ]  # fmt: skip
    if run is None:
        return header, []
    scopes = {"project": ["project"], "slices": ["slice"], "annotators": ["annotator", "annotator_gold"],
              "pairs": ["pair"], "annotator_slices": ["annotator_slice"], "all": None}.get(table)  # fmt: skip
    qs = (
        AgreementSnapshot.objects.filter(run=run)
        .select_related("annotator", "other")
        .order_by("scope", "slice_key", "id")
    )
    if scopes is not None:
        qs = qs.filter(scope__in=scopes)
    rows = [
        [
            s.scope,
            s.slice_key,
            s.measure,
            s.annotator.username if s.annotator else "",
            s.other.username if s.other else "",
            s.coefficient,
            "" if s.value is None else f"{s.value:.6f}",
            s.reason,
            s.n_items,
            "" if s.raw_agreement is None else f"{s.raw_agreement:.6f}",
            "" if s.ac1 is None else f"{s.ac1:.6f}",
            "" if s.ci_low is None else f"{s.ci_low:.6f}",
            "" if s.ci_high is None else f"{s.ci_high:.6f}",
            s.computed_at.isoformat(),
        ]
        for s in qs
    ]
    return header, rows


def calibration_flags(*, project: Project, include_cleared: bool = False) -> QuerySet[CalibrationFlag]:
    qs = CalibrationFlag.objects.filter(project=project).select_related("annotator", "cleared_by")
    if not include_cleared:
        qs = qs.filter(cleared_at__isnull=True)
    return qs.order_by("-created_at")


# --- a trajectory's submitted labels, for leads ------------------------------------------------------------


@dataclass
class LetteredLabels:
    letter: str  # A, B, C … as the trajectory's escalations show them (submission order)
    annotator: str  # only once the trajectory is audited and no escalation of it is open
    labels: AssignmentLabels


@dataclass
class TrajectoryLabels:
    trajectory: Trajectory
    names_shown: bool
    columns: list[LetteredLabels]


def trajectory_labels_for_lead(*, project: Project, role: str, trajectory: Trajectory) -> TrajectoryLabels:
    """The submitted labels behind a trajectory's consensus, one column per annotator, lettered in the order the
    escalations letter them. Blind like an escalation: the names only once everything is decided (the trajectory
    is audited, nothing open). Drafts and gold (calibration) answers are not shown; QA leads and project managers
    only (PermissionDenied for anyone else in the project)."""
    check_role(role=role, allowed=LEAD_ROLES)
    if trajectory.project_id != project.pk:
        raise Http404("No such trajectory.")
    assignments = list(
        Assignment.objects.filter(trajectory=trajectory, status=AssignmentStatus.SUBMITTED, is_gold=False)
        .select_related("annotator")
        .order_by("submitted_at", "id")
    )
    decided = (
        trajectory.status == TrajectoryStatus.AUDITED
        and not Escalation.objects.filter(trajectory=trajectory, status=EscalationStatus.OPEN).exists()
    )
    columns = [
        LetteredLabels(
            letter=column_letter(i),
            annotator=a.annotator.username if decided else "",
            labels=assignment_labels(assignment=a),
        )
        for i, a in enumerate(assignments)
    ]
    return TrajectoryLabels(trajectory=trajectory, names_shown=decided, columns=columns)
