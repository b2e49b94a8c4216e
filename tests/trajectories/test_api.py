"""The REST API: token auth for scripts, the same visibility rules as the pages, OpenAPI schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.trajectories.fixtures_util import run_import
from tests.trajectories.test_views import _record
from trajectories.models import ImportJob, ImportStatus, Trajectory

pytestmark = pytest.mark.smoke


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def test_anonymous_gets_401_and_no_data(project) -> None:
    response = api().get("/api/projects/")
    assert response.status_code == 401
    assert api().get(f"/api/projects/{project.slug}/trajectories/").status_code == 401


def test_projects_list_only_mine_with_my_role(project, coding_project, annotator) -> None:
    body = api(annotator).get("/api/projects/").json()
    assert [(p["slug"], p["role"]) for p in body] == [(project.slug, "annotator")]


def test_outsider_gets_404_everywhere(project, outsider) -> None:
    job = run_import(project, _record())
    trajectory = Trajectory.objects.get(project=project)
    client = api(outsider)
    for url in (
        f"/api/projects/{project.slug}/",
        f"/api/projects/{project.slug}/trajectories/",
        f"/api/projects/{project.slug}/trajectories/{trajectory.pk}/",
        f"/api/projects/{project.slug}/imports/",
        f"/api/projects/{project.slug}/imports/{job.pk}/",
    ):
        assert client.get(url).status_code == 404, url
    upload = client.post(
        f"/api/projects/{project.slug}/imports/", {"file": SimpleUploadedFile("a.jsonl", _record("x"))}
    )
    assert upload.status_code == 404


def test_annotator_cannot_list_or_upload(project, annotator) -> None:
    run_import(project, _record())
    trajectory = Trajectory.objects.get(project=project)
    client = api(annotator)
    assert client.get(f"/api/projects/{project.slug}/trajectories/").status_code == 403
    assert client.get(f"/api/projects/{project.slug}/trajectories/{trajectory.pk}/").status_code == 404
    upload = client.post(
        f"/api/projects/{project.slug}/imports/", {"file": SimpleUploadedFile("a.jsonl", _record("y"))}
    )
    assert upload.status_code == 403
    assert ImportJob.objects.count() == 1


def test_pm_uploads_over_the_api_and_reads_the_report(project, pm, django_capture_on_commit_callbacks) -> None:
    client = api(pm)
    files = [SimpleUploadedFile("a.jsonl", _record("a") + b"{bad\n"), SimpleUploadedFile("b.jsonl", _record("b"))]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(f"/api/projects/{project.slug}/imports/", {"file": files}, format="multipart")
    assert response.status_code == 202, response.content
    assert [j["status"] for j in response.json()] == ["queued", "queued"]
    assert len(callbacks) == 2
    from trajectories.services.imports import import_job_run

    job_id = response.json()[0]["id"]
    import_job_run(job_id=job_id)
    report = client.get(f"/api/projects/{project.slug}/imports/{job_id}/").json()
    assert report["status"] == ImportStatus.DONE
    assert (report["trajectories_imported"], report["rejected"]) == (1, 1)
    assert report["errors"][0]["where"] == "line 2"


def test_upload_without_a_file_is_a_400_that_names_the_field(project, pm) -> None:
    response = api(pm).post(f"/api/projects/{project.slug}/imports/", {"format": "openai_chat"}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()
    response = api(pm).post(
        f"/api/projects/{project.slug}/imports/",
        {"file": SimpleUploadedFile("a.jsonl", _record()), "format": "nope"},
        format="multipart",
    )
    assert response.status_code == 400 and "format" in response.json()


def test_trajectories_list_filters_and_detail_has_steps(project, reviewer, django_assert_max_num_queries) -> None:
    run_import(project, _record("goal A") + _record("goal B").replace(b'"gpt-4o"', b'"claude"'))
    client = api(reviewer)
    body = client.get(f"/api/projects/{project.slug}/trajectories/", {"model": "claude"}).json()
    assert body["count"] == 1 and body["results"][0]["goal_text"] == "goal B"
    trajectory_id = body["results"][0]["id"]
    with django_assert_max_num_queries(10):
        detail = client.get(f"/api/projects/{project.slug}/trajectories/{trajectory_id}/").json()
    assert [s["kind"] for s in detail["steps"]] == ["tool_call", "respond"]
    assert detail["steps"][0]["arguments"] == {"reservation_id": "ZFA04Y"}


def test_leads_fetch_a_runs_original_record_and_annotators_cannot(project, pm, qa_lead, annotator, outsider) -> None:
    import hashlib

    run_import(project, _record("the record itself"))
    trajectory = Trajectory.objects.get(project=project)
    url = f"/api/projects/{project.slug}/trajectories/{trajectory.pk}/record/"
    for user in (pm, qa_lead):
        response = api(user).get(url)
        assert response.status_code == 200
        assert response.content == _record("the record itself").rstrip(b"\n")
        assert hashlib.sha256(response.content).hexdigest() == trajectory.payload_sha256
        assert response["Content-Type"] == "application/octet-stream"
    assert api(annotator).get(url).status_code == 404
    assert api(outsider).get(url).status_code == 404
    assert api().get(url).status_code == 401
    other = api(pm).get(f"/api/projects/{project.slug}/trajectories/{trajectory.pk + 1000}/record/")
    assert other.status_code == 404


def test_openapi_schema_describes_the_endpoints(db) -> None:
    response = api().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    text = response.content.decode()
    assert "/api/projects/{project_slug}/imports/" in text and "ImportJob" in text


REGISTRIES = Path(__file__).parent / "fixtures" / "registries"


def test_pm_uploads_a_registry_and_freezes_it_over_the_api(project, pm, reviewer, annotator, outsider) -> None:
    spec = next(p for p in sorted(REGISTRIES.iterdir()) if "openai" in p.name)
    client = api(pm)
    response = client.post(
        f"/api/projects/{project.slug}/registries/",
        {"file": SimpleUploadedFile(spec.name, spec.read_bytes())},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["version"] == 1 and not body["is_frozen"] and body["tools"]
    frozen = client.post(f"/api/projects/{project.slug}/registries/1/freeze/").json()
    assert frozen["is_frozen"] and len(frozen["sha256"]) == 64
    again = client.post(f"/api/projects/{project.slug}/registries/1/freeze/")
    assert again.status_code == 400
    assert [r["version"] for r in api(reviewer).get(f"/api/projects/{project.slug}/registries/").json()] == [1]
    assert api(annotator).get(f"/api/projects/{project.slug}/registries/").status_code == 403
    assert api(outsider).get(f"/api/projects/{project.slug}/registries/1/").status_code == 404
    bad = SimpleUploadedFile(
        "bad.json",
        b'[{"type": "function", "function": {"name": "broken", "parameters": {"type": "object", "properties": {"x": {"type": "strng"}}}}}]',
    )
    refused = client.post(f"/api/projects/{project.slug}/registries/", {"file": bad}, format="multipart")
    assert refused.status_code == 400
    (fault,) = refused.json()["file"]
    assert fault["tool"] == "broken" and fault["pointer"].endswith("/properties/x/type")
