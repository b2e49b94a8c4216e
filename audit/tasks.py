"""Thin Celery wrappers around audit.services."""

from __future__ import annotations

from celery import shared_task

from audit.services.agreement import project_agreement_compute
from audit.services.consensus import trajectory_consensus_compute
from audit.services.enqueue import agreement_enqueue


@shared_task(name="audit.tasks.consensus_compute_task", acks_late=True, autoretry_for=(ConnectionError,), max_retries=3)
def consensus_compute_task(trajectory_id: int) -> dict[str, object]:
    report = trajectory_consensus_compute(trajectory_id=trajectory_id)
    if report.settled or report.escalated:
        agreement_enqueue(report.project_id)
    return {"status": report.status, "settled": report.settled, "escalated": report.escalated}


@shared_task(name="audit.tasks.agreement_compute_task", acks_late=True, time_limit=1800, soft_time_limit=1740)
def agreement_compute_task(
    project_id: int, bootstrap: bool = True, queued_at: float | None = None
) -> dict[str, object]:
    run = project_agreement_compute(project_id=project_id, bootstrap=bootstrap, queued_at=queued_at)
    if run is None:
        return {"skipped": "a newer computation already started"}
    return {"run": run.pk, "point_ms": run.point_ms, "bootstrap_ms": run.bootstrap_ms}
