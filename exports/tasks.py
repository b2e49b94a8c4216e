"""Thin Celery wrappers around exports.services."""

from __future__ import annotations

from celery import shared_task

from exports.services.jobs import export_job_run


@shared_task(name="exports.tasks.export_job_run_task", acks_late=True, time_limit=7200, soft_time_limit=7140)
def export_job_run_task(job_id: int) -> dict[str, object]:
    job = export_job_run(job_id=job_id)
    return {"job": job.pk, "status": job.status, "records": job.records_done}
