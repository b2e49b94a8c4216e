"""Pages: who sees what, HTMX fragments, escaping of untrusted content."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.conftest import login
from tests.trajectories.fixtures_util import run_import
from trajectories.models import ImportJob, ImportStatus, Trajectory

pytestmark = pytest.mark.smoke

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def _record(goal: str = "Cancel reservation ZFA04Y", observation: str = '{"status": "cancelled"}') -> bytes:
    return (
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": goal},
                    {
                        "role": "assistant",
                        "content": "Cancelling.",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "cancel_reservation", "arguments": '{"reservation_id": "ZFA04Y"}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": observation},
                    {"role": "assistant", "content": "Done, it is cancelled."},
                ],
                "metadata": {"model": "gpt-4o", "trial": 0, "reward": 1},
            }
        ).encode()
        + b"\n"
    )


@pytest.fixture
def trajectory(project) -> Trajectory:
    job = run_import(project, _record(observation=HOSTILE))
    assert job.status == ImportStatus.DONE, job.errors
    return Trajectory.objects.get(project=project)


def project_urls(project, trajectory, job_id: int) -> list[str]:
    slug = project.slug
    return [
        reverse("trajectories:project_overview", kwargs={"project_slug": slug}),
        reverse("trajectories:trajectory_list", kwargs={"project_slug": slug}),
        reverse("trajectories:trajectory_detail", kwargs={"project_slug": slug, "trajectory_id": trajectory.pk}),
        reverse("trajectories:import_detail", kwargs={"project_slug": slug, "job_id": job_id}),
    ]


def test_outsider_gets_404_on_every_project_url(project, trajectory, outsider) -> None:
    client = login(outsider)
    job = ImportJob.objects.get(project=project)
    for url in project_urls(project, trajectory, job.pk):
        assert client.get(url).status_code == 404, url
    upload = reverse("trajectories:import_upload", kwargs={"project_slug": project.slug})
    assert client.post(upload, {"upload": SimpleUploadedFile("a.jsonl", _record())}).status_code == 404
    assert ImportJob.objects.count() == 1


def test_anonymous_is_sent_to_login(project, trajectory, client) -> None:
    url = reverse("trajectories:trajectory_list", kwargs={"project_slug": project.slug})
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_project_list_shows_only_my_projects(project, coding_project, annotator) -> None:
    body = login(annotator).get(reverse("core:project_list")).content.decode()
    assert project.name in body
    assert coding_project.name not in body


def test_annotator_cannot_browse_or_upload(project, trajectory, annotator) -> None:
    client = login(annotator)
    slug = project.slug
    assert client.get(reverse("trajectories:project_overview", kwargs={"project_slug": slug})).status_code == 200
    assert client.get(reverse("trajectories:trajectory_list", kwargs={"project_slug": slug})).status_code == 403
    detail = reverse("trajectories:trajectory_detail", kwargs={"project_slug": slug, "trajectory_id": trajectory.pk})
    assert client.get(detail).status_code == 404  # not one of their assignments
    job = ImportJob.objects.get(project=project)
    assert (
        client.get(reverse("trajectories:import_detail", kwargs={"project_slug": slug, "job_id": job.pk})).status_code
        == 404
    )
    upload = reverse("trajectories:import_upload", kwargs={"project_slug": slug})
    assert client.post(upload, {"upload": SimpleUploadedFile("a.jsonl", _record("other goal"))}).status_code == 403
    assert ImportJob.objects.count() == 1


def test_reviewer_and_qa_lead_can_read(project, trajectory, reviewer, qa_lead) -> None:
    for user in (reviewer, qa_lead):
        client = login(user)
        detail = reverse(
            "trajectories:trajectory_detail", kwargs={"project_slug": project.slug, "trajectory_id": trajectory.pk}
        )
        assert client.get(detail).status_code == 200


def test_trajectory_view_renders_steps_and_escapes_content(
    project, trajectory, pm_client, django_assert_max_num_queries
) -> None:
    url = reverse(
        "trajectories:trajectory_detail", kwargs={"project_slug": project.slug, "trajectory_id": trajectory.pk}
    )
    with django_assert_max_num_queries(8):
        response = pm_client.get(url)
    body = response.content.decode()
    assert response.status_code == 200
    assert "cancel_reservation" in body and "ZFA04Y" in body and "Done, it is cancelled." in body
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert 'onerror="alert(2)"' not in body
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_long_observation_is_collapsed(project, pm_client) -> None:
    long = "\n".join(f"line {i}" for i in range(500))
    run_import(project, _record(goal="long one", observation=long))
    trajectory = Trajectory.objects.get(project=project)
    url = reverse(
        "trajectories:trajectory_detail", kwargs={"project_slug": project.slug, "trajectory_id": trajectory.pk}
    )
    body = pm_client.get(url).content.decode()
    assert "Show all 500 lines" in body
    assert body.index("line 39") < body.index("Show all 500 lines") < body.index("line 40\n")


def test_list_filters_and_htmx_fragment(project, pm_client) -> None:
    run_import(project, _record("goal A") + _record("goal B").replace(b'"gpt-4o"', b'"claude"'))
    url = reverse("trajectories:trajectory_list", kwargs={"project_slug": project.slug})
    full = pm_client.get(url, {"model": "claude"}).content.decode()
    assert "<html" in full and "goal B" in full and "goal A" not in full
    fragment = pm_client.get(url, {"q": "goal A"}, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment and 'id="results"' in fragment
    assert "goal A" in fragment and "goal B" not in fragment


def test_list_paginates(project, pm_client) -> None:
    run_import(project, b"".join(_record(f"goal {i}") for i in range(60)))
    url = reverse("trajectories:trajectory_list", kwargs={"project_slug": project.slug})
    first = pm_client.get(url).content.decode()
    assert "60 trajectories" in first and "page 1 of 2" in first
    second = pm_client.get(url, {"page": 2}).content.decode()
    assert "goal 0" in second and "goal 59" not in second


def test_pm_upload_queues_an_import_and_shows_progress(project, pm_client, django_capture_on_commit_callbacks) -> None:
    upload = reverse("trajectories:import_upload", kwargs={"project_slug": project.slug})
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = pm_client.post(
            upload, {"upload": [SimpleUploadedFile("a.jsonl", _record()), SimpleUploadedFile("b.jsonl", _record("b"))]}
        )
    assert response.status_code == 302
    assert ImportJob.objects.filter(project=project, status=ImportStatus.QUEUED).count() == 2
    assert len(callbacks) == 2  # one task enqueued per file, after commit
    job = ImportJob.objects.order_by("id").first()
    detail = reverse("trajectories:import_detail", kwargs={"project_slug": project.slug, "job_id": job.pk})
    fragment = pm_client.get(detail, headers={"HX-Request": "true"}).content.decode()
    assert 'id="progress"' in fragment and 'hx-trigger="every 1s"' in fragment and "<html" not in fragment


def test_import_report_lists_rejected_records(project, pm_client) -> None:
    job = run_import(project, _record() + b"{not json\n")
    detail = reverse("trajectories:import_detail", kwargs={"project_slug": project.slug, "job_id": job.pk})
    body = pm_client.get(detail).content.decode()
    assert "line 2" in body and "malformed JSON" in body
    assert 'hx-trigger="every 1s"' not in body  # finished: no more polling


def test_overview_shows_counts_registry_and_goal_bands(project, pm, pm_client) -> None:
    from django.utils import timezone

    from trajectories.models import Goal, Tool, ToolRegistry

    registry = ToolRegistry.objects.create(project=project, version=1, frozen_at=timezone.now(), sha256="ab" * 32)
    Tool.objects.create(registry=registry, name="cancel_reservation", parameters={"type": "object"})
    Goal.objects.create(project=project, prompt="p", prompt_sha256="0" * 64, band="composite")
    run_import(project, _record("goal A"))
    body = pm_client.get(
        reverse("trajectories:project_overview", kwargs={"project_slug": project.slug})
    ).content.decode()
    assert "v1 · 1 tools · frozen" in body
    assert "Composite 1" in body and "Atomic 0" in body
    assert "1 in all" in body
    assert "Project manager" in body


def test_import_report_names_scrubbed_secrets_and_trajectory_shows_alternatives(project, pm_client) -> None:
    record = json.loads(_record("with a key"))
    record["metadata"]["headers"] = {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz"}
    job = run_import(project, json.dumps(record).encode() + b"\n")
    detail = reverse("trajectories:import_detail", kwargs={"project_slug": project.slug, "job_id": job.pk})
    body = pm_client.get(detail).content.decode()
    assert "/metadata/headers/Authorization" in body and "abcdefghijklmnop" not in body
    trajectory = Trajectory.objects.get(project=project)
    Trajectory.objects.filter(pk=trajectory.pk).update(alternatives=[[{"tool": "search", "observation": "<b>x</b>"}]])
    url = reverse(
        "trajectories:trajectory_detail", kwargs={"project_slug": project.slug, "trajectory_id": trajectory.pk}
    )
    page = pm_client.get(url).content.decode()
    assert "Abandoned branches" in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_imports_page_refreshes_while_jobs_run_and_htmx_upload_redirects(project, pm_client, annotator) -> None:
    url = reverse("trajectories:import_upload", kwargs={"project_slug": project.slug})
    response = pm_client.post(
        url, {"upload": [SimpleUploadedFile("a.jsonl", _record())]}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200 and response["HX-Redirect"].endswith(f"/imports/{ImportJob.objects.get().pk}/")
    running = pm_client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert 'id="jobs"' in running and 'hx-trigger="every 1s"' in running and "<html" not in running
    ImportJob.objects.update(status=ImportStatus.DONE)
    assert 'hx-trigger="every 1s"' not in pm_client.get(url).content.decode()
    assert login(annotator).get(url).status_code == 403
