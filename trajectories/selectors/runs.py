"""Reads of trajectories that depend on who asks."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Q, QuerySet
from django.http import Http404

from core.models import Project, Role
from core.selectors import REVIEW_ROLES
from trajectories.blobs import Unpacker, unpack
from trajectories.models import (
    Band,
    Goal,
    ImportJob,
    PayloadDictionary,
    Step,
    ToolRegistry,
    Trajectory,
    TrajectoryStatus,
)

UserLike = User | AnonymousUser

# Annotators work through their queue; they do not browse the project's trajectories.
BROWSE_ROLES = REVIEW_ROLES


def can_browse(role: str) -> bool:
    return role in BROWSE_ROLES


@dataclass(frozen=True)
class TrajectoryFilters:
    status: str = ""
    model: str = ""
    scaffold: str = ""
    band: str = ""
    source_format: str = ""
    reward: str = ""  # "", "1" (reward > 0), "0" (reward == 0), "none"
    q: str = ""


def trajectory_list_for_user(
    *, user: UserLike, project: Project, role: str, filters: TrajectoryFilters
) -> QuerySet[Trajectory]:
    if not can_browse(role):
        return Trajectory.objects.none()
    qs = Trajectory.objects.filter(project=project).select_related("goal").defer("payload", "metadata", "outcome")
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.model:
        qs = qs.filter(model_name=filters.model)
    if filters.scaffold:
        qs = qs.filter(scaffold=filters.scaffold)
    if filters.band:
        qs = qs.filter(goal__band=filters.band)
    if filters.source_format:
        qs = qs.filter(source_format=filters.source_format)
    if filters.reward == "1":
        qs = qs.filter(outcome_reward__gt=0)
    elif filters.reward == "0":
        qs = qs.filter(outcome_reward=0)
    elif filters.reward == "none":
        qs = qs.filter(outcome_reward__isnull=True)
    if filters.q:
        term = filters.q.strip()
        match = Q(goal_text__icontains=term) | Q(rollout_id__icontains=term)
        if term.isdigit():
            match |= Q(pk=int(term))
        qs = qs.filter(match)
    return qs.order_by("-id")


def trajectory_filter_choices(*, project: Project) -> dict[str, list[str]]:
    base = Trajectory.objects.filter(project=project)
    return {
        "models": sorted(m for m in base.values_list("model_name", flat=True).distinct() if m),
        "scaffolds": sorted(s for s in base.values_list("scaffold", flat=True).distinct() if s),
        "formats": sorted(f for f in base.values_list("source_format", flat=True).distinct() if f),
    }


def trajectory_get_for_user(*, user: UserLike, project: Project, role: str, trajectory_id: int) -> Trajectory:
    """A trajectory of the project; Http404 unless the user may browse it or holds an assignment on it."""
    qs = Trajectory.objects.filter(project=project, pk=trajectory_id).select_related("goal", "swe_task", "source_file")
    if not can_browse(role):
        if role != Role.ANNOTATOR:
            raise Http404("No such trajectory.")
        if not isinstance(user, User):
            raise Http404("No such trajectory.")
        qs = qs.filter(assignments__annotator=user)
    trajectory = qs.defer("payload").first()
    if trajectory is None:
        raise Http404("No such trajectory.")
    return trajectory


def trajectory_steps(*, trajectory: Trajectory) -> QuerySet[Step]:
    return Step.objects.filter(trajectory=trajectory).select_related("tool").order_by("index")


def project_status_counts(*, project: Project) -> list[tuple[str, str, int]]:
    """(status, label, count) for every status, in workflow order."""
    counts = dict(
        Trajectory.objects.filter(project=project)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return [(value, label, counts.get(value, 0)) for value, label in TrajectoryStatus.choices]


def project_registry(*, project: Project) -> ToolRegistry | None:
    """The project's active registry: its latest frozen one, else its latest draft."""
    registries = ToolRegistry.objects.filter(project=project).annotate(tool_count=Count("tools"))
    return (
        registries.filter(frozen_at__isnull=False).order_by("-version").first()
        or registries.order_by("-version").first()
    )


def goal_band_counts(*, project: Project) -> list[tuple[str, int]]:
    counts = dict(
        Goal.objects.filter(project=project).values_list("band").annotate(n=Count("id")).values_list("band", "n")
    )
    rows = [(label, counts.get(value, 0)) for value, label in Band.choices]
    if counts.get(""):
        rows.append(("No band", counts[""]))
    return rows


def import_jobs_for_user(*, project: Project, role: str) -> QuerySet[ImportJob]:
    if not can_browse(role):
        return ImportJob.objects.none()
    return ImportJob.objects.filter(project=project).select_related("source_file").defer("errors").order_by("-id")


def import_job_get_for_user(*, project: Project, role: str, job_id: int) -> ImportJob:
    job = import_jobs_for_user(project=project, role=role).filter(pk=job_id).defer(None).first()
    if job is None:
        raise Http404("No such import.")
    return job


def trajectory_record_for_user(*, project: Project, role: str, trajectory_id: int) -> tuple[Trajectory, bytes]:
    """A trajectory and its original record's bytes, for those who browse the project (an annotator's
    view of a run is its steps: the record holds the outcome and reward, which they work blind to)."""
    if not can_browse(role):
        raise Http404("No such trajectory.")
    trajectory = Trajectory.objects.filter(project=project, pk=trajectory_id).first()
    if trajectory is None:
        raise Http404("No such trajectory.")
    try:
        return trajectory, trajectory_payload(trajectory)
    except PayloadDictionary.DoesNotExist:  # only if rows were deleted by hand
        raise Http404("The record cannot be read: the dictionary it is compressed against is gone.") from None


def trajectory_payload(trajectory: Trajectory) -> bytes:
    """The record's bytes as the import kept them (secrets in its metadata scrubbed)."""

    def dictionary(dictionary_id: int) -> bytes:
        return bytes(PayloadDictionary.objects.get(pk=dictionary_id, project_id=trajectory.project_id).data)

    return unpack(bytes(trajectory.payload), dictionary)


def chat_unpacker() -> Unpacker:
    """Unpacks trajectories' kept chat messages (Trajectory.chat), each dictionary read once; a missing one
    raises PayloadDictionary.DoesNotExist."""
    return Unpacker(lambda dictionary_id: bytes(PayloadDictionary.objects.get(pk=dictionary_id).data))
