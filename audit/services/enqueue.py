"""Queueing audit work on the Celery workers, after the caller's transaction commits."""

from __future__ import annotations

import time
from functools import partial

from celery import current_app
from django.db import transaction

CONSENSUS_TASK = "audit.tasks.consensus_compute_task"
AGREEMENT_TASK = "audit.tasks.agreement_compute_task"


def consensus_enqueue(trajectory_id: int) -> None:
    transaction.on_commit(partial(current_app.send_task, CONSENSUS_TASK, args=[trajectory_id]))


def agreement_enqueue(project_id: int, *, bootstrap: bool = True) -> None:
    """Recompute after commit; a computation that started after this request was queued makes it a no-op."""
    transaction.on_commit(partial(current_app.send_task, AGREEMENT_TASK, args=[project_id, bootstrap, time.time()]))


def on_trajectory_annotated(trajectory_id: int) -> None:
    """The annotation hook: the last annotator submitted, so settle the trajectory's labels."""
    consensus_enqueue(trajectory_id)
