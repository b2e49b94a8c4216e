"""Thin Celery wrappers around audit.services."""

from __future__ import annotations

from celery import shared_task

from audit.services.consensus import trajectory_consensus_compute


@shared_task(name="audit.tasks.consensus_compute_task", acks_late=True, autoretry_for=(ConnectionError,), max_retries=3)
def consensus_compute_task(trajectory_id: int) -> dict[str, object]:
    report = trajectory_consensus_compute(trajectory_id=trajectory_id)
    return {"status": report.status, "settled": report.settled, "escalated": report.escalated}
