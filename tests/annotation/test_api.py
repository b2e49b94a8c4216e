"""Assignments over the REST API: the queue's and the workspace's selectors and services, each role's view."""

from __future__ import annotations

import pytest

from annotation.models import Assignment, AssignmentStatus
from annotation.services import assignment_claim_next, assignment_skip, step_label_save, trajectory_label_save
from tests.annotation.helpers import freeze_registry, import_runs
from tests.audit.helpers import VERDICT, step_values, team
from tests.conftest import login
from tests.trajectories.test_api import api

pytestmark = pytest.mark.smoke


@pytest.fixture
def runs(project, pm):
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.save(update_fields=["gold_rate"])
    return import_runs(project, 3)


def test_an_annotator_claims_labels_and_submits_over_the_api(project, runs, annotator) -> None:
    client = api(annotator)
    base = f"/api/projects/{project.slug}/assignments/"
    claimed = client.post(f"{base}claim/")
    assert claimed.status_code == 200, claimed.content
    mine = claimed.json()
    assert (mine["trajectory_id"], mine["status"], mine["annotator"]) == (runs[0].pk, "active", "ann1")
    assert client.post(f"{base}claim/").json()["id"] == mine["id"]  # the work in progress comes back
    incomplete = client.post(f"{base}{mine['id']}/submit/")
    assert incomplete.status_code == 400
    body = incomplete.json()
    assert body["detail"].endswith("label(s) missing")
    assert {m["step_index"] for m in body["missing"]} == {0, 1, None}
    assignment = Assignment.objects.get(pk=mine["id"])
    axes = [a["key"] for a in project.rubric_axes]
    first = runs[0].steps.get(index=0)
    step_label_save(
        annotator=annotator, assignment=assignment, step=first, values=step_values(first, axes=axes), base_version=0
    )
    labels = client.get(f"{base}{mine['id']}/labels/").json()
    assert [s["step_index"] for s in labels["steps"]] == [0] and labels["verdict"] is None
    assert labels["steps"][0]["tool_verdict"] == "right" and labels["steps"][0]["version"] == 1
    for step in runs[0].steps.exclude(index=0):
        step_label_save(
            annotator=annotator, assignment=assignment, step=step, values=step_values(step, axes=axes), base_version=0
        )
    trajectory_label_save(annotator=annotator, assignment=assignment, values=VERDICT, base_version=0)
    done = client.post(f"{base}{mine['id']}/submit/")
    assert done.status_code == 200 and done.json()["status"] == "submitted" and done.json()["submitted_at"]
    again = client.post(f"{base}{mine['id']}/submit/")
    assert again.status_code == 400 and "already submitted" in again.json()["detail"][0]
    assert client.post(f"{base}claim/").json()["trajectory_id"] == runs[1].pk
    listed = client.get(base).json()
    assert [(a["trajectory_id"], a["status"]) for a in listed["results"]] == [
        (runs[1].pk, "active"),
        (runs[0].pk, "submitted"),
    ]


def test_session_auth_works_for_the_browser(project, runs, annotator) -> None:
    response = login(annotator).post(f"/api/projects/{project.slug}/assignments/claim/")
    assert response.status_code == 200 and response.json()["trajectory_id"] == runs[0].pk


def test_claim_is_for_annotators_and_says_why_there_is_no_work(project, pm, annotator, qa_lead) -> None:
    url = f"/api/projects/{project.slug}/assignments/claim/"
    assert api(pm).post(url).status_code == 403
    assert api(qa_lead).post(url).status_code == 403
    unfrozen = api(annotator).post(url)
    assert unfrozen.status_code == 409 and "registry is frozen" in unfrozen.json()["detail"]
    freeze_registry(project, pm)
    empty = api(annotator).post(url)
    assert empty.status_code == 409 and "Nothing left to annotate" in empty.json()["detail"]
    assert not Assignment.objects.exists()


@pytest.fixture
def busy(project, pm):
    """20 runs × 3 annotators: each claims and skips, the last run of each stays in progress (60 assignments)."""
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.save(update_fields=["gold_rate"])
    runs = import_runs(project, 20)
    users = team(project, pm)
    for user in users:
        for n in range(20):
            assignment = assignment_claim_next(annotator=user, project=project)
            if n < 19:
                assignment_skip(annotator=user, assignment=assignment, reason=f"skip {n}")
    return runs, users


def test_leads_list_every_assignment_with_filters_and_pages(
    project, busy, pm, qa_lead, django_assert_max_num_queries
) -> None:
    runs, users = busy
    url = f"/api/projects/{project.slug}/assignments/"
    for lead in (pm, qa_lead):
        client = api(lead)
        with django_assert_max_num_queries(6):  # token, membership, count, the page with its annotators
            first = client.get(url).json()
        assert first["count"] == 60 and len(first["results"]) == 50 and first["next"]
        assert len(api(lead).get(url, {"page": 2}).json()["results"]) == 10
    client = api(qa_lead)
    active = client.get(url, {"status": "active"}).json()["results"]
    assert sorted(a["annotator"] for a in active) == sorted(u.username for u in users)
    one = client.get(url, {"annotator": users[1].username, "status": "skipped"}).json()
    assert one["count"] == 19 and {a["annotator"] for a in one["results"]} == {users[1].username}
    on_run = client.get(url, {"trajectory": runs[3].pk}).json()["results"]
    assert {a["trajectory_id"] for a in on_run} == {runs[3].pk} and len(on_run) == 3
    assert client.get(url, {"gold": "true"}).json()["count"] == 0
    assert client.get(url, {"gold": "false"}).json()["count"] == 60
    detail = client.get(f"{url}{on_run[0]['id']}/").json()
    assert detail == on_run[0] and detail["skip_reason"].startswith("skip ")
    for bad in ({"status": "done"}, {"trajectory": "abc"}, {"gold": "maybe"}, {"trajectory": "0"}):
        response = client.get(url, bad)
        assert response.status_code == 400 and next(iter(bad)) in response.json(), bad


def test_an_annotator_sees_only_their_own_assignments(project, busy, reviewer, outsider, pm) -> None:
    _runs, users = busy
    me, other = users[0], users[1]
    base = f"/api/projects/{project.slug}/assignments/"
    mine = api(me).get(base, {"annotator": other.username}).json()  # the filter cannot reach past their own
    assert mine["count"] == 20 and {a["annotator"] for a in mine["results"]} == {me.username}
    theirs = Assignment.objects.filter(annotator=other).order_by("-id").first()
    assert theirs is not None and theirs.status == AssignmentStatus.ACTIVE
    step = theirs.trajectory.steps.get(index=0)
    step_label_save(annotator=other, assignment=theirs, step=step, values={"comment": "secret note"}, base_version=0)
    for url in (f"{base}{theirs.pk}/", f"{base}{theirs.pk}/labels/"):
        response = api(me).get(url)
        assert response.status_code == 404 and b"secret note" not in response.content, url
    assert api(me).post(f"{base}{theirs.pk}/submit/").status_code == 404
    assert api(pm).get(f"{base}{theirs.pk}/labels/").status_code == 404  # leads read submitted labels only
    assert b"secret note" in api(other).get(f"{base}{theirs.pk}/labels/").content
    assert api(reviewer).get(base).status_code == 403
    for url in (base, f"{base}{theirs.pk}/", f"{base}{theirs.pk}/labels/"):
        assert api(outsider).get(url).status_code == 404, url
    for url in (f"{base}claim/", f"{base}{theirs.pk}/submit/"):
        assert api(outsider).post(url).status_code == 404, url
    theirs.refresh_from_db()
    assert theirs.status == AssignmentStatus.ACTIVE


def test_submitting_after_the_place_went_to_others_is_a_409(project, runs, pm, annotator) -> None:
    from datetime import timedelta

    from django.utils import timezone

    late = assignment_claim_next(annotator=annotator, project=project, now=timezone.now() - timedelta(hours=2))
    for user in team(project, pm):  # the expired lease no longer holds a place: three others take the run
        assert assignment_claim_next(annotator=user, project=project).trajectory_id == late.trajectory_id
    response = api(annotator).post(f"/api/projects/{project.slug}/assignments/{late.pk}/submit/")
    assert response.status_code == 409 and "went to another annotator" in response.json()["detail"]
    late.refresh_from_db()
    assert late.status == AssignmentStatus.ACTIVE and late.submitted_at is None
