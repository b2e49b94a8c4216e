"""The round trip through the API and a real Celery worker on Redis: the worker's import restores a full
Stepwise export (its restore hook is registered at the worker's start-up, like the web process's)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.models import Assignment
from core.models import Role
from core.services import membership_set, project_create
from tests.exports.test_roundtrip import _export
from tests.trajectories import test_worker
from tests.trajectories.test_api import api
from tests.trajectories.test_worker import _wait_for
from trajectories.models import ImportJob, ImportStatus

redis_worker = test_worker.redis_worker  # the real worker on Redis, as the import tests start it


@pytest.mark.django_db(transaction=True)
def test_an_export_uploaded_over_the_api_is_restored_by_the_worker(audited, pm, redis_worker) -> None:
    data = _export(audited, pm, "release")
    fresh = project_create(actor=pm, name="Fresh", kind="tool_use")
    membership_set(actor=pm, project=fresh, user=pm, role=Role.PROJECT_MANAGER)

    response = api(pm).post(
        f"/api/projects/{fresh.slug}/imports/",
        {"file": SimpleUploadedFile("release.jsonl", data)},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    job = ImportJob.objects.get(pk=response.json()[0]["id"])

    def finished() -> bool:
        job.refresh_from_db()
        return job.is_finished

    _wait_for(finished, timeout=60, what=f"import job {job.pk} to finish", log=redis_worker)
    assert (job.status, job.trajectories_imported, job.rejected) == (ImportStatus.DONE, 3, 0), job.errors
    assert Assignment.objects.filter(trajectory__project=fresh).count() == 9
    assert _export(fresh, pm, "release again") == data
