"""A trajectory's submitted labels over the REST API: leads only, lettered and nameless until all is decided."""

from __future__ import annotations

import pytest

from annotation.services import assignment_claim_next, step_label_save
from audit.models import Escalation
from audit.services.consensus import trajectory_consensus_compute
from tests.annotation.helpers import freeze_registry, import_runs
from tests.audit.helpers import claim, label_and_submit, team
from tests.trajectories.test_api import api
from trajectories.models import TrajectoryStatus

pytestmark = pytest.mark.smoke


@pytest.fixture
def work(project, pm):
    """Three runs labelled by three annotators; on the first they disagree on step 0's process reward."""
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.review_rate = 0.0
    project.save(update_fields=["gold_rate", "review_rate"])
    runs = import_runs(project, 3)
    users = team(project, pm)
    for r, run in enumerate(runs[:2]):
        for u, user in enumerate(users):
            label_and_submit(claim(project, user, run), user, steps={0: {"process_reward": u - 1}} if r == 0 else None)
        trajectory_consensus_compute(trajectory_id=run.pk)
    return runs, users


def _url(project, run) -> str:
    return f"/api/projects/{project.slug}/trajectories/{run.pk}/labels/"


def test_a_lead_reads_the_labels_as_the_escalation_letters_them_names_once_decided(work, project, qa_lead) -> None:
    runs, users = work
    escalation = Escalation.objects.get(trajectory=runs[0])
    body = api(qa_lead).get(_url(project, runs[0])).json()
    assert body["status"] == TrajectoryStatus.ESCALATED and not body["names_shown"]
    assert [c["letter"] for c in body["labels"]] == ["A", "B", "C"]
    assert all(c["annotator"] == "" for c in body["labels"])
    assert [c["steps"][0]["process_reward"] for c in body["labels"]] == [-1, 0, 1]
    votes = api(qa_lead).get(f"/api/escalations/{escalation.pk}/").json()["votes"]
    assert [(v["letter"], v["value"]) for v in votes] == [
        (c["letter"], c["steps"][0]["process_reward"]) for c in body["labels"]
    ]
    assert [s["step_index"] for s in body["labels"][0]["steps"]] == [0, 1]
    assert body["labels"][0]["verdict"]["efficiency"] == 4
    assert "updated_at" not in body["labels"][0]["steps"][0] and "updated_at" not in body["labels"][0]["verdict"]
    for user in users:
        assert user.username.encode() not in api(qa_lead).get(_url(project, runs[0])).content
    resolved = api(qa_lead).post(
        f"/api/escalations/{escalation.pk}/resolve/",
        {"choice": "C", "kind": "annotator_error", "reason": "It worked."},
        format="json",
    )
    assert resolved.status_code == 200, resolved.content
    after = api(qa_lead).get(_url(project, runs[0])).json()
    assert after["status"] == TrajectoryStatus.AUDITED and after["names_shown"]
    assert [c["annotator"] for c in after["labels"]] == [u.username for u in users]


def test_labels_are_for_leads_only_and_never_drafts(work, project, pm, annotator, reviewer, outsider) -> None:
    runs, users = work
    agreed = api(pm).get(_url(project, runs[1])).json()
    assert agreed["status"] == TrajectoryStatus.AUDITED and agreed["names_shown"]
    assert sorted(c["annotator"] for c in agreed["labels"]) == sorted(u.username for u in users)
    draft = assignment_claim_next(annotator=annotator, project=project)
    assert draft.trajectory_id == runs[2].pk
    step = runs[2].steps.get(index=0)
    step_label_save(annotator=annotator, assignment=draft, step=step, values={"comment": "draft note"}, base_version=0)
    pending = api(pm).get(_url(project, runs[2]))
    assert pending.status_code == 200 and pending.json()["labels"] == [] and b"draft note" not in pending.content
    assert api(annotator).get(_url(project, runs[2])).status_code == 403  # not even on their own run
    assert api(users[0]).get(_url(project, runs[0])).status_code == 403
    assert api(reviewer).get(_url(project, runs[0])).status_code == 403  # reviewers see consensus, not labels
    assert api(outsider).get(_url(project, runs[0])).status_code == 404
    assert api(pm).get(f"/api/projects/{project.slug}/trajectories/999999/labels/").status_code == 404
    own = api(annotator).get(f"/api/projects/{project.slug}/assignments/{draft.pk}/labels/").json()
    assert own["steps"][0]["comment"] == "draft note"


def test_the_assignment_list_keeps_submission_times_from_leads_until_decided(work, project, qa_lead) -> None:
    runs, users = work
    url = f"/api/projects/{project.slug}/assignments/"
    escalated = api(qa_lead).get(url, {"trajectory": runs[0].pk}).json()["results"]
    assert len(escalated) == 3 and all(a["status"] == "submitted" for a in escalated)
    assert all(a["submitted_at"] is None for a in escalated)  # else the order of submissions names A, B, C
    audited = api(qa_lead).get(url, {"trajectory": runs[1].pk}).json()["results"]
    assert all(a["submitted_at"] for a in audited)
    own = api(users[0]).get(url, {"trajectory": runs[0].pk}).json()["results"]
    assert [a["annotator"] for a in own] == [users[0].username] and own[0]["submitted_at"]
