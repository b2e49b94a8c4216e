"""Creating a project and editing its settings, in the browser and over the API."""

from __future__ import annotations

import copy

import orjson
import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from annotation.models import StepLabel
from annotation.services import NoWork, assignment_claim_next, gold_item_create, step_label_save
from audit.models import Consensus
from audit.services.agreement import load_labels
from audit.services.consensus import trajectory_consensus_compute
from core.models import AuditEvent, Membership, Project, Role
from core.services import project_update
from tests.annotation.helpers import freeze_registry, import_runs
from tests.audit.helpers import claim, label_and_submit, team
from tests.conftest import login, make_user
from tests.trajectories.test_api import api

pytestmark = pytest.mark.smoke


def creator(username: str = "starter"):
    user = make_user(username)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="core", codename="add_project"))
    return user


def settings_url(project: Project) -> str:
    return reverse("core:project_settings", kwargs={"project_slug": project.slug})


def form_data(project: Project, **changes) -> dict[str, str]:
    """What the settings page posts when nothing is changed, with `changes` typed over it."""
    data = {
        "name": project.name,
        "description": project.description,
        "guidelines": project.guidelines,
        "overlap": str(project.overlap),
        "agreement_target": str(project.agreement_target),
        "calibration_threshold": str(project.calibration_threshold),
        "gold_rate": str(project.gold_rate),
        "review_rate": str(project.review_rate),
        "rubric_axes": orjson.dumps(project.rubric_axes).decode(),
        "failure_taxonomy": orjson.dumps(project.failure_taxonomy).decode(),
    }
    return data | {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in changes.items()}


# --- creating ------------------------------------------------------------------------------------------


def test_a_permission_holder_creates_a_project_and_becomes_its_manager(db) -> None:
    client = login(creator())
    assert "New project" in client.get(reverse("core:project_list")).content.decode()
    response = client.post(
        reverse("core:project_new"), {"name": "Retail desk", "kind": "coding", "slug": "", "description": "Shop"}
    )
    project = Project.objects.get(slug="retail-desk")
    assert response.status_code == 302 and response["Location"] == settings_url(project)
    assert project.kind == "coding" and project.description == "Shop"
    assert project.rubric_axes[0]["key"] == "relevance"  # the kind's defaults
    assert Membership.objects.get(project=project).role == Role.PROJECT_MANAGER
    assert AuditEvent.objects.filter(project=project, verb="project.create").count() == 1
    assert client.get(settings_url(project)).status_code == 200


def test_staff_create_with_their_own_slug(staff) -> None:
    response = login(staff).post(reverse("core:project_new"), {"name": "Desk", "kind": "tool_use", "slug": "d-2"})
    assert response.status_code == 302
    assert Membership.objects.get(project__slug="d-2", user=staff).role == Role.PROJECT_MANAGER


def test_others_see_no_button_and_are_refused(project, pm_client, annotator) -> None:
    for client in (pm_client, login(annotator)):  # a project manager without the permission too
        assert "New project" not in client.get(reverse("core:project_list")).content.decode()
        assert client.get(reverse("core:project_new")).status_code == 403
        assert client.post(reverse("core:project_new"), {"name": "Mine", "kind": "coding"}).status_code == 403
    assert not Project.objects.filter(name="Mine").exists()


@pytest.mark.parametrize(
    "data, field, message",
    [
        (
            {"name": "Airline desk", "kind": "coding"},
            "slug",
            "a project with slug &#x27;airline-desk&#x27; already exists",
        ),
        ({"name": "X", "kind": "coding", "slug": "not a slug!"}, "slug", "Enter a valid “slug”"),
        ({"name": "X", "kind": "chess"}, "kind", "Select a valid choice"),
        ({"name": "", "kind": "coding"}, "name", "This field is required"),
        ({"name": "!!!", "kind": "coding"}, "slug", "the name gives no slug (letters or digits): give one"),
    ],
)
def test_bad_new_project_is_a_422_on_its_field(project, data, field, message) -> None:
    count = Project.objects.count()
    response = login(creator()).post(reverse("core:project_new"), data)
    assert response.status_code == 422
    body = response.content.decode()
    assert f'id="{field}-error-1"' in body and message in body
    assert Project.objects.count() == count


# --- the settings page -------------------------------------------------------------------------------------


def test_settings_are_saved_with_one_audit_event_of_the_changed_fields(project, pm_client) -> None:
    taxonomy = [*project.failure_taxonomy, {"key": "loop", "label": "Loop", "severity": "high"}]
    page = pm_client.get(settings_url(project)).content.decode()
    assert 'name="rubric_axes"' in page and "version 1" in page
    response = pm_client.post(
        settings_url(project), form_data(project, overlap="2", gold_rate="0.2", failure_taxonomy=taxonomy)
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.overlap, project.gold_rate, project.failure_taxonomy[-1]["key"]) == (2, 0.2, "loop")
    event = AuditEvent.objects.get(project=project, verb="project.update")
    assert event.before == {"overlap": 3, "gold_rate": 0.05, "failure_taxonomy": taxonomy[:-1]}
    assert event.after == {"overlap": 2, "gold_rate": 0.2, "failure_taxonomy": taxonomy}
    assert project.guideline_version == 1
    pm_client.post(settings_url(project), form_data(project))  # nothing changed: no event
    assert AuditEvent.objects.filter(project=project, verb="project.update").count() == 1


def test_changed_guidelines_bump_the_version_and_the_page_says_so(project, pm_client) -> None:
    response = pm_client.post(settings_url(project), form_data(project, guidelines="# Rules\r\nBe exact."), follow=True)
    assert "Guidelines are now version 2." in response.content.decode()
    project.refresh_from_db()
    assert (project.guidelines, project.guideline_version) == ("# Rules\nBe exact.", 2)
    event = AuditEvent.objects.get(project=project, verb="project.update")
    assert event.before == {"guidelines": "", "guideline_version": 1}
    assert event.after == {"guidelines": "# Rules\nBe exact.", "guideline_version": 2}
    # the same text sent back (a browser ends lines with CRLF) is no change
    pm_client.post(settings_url(project), form_data(project, guidelines="# Rules\r\nBe exact."))
    project.refresh_from_db()
    assert project.guideline_version == 2


def _rubric_with(project: Project, index: int, **item) -> list:
    axes = copy.deepcopy(project.rubric_axes)
    axes[index] |= item
    return axes


@pytest.mark.parametrize(
    "make, field, message",
    [
        (lambda p: {"rubric_axes": _rubric_with(p, 1, key="Bad Key")}, "rubric_axes", "/1/key: &#x27;Bad Key&#x27; is not a key"),
        (lambda p: {"rubric_axes": _rubric_with(p, 2, anchors={"6": "x"})}, "rubric_axes", "/2/anchors: &#x27;6&#x27; is not a score"),
        (lambda p: {"rubric_axes": _rubric_with(p, 3, key="politeness")}, "rubric_axes", "/3/key: &#x27;politeness&#x27; is already the key of /0"),
        (lambda p: {"rubric_axes": _rubric_with(p, 0, label="")}, "rubric_axes", "/0/label: must not be empty"),
        (lambda p: {"rubric_axes": _rubric_with(p, 0, label="a\x00b")}, "rubric_axes", "/0/label: must not contain a NUL character"),
        (lambda p: {"rubric_axes": '[{"key": "a",\n "label": }]'}, "rubric_axes", "not JSON: line 2, column"),
        (lambda p: {"rubric_axes": {"key": "a"}}, "rubric_axes", "/: must be of type array (not dict)"),
        (lambda p: {"failure_taxonomy": [{"key": "none", "label": "None"}]}, "failure_taxonomy", "/0/key: &#x27;none&#x27; is reserved"),
        (lambda p: {"failure_taxonomy": [{"key": "a", "label": "A", "severity": "grave"}]}, "failure_taxonomy", "/0/severity: &#x27;grave&#x27; is not one of"),
        (lambda p: {"failure_taxonomy": [{"key": f"t{i}", "label": "T"} for i in range(61)]}, "failure_taxonomy", "/: at most 60 items (this has 61)"),
        (lambda p: {"overlap": "12"}, "overlap", "must be between 1 and 9"),
        (lambda p: {"gold_rate": "1.5"}, "gold_rate", "must be between 0 and 1"),
        (lambda p: {"agreement_target": "nan"}, "agreement_target", "Enter a number"),
        (lambda p: {"agreement_target": "-1.5"}, "agreement_target", "must be between -1 and 1"),
        (lambda p: {"name": "   "}, "name", "This field is required"),
    ],
)  # fmt: skip
def test_each_bad_setting_is_a_422_on_its_field_and_nothing_is_saved(project, pm_client, make, field, message) -> None:
    before = Project.objects.values().get(pk=project.pk)
    good = {"guidelines": "New text", "overlap": "2"}  # valid changes in the same post are not saved either
    response = pm_client.post(settings_url(project), form_data(project, **(good | make(project))))
    assert response.status_code == 422
    body = response.content.decode()
    assert f'id="{field}-error-1"' in body and message in body, body[body.find("error") :][:600]
    assert "Nothing was saved" in body
    assert Project.objects.values().get(pk=project.pk) == before
    assert not AuditEvent.objects.filter(project=project, verb="project.update").exists()


def test_an_axis_the_consensus_rules_name_cannot_be_removed(project, pm) -> None:
    project.consensus_rules = {"critical_axes": ["cost"]}
    project.save(update_fields=["consensus_rules"])
    fewer = [a for a in project.rubric_axes if a["key"] != "cost"]
    response = login(pm).post(settings_url(project), form_data(project, rubric_axes=fewer))
    assert response.status_code == 422
    assert "the consensus rules&#x27; /critical_axes name &#x27;cost&#x27;" in response.content.decode()
    project.refresh_from_db()
    assert "cost" in [a["key"] for a in project.rubric_axes]
    # an axis they do not name may go (labels that scored it still read: every reader skips unknown axes)
    project_update(
        actor=pm, project=project, changes={"rubric_axes": [a for a in project.rubric_axes if a["key"] != "latency"]}
    )
    project.refresh_from_db()
    assert [a["key"] for a in project.rubric_axes] == ["politeness", "clarification", "refusal_correctness", "cost"]


def test_only_project_managers_reach_the_settings(project, annotator, qa_lead, outsider) -> None:
    url = settings_url(project)
    for member in (annotator, qa_lead):
        assert login(member).get(url).status_code == 403
        assert login(member).post(url, form_data(project, overlap="1")).status_code == 403
    assert login(outsider).get(url).status_code == 404
    assert login(outsider).post(url, form_data(project, overlap="1")).status_code == 404
    project.refresh_from_db()
    assert project.overlap == 3
    overview = reverse("trajectories:project_overview", kwargs={"project_slug": project.slug})
    assert url not in login(annotator).get(overview).content.decode()
    assert url in login(project.created_by).get(overview).content.decode()


# --- the API ------------------------------------------------------------------------------------------------


def test_api_create_needs_the_permission(project, pm) -> None:
    assert api(pm).post("/api/projects/", {"name": "Nope", "kind": "coding"}, format="json").status_code == 403
    starter = creator()
    response = api(starter).post("/api/projects/", {"name": "Retail", "kind": "coding"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["slug"] == "retail" and response.json()["role"] == "project_manager"
    assert Membership.objects.get(project__slug="retail").user == starter
    again = api(starter).post("/api/projects/", {"name": "Retail", "kind": "coding"}, format="json")
    assert again.status_code == 400 and "already exists" in again.json()["slug"][0]
    bad = api(starter).post("/api/projects/", {"name": "R", "kind": "chess"}, format="json")
    assert bad.status_code == 400 and "kind" in bad.json()


def test_api_patch_by_the_project_manager(project, pm, annotator, outsider) -> None:
    url = f"/api/projects/{project.slug}/"
    response = api(pm).patch(url, {"overlap": 1, "guidelines": "Be exact."}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["overlap"] == 1 and response.json()["guideline_version"] == 2
    event = AuditEvent.objects.get(project=project, verb="project.update")
    assert event.after == {"overlap": 1, "guidelines": "Be exact.", "guideline_version": 2}
    bad = api(pm).patch(url, {"rubric_axes": [{"key": "ok", "label": "OK"}, {"key": "x"}]}, format="json")
    assert bad.status_code == 400
    assert bad.json()["rubric_axes"] == ["/1: 'label' is a required property"]
    assert api(pm).patch(url, {"gold_rate": 2}, format="json").status_code == 400
    assert api(annotator).patch(url, {"overlap": 2}, format="json").status_code == 403
    assert api(outsider).patch(url, {"overlap": 2}, format="json").status_code == 404
    project.refresh_from_db()
    assert project.overlap == 1 and project.gold_rate == 0.05


# --- what the queue then uses ---------------------------------------------------------------------------


def test_the_queue_uses_the_overlap_and_gold_rate_as_saved(project, pm, pm_client, annotator, annotator2) -> None:
    freeze_registry(project, pm)
    gold_run, run = import_runs(project, 2)
    reference = {str(s.index): {"failure_modes": ["none"], "process_reward": 1} for s in gold_run.steps.all()}
    for step in gold_run.steps.filter(kind="tool_call"):
        reference[str(step.index)] |= {"argument_verdicts": {"reservation_id": "valid"}, "tool_verdict": "right"}
    gold_item_create(actor=pm, trajectory=gold_run, reference=reference)
    assert pm_client.post(settings_url(project), form_data(project, overlap="1", gold_rate="0")).status_code == 302
    project.refresh_from_db()  # as every request reads it
    first = assignment_claim_next(annotator=annotator, project=project)
    assert not first.is_gold and first.trajectory_id == run.pk
    with pytest.raises(NoWork):  # one annotator per run now, and no gold handed out
        assignment_claim_next(annotator=annotator2, project=project)
    assert pm_client.post(settings_url(project), form_data(project, gold_rate="1")).status_code == 302
    project.refresh_from_db()
    assert assignment_claim_next(annotator=annotator2, project=project).trajectory_id == gold_run.pk


# --- removing a key that labels use ----------------------------------------------------------------------


def test_an_axis_and_a_tag_that_labels_use_may_be_removed_and_those_labels_still_read(
    project, pm, pm_client, annotator
) -> None:
    """Every reader iterates the project's current keys: consensus, agreement, the reports page and the
    annotator's workspace still read labels holding a removed axis or tag (project_update allows it)."""

    freeze_registry(project, pm)
    project_update(actor=pm, project=project, changes={"gold_rate": 0.0, "review_rate": 0.0})
    run, second = import_runs(project, 2)
    for user in team(project, pm):
        label_and_submit(claim(project, user, run), user, steps={1: {"failure_modes": ["wrong_tool"]}})
    draft = assignment_claim_next(annotator=annotator, project=project)  # a draft using both
    assert draft.trajectory_id == second.pk
    step = draft.trajectory.steps.get(index=1)
    step_label_save(
        annotator=annotator,
        assignment=draft,
        step=step,
        values={"failure_modes": ["wrong_tool"], "rubric": {"cost": 2}},
        base_version=0,
    )
    axes = [a for a in project.rubric_axes if a["key"] != "cost"]
    taxonomy = [t for t in project.failure_taxonomy if t["key"] != "wrong_tool"]
    response = pm_client.post(settings_url(project), form_data(project, rubric_axes=axes, failure_taxonomy=taxonomy))
    assert response.status_code == 302
    project.refresh_from_db()
    assert "cost" not in str(project.rubric_axes) and "wrong_tool" not in str(project.failure_taxonomy)
    assert StepLabel.objects.filter(rubric__has_key="cost").count() == 3 * run.steps.count() + 1  # still stored

    report = trajectory_consensus_compute(trajectory_id=run.pk)
    fields = set(Consensus.objects.filter(trajectory=run).values_list("field", flat=True))
    assert report.settled > 0 and "rubric:politeness" in fields and "rubric:cost" not in fields
    assert load_labels(project) is not None
    assert pm_client.get(reverse("reports", kwargs={"project_slug": project.slug})).status_code == 200
    workspace = reverse("annotation:step", kwargs={"project_slug": project.slug, "assignment_id": draft.pk, "index": 1})
    page = login(annotator).get(workspace)
    assert page.status_code == 200 and "wrong_tool" not in page.content.decode()
    step_label_save(  # the draft saves again with what the form now offers
        annotator=annotator, assignment=draft, step=step, values={"failure_modes": ["schema_drift"]}, base_version=1
    )
