"""Reads of the exports app."""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.http import Http404

from audit.models import Consensus, Escalation, EscalationStatus
from core.models import Project
from exports.models import Batch, ExportJob
from trajectories.chat import KeptChat, kept_chat
from trajectories.models import Trajectory


def batches_for_project(*, project: Project) -> QuerySet[Batch]:
    return (
        Batch.objects.filter(project=project)
        .select_related("created_by")
        .annotate(size=Count("trajectories"))
        .order_by("-created_at")
    )


def batch_get(*, project: Project, batch_id: int) -> Batch:
    batch = Batch.objects.filter(project=project, pk=batch_id).select_related("created_by").first()
    if batch is None:
        raise Http404("No such batch.")
    return batch


def batch_open_escalations(*, batch: Batch) -> int:
    """Escalations opened on the batch's runs since it was cut (a reviewer may send a value back)."""
    return Escalation.objects.filter(trajectory__in=batch.trajectories.all(), status=EscalationStatus.OPEN).count()


def batch_exports(*, batch: Batch) -> QuerySet[ExportJob]:
    return ExportJob.objects.filter(batch=batch).select_related("created_by").order_by("-created_at")


def export_get(*, batch: Batch, job_id: int) -> ExportJob:
    job = ExportJob.objects.filter(batch=batch, pk=job_id).first()
    if job is None:
        raise Http404("No such export.")
    return job


Origin = tuple[str, str, str, str, str]  # rollout id (or pk), content sha256, payload sha256, importer, its version
KeptLine = tuple[tuple[Origin, str], KeptChat | None]  # (the trajectory's origin, its goal text), its messages


_KEPT_FIELDS = (
    "id",
    "rollout_id",
    "content_sha256",
    "payload_sha256",
    "source_format",
    "importer_version",
    "goal_text",
)
_KEPT_SQL = """SELECT id, rollout_id, content_sha256, payload_sha256, source_format, importer_version, goal_text, chat
FROM trajectories_trajectory WHERE id = ANY(%s)"""  # _KEPT_FIELDS, then chat


def kept_chats(ids: list[int]) -> dict[int, KeptLine]:
    """For each trajectory: (its origin in a manifest — rollout id or pk, content sha256, payload sha256,
    importer, its version —, its goal text) and the chat messages it keeps (None where it keeps none of
    this version). On PostgreSQL in one prepared query with binary results (the blobs as they are)."""
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            rows: Any = cursor.execute(_KEPT_SQL, [ids], prepare=True, binary=True).fetchall()
    else:
        rows = Trajectory.objects.filter(pk__in=ids).values_list(*_KEPT_FIELDS, "chat")
    return {
        pk: ((((rollout or str(pk)), content, payload, importer, version), goal), kept_chat(chat))
        for pk, rollout, content, payload, importer, version, goal, chat in rows
    }


def steps_changed_by(ids: list[int], *, corrections: bool, drop_wrong: bool) -> set[int]:
    """The trajectories whose messages the export options change: a step's settled correction
    (`corrections`), a step settled as the wrong tool or with a process reward of −1 (`drop_wrong`)."""
    if not ids or not (corrections or drop_wrong):
        return set()
    wanted = Q()
    if corrections:
        wanted |= Q(field__startswith="corrected:")
    if drop_wrong:
        wanted |= Q(field__in=("tool_verdict", "process_reward"))
    changed = set()
    for trajectory_id, field, value in Consensus.objects.filter(
        wanted, trajectory_id__in=ids, step__isnull=False
    ).values_list("trajectory_id", "field", "value"):
        if field.startswith("corrected:") or _wrong(field, value):
            changed.add(trajectory_id)
    return changed


def _wrong(field: str, value: Any) -> bool:
    return (field == "tool_verdict" and value == "wrong") or (field == "process_reward" and value == -1)
