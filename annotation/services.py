"""Writes of the annotation app: claiming work, drafts with versions, skipping, submitting, gold items.

Claims: `assignment_claim_next` hands an annotator the next trajectory under a row lock
(PostgreSQL `SELECT … FOR UPDATE SKIP LOCKED`; SQLite serialises writers itself), so a
trajectory never has more than `project.overlap` live claims and nobody gets one twice. A claim
is a lease (`LEASE`, renewed by every save); an expired lease no longer counts, so the work goes
back to the pool — the annotator's draft stays on their assignment and comes back with it if
they return while there is still room.

Labels are versioned: a save names the version it was based on; a save based on an older one
is refused with `LabelConflict` (nothing is overwritten) and the caller keeps the input.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from annotation.completeness import step_missing
from annotation.hooks import fire_trajectory_annotated
from annotation.models import (
    ArgumentVerdict,
    Assignment,
    AssignmentStatus,
    CalibrationRequirement,
    EnvFeedback,
    GoldItem,
    GoldSource,
    StepLabel,
    ToolVerdict,
    TrajectoryLabel,
)
from core.models import Project, Role
from core.services import audit_record
from trajectories.models import Step, Tool, Trajectory, TrajectoryStatus
from trajectories.selectors.registries import active_registry_tools_query, project_can_hand_out_work

LEASE = timedelta(minutes=getattr(settings, "STEPWISE_LEASE_MINUTES", 30))
MAX_TIME_DELTA_MS = 30 * 60 * 1000  # one save never adds more than the lease
CANDIDATES = 20
ROUNDS = 50
OPEN_STATUSES = (TrajectoryStatus.IMPORTED, TrajectoryStatus.READY, TrajectoryStatus.IN_ANNOTATION)
NONE_TAG = "none"


class NoWork(Exception):
    """Why there is nothing to hand out (shown to the annotator as it is)."""


class LabelConflict(Exception):
    """The label changed since the version the save was based on."""

    def __init__(self, current_version: int) -> None:
        super().__init__(
            f"These labels were changed elsewhere (now version {current_version}); your input is kept here — "
            "reload to see the other version, or copy your input first."
        )
        self.current_version = current_version


class LeaseLost(Exception):
    """The assignment's lease expired and its place went to someone else."""


# --- claims ----------------------------------------------------------------------------------------


def _live(now: datetime, prefix: str = "") -> Q:
    """Assignments that hold a place: submitted, or active with an unexpired lease."""
    return Q(**{f"{prefix}status": AssignmentStatus.SUBMITTED}) | Q(
        **{f"{prefix}status": AssignmentStatus.ACTIVE, f"{prefix}lease_expires_at__gt": now}
    )


def _holders(trajectory_id: int, now: datetime) -> int:
    return Assignment.objects.filter(_live(now), trajectory_id=trajectory_id, is_gold=False).count()


def _annotates(user: User, project: Project) -> bool:
    return project.memberships.filter(user=user, role=Role.ANNOTATOR).exists()


def _open_trajectories(project: Project) -> Any:
    """Runs that may go to annotators: open, not gold, not a contaminated SWE task left out by the scan."""
    clean_task = (
        Q(swe_task__isnull=True) | Q(swe_task__contamination_flags=[]) | ~Q(swe_task__contamination_override="")
    )
    return (
        Trajectory.objects.filter(project=project, status__in=OPEN_STATUSES)
        .filter(clean_task)
        .filter(~Exists(GoldItem.objects.filter(trajectory=OuterRef("pk"))))
    )


@transaction.atomic
def assignment_claim_next(*, annotator: User, project: Project, now: datetime | None = None) -> Assignment:
    """The annotator's work in progress, or a newly claimed trajectory; NoWork says why there is none."""
    now = now or timezone.now()
    if not _annotates(annotator, project):
        raise NoWork("Only the project's annotators receive work.")
    if not project_can_hand_out_work(project):
        raise NoWork("No work is handed out until the project's tool registry is frozen.")
    current = (
        Assignment.objects.select_for_update()
        .filter(
            annotator=annotator, trajectory__project=project, status=AssignmentStatus.ACTIVE, lease_expires_at__gt=now
        )
        .order_by("created_at")
        .first()
    )
    if current is not None:
        return current
    for slice_key in CalibrationRequirement.objects.filter(
        project=project, annotator=annotator, active=True
    ).values_list("slice_key", flat=True):
        calibration = _claim_gold(annotator=annotator, project=project, now=now, slice_key=slice_key)
        if calibration is not None:
            return calibration
    if random.random() < project.gold_rate:
        gold = _claim_gold(annotator=annotator, project=project, now=now)
        if gold is not None:
            return gold
    mine = Assignment.objects.filter(annotator=annotator, trajectory=OuterRef("pk"))
    # Drafts whose lease expired come back first, when their place is still free.
    returning = Assignment.objects.filter(
        annotator=annotator,
        trajectory__project=project,
        status__in=[AssignmentStatus.ACTIVE, AssignmentStatus.EXPIRED],
        lease_expires_at__lte=now,
    ).values_list("trajectory_id", flat=True)
    for trajectory_id in list(returning):
        assignment = _try_claim(annotator=annotator, project=project, trajectory_id=trajectory_id, now=now)
        if assignment is not None:
            return assignment
    full = Count("assignments", filter=_live(now, "assignments__") & Q(assignments__is_gold=False))
    for _round in range(ROUNDS):
        candidates = list(
            _open_trajectories(project)
            .filter(~Exists(mine))
            .annotate(holders=full)
            .filter(holders__lt=project.overlap)
            .order_by("-holders", "id")
            .values_list("id", flat=True)[:CANDIDATES]
        )
        if not candidates:
            raise NoWork("Nothing left to annotate in this project — every run has its annotators.")
        for trajectory_id in candidates:
            assignment = _try_claim(annotator=annotator, project=project, trajectory_id=trajectory_id, now=now)
            if assignment is not None:
                return assignment
        time.sleep(0.005 * (_round + 1))  # every candidate was being claimed by someone else: let them finish
    raise NoWork("Everyone is claiming work at once; try again in a moment.")


def _try_claim(*, annotator: User, project: Project, trajectory_id: int, now: datetime) -> Assignment | None:
    """Claim one trajectory under its row lock; None when another claimer holds the lock or it is full."""
    locked = list(
        Trajectory.objects.select_for_update(skip_locked=True).filter(pk=trajectory_id).values_list("pk", "status")
    )
    if not locked:
        return None
    if _holders(trajectory_id, now) >= project.overlap:
        return None
    assignment, created = Assignment.objects.get_or_create(
        trajectory_id=trajectory_id,
        annotator=annotator,
        defaults={"status": AssignmentStatus.ACTIVE, "lease_expires_at": now + LEASE},
    )
    if not created:
        if assignment.status in (AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED):
            return None
        assignment.status = AssignmentStatus.ACTIVE
        assignment.lease_expires_at = now + LEASE
        assignment.save(update_fields=["status", "lease_expires_at"])
    if locked[0][1] != TrajectoryStatus.IN_ANNOTATION:
        Trajectory.objects.filter(pk=trajectory_id).update(status=TrajectoryStatus.IN_ANNOTATION)
    audit_record(
        actor=annotator,
        verb="assignment.claim" if created else "assignment.reclaim",
        target=assignment,
        project=project,
        after={"trajectory": trajectory_id},
    )
    return assignment


def _gold_in_slice(items: Any, slice_key: str) -> Any:
    """Gold items of a capability slice ("project", "tool:…", "band:…", "model:…", "kind:…", "failure:…")."""
    dim, _, name = slice_key.partition(":")
    name = "" if name == "—" else name
    if dim == "tool":
        return items.filter(trajectory__in=Step.objects.filter(tool_name=name).values("trajectory_id"))
    if dim == "band":
        return items.filter(trajectory__goal__band=name)
    if dim == "model":
        return items.filter(trajectory__model_name=name)
    if dim == "kind":
        return items.filter(trajectory__in=Step.objects.filter(kind=name).values("trajectory_id"))
    if dim == "failure":
        ids = [
            pk
            for pk, reference in items.values_list("pk", "reference")[:500]
            if any(
                name in (labels.get("failure_modes") or []) for labels in reference.values() if isinstance(labels, dict)
            )
        ]
        return items.filter(pk__in=ids)
    return items


def _claim_gold(*, annotator: User, project: Project, now: datetime, slice_key: str = "project") -> Assignment | None:
    """A gold item the annotator has not seen (of the slice their calibration asks for)."""
    done = Assignment.objects.filter(annotator=annotator, trajectory=OuterRef("trajectory"))
    items = _gold_in_slice(GoldItem.objects.filter(trajectory__project=project).filter(~Exists(done)), slice_key)
    gold = items.order_by("?").values_list("trajectory_id", flat=True).first()
    if gold is None:
        return None
    assignment = Assignment.objects.create(
        trajectory_id=gold, annotator=annotator, is_gold=True, lease_expires_at=now + LEASE
    )
    audit_record(
        actor=annotator,
        verb="assignment.claim",
        target=assignment,
        project=project,
        after={"gold": True, "slice": slice_key},
    )
    return assignment


_HELD_FIELDS = ("id", "trajectory_id", "annotator_id", "status", "is_gold", "lease_expires_at", "time_spent_ms")


def _renew_live_lease(assignment: Assignment, now: datetime, elapsed_ms: int) -> Assignment | None:
    """The common case of `_hold` in one statement: an active assignment of its annotator whose lease has not
    expired at `now` is renewed and credited with the time, and its row stays locked until the transaction
    ends (as `SELECT … FOR UPDATE` would). None, touching nothing, when any of that does not hold."""
    opts, quote = Assignment._meta, connection.ops.quote_name
    col = {f.attname: quote(f.column or f.attname) for f in opts.concrete_fields if f.attname in _HELD_FIELDS}
    sql = (
        f"UPDATE {quote(opts.db_table)} SET {col['lease_expires_at']} = %s, "  # noqa: S608 - names from the model
        f"{col['time_spent_ms']} = {col['time_spent_ms']} + %s "
        f"WHERE {col['id']} = %s AND {col['annotator_id']} = %s AND {col['status']} = %s "
        f"AND {col['lease_expires_at']} > %s RETURNING {', '.join(col.values())}"
    )
    adapt = connection.ops.adapt_datetimefield_value
    params = [adapt(now + LEASE), _elapsed(elapsed_ms), assignment.pk, assignment.annotator_id]
    rows = list(Assignment.objects.raw(sql, [*params, AssignmentStatus.ACTIVE.value, adapt(now)]))
    return rows[0] if rows else None


def _hold(assignment: Assignment, now: datetime, elapsed_ms: int = 0) -> Assignment:
    """Lock the annotator's own active assignment, renew its lease and add the time spent; LeaseLost if its
    place is gone."""
    renewed = _renew_live_lease(assignment, now, elapsed_ms)
    # Otherwise (lease expired, submitted, skipped): lock, check and renew step by step.
    locked = renewed or Assignment.objects.select_for_update().only(*_HELD_FIELDS).get(pk=assignment.pk)
    # The caller's assignment already carries its trajectory and project (the same rows): reuse them.
    if Assignment.trajectory.is_cached(assignment) and assignment.trajectory_id == locked.trajectory_id:
        locked.trajectory = assignment.trajectory
    if renewed is not None:
        return renewed
    if locked.status == AssignmentStatus.SUBMITTED:
        raise ValidationError("This trajectory was already submitted; its labels are final.")
    if locked.status == AssignmentStatus.SKIPPED:
        raise ValidationError("This trajectory was skipped.")
    if locked.lease_expires_at is None or locked.lease_expires_at <= now:
        project = locked.trajectory.project
        Trajectory.objects.select_for_update().filter(pk=locked.trajectory_id).values_list("pk").first()  # as claims do
        if not locked.is_gold and _holders(locked.trajectory_id, now) >= project.overlap:
            raise LeaseLost(
                "Your claim on this trajectory expired and it went to another annotator; your draft is kept."
            )
        locked.status = AssignmentStatus.ACTIVE
    locked.lease_expires_at = now + LEASE
    locked.time_spent_ms += _elapsed(elapsed_ms)
    locked.save(update_fields=["status", "lease_expires_at", "time_spent_ms"])
    return locked


@transaction.atomic
def assignment_skip(*, annotator: User, assignment: Assignment, reason: str) -> Assignment:
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "Say why you skip this trajectory."})
    locked = Assignment.objects.select_for_update().get(pk=assignment.pk, annotator=annotator)
    if locked.status != AssignmentStatus.ACTIVE:
        raise ValidationError("Only work in progress can be skipped.")
    locked.status = AssignmentStatus.SKIPPED
    locked.skip_reason = reason[:2000]
    locked.lease_expires_at = None
    locked.save(update_fields=["status", "skip_reason", "lease_expires_at"])
    audit_record(
        actor=annotator,
        verb="assignment.skip",
        target=locked,
        project=locked.trajectory.project,
        after={"reason": locked.skip_reason},
    )
    return locked


# --- labels ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """What a step's labels may hold, from the project and the registry."""

    argument_schemas: dict[str, Any]
    argument_required: set[str]
    tools: set[str]
    failure_modes: set[str]
    rubric_axes: list[str]


def label_spec(*, project: Project, step: Step, fields: Any = None) -> LabelSpec:
    """What the step's labels may hold; with `fields`, only what checking those fields needs is loaded."""
    wanted = set(fields) if fields is not None else {"corrected_arguments", "correct_tool"}
    parameters: dict[str, Any] = {}
    if step.tool_id is not None and "corrected_arguments" in wanted:
        tool = Tool.objects.filter(pk=step.tool_id).values_list("parameters", flat=True).first()
        parameters = tool if isinstance(tool, dict) else {}
    tools: set[str] = set()
    if "correct_tool" in wanted:
        tools = set(active_registry_tools_query(project).values_list("name", flat=True))
    return LabelSpec(
        argument_schemas=dict(parameters.get("properties") or {}),
        argument_required=set(parameters.get("required") or []),
        tools=tools,
        failure_modes={str(t.get("key")) for t in project.failure_taxonomy if isinstance(t, dict)},
        rubric_axes=[str(a.get("key")) for a in project.rubric_axes if isinstance(a, dict)],
    )


def _check_value(schema: Any, value: Any, where: str) -> None:
    if not isinstance(schema, dict) or not schema:
        return
    cls = validator_for(schema, default=Draft202012Validator)
    error = best_match(cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(value))
    if error is not None:
        pointer = "/" + "/".join(str(p) for p in error.absolute_path) if error.absolute_path else ""
        raise ValidationError(
            {
                where: f"the corrected value breaks the parameter's schema{f' at {pointer}' if pointer else ''}: {error.message}"
            }
        )


def clean_step_values(*, spec: LabelSpec, step: Step, values: dict[str, Any]) -> dict[str, Any]:
    """Validated label fields (only those given); ValidationError names the field and why."""
    out: dict[str, Any] = {}
    arguments = step.arguments if isinstance(step.arguments, dict) else {}
    if "argument_verdicts" in values:
        verdicts = values["argument_verdicts"] or {}
        if not isinstance(verdicts, dict):
            raise ValidationError({"argument_verdicts": "must map argument names to valid / invalid / unsure"})
        for name, verdict in verdicts.items():
            if name not in arguments:
                raise ValidationError({"argument_verdicts": f"{name!r} is not an argument of this call"})
            if verdict not in ArgumentVerdict.values and verdict != "":
                raise ValidationError({"argument_verdicts": f"{name}: {verdict!r} is not valid, invalid or unsure"})
        out["argument_verdicts"] = {k: v for k, v in verdicts.items() if v}
    if "corrected_arguments" in values:
        corrected = values["corrected_arguments"] or {}
        if not isinstance(corrected, dict):
            raise ValidationError({"corrected_arguments": "must map argument names to corrected values"})
        for name, value in corrected.items():
            if name not in arguments and name not in spec.argument_schemas:
                raise ValidationError({"corrected_arguments": f"{name!r} is not a parameter of this tool"})
            _check_value(spec.argument_schemas.get(name), value, f"corrected_arguments.{name}")
        out["corrected_arguments"] = corrected
    if "tool_verdict" in values:
        verdict = values["tool_verdict"] or ""
        if verdict not in (*ToolVerdict.values, ""):
            raise ValidationError({"tool_verdict": "right or wrong"})
        out["tool_verdict"] = verdict
    if "correct_tool" in values:
        name = (values["correct_tool"] or "").strip()
        if name and spec.tools and name not in spec.tools:
            raise ValidationError({"correct_tool": f"{name!r} is not a tool of the frozen registry"})
        out["correct_tool"] = name
    if "failure_modes" in values:
        modes = values["failure_modes"] or []
        if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes):
            raise ValidationError({"failure_modes": "must be a list of taxonomy keys"})
        unknown = [m for m in modes if m != NONE_TAG and m not in spec.failure_modes]
        if unknown:
            raise ValidationError({"failure_modes": f"not in the project's taxonomy: {', '.join(unknown)}"})
        if NONE_TAG in modes and len(modes) > 1:
            raise ValidationError({"failure_modes": '"none" cannot be combined with a failure mode'})
        out["failure_modes"] = sorted(set(modes))
    if "rubric" in values:
        rubric = values["rubric"] or {}
        if not isinstance(rubric, dict):
            raise ValidationError({"rubric": "must map axes to scores 1–5"})
        for axis, score in rubric.items():
            if axis not in spec.rubric_axes:
                raise ValidationError({"rubric": f"{axis!r} is not a rubric axis of this project"})
            if score is not None and (isinstance(score, bool) or score not in (1, 2, 3, 4, 5)):
                raise ValidationError({"rubric": f"{axis}: a score is 1 to 5"})
        out["rubric"] = {k: v for k, v in rubric.items() if v is not None}
    if "process_reward" in values:
        reward = values["process_reward"]
        if reward is not None and (isinstance(reward, bool) or reward not in (-1, 0, 1)):
            raise ValidationError({"process_reward": "−1, 0 or +1"})
        out["process_reward"] = reward
    if "env_feedback" in values:
        feedback = values["env_feedback"] or ""
        if feedback not in (*EnvFeedback.values, ""):
            raise ValidationError({"env_feedback": "success, partial or failure"})
        out["env_feedback"] = feedback
    for text in ("next_action", "comment"):
        if text in values:
            out[text] = str(values[text] or "")[:20_000]
    return out


def _elapsed(value: Any) -> int:
    try:
        ms = int(value or 0)
    except (TypeError, ValueError):
        return 0
    return max(0, min(ms, MAX_TIME_DELTA_MS))


@transaction.atomic
def step_label_save(
    *,
    annotator: User,
    assignment: Assignment,
    step: Step,
    values: dict[str, Any],
    base_version: int,
    elapsed_ms: int = 0,
    now: datetime | None = None,
) -> StepLabel:
    """Save (a part of) the annotator's draft for one step; LabelConflict if it changed since `base_version`."""
    now = now or timezone.now()
    if assignment.annotator_id != annotator.pk or step.trajectory_id != assignment.trajectory_id:
        raise ValidationError("This step is not part of your assignment.")
    held = _hold(assignment, now, elapsed_ms)
    project = held.trajectory.project
    spec = label_spec(project=project, step=step, fields=values)
    cleaned = clean_step_values(spec=spec, step=step, values=values)
    label = StepLabel.objects.select_for_update().filter(assignment=held, step=step).first()
    current = label.version if label else 0
    if current != base_version:
        raise LabelConflict(current)
    if label is None:
        label = StepLabel(assignment=held, step=step, version=0, guideline_version=project.guideline_version)
    for name, value in cleaned.items():
        setattr(label, name, value)
    label.version += 1
    label.time_spent_ms += _elapsed(elapsed_ms)
    try:
        label.save()
    except IntegrityError:  # another tab created it at the same moment
        raise LabelConflict(1) from None
    return label


def clean_verdict_values(*, trajectory: Trajectory, values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("goal_completed", "overall_success"):
        if name in values:
            value = values[name]
            if value not in (True, False, None):
                raise ValidationError({name: "yes or no"})
            out[name] = value
    for name in ("efficiency", "error_handling"):
        if name in values:
            score = values[name]
            if score is not None and (isinstance(score, bool) or score not in (1, 2, 3, 4, 5)):
                raise ValidationError({name: "a score is 1 to 5"})
            out[name] = score
    if "first_failing_step" in values:
        index = values["first_failing_step"]
        if index is None:
            out["first_failing_step"] = None
        else:
            step = Step.objects.filter(trajectory=trajectory, index=index).first() if isinstance(index, int) else None
            if step is None:
                raise ValidationError({"first_failing_step": "not a step of this trajectory"})
            out["first_failing_step"] = step
    if "comment" in values:
        out["comment"] = str(values["comment"] or "")[:20_000]
    return out


@transaction.atomic
def trajectory_label_save(
    *,
    annotator: User,
    assignment: Assignment,
    values: dict[str, Any],
    base_version: int,
    elapsed_ms: int = 0,
    now: datetime | None = None,
) -> TrajectoryLabel:
    now = now or timezone.now()
    if assignment.annotator_id != annotator.pk:
        raise ValidationError("This is not your assignment.")
    held = _hold(assignment, now, elapsed_ms)
    cleaned = clean_verdict_values(trajectory=held.trajectory, values=values)
    label = TrajectoryLabel.objects.select_for_update().filter(assignment=held).first()
    current = label.version if label else 0
    if current != base_version:
        raise LabelConflict(current)
    if label is None:
        label = TrajectoryLabel(assignment=held, version=0, guideline_version=held.trajectory.project.guideline_version)
    for name, value in cleaned.items():
        setattr(label, name, value)
    label.version += 1
    try:
        label.save()
    except IntegrityError:
        raise LabelConflict(1) from None
    return label


# --- submitting ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Missing:
    step_index: int | None  # None: the trajectory verdict
    what: str


def missing_labels(*, assignment: Assignment) -> list[Missing]:
    """What still needs a label before the assignment can be submitted, step by step."""
    project = assignment.trajectory.project
    axes = [str(a.get("key")) for a in project.rubric_axes if isinstance(a, dict)]
    labels = {label.step_id: label for label in StepLabel.objects.filter(assignment=assignment)}
    out: list[Missing] = []
    for step in (
        Step.objects.filter(trajectory_id=assignment.trajectory_id)
        .order_by("index")
        .only("id", "index", "kind", "arguments")
    ):
        out.extend(Missing(step.index, what) for what in step_missing(step=step, label=labels.get(step.pk), axes=axes))
    verdict = TrajectoryLabel.objects.filter(assignment=assignment).first()
    for name, label_text in (
        ("goal_completed", "goal completed"),
        ("overall_success", "overall success"),
        ("efficiency", "efficiency"),
        ("error_handling", "error handling"),
    ):
        if verdict is None or getattr(verdict, name) is None:
            out.append(Missing(None, f"trajectory verdict: {label_text}"))
    return out


class Incomplete(ValidationError):
    def __init__(self, missing: list[Missing]) -> None:
        super().__init__(f"{len(missing)} label(s) missing")
        self.missing = missing


@transaction.atomic
def assignment_submit(*, annotator: User, assignment: Assignment, now: datetime | None = None) -> Assignment:
    now = now or timezone.now()
    if assignment.annotator_id != annotator.pk:
        raise ValidationError("This is not your assignment.")
    held = _hold(assignment, now)
    missing = missing_labels(assignment=held)
    if missing:
        raise Incomplete(missing)
    held.status = AssignmentStatus.SUBMITTED
    held.submitted_at = now
    held.lease_expires_at = None
    held.save(update_fields=["status", "submitted_at", "lease_expires_at"])
    trajectory = Trajectory.objects.select_for_update().get(pk=held.trajectory_id)
    project = trajectory.project
    submitted = Assignment.objects.filter(
        trajectory=trajectory, status=AssignmentStatus.SUBMITTED, is_gold=False
    ).count()
    if not held.is_gold and submitted >= project.overlap and trajectory.status == TrajectoryStatus.IN_ANNOTATION:
        trajectory.status = TrajectoryStatus.ANNOTATED
        trajectory.save(update_fields=["status"])
        transaction.on_commit(partial(fire_trajectory_annotated, trajectory.pk))
    audit_record(
        actor=annotator,
        verb="assignment.submit",
        target=held,
        project=project,
        after={"trajectory": trajectory.pk, "submitted": submitted, "time_spent_ms": held.time_spent_ms},
    )
    return held


# --- gold --------------------------------------------------------------------------------------------


@transaction.atomic
def gold_item_create(
    *, actor: User, trajectory: Trajectory, reference: dict[str, Any], explanation: str = ""
) -> GoldItem:
    """Make a gold (honeypot) item by hand: reference labels for every step, keyed by step index."""
    if not isinstance(reference, dict):
        raise ValidationError({"reference": "must map step indexes to labels"})
    steps = {str(s.index): s for s in Step.objects.filter(trajectory=trajectory)}
    project = trajectory.project
    cleaned: dict[str, Any] = {}
    for key, values in reference.items():
        step = steps.get(str(key))
        if step is None:
            raise ValidationError({"reference": f"/{key}: not a step of this trajectory"})
        if not isinstance(values, dict):
            raise ValidationError({"reference": f"/{key}: labels must be an object"})
        try:
            cleaned[str(key)] = clean_step_values(spec=label_spec(project=project, step=step), step=step, values=values)
        except ValidationError as exc:
            raise ValidationError({"reference": f"/{key}: {'; '.join(exc.messages)}"}) from None
    missing = sorted(set(steps) - set(cleaned), key=int)
    if missing:
        raise ValidationError({"reference": f"reference labels are missing for steps {', '.join(missing)}"})
    if GoldItem.objects.filter(trajectory=trajectory).exists():
        raise ValidationError("This trajectory is already a gold item.")
    gold = GoldItem.objects.create(
        trajectory=trajectory, reference=cleaned, source=GoldSource.MANUAL, explanation=explanation, created_by=actor
    )
    audit_record(actor=actor, verb="gold.create", target=gold, project=project, after={"trajectory": trajectory.pk})
    return gold
