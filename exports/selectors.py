"""Reads of the exports app."""

from __future__ import annotations

from django.db.models import Count, QuerySet
from django.http import Http404

from audit.models import Escalation, EscalationStatus
from core.models import Project
from exports.models import Batch, ExportJob


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
