"""Thin Celery wrappers around verification.services."""

from __future__ import annotations

from celery import shared_task

from verification.services import trajectories_verify


@shared_task(
    name="verification.tasks.verify_trajectories_task",
    acks_late=True,
    time_limit=1800,
    soft_time_limit=1740,
    autoretry_for=(ConnectionError,),
    max_retries=3,
)
def verify_trajectories_task(trajectory_ids: list[int], kinds: list[str] | None = None) -> dict[str, int]:
    return trajectories_verify(trajectory_ids=trajectory_ids, kinds=kinds)
