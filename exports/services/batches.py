"""Cutting a Batch: a frozen selection of a project's audited trajectories, chosen by filters.

The filters are a JSON document checked against FILTER_SCHEMA (a bad one is refused with the pointer
to the fault); the selection is written once, with the filters and the time, and never changes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from jsonschema import Draft202012Validator

from audit.models import Consensus, ConsensusMethod, Escalation, EscalationStatus
from audit.services.agreement import compute
from core.models import Project
from core.services import audit_record
from exports.models import Batch
from trajectories.models import Goal, Trajectory, TrajectoryStatus

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}
FILTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "model": _STRINGS,
        "scaffold": _STRINGS,
        "band": {"type": "array", "items": {"enum": ["atomic", "composite", "ambiguous"]}, "uniqueItems": True},
        "tags": _STRINGS,
        "consensus": {"enum": ["any", "unanimous", "no_adjudication", "adjudicated"]},
        "reward_min": {"type": "number"},
        "reward_max": {"type": "number"},
        "imported_from": {"type": "string", "format": "date"},
        "imported_until": {"type": "string", "format": "date"},
    },
}
_VALIDATOR = Draft202012Validator(FILTER_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def filter_errors(filters: Any) -> list[str]:
    return [
        f"/{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in sorted(_VALIDATOR.iter_errors(filters), key=lambda e: list(e.absolute_path))
    ]


def _day(value: str) -> datetime:
    return timezone.make_aware(datetime.fromisoformat(value))


def batch_candidates(*, project: Project, filters: dict[str, Any]) -> QuerySet[Trajectory]:
    """The audited trajectories (every field settled, nothing open) that the filters select."""
    errors = filter_errors(filters)
    if errors:
        raise ValidationError({"filters": errors})
    open_escalation = Escalation.objects.filter(trajectory=OuterRef("pk"), status=EscalationStatus.OPEN)
    qs = Trajectory.objects.filter(project=project, status=TrajectoryStatus.AUDITED).filter(~Exists(open_escalation))
    if filters.get("model"):
        qs = qs.filter(model_name__in=filters["model"])
    if filters.get("scaffold"):
        qs = qs.filter(scaffold__in=filters["scaffold"])
    if filters.get("band"):
        qs = qs.filter(goal__band__in=filters["band"])
    if filters.get("tags"):  # a project has few goals: match their tag lists here, the same on every database
        wanted = set(filters["tags"])
        goals = [
            pk for pk, tags in Goal.objects.filter(project=project).values_list("id", "tags") if wanted & set(tags)
        ]
        qs = qs.filter(goal_id__in=goals)
    consensus = filters.get("consensus", "any")
    adjudicated = Consensus.objects.filter(trajectory=OuterRef("pk"), method=ConsensusMethod.ADJUDICATED)
    if consensus == "unanimous":
        qs = qs.exclude(
            Exists(Consensus.objects.filter(trajectory=OuterRef("pk")).exclude(method=ConsensusMethod.UNANIMOUS))
        )
    elif consensus == "no_adjudication":
        qs = qs.filter(~Exists(adjudicated))
    elif consensus == "adjudicated":
        qs = qs.filter(Exists(adjudicated))
    reward = Q(verified_reward__isnull=False)
    if "reward_min" in filters:
        qs = qs.filter(
            (reward & Q(verified_reward__gte=filters["reward_min"]))
            | (Q(verified_reward__isnull=True) & Q(outcome_reward__gte=filters["reward_min"]))
        )
    if "reward_max" in filters:
        qs = qs.filter(
            (reward & Q(verified_reward__lte=filters["reward_max"]))
            | (Q(verified_reward__isnull=True) & Q(outcome_reward__lte=filters["reward_max"]))
        )
    if "imported_from" in filters:
        qs = qs.filter(created_at__gte=_day(filters["imported_from"]))
    if "imported_until" in filters:
        qs = qs.filter(created_at__lt=_day(filters["imported_until"]) + timedelta(days=1))
    return qs.order_by("id")


def _count(values: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        key = str(value or "—")
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def batch_summary(*, project: Project, trajectory_ids: list[int]) -> dict[str, Any]:
    """What the batch holds (per band, tag, model) and its agreement, pooled over its trajectories."""
    rows = list(
        Trajectory.objects.filter(pk__in=trajectory_ids).values_list(
            "model_name", "goal__band", "goal__tags", "step_count"
        )
    )
    result = compute(project, bootstrap=False, trajectory_ids=trajectory_ids)
    figures = [
        {
            "measure": s.measure,
            "coefficient": s.coefficient,
            "value": s.figure.value,
            "reason": s.figure.reason,
            "n_items": s.figure.n_items,
            "raw_agreement": s.figure.raw,
        }
        for s in result.snapshots
        if s.scope == "project"
    ]
    return {
        "trajectories": len(rows),
        "steps": sum(r[3] for r in rows),
        "models": _count([r[0] for r in rows]),
        "bands": _count([r[1] for r in rows]),
        "tags": _count([tag for r in rows for tag in (r[2] or [])]),
        "agreement": figures,
        "label_rows": result.rows,
    }


@transaction.atomic
def batch_create(*, actor: User, project: Project, name: str, filters: dict[str, Any]) -> Batch:
    """Cut and freeze a batch; ValidationError names the field (or the filter's pointer) and why."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "give the batch a name"})
    ids = list(batch_candidates(project=project, filters=filters).values_list("id", flat=True))
    if not ids:
        raise ValidationError({"filters": ["no audited trajectory matches these filters"]})
    try:
        with transaction.atomic():
            batch = Batch.objects.create(
                project=project, name=name[:200], filters=filters, created_by=actor, frozen_at=timezone.now()
            )
    except IntegrityError:
        raise ValidationError({"name": f"this project already has a batch called {name!r}"}) from None
    through = Batch.trajectories.through
    through.objects.bulk_create([through(batch_id=batch.pk, trajectory_id=i) for i in ids], batch_size=5000)
    batch.summary = batch_summary(project=project, trajectory_ids=ids)
    batch.save(update_fields=["summary"])
    audit_record(
        actor=actor,
        verb="batch.create",
        target=batch,
        project=project,
        after={"filters": filters, "trajectories": len(ids)},
    )
    return batch
