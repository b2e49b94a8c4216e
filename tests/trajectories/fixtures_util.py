"""Helpers for building small agent-run files in tests."""

from __future__ import annotations

import io

from core.models import Project
from trajectories.models import ImportJob
from trajectories.services.imports import import_job_run, source_file_store


def run_import(
    project: Project, data: bytes, *, name: str = "runs.jsonl", format_name: str = "", actor=None
) -> ImportJob:
    """Store `data` as an upload and run its import in this process (no worker)."""
    source = source_file_store(actor=actor, project=project, name=name, stream=io.BytesIO(data))
    job = ImportJob.objects.create(
        project=project, source_file=source, format_requested=format_name, bytes_total=source.size
    )
    return import_job_run(job_id=job.pk)
