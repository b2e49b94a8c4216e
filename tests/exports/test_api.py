"""Escalations, agreement, batches and exports over the REST API, with the pages' visibility rules."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from audit.models import Escalation, EscalationStatus
from audit.services.agreement import project_agreement_compute
from audit.services.consensus import trajectory_consensus_compute
from exports.models import ExportJob
from exports.services.jobs import export_job_run
from tests.annotation.helpers import freeze_registry, import_runs
from tests.audit.helpers import claim, label_and_submit, team
from tests.trajectories.test_api import api

pytestmark = pytest.mark.smoke


@pytest.fixture
def work(project, pm, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.review_rate = 0.0
    project.save(update_fields=["gold_rate", "review_rate"])
    runs = import_runs(project, 3)
    users = team(project, pm)
    for r, run in enumerate(runs):
        for u, user in enumerate(users):
            label_and_submit(claim(project, user, run), user, steps={0: {"process_reward": u - 1}} if r == 0 else None)
        trajectory_consensus_compute(trajectory_id=run.pk)
    return runs, users


def test_a_lead_resolves_an_escalation_over_the_api_blind_until_decided(work, project, qa_lead, reviewer) -> None:
    _, users = work
    escalation = Escalation.objects.get()
    assert api(reviewer).get("/api/escalations/").status_code == 404
    assert api(users[0]).get(f"/api/escalations/{escalation.pk}/").status_code == 404
    listed = api(qa_lead).get("/api/escalations/", {"project": project.slug}).json()
    assert listed["count"] == 1 and listed["results"][0]["field"] == "process_reward"
    detail = api(qa_lead).get(f"/api/escalations/{escalation.pk}/").json()
    assert [v["value"] for v in detail["votes"]] == [-1, 0, 1] and all(v["annotator"] == "" for v in detail["votes"])
    bad = api(qa_lead).post(
        f"/api/escalations/{escalation.pk}/resolve/",
        {"choice": "own", "value": 9, "kind": "ambiguous", "reason": "x"},
        format="json",
    )
    assert (bad.status_code == 400 and "process_reward" in str(bad.json())) or "−1, 0 or +1" in str(bad.json())
    done = api(qa_lead).post(
        f"/api/escalations/{escalation.pk}/resolve/",
        {"choice": "C", "kind": "annotator_error", "reason": "It worked."},
        format="json",
    )
    assert done.status_code == 200 and done.json()["status"] == EscalationStatus.RESOLVED
    assert {v["annotator"] for v in done.json()["votes"]} == {u.username for u in users}


def test_agreement_batches_and_exports_over_the_api(work, project, pm, reviewer, annotator) -> None:
    project_agreement_compute(project_id=project.pk)
    figures = api(reviewer).get(f"/api/projects/{project.slug}/agreement/", {"scope": "project"}).json()
    assert figures["definition"]["coefficient"] == "cohen_kappa" and figures["results"]
    assert api(annotator).get(f"/api/projects/{project.slug}/agreement/").status_code == 403
    url = f"/api/projects/{project.slug}/batches/"
    assert api(reviewer).post(url, {"name": "b"}, format="json").status_code == 403
    bad = api(pm).post(url, {"name": "b", "filters": {"band": ["x"]}}, format="json")
    assert bad.status_code == 400 and "/band/0" in str(bad.json())
    made = api(pm).post(url, {"name": "b", "filters": {}}, format="json")
    assert made.status_code == 201 and made.json()["trajectories"] == 2
    batch_id = made.json()["id"]
    listed = api(reviewer).get(url).json()
    assert listed["count"] == 1 and [b["id"] for b in listed["results"]] == [batch_id]
    exports = f"{url}{batch_id}/exports/"
    queued = api(pm).post(exports, {"format": "sharegpt", "options": {"parquet": True}}, format="json")
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    assert api(pm).post(exports, {"format": "csv"}, format="json").status_code == 400
    export_job_run(job_id=queued.json()["id"])
    job = api(reviewer).get(f"{exports}{queued.json()['id']}/").json()
    assert job["status"] == "done" and [f["name"] for f in job["files"]][1:] == [
        job["files"][0]["name"].replace(".jsonl", ".parquet"),
        "dataset_info.json",
        "README.md",
        "manifest.json",
    ]
    assert ExportJob.objects.count() == 1
    assert [j["id"] for j in api(reviewer).get(exports).json()["results"]] == [queued.json()["id"]]
    assert api(reviewer).get(exports, {"page": 2}).status_code == 404  # past the last page


def test_the_schema_has_no_warning(db, tmp_path) -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    text = (tmp_path / "schema.yml").read_text()
    assert "/api/escalations/{escalation_id}/resolve/" in text and "/api/projects/{project_slug}/batches/" in text


def test_interactive_docs_come_from_this_server_under_the_strict_policy(project, pm) -> None:
    from tests.conftest import login

    assert api().get("/api/docs/").status_code == 200  # public, like the schema it shows: no data in either
    page = login(pm).get("/api/docs/")
    html = page.content.decode()
    assert page.status_code == 200 and "swagger-ui" in html
    assert "https://" not in html.split("<body")[0] and "cdn" not in html.lower()
    assert "<script>" not in html  # scripts by src only: the CSP allows nothing inline
    script = login(pm).get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()
