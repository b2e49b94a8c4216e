"""A QA lead's decisions: resolving an escalation (accept A, B, C … or their own value, with a reason),
reassigning it, and reviewers confirming or sending back sampled consensus items.

Resolving writes an adjudicated Consensus (the raw labels stay as they were), recomputes the
trajectory's consensus (fields that depend on the decision may now settle), and once nothing is
open: an item with an annotator error becomes a gold item with the lead's explanation; an item
with any ambiguous decision goes to the guideline backlog and never becomes gold.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from annotation.models import GoldItem, GoldSource, StepLabel, TrajectoryLabel
from annotation.services import clean_step_values, label_spec
from audit.models import (
    Consensus,
    ConsensusMethod,
    DecisionKind,
    Escalation,
    EscalationSource,
    EscalationStatus,
    Review,
    ReviewStatus,
)
from audit.rules import rules_for
from audit.services.consensus import (
    Router,
    step_label_vote,
    submitted_label_ids,
    trajectory_consensus_compute,
    verdict_vote,
)
from audit.services.enqueue import agreement_enqueue
from core.models import Membership, Role
from core.services import audit_record
from trajectories.models import Step, Trajectory, TrajectoryStatus

LETTERS = "ABCDEFGHI"
OWN = "own"


def letter(index: int) -> str:
    return LETTERS[index] if index < len(LETTERS) else str(index + 1)


def escalation_votes(escalation: Escalation) -> list[tuple[str, int, Any]]:
    """(letter, label id, value) for the labels behind the escalation, in the order shown."""
    ids = list(escalation.label_ids)
    if escalation.step_id is None:
        verdicts = {v.pk: v for v in TrajectoryLabel.objects.filter(pk__in=ids)}
        index = dict(Step.objects.filter(trajectory_id=escalation.trajectory_id).values_list("id", "index"))
        return [(letter(i), pk, verdict_vote(verdicts.get(pk), escalation.field, index)) for i, pk in enumerate(ids)]
    labels = {label.pk: label for label in StepLabel.objects.filter(pk__in=ids)}
    return [(letter(i), pk, step_label_vote(labels.get(pk), escalation.field)) for i, pk in enumerate(ids)]


def clean_decision(*, escalation: Escalation, value: Any) -> Any:
    """The lead's own value for the escalated field, checked like an annotator's label."""
    key = escalation.field
    kind, _, name = key.partition(":")
    if escalation.step_id is None:
        return _clean_verdict(escalation, value)
    step = Step.objects.get(pk=escalation.step_id)
    project = escalation.project
    wrap: dict[str, Any]
    if kind == "argument":
        if value not in ("valid", "invalid"):
            raise ValidationError({"value": "a decision on an argument is valid or invalid"})
        wrap = {"argument_verdicts": {name: value}}
    elif kind == "corrected":
        wrap = {"corrected_arguments": {name: value}}
    elif kind == "rubric":
        wrap = {"rubric": {name: value}}
    elif key in ("tool_verdict", "correct_tool", "env_feedback", "failure_modes", "process_reward"):
        if value in (None, "", []):
            raise ValidationError({"value": "choose a value"})
        wrap = {key: value}
    else:
        raise ValidationError({"value": f"unknown field {key!r}"})
    fields = ["corrected_arguments"] if kind == "corrected" else ["correct_tool"] if key == "correct_tool" else []
    cleaned = clean_step_values(spec=label_spec(project=project, step=step, fields=fields), step=step, values=wrap)
    out = cleaned[next(iter(wrap))]
    if kind in ("argument", "corrected", "rubric"):
        if name not in out:
            raise ValidationError({"value": "choose a value"})
        return out[name]
    return out


def _clean_verdict(escalation: Escalation, value: Any) -> Any:
    key = escalation.field
    if key in ("goal_completed", "overall_success"):
        if not isinstance(value, bool):
            raise ValidationError({"value": "yes or no"})
        return value
    if key in ("efficiency", "error_handling"):
        if isinstance(value, bool) or value not in (1, 2, 3, 4, 5):
            raise ValidationError({"value": "a score is 1 to 5"})
        return value
    if key == "first_failing_step":
        if value == "none":
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError({"value": 'a step number, or "none"'})
        if not Step.objects.filter(trajectory_id=escalation.trajectory_id, index=value).exists():
            raise ValidationError({"value": f"step {value} is not a step of this trajectory"})
        return value
    raise ValidationError({"value": f"unknown field {key!r}"})


def can_decide(*, user: User, escalation: Escalation) -> bool:
    return (
        user.is_staff
        or Membership.objects.filter(
            user=user, project_id=escalation.project_id, role__in=[Role.QA_LEAD, Role.PROJECT_MANAGER]
        ).exists()
    )


@transaction.atomic
def escalation_resolve(
    *, actor: User, escalation: Escalation, choice: str, value: Any = None, kind: str, reason: str
) -> Escalation:
    """Settle an escalated field: `choice` is a letter (accept that label's value) or "own" with `value`."""
    locked = Escalation.objects.select_for_update().select_related("project").get(pk=escalation.pk)
    if locked.status != EscalationStatus.OPEN:
        raise ValidationError("This escalation was already resolved.")
    if not can_decide(user=actor, escalation=locked):
        raise ValidationError("Only the project's QA leads resolve escalations.")
    if kind not in DecisionKind.values:
        raise ValidationError({"kind": "annotator error or ambiguous"})
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "say why: the explanation goes with the gold item or the guideline backlog"})
    votes = escalation_votes(locked)
    if choice == OWN:
        decided = clean_decision(escalation=locked, value=value)
    else:
        picked = [v for letter_, _, v in votes if letter_ == choice]
        if not picked:
            raise ValidationError({"choice": f"{choice!r} is not one of the labels shown"})
        decided = picked[0]
        if decided is None or decided == "unsure":
            raise ValidationError({"choice": f"{choice} gave no definitive value: enter your own"})
    now = timezone.now()
    locked.status = EscalationStatus.RESOLVED
    locked.decision = decided
    locked.decision_source = choice
    locked.decision_kind = kind
    locked.decision_reason = reason[:5000]
    locked.resolved_by = actor
    locked.resolved_at = now
    locked.save()
    where: dict[str, Any] = {"trajectory_id": locked.trajectory_id, "step_id": locked.step_id, "field": locked.field}
    Consensus.objects.update_or_create(
        **where,
        defaults={
            "value": decided,
            "method": ConsensusMethod.ADJUDICATED,
            "agreement": "",
            "source_labels": [pk for letter_, pk, _ in votes if letter_ == choice],
            "outliers": [pk for _, pk, v in votes if v != decided],
            "escalation": locked,
        },
    )
    audit_record(
        actor=actor,
        verb="escalation.resolve",
        target=locked,
        project=locked.project,
        after={"choice": choice, "value": decided, "kind": kind, "reason": locked.decision_reason},
    )
    trajectory_consensus_compute(trajectory_id=locked.trajectory_id)
    _settle_gold(actor=actor, trajectory_id=locked.trajectory_id)
    agreement_enqueue(locked.project_id)
    return locked


def _settle_gold(*, actor: User, trajectory_id: int) -> GoldItem | None:
    """When nothing is open and a lead found an annotator error (and nothing ambiguous), the item is gold."""
    trajectory = Trajectory.objects.select_related("project").get(pk=trajectory_id)
    if trajectory.status != TrajectoryStatus.AUDITED or GoldItem.objects.filter(trajectory=trajectory).exists():
        return None
    decided = list(
        Escalation.objects.filter(trajectory=trajectory, status=EscalationStatus.RESOLVED).values_list(
            "decision_kind", "decision_reason"
        )
    )
    kinds = {k for k, _ in decided}
    if DecisionKind.AMBIGUOUS in kinds or DecisionKind.ANNOTATOR_ERROR not in kinds:
        return None
    reference = gold_reference(trajectory)
    explanation = "\n".join(r for k, r in decided if k == DecisionKind.ANNOTATOR_ERROR)
    gold = GoldItem.objects.create(
        trajectory=trajectory,
        reference=reference,
        source=GoldSource.ADJUDICATED,
        explanation=explanation,
        created_by=actor,
    )
    audit_record(
        actor=actor, verb="gold.create", target=gold, project=trajectory.project, after={"source": "adjudicated"}
    )
    return gold


def gold_reference(trajectory: Trajectory) -> dict[str, Any]:
    """Reference labels keyed by step index, in the shape of an annotator's labels, from the consensus."""
    index = dict(Step.objects.filter(trajectory=trajectory).values_list("id", "index"))
    out: dict[str, dict[str, Any]] = {str(i): {} for i in sorted(index.values())}
    for step_id, key, value in Consensus.objects.filter(trajectory=trajectory, step__isnull=False).values_list(
        "step_id", "field", "value"
    ):
        labels = out[str(index[step_id])]
        kind, _, name = key.partition(":")
        if kind == "argument":
            labels.setdefault("argument_verdicts", {})[name] = value
        elif kind == "corrected":
            labels.setdefault("corrected_arguments", {})[name] = value
        elif kind == "rubric":
            labels.setdefault("rubric", {})[name] = value
        else:
            labels[key] = value
    verdict = dict(Consensus.objects.filter(trajectory=trajectory, step__isnull=True).values_list("field", "value"))
    if verdict:
        out["verdict"] = verdict
    return out


@transaction.atomic
def escalation_reassign(*, actor: User, escalation: Escalation, lead: User) -> Escalation:
    locked = Escalation.objects.select_for_update().get(pk=escalation.pk)
    if locked.status != EscalationStatus.OPEN:
        raise ValidationError("Only open escalations can be reassigned.")
    if not can_decide(user=actor, escalation=locked):
        raise ValidationError("Only the project's QA leads and managers reassign escalations.")
    if not Membership.objects.filter(user=lead, project_id=locked.project_id, role=Role.QA_LEAD).exists():
        raise ValidationError({"lead": f"{lead.username} is not a QA lead of this project"})
    before = locked.assigned_to_id
    locked.assigned_to = lead
    locked.save(update_fields=["assigned_to"])
    audit_record(
        actor=actor,
        verb="escalation.reassign",
        target=locked,
        project=locked.project,
        before={"assigned_to": before},
        after={"assigned_to": lead.pk},
    )
    return locked


# --- review ---------------------------------------------------------------------------------------


def _can_review(user: User, review: Review) -> bool:
    return (
        user.is_staff
        or Membership.objects.filter(
            user=user, project_id=review.project_id, role__in=[Role.REVIEWER, Role.QA_LEAD, Role.PROJECT_MANAGER]
        ).exists()
    )


@transaction.atomic
def review_confirm(*, actor: User, review: Review, note: str = "") -> Review:
    locked = Review.objects.select_for_update().select_related("project").get(pk=review.pk)
    if locked.status != ReviewStatus.PENDING:
        raise ValidationError("This review was already decided.")
    if not _can_review(actor, locked):
        raise ValidationError("Only the project's reviewers review consensus items.")
    locked.status = ReviewStatus.CONFIRMED
    locked.reviewer = actor
    locked.note = note.strip()[:5000]
    locked.decided_at = timezone.now()
    locked.save()
    audit_record(actor=actor, verb="review.confirm", target=locked, project=locked.project, after={"note": locked.note})
    return locked


@transaction.atomic
def review_send(*, actor: User, review: Review, consensus: Consensus, note: str) -> Escalation:
    """A reviewer disagrees with one settled value: it goes to the QA lead with the labels behind it."""
    locked = Review.objects.select_for_update().select_related("project").get(pk=review.pk)
    if locked.status != ReviewStatus.PENDING:
        raise ValidationError("This review was already decided.")
    if not _can_review(actor, locked):
        raise ValidationError("Only the project's reviewers review consensus items.")
    if consensus.trajectory_id != locked.trajectory_id:
        raise ValidationError({"consensus": "not a value of this trajectory"})
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": "say what looks wrong"})
    trajectory = Trajectory.objects.select_for_update().get(pk=locked.trajectory_id)
    step = Step.objects.filter(pk=consensus.step_id).only("id", "tool_name").first() if consensus.step_id else None
    where: dict[str, Any] = {"trajectory": trajectory, "step_id": consensus.step_id, "field": consensus.field}
    escalation, created = Escalation.objects.get_or_create(
        **where,
        source=EscalationSource.REVIEW,
        defaults={
            "project": locked.project,
            "reason": f"reviewer: {note[:180]}",
            "tool_name": step.tool_name if step else "",
            "label_ids": submitted_label_ids(trajectory=trajectory, step_id=consensus.step_id),
            "assigned_to_id": Router(locked.project, rules_for(locked.project)).next(),
        },
    )
    if not created:
        raise ValidationError("This value was already sent to the QA lead.")
    locked.status = ReviewStatus.SENT
    locked.reviewer = actor
    locked.note = note[:5000]
    locked.decided_at = timezone.now()
    locked.save()
    trajectory.status = TrajectoryStatus.ESCALATED
    trajectory.save(update_fields=["status"])
    audit_record(
        actor=actor,
        verb="review.send",
        target=locked,
        project=locked.project,
        after={"escalation": escalation.pk, "field": consensus.field, "note": locked.note},
    )
    return escalation
