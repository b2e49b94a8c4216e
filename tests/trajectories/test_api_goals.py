"""Goals and SWE tasks over the REST API: the goal services and selectors the pages use, each role's view."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.models import AuditEvent, Role
from core.services import membership_set
from tests.conftest import make_user
from tests.trajectories.test_api import api
from trajectories.models import Goal, SweTask
from trajectories.services import swe_tasks as swe_svc
from trajectories.services.goals import goal_create

pytestmark = pytest.mark.smoke

FIXTURES = Path(__file__).parent / "fixtures" / "goals"


def _upload(name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, (FIXTURES / name).read_bytes())


def _goals(project, pm, n: int) -> list[Goal]:
    return [
        goal_create(
            actor=pm,
            project=project,
            prompt=f"Task {i}: cancel reservation R{i:04d}",
            band="atomic" if i % 2 else "composite",
            tags=["cancel"] if i % 3 == 0 else ["booking"],
            external_id=f"g-{i}",
        )
        for i in range(n)
    ]


def test_goals_list_filters_and_pages_for_reviewers(project, pm, reviewer) -> None:
    _goals(project, pm, 60)
    url = f"/api/projects/{project.slug}/goals/"
    first = api(reviewer).get(url).json()
    assert first["count"] == 60 and len(first["results"]) == 50 and first["next"]
    second = api(reviewer).get(url, {"page": 2}).json()
    assert len(second["results"]) == 10 and second["results"][-1]["external_id"] == "g-59"
    atomic = api(reviewer).get(url, {"band": "atomic"}).json()
    assert atomic["count"] == 30 and {g["band"] for g in atomic["results"]} == {"atomic"}
    cancel = api(reviewer).get(url, {"tag": "cancel", "band": "composite"}).json()
    assert [g["external_id"] for g in cancel["results"]] == [f"g-{i}" for i in range(0, 60, 6)]
    found = api(reviewer).get(url, {"search": "R0042"}).json()
    assert [g["external_id"] for g in found["results"]] == ["g-42"]
    assert found["results"][0]["trajectory_count"] == 0
    bad = api(reviewer).get(url, {"band": "sideways"})
    assert bad.status_code == 400 and "band" in bad.json()


def test_goals_are_404_for_outsiders_and_403_for_annotators(project, pm, annotator, outsider) -> None:
    (goal,) = _goals(project, pm, 1)
    for url in (f"/api/projects/{project.slug}/goals/", f"/api/projects/{project.slug}/goals/{goal.pk}/"):
        assert api(outsider).get(url).status_code == 404, url
        assert api(annotator).get(url).status_code == 403, url
    assert api(outsider).post(f"/api/projects/{project.slug}/goals/", {"prompt": "x"}, format="json").status_code == 404
    upload = {"file": _upload("goals.csv"), "format": "csv"}
    assert (
        api(outsider).post(f"/api/projects/{project.slug}/goals/import/", upload, format="multipart").status_code == 404
    )
    detail = f"/api/projects/{project.slug}/goals/{goal.pk}/"
    assert api(outsider).patch(detail, {"band": "atomic"}, format="json").status_code == 404
    assert api(annotator).patch(detail, {"band": "atomic"}, format="json").status_code == 403
    created = api(annotator).post(f"/api/projects/{project.slug}/goals/", {"prompt": "x"}, format="json")
    assert created.status_code == 403 and Goal.objects.count() == 1


def test_a_pm_creates_and_updates_a_goal(project, pm, reviewer) -> None:
    url = f"/api/projects/{project.slug}/goals/"
    body = {
        "prompt": "Cancel ZFA04Y",
        "band": "atomic",
        "tags": ["Cancel", "cancel", "reservations"],
        "external_id": "g-1",
        "expected_actions": [{"name": "cancel_reservation", "kwargs": {"reservation_id": "ZFA04Y"}}],
    }
    response = api(pm).post(url, body, format="json")
    assert response.status_code == 201, response.content
    goal = response.json()
    assert goal["tags"] == ["cancel", "reservations"]
    assert goal["expected_actions"] == [{"name": "cancel_reservation", "arguments": {"reservation_id": "ZFA04Y"}}]
    detail = f"{url}{goal['id']}/"
    assert api(reviewer).get(detail).json()["prompt"] == "Cancel ZFA04Y"
    assert api(reviewer).patch(detail, {"band": "composite"}, format="json").status_code == 403
    patched = api(pm).patch(detail, {"band": "composite"}, format="json").json()
    assert (patched["band"], patched["prompt"], patched["tags"]) == ("composite", "Cancel ZFA04Y", goal["tags"])
    replaced = api(pm).put(detail, {"prompt": "Cancel ZFA04Y today"}, format="json").json()
    assert (replaced["band"], replaced["tags"], replaced["external_id"]) == ("", [], "")
    assert AuditEvent.objects.filter(verb="goal.update").count() == 2


def test_bad_goals_are_400_naming_the_field(project, pm) -> None:
    url = f"/api/projects/{project.slug}/goals/"
    client = api(pm)
    missing = client.post(url, {"band": "atomic"}, format="json")
    assert missing.status_code == 400 and "prompt" in missing.json()
    band = client.post(url, {"prompt": "x", "band": "sideways"}, format="json")
    assert band.status_code == 400 and "must be one of" in band.json()["band"][0]
    action = client.post(url, {"prompt": "x", "expected_actions": [{"name": ""}]}, format="json")
    assert action.status_code == 400 and "expected_actions/0/name" in action.json()
    outputs = client.post(url, {"prompt": "x", "expected_outputs": [327]}, format="json")
    assert outputs.status_code == 400 and "expected_outputs/0" in outputs.json()
    nul = client.post(url, {"prompt": "a\x00b"}, format="json")
    assert nul.status_code == 400 and b"NUL character" in nul.content  # core.middleware, before the view
    client.post(url, {"prompt": "first", "external_id": "g-1"}, format="json")
    clash = client.post(url, {"prompt": "second", "external_id": "g-1"}, format="json")
    assert clash.status_code == 400 and "already has the external id" in clash.json()["external_id"][0]
    assert Goal.objects.filter(project=project).count() == 1


def test_goal_import_reports_located_errors_and_keeps_the_valid_rows(project, pm, annotator) -> None:
    url = f"/api/projects/{project.slug}/goals/import/"
    refused = api(annotator).post(url, {"file": _upload("goals.csv"), "format": "csv"}, format="multipart")
    assert refused.status_code == 403
    response = api(pm).post(url, {"file": _upload("goals.csv"), "format": "csv"}, format="multipart")
    assert response.status_code == 200, response.content
    report = response.json()
    assert (report["created"], report["rejected"]) == (3, 3)
    assert [(e["line"], e["field"], e["column"]) for e in report["errors"]] == [
        (5, "band", 3),
        (6, "expected_actions", 5),
        (8, "prompt", 2),
    ]
    assert Goal.objects.filter(project=project).count() == 3
    again = api(pm).post(url, {"file": _upload("goals.csv"), "format": "csv"}, format="multipart").json()
    assert (again["created"], again["unchanged"]) == (0, 3)


def test_goal_import_of_tau_bench_tasks_and_file_level_errors(project, pm) -> None:
    url = f"/api/projects/{project.slug}/goals/import/"
    client = api(pm)
    tau = client.post(
        url, {"file": _upload("tau_tasks.json"), "format": "tau-bench", "env": "airline"}, format="multipart"
    )
    assert tau.status_code == 200, tau.content
    assert tau.json()["created"] >= 1
    assert Goal.objects.filter(project=project, external_id="tau-bench:airline:0").exists()
    bad_env = client.post(
        url, {"file": _upload("tau_tasks.json"), "format": "tau-bench", "env": "Air Line!"}, format="multipart"
    )
    assert bad_env.status_code == 400 and "env" in bad_env.json()
    header = SimpleUploadedFile("g.csv", b"external_id,promt\nx,y\n")
    wrong = client.post(url, {"file": header, "format": "csv"}, format="multipart")
    assert wrong.status_code == 400
    assert "line 1, column 2: unknown column 'promt'" in wrong.json()["file"][0]
    fmt = client.post(url, {"file": _upload("goals.csv"), "format": "xml"}, format="multipart")
    assert fmt.status_code == 400 and "format" in fmt.json()
    nofile = client.post(url, {"format": "csv"}, format="multipart")
    assert nofile.status_code == 400 and "file" in nofile.json()


# ---------------------------------------------------------------- SWE tasks


@pytest.fixture
def reviewer_coding(coding_project, pm):
    user = make_user("coding-reviewer")
    membership_set(actor=pm, project=coding_project, user=user, role=Role.REVIEWER)
    return user


@pytest.fixture
def tasks(coding_project, pm) -> dict[str, SweTask]:
    response = api(pm).post(
        f"/api/projects/{coding_project.slug}/swe-tasks/import/",
        {"file": _upload("swe_instances.jsonl")},
        format="multipart",
    )
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 2
    swe_svc.leak_list_upload(
        actor=pm, project=coding_project, name="Model X", stream=(FIXTURES / "leak_list.txt").open("rb")
    )
    return {t.instance_id.split("__")[0]: t for t in SweTask.objects.filter(project=coding_project)}


def test_swe_tasks_list_filters_and_detail(coding_project, tasks, reviewer_coding) -> None:
    url = f"/api/projects/{coding_project.slug}/swe-tasks/"
    client = api(reviewer_coding)
    everything = client.get(url).json()
    assert [t["instance_id"] for t in everything["results"]] == [
        "astropy__astropy-12907",
        "scikit-learn__scikit-learn-10297",
    ]
    assert "gold_patch" not in everything["results"][0]
    flagged = client.get(url, {"status": "flagged"}).json()["results"]
    assert [t["instance_id"] for t in flagged] == ["astropy__astropy-12907"] and not flagged[0]["available"]
    assert flagged[0]["contamination_flags"][0]["leak_list"] == "Model X"
    assert client.get(url, {"status": "overridden"}).json()["count"] == 0
    by_repo = client.get(url, {"repo": "scikit-learn/scikit-learn"}).json()["results"]
    assert [t["instance_id"] for t in by_repo] == ["scikit-learn__scikit-learn-10297"]
    assert client.get(url, {"repo": "scikit-learn"}).json()["count"] == 0  # a repo is named exactly
    assert client.get(url, {"search": "astropy"}).json()["count"] == 1
    assert client.get(url, {"status": "dirty"}).status_code == 400
    detail = client.get(f"{url}{tasks['scikit-learn'].pk}/").json()
    assert detail["gold_patch"].startswith("diff --git a/sklearn/") and detail["problem_statement"]


def test_a_pm_overrides_a_contaminated_task_with_a_reason(coding_project, pm, tasks, reviewer_coding) -> None:
    astropy = tasks["astropy"]
    url = f"/api/projects/{coding_project.slug}/swe-tasks/{astropy.pk}/override/"
    assert api(reviewer_coding).post(url, {"reason": "fine"}, format="json").status_code == 403
    blank = api(pm).post(url, {"reason": "   "}, format="json")
    assert blank.status_code == 400 and "reason" in blank.json()
    done = api(pm).post(url, {"reason": "Model X is not evaluated on this project"}, format="json")
    assert done.status_code == 200 and done.json()["available"], done.content
    listed = api(pm).get(f"/api/projects/{coding_project.slug}/swe-tasks/", {"status": "overridden"}).json()
    assert [t["instance_id"] for t in listed["results"]] == ["astropy__astropy-12907"]
    assert AuditEvent.objects.filter(verb="swe_task.override").count() == 1
    clean = f"/api/projects/{coding_project.slug}/swe-tasks/{tasks['scikit-learn'].pk}/override/"
    nothing = api(pm).post(clean, {"reason": "why not"}, format="json")
    assert nothing.status_code == 400 and "nothing to override" in nothing.json()["reason"][0]


def test_swe_tasks_are_404_for_outsiders_and_import_errors_are_located(coding_project, pm, tasks, outsider) -> None:
    base = f"/api/projects/{coding_project.slug}/swe-tasks/"
    for url in (base, f"{base}{tasks['astropy'].pk}/"):
        assert api(outsider).get(url).status_code == 404, url
    override = api(outsider).post(f"{base}{tasks['astropy'].pk}/override/", {"reason": "x"}, format="json")
    assert override.status_code == 404
    assert api(pm).get(f"{base}999999/").status_code == 404
    swe_upload = {"file": _upload("swe_instances.jsonl")}
    assert api(outsider).post(f"{base}import/", swe_upload, format="multipart").status_code == 404
    bad = SimpleUploadedFile("bad.jsonl", b'{"instance_id": "a__b-1", "repo": "a/b"}\n[1]\n')
    report = api(pm).post(f"{base}import/", {"file": bad}, format="multipart").json()
    assert report["created"] == 0 and report["rejected"] == 2
    assert {e["line"] for e in report["errors"]} == {1, 2}
    empty = api(pm).post(f"{base}import/", {"file": SimpleUploadedFile("e.jsonl", b"  ")}, format="multipart")
    assert empty.status_code == 400 and empty.json() == {"file": ["the file is empty"]}
