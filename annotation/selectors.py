"""Reads of the annotation app that depend on who asks.

An annotator sees only their own assignments and labels: `assignment_get_for_user` is the one way
in, and it answers Http404 for anyone else's assignment (other annotators, project managers,
outsiders alike). The step view's reads are bounded whatever the trajectory's length: light
fields of every step for the outline, heavy fields (context, observation) of the current step only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

import orjson
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db.models import Avg, Count, F, Max, OuterRef, Q, QuerySet, Subquery, TextField
from django.db.models.functions import Cast
from django.http import Http404
from django.utils import timezone

from annotation.completeness import step_missing
from annotation.models import Assignment, AssignmentStatus, GoldItem, StepLabel, TrajectoryLabel
from core.models import Membership, Project, Role
from core.selectors import UserLike, check_role, project_get_for_user
from trajectories.models import Step, StepKind, Tool, Trajectory
from trajectories.selectors.registries import active_registry_id_subquery, active_registry_tools_query
from verification.models import CheckRun, Finding, FindingCode

NONE_TAG = "none"
# Findings about one argument that suggest the annotator judge it invalid.
ARGUMENT_CODES = frozenset(
    {
        FindingCode.UNEXPECTED_PROPERTY,
        FindingCode.WRONG_TYPE,
        FindingCode.NOT_IN_ENUM,
        FindingCode.BAD_FORMAT,
        FindingCode.BAD_PATTERN,
        FindingCode.OUT_OF_RANGE,
        FindingCode.SCHEMA_VIOLATION,
        FindingCode.MISSING_REQUIRED,
        FindingCode.UNGROUNDED_VALUE,
        FindingCode.CONTRADICTS_OBSERVATION,
    }
)
TOOL_CODES = frozenset({FindingCode.UNKNOWN_TOOL})
# A step's light fields, for saving its labels (never the context or the observation).
LIGHT_STEP_FIELDS = (
    "id",
    "trajectory_id",
    "index",
    "kind",
    "turn_id",
    "tool_name",
    "tool_call_id",
    "tool_id",
    "tool_known",
    "arguments",
    "arguments_error",
    "success_flag",
    "started_at",
    "ended_at",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
)


# What the workspace never shows of a trajectory (large): left out when an assignment is loaded.
TRAJECTORY_HEAVY_FIELDS = (
    "trajectory__payload",
    "trajectory__metadata",
    "trajectory__outcome",
    "trajectory__alternatives",
    "trajectory__final_answer",
)


def assignment_get_for_user(*, user: UserLike, project: Project, assignment_id: int) -> Assignment:
    """The user's own assignment in the project; Http404 for anyone else's (whoever asks)."""
    if not isinstance(user, User):
        raise Http404("No such assignment.")
    assignment = (
        Assignment.objects.filter(pk=assignment_id, annotator=user, trajectory__project=project)
        .select_related("trajectory", "trajectory__goal")
        .defer(*TRAJECTORY_HEAVY_FIELDS)
        .first()
    )
    if assignment is None:
        raise Http404("No such assignment.")
    assignment.trajectory.project = project  # the same row (filtered above): saves a query per use
    return assignment


def assignment_get_for_user_by_slug(
    *, user: UserLike, slug: str, assignment_id: int, registry: bool = False
) -> tuple[Project, str, Assignment]:
    """The project named by `slug`, the user's role in it and their own assignment there, in one query for a
    member on their own assignment (every workspace request asks); otherwise as `project_get_for_user` and
    `assignment_get_for_user` answer, Http404 included. With `registry` the one query also names the project's
    active registry (`assignment.active_registry_id`), whose tools the step view then takes from the cache."""
    if isinstance(user, User):
        role = Membership.objects.filter(user=user, project=OuterRef("trajectory__project_id")).values("role")[:1]
        query = (
            Assignment.objects.filter(pk=assignment_id, annotator=user, trajectory__project__slug=slug)
            .select_related("trajectory", "trajectory__goal", "trajectory__project")
            .defer(*TRAJECTORY_HEAVY_FIELDS)
            .annotate(member_role=Subquery(role))
        )
        if registry:
            query = query.annotate(active_registry_id=active_registry_id_subquery(OuterRef("trajectory__project_id")))
        assignment = query.first()
        if assignment is not None and assignment.member_role is not None:
            return assignment.trajectory.project, assignment.member_role, assignment
    project, role_name = project_get_for_user(user=user, slug=slug)
    return project, role_name, assignment_get_for_user(user=user, project=project, assignment_id=assignment_id)


def assignment_is_open(assignment: Assignment) -> bool:
    return assignment.status == AssignmentStatus.ACTIVE


# --- the queue ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MyQueue:
    in_progress: list[Assignment]
    done_today: int
    submitted: int
    average_ms: float | None


def queue_for_annotator(*, user: User, project: Project, now: datetime | None = None) -> MyQueue:
    """The annotator's own work: in progress, submitted today, average time per submitted item."""
    now = now or timezone.now()
    mine = Assignment.objects.filter(annotator=user, trajectory__project=project)
    in_progress = list(
        mine.filter(status=AssignmentStatus.ACTIVE)
        .select_related("trajectory")
        .only(
            "id",
            "status",
            "lease_expires_at",
            "time_spent_ms",
            "created_at",
            "trajectory_id",
            "trajectory__id",
            "trajectory__model_name",
            "trajectory__step_count",
            "trajectory__goal_text",
        )
        .order_by("created_at")
    )
    start = timezone.make_aware(datetime.combine(timezone.localdate(now), time.min))
    stats = mine.filter(status=AssignmentStatus.SUBMITTED).aggregate(
        n=Count("id"),
        today=Count("id", filter=Q(submitted_at__gte=start, submitted_at__lt=start + timedelta(days=1))),
        average=Avg("time_spent_ms"),
    )
    return MyQueue(
        in_progress=in_progress,
        done_today=stats["today"],
        submitted=stats["n"],
        average_ms=float(stats["average"]) if stats["average"] is not None else None,
    )


@dataclass(frozen=True)
class Claim:
    username: str
    lease_expires_at: datetime | None


@dataclass
class TrajectoryProgress:
    trajectory: Trajectory
    submitted: int
    claims: list[Claim] = field(default_factory=list)
    is_gold: bool = False


def queue_progress_rows(*, project: Project) -> QuerySet[Trajectory]:
    """Every trajectory of the project with its count of submitted (non-gold) assignments, newest first."""
    return (
        Trajectory.objects.filter(project=project)
        .only("id", "project_id", "model_name", "status", "step_count", "goal_text")
        .annotate(
            submitted=Count(
                "assignments",
                filter=Q(assignments__status=AssignmentStatus.SUBMITTED, assignments__is_gold=False),
            )
        )
        .order_by("-id")
    )


def queue_progress(*, trajectories: list[Trajectory], now: datetime | None = None) -> list[TrajectoryProgress]:
    """Live claims (who holds what, until when) and gold marks for one page of trajectories."""
    now = now or timezone.now()
    ids = [t.pk for t in trajectories]
    claims: dict[int, list[Claim]] = {}
    for trajectory_id, username, expires in (
        Assignment.objects.filter(trajectory_id__in=ids, status=AssignmentStatus.ACTIVE, lease_expires_at__gt=now)
        .order_by("lease_expires_at")
        .values_list("trajectory_id", "annotator__username", "lease_expires_at")
    ):
        claims.setdefault(trajectory_id, []).append(Claim(username=username, lease_expires_at=expires))
    gold = set(GoldItem.objects.filter(trajectory_id__in=ids).values_list("trajectory_id", flat=True))
    return [
        TrajectoryProgress(
            trajectory=t,
            submitted=getattr(t, "submitted", 0),
            claims=claims.get(t.pk, []),
            is_gold=t.pk in gold,
        )
        for t in trajectories
    ]


def skipped_assignments(*, project: Project, limit: int = 50) -> list[Assignment]:
    return list(
        Assignment.objects.filter(trajectory__project=project, status=AssignmentStatus.SKIPPED)
        .select_related("annotator")
        .only("id", "trajectory_id", "skip_reason", "created_at", "annotator__username")
        .order_by("-id")[:limit]
    )


# --- the step view -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    """What accepting a finding writes as the annotator's own label."""

    argument: str = ""  # judge this argument invalid
    failure_mode: str = ""  # add this failure mode
    tool_wrong: bool = False  # judge the tool wrong

    @property
    def empty(self) -> bool:
        return not (self.argument or self.failure_mode or self.tool_wrong)


@dataclass(frozen=True)
class FindingSuggestion:
    finding: Finding
    label: str
    failure_mode_label: str
    suggestion: Suggestion
    accepted: bool


STATUS_LETTERS = {"untouched": "u", "draft": "d", "complete": "c"}


@dataclass
class OutlineItem:
    """One line of the outline, with its strings ready (the outline of a long run is rendered fast)."""

    step: Step | OutlineStep
    status: str  # untouched | draft | complete
    flagged: int  # number of machine findings on the step
    missing: list[str]
    idx: str = ""  # the step's index, as text
    number: str = ""  # the step's number as shown (index + 1)
    name: str = ""
    letter: str = ""  # the status as the outline's one-letter class (u, d, c)

    def __post_init__(self) -> None:
        self.idx = str(self.step.index)
        self.number = str(self.step.index + 1)
        self.name = "respond" if self.step.kind == StepKind.RESPOND else self.step.tool_name
        self.letter = STATUS_LETTERS[self.status]


@dataclass
class StepWorkspace:
    """The step view. `outline` holds every step's line for the full page; a step fragment (HTMX) leaves it
    empty, the page it lands on keeps its outline, and `current` (this step's line) is all it sends."""

    assignment: Assignment
    step: Step
    tool: Tool | None
    label: StepLabel | None
    current: OutlineItem
    outline: list[OutlineItem]
    findings: list[FindingSuggestion]
    tools: list[str]
    axes: list[dict[str, Any]]
    taxonomy: list[dict[str, Any]]
    arguments: list[ArgumentRow]
    axis_rows: list[AxisRow]
    previous: int | None
    next: int | None
    count: int  # steps in the trajectory
    done: int | None  # complete steps (None when the outline was not built)


@dataclass(frozen=True)
class AxisRow:
    key: str
    label: str
    anchors: list[tuple[str, str]]  # (score, description)
    score: int | None


def axis_rows(*, axes: list[dict[str, Any]], label: StepLabel | None) -> list[AxisRow]:
    rubric = label.rubric if label and isinstance(label.rubric, dict) else {}
    rows = []
    for axis in axes:
        given = axis.get("anchors")
        anchors: dict[str, Any] = given if isinstance(given, dict) else {}
        rows.append(
            AxisRow(
                key=str(axis["key"]),
                label=str(axis.get("label") or axis["key"]),
                anchors=[(n, str(anchors[n])) for n in ("1", "2", "3", "4", "5") if anchors.get(n)],
                score=rubric.get(str(axis["key"])),
            )
        )
    return rows


@dataclass(frozen=True)
class ArgumentRow:
    position: int
    name: str
    value: Any
    schema: dict[str, Any]
    required: bool
    declared: bool
    verdict: str
    corrected: Any
    has_corrected: bool
    flagged: bool


def rubric_axes(project: Project) -> list[dict[str, Any]]:
    return (
        [a for a in project.rubric_axes if isinstance(a, dict) and a.get("key")]
        if isinstance(project.rubric_axes, list)
        else []
    )


def failure_taxonomy(project: Project) -> list[dict[str, Any]]:
    return (
        [t for t in project.failure_taxonomy if isinstance(t, dict) and t.get("key")]
        if isinstance(project.failure_taxonomy, list)
        else []
    )


def label_has_values(label: StepLabel | None) -> bool:
    """Whether the annotator put anything in the label (a time-only save leaves the step untouched)."""
    if label is None:
        return False
    return bool(
        label.argument_verdicts
        or label.corrected_arguments
        or label.tool_verdict
        or label.correct_tool
        or label.failure_modes
        or label.rubric
        or label.process_reward is not None
        or label.env_feedback
        or label.next_action
        or label.comment
    )


def outline_item(*, step: Step | OutlineStep, label: StepLabel | None, axes: list[str], flagged: int) -> OutlineItem:
    missing = step_missing(step=step, label=label, axes=axes)
    status = "complete" if not missing else "draft" if label_has_values(label) else "untouched"
    return OutlineItem(step=step, status=status, flagged=flagged, missing=missing)


def latest_check_runs(trajectory_id: int) -> QuerySet[Any]:
    """The ids of the latest check run of each kind on a trajectory (a subquery)."""
    return (
        CheckRun.objects.filter(trajectory_id=trajectory_id).values("kind").annotate(latest=Max("id")).values("latest")
    )


def suggestion_for(*, finding: Finding, step: Step, taxonomy: set[str]) -> Suggestion:
    arguments = step.arguments if isinstance(step.arguments, dict) else {}
    argument = finding.argument if finding.code in ARGUMENT_CODES and finding.argument in arguments else ""
    mode = finding.failure_mode if finding.failure_mode in taxonomy else ""
    return Suggestion(argument=argument, failure_mode=mode, tool_wrong=finding.code in TOOL_CODES)


def suggestion_accepted(suggestion: Suggestion, label: StepLabel | None) -> bool:
    if label is None or suggestion.empty:
        return False
    if suggestion.argument and label.argument_verdicts.get(suggestion.argument) != "invalid":
        return False
    if suggestion.failure_mode and suggestion.failure_mode not in label.failure_modes:
        return False
    return not (suggestion.tool_wrong and label.tool_verdict != "wrong")


def suggestion_values(*, suggestion: Suggestion, label: StepLabel | None) -> dict[str, Any]:
    """The label fields accepting `suggestion` writes, merged with what the label already holds."""
    values: dict[str, Any] = {}
    if suggestion.argument:
        verdicts = dict(label.argument_verdicts) if label else {}
        verdicts[suggestion.argument] = "invalid"
        values["argument_verdicts"] = verdicts
    if suggestion.failure_mode:
        modes = [m for m in (label.failure_modes if label else []) if m != NONE_TAG]
        if suggestion.failure_mode not in modes:
            modes.append(suggestion.failure_mode)
        values["failure_modes"] = modes
    if suggestion.tool_wrong:
        values["tool_verdict"] = "wrong"
    return values


_UNKNOWN = object()
TOOLS_CACHE_SECONDS = 24 * 3600


def _registry_tools(project: Project, registry_id: Any = _UNKNOWN) -> list[Tool]:
    """The active registry's tools, by name. With the registry's id known (None: no frozen registry), from
    Django's cache: a frozen registry never changes again (a change is a new version, with a new id)."""
    if registry_id is _UNKNOWN:
        query = active_registry_tools_query(project)
    elif registry_id is None:
        return []
    else:
        key = f"annotation:registry-tools:{registry_id}"
        cached = cache.get(key)
        if cached is not None:
            return list(cached)
        query = Tool.objects.filter(registry_id=registry_id)
    tools = list(query.only("id", "registry_id", "name", "description", "parameters").order_by("name"))
    if registry_id is not _UNKNOWN:
        cache.set(key, tools, TOOLS_CACHE_SECONDS)
    return tools


@dataclass(slots=True)
class OutlineStep:
    """The few fields of a step that the outline and the completeness check read."""

    pk: int
    index: int
    kind: str
    tool_name: str
    arguments: Any


def _outline_steps(trajectory_id: int) -> list[OutlineStep]:
    """Every step's outline fields as plain values (no model instances: a 300-step run costs ~1 ms)."""
    rows = (
        Step.objects.filter(trajectory_id=trajectory_id)
        .order_by("index")
        .values_list("id", "index", "kind", "tool_name", Cast("arguments", TextField()))
    )
    return [
        OutlineStep(pk, index, kind, tool_name, orjson.loads(arguments) if arguments is not None else None)
        for pk, index, kind, tool_name, arguments in rows
    ]


def _findings_query(trajectory_id: int) -> QuerySet[Finding]:
    return (
        Finding.objects.filter(check_run_id__in=latest_check_runs(trajectory_id), step__isnull=False)
        .only("id", "step_id", "code", "failure_mode", "argument", "pointer", "rule", "value", "message", "evidence")
        .order_by("step_id", "id")
    )


def step_workspace(*, assignment: Assignment, index: int, outline: bool = True) -> StepWorkspace:
    """Everything the step view shows, in a bounded number of queries whatever the trajectory's length.

    With `outline` (the full page) every step's outline line too; without (a step fragment) only this step
    is read, with its label and its findings. Its neighbours then follow from the trajectory's step count:
    the import numbers a run's steps 0 … step_count − 1 and steps never change afterwards."""
    project = assignment.trajectory.project
    trajectory_id = assignment.trajectory_id
    axes = rubric_axes(project)
    axis_keys = [str(a["key"]) for a in axes]
    items: list[OutlineItem] = []
    if outline:
        steps = _outline_steps(trajectory_id)
        step = Step.objects.filter(trajectory_id=trajectory_id, index=index).first()
        if step is None:
            raise Http404("No such step.")
        labels = {label.step_id: label for label in StepLabel.objects.filter(assignment=assignment)}
        findings = list(_findings_query(trajectory_id))
        flags: dict[int, int] = {}
        for f in findings:
            if f.step_id is not None:
                flags[f.step_id] = flags.get(f.step_id, 0) + 1
        items = [
            outline_item(step=s, label=labels.get(s.pk), axes=axis_keys, flagged=flags.get(s.pk, 0)) for s in steps
        ]
        label = labels.get(step.pk)
        position = next(i for i, s in enumerate(steps) if s.index == index)
        previous = steps[position - 1].index if position > 0 else None
        following = steps[position + 1].index if position + 1 < len(steps) else None
        count = len(steps)
        current = items[position]
    else:
        step = Step.objects.filter(trajectory_id=trajectory_id, index=index).first()
        if step is None:
            raise Http404("No such step.")
        label = StepLabel.objects.filter(assignment=assignment, step_id=step.pk).first()
        findings = list(_findings_query(trajectory_id).filter(step_id=step.pk))
        count = assignment.trajectory.step_count
        previous = index - 1 if index > 0 else None
        following = index + 1 if index + 1 < count else None
        current = outline_item(step=step, label=label, axes=axis_keys, flagged=len(findings))
    tools = _registry_tools(project, getattr(assignment, "active_registry_id", _UNKNOWN))
    tool = next((t for t in tools if t.pk == step.tool_id), None)
    if tool is None and step.tool_id is not None:
        tool = Tool.objects.filter(pk=step.tool_id).only("id", "name", "description", "parameters").first()
    taxonomy = failure_taxonomy(project)
    code_labels = dict(FindingCode.choices)
    mode_labels = {str(t["key"]): str(t.get("label") or t["key"]) for t in taxonomy}
    here = []
    for f in findings:
        if f.step_id != step.pk:
            continue
        suggestion = suggestion_for(finding=f, step=step, taxonomy=set(mode_labels))
        here.append(
            FindingSuggestion(
                finding=f,
                label=code_labels.get(f.code, f.code),
                failure_mode_label=mode_labels.get(f.failure_mode, f.failure_mode),
                suggestion=suggestion,
                accepted=suggestion_accepted(suggestion, label),
            )
        )
    return StepWorkspace(
        assignment=assignment,
        step=step,
        tool=tool,
        label=label,
        current=current,
        outline=items,
        findings=here,
        tools=[t.name for t in tools],
        axes=axes,
        taxonomy=taxonomy,
        arguments=argument_rows(step=step, tool=tool, label=label, findings=here),
        axis_rows=axis_rows(axes=axes, label=label),
        previous=previous,
        next=following,
        count=count,
        done=sum(1 for item in items if item.status == "complete") if outline else None,
    )


def argument_rows(
    *, step: Step, tool: Tool | None, label: StepLabel | None, findings: list[FindingSuggestion]
) -> list[ArgumentRow]:
    """Each argument with its value, its parameter's schema and the annotator's verdict."""
    if step.kind != StepKind.TOOL_CALL or not isinstance(step.arguments, dict):
        return []
    parameters = tool.parameters if tool is not None and isinstance(tool.parameters, dict) else {}
    properties = parameters.get("properties") if isinstance(parameters.get("properties"), dict) else {}
    required = set(parameters.get("required") or []) if isinstance(parameters.get("required"), list) else set()
    flagged = {fs.finding.argument for fs in findings if fs.finding.argument}
    verdicts = label.argument_verdicts if label else {}
    corrected = label.corrected_arguments if label else {}
    rows = []
    for position, (name, value) in enumerate(step.arguments.items()):
        schema = properties.get(name) if isinstance(properties, dict) else None
        rows.append(
            ArgumentRow(
                position=position,
                name=name,
                value=value,
                schema=schema if isinstance(schema, dict) else {},
                required=name in required,
                declared=isinstance(schema, dict),
                verdict=str(verdicts.get(name, "")),
                corrected=corrected.get(name),
                has_corrected=name in corrected,
                flagged=name in flagged,
            )
        )
    return rows


def step_for_assignment(*, assignment: Assignment, index: int) -> Step:
    """One step of the assignment's trajectory (light fields and arguments); Http404 if there is none."""
    step = (
        Step.objects.filter(trajectory_id=assignment.trajectory_id, index=index)
        .only(*LIGHT_STEP_FIELDS)
        .select_related(None)
        .first()
    )
    if step is None:
        raise Http404("No such step.")
    return step


def step_label_for(*, assignment: Assignment, step: Step) -> StepLabel | None:
    return StepLabel.objects.filter(assignment=assignment, step=step).first()


def finding_for_step(*, assignment: Assignment, step: Step, finding_id: int) -> Finding:
    """A finding of the latest check runs on this step; Http404 otherwise."""
    finding = Finding.objects.filter(
        pk=finding_id, step=step, check_run_id__in=latest_check_runs(assignment.trajectory_id)
    ).first()
    if finding is None:
        raise Http404("No such finding.")
    return finding


def step_status(*, assignment: Assignment, step: Step, label: StepLabel | None) -> OutlineItem:
    """A step's completeness after a save (no query: its machine flags do not change with a save)."""
    axes = [str(a["key"]) for a in rubric_axes(assignment.trajectory.project)]
    return outline_item(step=step, label=label, axes=axes, flagged=0)


# --- the trajectory verdict ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepChoice:
    index: int
    title: str


def verdict_label_for(*, assignment: Assignment) -> TrajectoryLabel | None:
    return TrajectoryLabel.objects.filter(assignment=assignment).select_related("first_failing_step").first()


def step_choices(*, assignment: Assignment) -> list[StepChoice]:
    rows = (
        Step.objects.filter(trajectory_id=assignment.trajectory_id)
        .order_by("index")
        .values_list("index", "kind", "tool_name")
    )
    return [
        StepChoice(index=i, title=f"{i + 1} · {'respond' if kind == StepKind.RESPOND else name}")
        for i, kind, name in rows
    ]


def first_incomplete_index(*, missing: list[Any]) -> int | None:
    indexes = [m.step_index for m in missing if m.step_index is not None]
    return min(indexes) if indexes else None


def assignment_trajectory_label(assignment: Assignment) -> str:
    t = assignment.trajectory
    parts = [t.model_name or "unknown model"]
    if t.scaffold:
        parts.append(t.scaffold)
    if t.goal_id and t.goal is not None and t.goal.band:
        parts.append(t.goal.get_band_display())
    return " · ".join(parts)


# --- assignments and labels for the API --------------------------------------------------------------

# Who may list every assignment of a project (an annotator lists only their own; a reviewer none).
ASSIGNMENT_LEAD_ROLES = frozenset({Role.PROJECT_MANAGER, Role.QA_LEAD})


@dataclass(frozen=True)
class AssignmentFilters:
    status: str = ""
    annotator: str = ""  # a username (leads only: an annotator's list is theirs anyway)
    trajectory: int | None = None
    gold: bool | None = None


def assignment_list_for_user(
    *, user: UserLike, project: Project, role: str, filters: AssignmentFilters
) -> QuerySet[Assignment]:
    """QA leads and project managers: every assignment of the project. An annotator: only their own, as their
    queue shows them. Anyone else in the project: PermissionDenied. Newest first."""
    qs: QuerySet[Assignment]
    if role in ASSIGNMENT_LEAD_ROLES:
        # `trajectory_status` lets the serializer withhold submission times until the trajectory is decided
        qs = Assignment.objects.filter(trajectory__project=project).annotate(trajectory_status=F("trajectory__status"))
        if filters.annotator:
            qs = qs.filter(annotator__username=filters.annotator)
    elif role == Role.ANNOTATOR and isinstance(user, User):
        qs = Assignment.objects.filter(trajectory__project=project, annotator=user)
    else:
        check_role(role=role, allowed=ASSIGNMENT_LEAD_ROLES | {Role.ANNOTATOR})
        qs = Assignment.objects.none()
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.trajectory is not None:
        qs = qs.filter(trajectory_id=filters.trajectory)
    if filters.gold is not None:
        qs = qs.filter(is_gold=filters.gold)
    return qs.select_related("annotator").order_by("-id")


def assignment_get_for_lead_or_owner(*, user: UserLike, project: Project, role: str, assignment_id: int) -> Assignment:
    """One assignment's facts (never its labels) for whoever may list it; Http404 for anyone else's."""
    assignment = (
        assignment_list_for_user(user=user, project=project, role=role, filters=AssignmentFilters())
        .filter(pk=assignment_id)
        .first()
    )
    if assignment is None:
        raise Http404("No such assignment.")
    return assignment


@dataclass(frozen=True)
class AssignmentLabels:
    steps: Sequence[StepLabel]  # each with `step_index`
    verdict: TrajectoryLabel | None


def assignment_labels(*, assignment: Assignment) -> AssignmentLabels:
    """The labels of one assignment (drafts included), in step order: for its own annotator, or for leads once
    it is submitted (the callers decide who may ask)."""
    steps = list(
        StepLabel.objects.filter(assignment=assignment).annotate(step_index=F("step__index")).order_by("step__index")
    )
    verdict = (
        TrajectoryLabel.objects.filter(assignment=assignment)
        .annotate(first_failing_step_index=F("first_failing_step__index"))
        .first()
    )
    return AssignmentLabels(steps=steps, verdict=verdict)
