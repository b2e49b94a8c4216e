import logging

from celery import shared_task

from trajectories.models import ImportJob
from trajectories.services.imports import import_job_run

logger = logging.getLogger(__name__)


@shared_task(
    name="trajectories.tasks.import_job_run_task", acks_late=True, time_limit=6 * 3600, soft_time_limit=6 * 3600 - 60
)
def import_job_run_task(job_id: int) -> str:
    try:
        return import_job_run(job_id=job_id).status
    except ImportJob.DoesNotExist:
        logger.warning("import job %s no longer exists; nothing to do", job_id)
        return "missing"
