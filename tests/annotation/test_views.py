"""The annotator's workspace pages: queue, step view, autosave, suggestions, submit — and who sees what."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import Assignment, AssignmentStatus, StepLabel
from annotation.selectors import AxisRow
from annotation.services import (
    assignment_claim_next,
    assignment_skip,
    step_label_save,
)
from annotation.templatetags.annotation_tags import ansi_lines, failure_mode_chips, observation_view, rubric_chips
from core.models import Project
from tests.conftest import login
from tests.trajectories.fixtures_util import run_import
from trajectories.models import Step, Trajectory
from trajectories.services.registries import registry_create, registry_freeze
from verification.models import Finding
from verification.services import trajectory_verify

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'
HX = {"HTTP_HX_REQUEST": "true"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_reservation_details",
            "description": "Look up a reservation by its id.",
            "parameters": {
                "type": "object",
                "properties": {
                    "reservation_id": {
                        "type": "string",
                        "pattern": "^[A-Z0-9]{6}$",
                        "description": "Six letters or digits.",
                    },
                },
                "required": ["reservation_id"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "update_reservation_flights",
            "description": "Change the cabin of a reservation.",
            "parameters": {
                "type": "object",
                "properties": {
                    "reservation_id": {"type": "string", "description": "The reservation."},
                    "cabin": {
                        "type": "string",
                        "enum": ["economy", "business"],
                        "description": "The cabin class.",
                    },
                },
                "required": ["reservation_id", "cabin"],
                "additionalProperties": False,
            },
        },
    },
]


def _record(calls: list[tuple[str, dict[str, Any], str]], *, goal: str = "Upgrade ZFA04Y to business") -> bytes:
    messages: list[dict[str, Any]] = [{"role": "user", "content": goal}]
    for n, (name, arguments, observation) in enumerate(calls):
        messages.append(
            {
                "role": "assistant",
                "content": f"Calling {name}.",
                "tool_calls": [
                    {"id": f"c{n}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": f"c{n}", "content": observation})
    messages.append({"role": "assistant", "content": "Done: you are in business now."})
    return json.dumps({"messages": messages, "metadata": {"model": "gpt-4o", "trial": 0, "reward": 1}}).encode() + b"\n"


CALLS = [
    ("get_reservation_details", {"reservation_id": "ZFA04Y"}, '{"reservation_id": "ZFA04Y", "cabin": "economy"}'),
    ("update_reservation_flights", {"reservation_id": "ZFA04Y", "cabin": "busines"}, HOSTILE),
]


def _freeze(project: Project, pm) -> None:
    registry_freeze(actor=pm, registry=registry_create(actor=pm, project=project, tools=TOOLS))


def _import(project: Project, calls=CALLS, **kw) -> Trajectory:
    before = set(Trajectory.objects.filter(project=project).values_list("id", flat=True))
    job = run_import(project, _record(calls, **kw))
    assert job.status == "done", job.errors
    trajectory = Trajectory.objects.filter(project=project).exclude(id__in=before).get()
    trajectory_verify(trajectory_id=trajectory.pk)
    return trajectory


@pytest.fixture
def trajectory(project, pm) -> Trajectory:
    _freeze(project, pm)
    return _import(project)


@pytest.fixture
def assignment(trajectory, annotator) -> Assignment:
    return assignment_claim_next(annotator=annotator, project=trajectory.project)


def url(name: str, assignment: Assignment | None = None, **kw: Any) -> str:
    slug = kw.pop("project_slug", None) or assignment.trajectory.project.slug  # type: ignore[union-attr]
    if assignment is not None:
        kw["assignment_id"] = assignment.pk
    return reverse(f"annotation:{name}", kwargs={"project_slug": slug, **kw})


def _step(assignment: Assignment, index: int) -> Step:
    return Step.objects.get(trajectory=assignment.trajectory, index=index)


def _complete_step(assignment: Assignment, step: Step, annotator) -> None:
    values: dict[str, Any] = {
        "failure_modes": ["none"],
        "process_reward": 1,
        "rubric": {a["key"]: 4 for a in assignment.trajectory.project.rubric_axes},
    }
    if step.kind == "tool_call":
        values |= {
            "argument_verdicts": {name: "valid" for name in step.arguments},
            "tool_verdict": "right",
            "env_feedback": "success",
        }
    label = StepLabel.objects.filter(assignment=assignment, step=step).first()
    step_label_save(
        annotator=annotator, assignment=assignment, step=step, values=values, base_version=label.version if label else 0
    )


# --- the queue -------------------------------------------------------------------------------------------


def test_queue_for_an_annotator_and_start_next(trajectory, annotator) -> None:
    client = login(annotator)
    queue = url("queue", project_slug=trajectory.project.slug)
    response = client.get(queue)
    assert response.status_code == 200
    assert b"Start next" in response.content and b'id="done-today"' in response.content
    response = client.post(url("start_next", project_slug=trajectory.project.slug))
    assignment = Assignment.objects.get(annotator=annotator)
    assert response.status_code == 302 and response["Location"] == url("assignment", assignment)
    response = client.get(response["Location"])
    assert response.status_code == 302 and response["Location"] == url("step", assignment, index=0)
    page = client.get(queue).content.decode()
    assert url("assignment", assignment) in page  # in progress


def test_start_next_shows_why_there_is_no_work(project, annotator) -> None:
    client = login(annotator)
    response = client.post(url("start_next", project_slug=project.slug), follow=True)
    assert "registry is frozen" in response.content.decode()


def test_queue_for_a_project_manager_shows_progress_claims_and_skips(trajectory, pm, annotator, annotator2) -> None:
    other = _import(trajectory.project, goal="Another goal")
    mine = assignment_claim_next(annotator=annotator, project=trajectory.project)
    theirs = assignment_claim_next(annotator=annotator2, project=trajectory.project)
    assignment_skip(annotator=annotator2, assignment=theirs, reason="The goal text is <b>garbled</b>")
    page = login(pm).get(url("queue", project_slug=trajectory.project.slug)).content.decode()
    assert f'data-trajectory="{trajectory.pk}"' in page and f'data-trajectory="{other.pk}"' in page
    assert "ann1" in page and "0/3" in page  # who holds a live claim; nothing submitted yet
    assert mine.trajectory_id in (trajectory.pk, other.pk)
    assert "The goal text is &lt;b&gt;garbled&lt;/b&gt;" in page and "ann2" in page
    assert "Start next" not in page


def test_the_queue_never_shows_an_annotator_others_work(trajectory, annotator, annotator2) -> None:
    theirs = assignment_claim_next(annotator=annotator2, project=trajectory.project)
    page = login(annotator).get(url("queue", project_slug=trajectory.project.slug)).content.decode()
    assert "ann2" not in page and url("assignment", theirs) not in page
    assert 'id="progress"' not in page and "gold" not in page.lower()


def test_queue_progress_pages_are_htmx_fragments(trajectory, pm) -> None:
    response = login(pm).get(url("queue", project_slug=trajectory.project.slug), **HX)
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<section class="card" id="progress">')


# --- the step view -------------------------------------------------------------------------------------------


def test_step_view_shows_arguments_with_their_schema_and_the_findings(assignment, annotator) -> None:
    assert Finding.objects.filter(trajectory=assignment.trajectory, code="not_in_enum").exists()
    page = login(annotator).get(url("step", assignment, index=1)).content.decode()
    assert "update_reservation_flights" in page and "Change the cabin of a reservation." in page
    assert "&quot;busines&quot;" in page  # the value, as JSON
    assert "enum:" in page and "economy" in page and "The cabin class." in page and "required" in page
    assert 'data-arg="cabin"' in page and 'data-arg-index="1"' in page
    assert 'data-code="not_in_enum"' in page and "Accept" in page
    assert 'id="save-state"' in page and 'id="label-version"' in page and 'value="0"' in page
    assert "is_gold" not in page and "gold" not in page.lower()


def test_step_fragment_for_htmx(assignment, annotator) -> None:
    response = login(annotator).get(url("step", assignment, index=0), **HX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="workspace"') and "<html" not in body
    assert "Look up a reservation by its id." in body and "Six letters or digits." in body
    assert 'id="step-position">step 1 / 3<' in body
    # The outline stays on the page: only this step's line comes, out of band, marked current.
    assert body.count('<li id="outline-') == 1
    assert '<li id="outline-0" class="u current" hx-swap-oob="true"><a href="../0/" aria-current="step">' in body


def test_the_full_page_carries_the_whole_outline(assignment, annotator) -> None:
    page = login(annotator).get(url("step", assignment, index=1)).content.decode()
    assert page.count('<li id="outline-') == 3 and "hx-swap-oob" not in page
    assert page.index('id="step-card"') < page.index('id="outline"')  # the step is parsed (and painted) first
    assert (
        'id="step-position">step 2 / 3<' in page
        and 'id="steps-done" class="muted" hx-preserve="true">0 complete' in page
    )


def test_respond_step_shows_the_reply_and_no_argument_fields(assignment, annotator) -> None:
    page = login(annotator).get(url("step", assignment, index=2)).content.decode()
    assert "Done: you are in business now." in page
    assert 'data-field="argument_verdicts"' not in page and 'name="tool_verdict"' not in page
    assert 'name="process_reward"' in page and 'data-axis="politeness"' in page


def test_observation_html_is_shown_as_text(assignment, annotator) -> None:
    page = login(annotator).get(url("step", assignment, index=1)).content.decode()
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_json_observation_is_a_collapsible_tree(assignment, annotator) -> None:
    page = login(annotator).get(url("step", assignment, index=0)).content.decode()
    assert 'class="jtree"' in page and 'data-path="/cabin"' in page and "&quot;economy&quot;" in page


def test_unknown_step_is_404(assignment, annotator) -> None:
    assert login(annotator).get(url("step", assignment, index=99)).status_code == 404


# --- autosave ------------------------------------------------------------------------------------------------


def _save(client: Client, assignment: Assignment, index: int, data: dict[str, Any], **extra: Any):
    return client.post(url("step_save", assignment, index=index), data, **HX, **extra)


def test_autosave_returns_the_new_version_and_the_save_state(assignment, annotator) -> None:
    client = login(annotator)
    names = list(_step(assignment, 1).arguments)  # as the page numbers them (the database's key order)
    data = {
        "field": ["argument_verdicts", "tool_verdict"],
        f"verdict-{names.index('reservation_id')}": "valid",
        f"verdict-{names.index('cabin')}": "invalid",
    }
    response = _save(client, assignment, 1, {**data, "tool_verdict": "right", "base_version": 0, "elapsed_ms": 2500})
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="label-version"' in body and 'value="1"' in body and "saved ✓" in body
    assert 'id="outline-' not in body and len(body) < 2_000  # no panel, no outline line: status and version
    event = json.loads(response["HX-Trigger"])["stepwise:status"]
    assert event["index"] == 1 and event["status"] == "d" and "environment feedback" in event["missing"]
    label = StepLabel.objects.get(assignment=assignment, step=_step(assignment, 1))
    assert label.argument_verdicts == {"reservation_id": "valid", "cabin": "invalid"} and label.tool_verdict == "right"
    assert label.time_spent_ms == 2500
    response = _save(client, assignment, 1, {"field": "comment", "comment": "typo in the cabin", "base_version": 1})
    assert 'value="2"' in response.content.decode()
    label.refresh_from_db()
    assert label.comment == "typo in the cabin" and label.tool_verdict == "right"  # only the sent group changed


def test_a_draft_survives_a_reload(assignment, annotator) -> None:
    client = login(annotator)
    _save(client, assignment, 1, {"field": "failure_modes", "failure_modes": ["schema_drift"], "base_version": 0})
    page = client.get(url("step", assignment, index=1)).content.decode()
    assert 'value="schema_drift" data-group="failure_modes" data-mode="schema_drift" checked' in page
    assert 'id="label-version" name="base_version" value="1"' in page


def test_a_stale_version_is_a_409_conflict_that_keeps_the_input(assignment, annotator) -> None:
    client = login(annotator)
    _save(client, assignment, 1, {"field": "comment", "comment": "first tab", "base_version": 0})
    response = _save(client, assignment, 1, {"field": "comment", "comment": "second tab", "base_version": 0})
    body = response.content.decode()
    assert response.status_code == 409
    assert "conflict — your input is kept" in body and 'data-state="conflict"' in body
    assert 'id="labels-form"' not in body and 'id="label-version"' not in body  # the inputs are not replaced
    assert StepLabel.objects.get(assignment=assignment, step=_step(assignment, 1)).comment == "first tab"


def test_an_invalid_corrected_value_is_a_422_with_the_error_beside_the_field(assignment, annotator) -> None:
    client = login(annotator)
    data = {"field": "corrected_arguments", "corrected-0": "not-an-id", "base_version": 0}
    response = _save(client, assignment, 0, data)
    body = response.content.decode()
    assert response.status_code == 422
    assert 'id="err-corrected-0"' in body and "schema" in body and "not saved" in body
    assert not StepLabel.objects.filter(assignment=assignment).exists()
    response = _save(client, assignment, 0, {**data, "corrected-0": "ZFA05Y"})
    assert response.status_code == 200
    assert StepLabel.objects.get(assignment=assignment).corrected_arguments == {"reservation_id": "ZFA05Y"}


def test_none_with_a_failure_mode_is_refused_beside_the_field(assignment, annotator) -> None:
    response = _save(
        login(annotator), assignment, 1, {"field": "failure_modes", "failure_modes": ["none", "wrong_tool"]}
    )
    assert response.status_code == 422 and 'id="err-failure_modes"' in response.content.decode()


def test_a_time_beacon_records_time_without_touching_the_step(assignment, annotator) -> None:
    client = login(annotator)
    response = client.post(url("step_save", assignment, index=0), {"base_version": 0, "elapsed_ms": 4000, "beacon": 1})
    assert response.status_code == 204
    assert StepLabel.objects.get(assignment=assignment).time_spent_ms == 4000
    page = client.get(url("step", assignment, index=0)).content.decode()
    assert '<li id="outline-0" class="u current">' in page
    assignment.refresh_from_db()
    assert assignment.time_spent_ms == 4000


def test_accepting_a_suggestion_writes_it_as_the_annotators_label(assignment, annotator) -> None:
    step = _step(assignment, 1)
    finding = Finding.objects.get(step=step, code="not_in_enum")
    assert not StepLabel.objects.filter(assignment=assignment, step=step).exists()  # never applied by itself
    client = login(annotator)
    _save(client, assignment, 1, {"field": "failure_modes", "failure_modes": ["none"], "base_version": 0})
    response = client.post(url("accept", assignment, index=1, finding_id=finding.pk), {"base_version": 1}, **HX)
    assert response.status_code == 200
    label = StepLabel.objects.get(assignment=assignment, step=step)
    assert label.argument_verdicts == {"cabin": "invalid"}
    assert label.failure_modes == [finding.failure_mode]  # "none" gave way to the suggested mode
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="workspace"') and "✓ in your labels" in body
    stale = client.post(url("accept", assignment, index=1, finding_id=finding.pk), {"base_version": 1}, **HX)
    assert stale.status_code == 409 and stale["HX-Retarget"] == "#save-state"


def test_outline_shows_untouched_draft_complete_and_flags(assignment, annotator) -> None:
    _complete_step(assignment, _step(assignment, 0), annotator)
    step_label_save(
        annotator=annotator, assignment=assignment, step=_step(assignment, 1), values={"comment": "x"}, base_version=0
    )
    page = login(annotator).get(url("step", assignment, index=2)).content.decode()
    assert '<li id="outline-0" class="c"><a href="../0/">' in page
    assert '<li id="outline-1" class="d f"><a href="../1/" title="missing: argument verdicts: ' in page
    assert '<li id="outline-2" class="u current"><a href="../2/" aria-current="step">' in page
    assert Finding.objects.filter(step=_step(assignment, 1)).exists()
    assert not Finding.objects.filter(step=_step(assignment, 0)).exists()


def test_the_assignment_url_opens_the_first_incomplete_step(assignment, annotator) -> None:
    _complete_step(assignment, _step(assignment, 0), annotator)
    response = login(annotator).get(url("assignment", assignment))
    assert response["Location"] == url("step", assignment, index=1)


# --- verdict and submit -----------------------------------------------------------------------------------------


def test_submitting_an_incomplete_assignment_lists_what_is_missing_with_links(assignment, annotator) -> None:
    _complete_step(assignment, _step(assignment, 0), annotator)
    response = login(annotator).post(url("submit", assignment))
    body = response.content.decode()
    assert response.status_code == 422 and 'id="submit-error"' in body
    assert f'href="{url("step", assignment, index=1)}">Step 2</a>: argument verdicts: cabin, reservation_id' in body
    assert "trajectory verdict: goal completed" in body
    assert f'href="{url("step", assignment, index=0)}"' not in body.split('id="missing"')[1]
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.ACTIVE


def test_verdict_autosave_and_a_complete_submit(assignment, annotator) -> None:
    for step in Step.objects.filter(trajectory=assignment.trajectory):
        _complete_step(assignment, step, annotator)
    client = login(annotator)
    data = {
        "field": ["goal_completed", "overall_success", "efficiency", "error_handling", "first_failing_step"],
        "goal_completed": "yes",
        "overall_success": "no",
        "efficiency": "4",
        "error_handling": "3",
        "first_failing_step": "1",
        "base_version": 0,
    }
    response = client.post(url("verdict_save", assignment), data, **HX)
    assert response.status_code == 200 and 'value="1"' in response.content.decode()
    assert "ready to submit" in response.content.decode()
    page = client.get(url("verdict", assignment)).content.decode()
    assert '<option value="1" selected>' in page
    response = client.post(url("submit", assignment), follow=True)
    assert response.redirect_chain[-1][0] == url("queue", project_slug=assignment.trajectory.project.slug)
    assert "submitted — thank you" in response.content.decode()
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.SUBMITTED
    late = _save(client, assignment, 0, {"field": "comment", "comment": "late", "base_version": 1})
    assert late.status_code == 422 and "already submitted" in late.content.decode()


def test_verdict_invalid_score_is_422(assignment, annotator) -> None:
    response = login(annotator).post(
        url("verdict_save", assignment), {"field": "efficiency", "efficiency": "9", "base_version": 0}, **HX
    )
    assert response.status_code == 422 and 'id="err-efficiency"' in response.content.decode()


def test_skip_needs_a_reason(assignment, annotator) -> None:
    client = login(annotator)
    assert client.get(url("skip", assignment)).status_code == 200
    assert client.post(url("skip", assignment), {"reason": "  "}).status_code == 422
    response = client.post(url("skip", assignment), {"reason": "Goal is in Finnish"})
    assert response.status_code == 302
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.SKIPPED and assignment.skip_reason == "Goal is in Finnish"


# --- who sees what --------------------------------------------------------------------------------------------


def _assignment_urls(assignment: Assignment) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    finding = Finding.objects.filter(step__trajectory=assignment.trajectory).first()
    gets = [
        url("assignment", assignment),
        url("step", assignment, index=0),
        url("verdict", assignment),
        url("skip", assignment),
    ]
    posts = [
        (url("step_save", assignment, index=0), {"field": "comment", "comment": "mine now", "base_version": 0}),
        (url("accept", assignment, index=1, finding_id=finding.pk), {"base_version": 0}),  # type: ignore[union-attr]
        (url("verdict_save", assignment), {"field": "comment", "comment": "x", "base_version": 0}),
        (url("submit", assignment), {}),
        (url("skip", assignment), {"reason": "not mine"}),
    ]
    return gets, posts


def test_another_annotator_gets_404_on_every_assignment_url(assignment, annotator, annotator2) -> None:
    _save(login(annotator), assignment, 0, {"field": "comment", "comment": "secret note", "base_version": 0})
    gets, posts = _assignment_urls(assignment)
    client = login(annotator2)
    for target in gets:
        response = client.get(target)
        assert response.status_code == 404, target
        assert b"secret note" not in response.content
    for target, data in posts:
        assert client.post(target, data, **HX).status_code == 404, target
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.ACTIVE
    assert StepLabel.objects.get(assignment=assignment).comment == "secret note"


def test_a_project_manager_cannot_open_an_annotators_assignment(assignment, pm, reviewer) -> None:
    gets, _posts = _assignment_urls(assignment)
    for user in (pm, reviewer):
        client = login(user)
        for target in gets:
            assert client.get(target).status_code == 404, target


def test_an_outsider_gets_404_for_the_project(assignment, outsider) -> None:
    gets, posts = _assignment_urls(assignment)
    client = login(outsider)
    slug = assignment.trajectory.project.slug
    assert client.get(url("queue", project_slug=slug)).status_code == 404
    assert client.post(url("start_next", project_slug=slug)).status_code == 404
    for target in gets:
        assert client.get(target).status_code == 404, target
    for target, data in posts:
        assert client.post(target, data).status_code == 404, target


def test_anonymous_is_sent_to_login(assignment, client) -> None:
    response = client.get(url("step", assignment, index=0))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_gold_items_look_like_any_other_work(project, pm, annotator) -> None:
    from annotation.services import gold_item_create

    _freeze(project, pm)
    gold = _import(project)
    reference = {
        str(s.index): {"failure_modes": ["none"], "process_reward": 1} for s in Step.objects.filter(trajectory=gold)
    }
    gold_item_create(actor=pm, trajectory=gold, reference=reference)
    project.gold_rate = 1.0
    project.save(update_fields=["gold_rate"])
    assignment = assignment_claim_next(annotator=annotator, project=project)
    assert assignment.is_gold
    client = login(annotator)
    for target in (
        url("step", assignment, index=0),
        url("verdict", assignment),
        url("queue", project_slug=project.slug),
    ):
        assert "gold" not in client.get(target).content.decode().lower(), target
    assert "gold" in login(pm).get(url("queue", project_slug=project.slug)).content.decode()


# --- performance -----------------------------------------------------------------------------------------------


def test_step_fragment_queries_are_bounded_on_a_long_trajectory(
    project, pm, annotator, django_assert_max_num_queries
) -> None:
    _freeze(project, pm)
    calls = [
        ("get_reservation_details", {"reservation_id": f"ZFA{n:03d}"}, json.dumps({"n": n, "rows": list(range(20))}))
        for n in range(59)
    ]
    _import(project, calls)
    assignment = assignment_claim_next(annotator=annotator, project=project)
    assert Step.objects.filter(trajectory=assignment.trajectory).count() == 60
    for index in range(0, 30):
        step_label_save(
            annotator=annotator,
            assignment=assignment,
            step=_step(assignment, index),
            values={"comment": "seen"},
            base_version=0,
        )
    client = login(annotator)
    target = url("step", assignment, index=30)
    client.get(target, **HX)  # warm caches (content types, sessions)
    with django_assert_max_num_queries(10):
        response = client.get(target, **HX)
    assert response.status_code == 200 and response.content.count(b'<li id="outline-') == 1
    with django_assert_max_num_queries(10):
        response = client.get(target)
    assert response.status_code == 200 and response.content.count(b'<li id="outline-') == 60
    assert b'<li id="outline-0" class="d' in response.content  # a comment alone is a draft


# --- rendering helpers ------------------------------------------------------------------------------------------


def test_ansi_colours_become_classes_and_other_escapes_are_dropped() -> None:
    lines = ansi_lines("\x1b[1;31mFAILED\x1b[0m test_x\n\x1b[2Kok <b>")
    assert lines == [[("ansi-bold ansi-fg-1", "FAILED"), ("", " test_x")], [("", "ok <b>")]]


def test_label_chips_escape_the_projects_keys_and_labels() -> None:
    label = StepLabel(failure_modes=['x"><b>'])
    html = failure_mode_chips([{"key": 'x"><b>', "label": "<i>bad</i>", "severity": "high"}], label)
    assert "<b>" not in html and "<i>" not in html and 'value="x&quot;&gt;&lt;b&gt;"' in html
    assert 'class="chip tag high"' in html and " checked " in html and "&lt;i&gt;bad&lt;/i&gt;" in html
    chips = rubric_chips(AxisRow(key="tone", label="<Tone>", anchors=[], score=3))
    assert (
        chips.count("<input") == 5 and chips.count(" checked") == 1 and 'value="3" data-group="rubric" checked' in chips
    )
    assert "<Tone>" not in chips and 'aria-label="&lt;Tone&gt;: 3"' in chips


def test_observation_kinds() -> None:
    diff = observation_view("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-old\n+new")
    assert diff["kind"] == "lines" and [cls for cls, _ in diff["head"]] == [
        "diff-meta",
        "diff-meta",
        "diff-hunk",
        "diff-del",
        "diff-add",
    ]
    trace = observation_view('Traceback (most recent call last):\n  File "a.py", line 1, in <module>\nValueError: x')
    assert [cls for cls, _ in trace["head"]] == ["tb-head", "tb-frame", "tb-error"]
    long = observation_view("\n".join(str(n) for n in range(1000)))
    assert long["kind"] == "text" and long["total"] == 1000 and long["head"].count("\n") == 39
    tree = observation_view('{"a": {"b": [1, "<i>"]}}')
    assert tree["kind"] == "json"
    assert 'data-path="/a/b/1"' in tree["tree"]
    assert '<span class="jv jv-str">&quot;&lt;i&gt;&quot;</span>' in tree["tree"] and "<i>" not in tree["tree"]
    assert observation_view(None) == {"kind": "none"}


def test_a_project_manager_makes_a_gold_item_by_hand(project, pm, annotator) -> None:
    from annotation.models import GoldItem
    from tests.annotation.helpers import freeze_registry, import_runs
    from tests.conftest import login

    freeze_registry(project, pm)
    run = import_runs(project, 1)[0]
    url = f"/p/{project.slug}/work/gold/{run.pk}/"
    page = login(pm).get(url)
    assert page.status_code == 200 and b"argument_verdicts" in page.content
    assert login(annotator).get(url).status_code == 403
    bad = login(pm).post(url, {"reference": '{"0": {"process_reward": 9}}'})
    assert bad.status_code == 422 and b"/0" in bad.content
    assert login(pm).post(url, {"reference": "{not json"}).status_code == 422
    reference = page.context["form"].initial["reference"]
    done = login(pm).post(url, {"reference": reference, "explanation": "all valid"})
    assert done.status_code == 302
    gold = GoldItem.objects.get(trajectory=run)
    assert gold.reference["0"]["tool_verdict"] == "right" and gold.explanation == "all valid"


def test_no_api_shows_an_annotator_another_annotators_work(project, pm, annotator, annotator2) -> None:
    from annotation.services import assignment_claim_next, step_label_save
    from tests.annotation.helpers import freeze_registry, import_runs
    from tests.conftest import login

    freeze_registry(project, pm)
    import_runs(project, 2)
    mine = assignment_claim_next(annotator=annotator, project=project)
    step = mine.trajectory.steps.get(index=0)
    step_label_save(annotator=annotator, assignment=mine, step=step, values={"comment": "secret note"}, base_version=0)
    other = login(annotator2)
    base = f"/api/projects/{project.slug}"
    assert other.get(f"{base}/trajectories/{mine.trajectory_id}/").status_code == 404
    listing = other.get(f"{base}/trajectories/")
    assert listing.status_code in (403, 404) or mine.trajectory_id not in [t["id"] for t in listing.json()["results"]]
    holder = login(annotator).get(f"{base}/trajectories/{mine.trajectory_id}/")
    assert holder.status_code == 200 and b"secret note" not in holder.content
    outsider_view = login(annotator2).get(f"/p/{project.slug}/trajectories/{mine.trajectory_id}/")
    assert outsider_view.status_code == 404


def test_the_step_view_takes_the_frozen_registrys_tools_from_the_cache(assignment, annotator) -> None:
    client = login(annotator)
    client.get(url("step", assignment, index=1), **HX)
    with CaptureQueriesContext(connection) as queries:
        body = client.get(url("step", assignment, index=0), **HX).content.decode()
    assert not any('FROM "trajectories_tool"' in q["sql"] for q in queries.captured_queries)
    assert "Look up a reservation by its id." in body and '<option value="update_reservation_flights">' in body
