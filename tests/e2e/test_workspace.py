"""The annotator's workspace in a real Chromium: keyboard-only labelling, autosave, conflicts, untrusted content."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import expect

from annotation.models import Assignment, AssignmentStatus, StepLabel, TrajectoryLabel
from annotation.services import assignment_claim_next, missing_labels
from core.models import Project
from demo.services import DEMO_USERS, TOOL_USE_PROJECT, demo_seed
from tests.annotation.helpers import freeze_registry, run_record
from tests.conftest import PASSWORD
from tests.e2e.conftest import SCREENSHOTS, log_in
from tests.trajectories.fixtures_util import run_import
from trajectories.models import Step, StepKind, Trajectory, TrajectoryStatus

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
SAVED = '#save-state[data-state="saved"]'


def eventually(check: Callable[[], bool], *, timeout_s: float = 5.0, what: str = "condition") -> None:
    """Retry `check` (a database query) until it holds; fail once the deadline has passed."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still false after {timeout_s} s")


def keys(page, *sequence: str) -> None:
    """Press each key in turn (`type` for printable characters, `press` for named keys like Enter)."""
    for key in sequence:
        if len(key) == 1:
            page.keyboard.type(key)
        else:
            page.keyboard.press(key)


def tab_to(page, selector: str, *, backwards: bool = False, limit: int = 60) -> None:
    """Move the focus with Tab (or Shift+Tab) until it is on an element matching `selector`."""
    for _ in range(limit):
        if page.evaluate("s => !!document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
    pytest.fail(f"Tab never reached {selector}")


def step_url(live_server, project: Project, assignment: Assignment, index: int = 0) -> str:
    return f"{live_server.url}/p/{project.slug}/work/{assignment.pk}/steps/{index}/"


def open_step(page, url: str, index: int = 0) -> None:
    page.goto(url)
    page.wait_for_selector(f'#workspace[data-page="step"][data-step-index="{index}"]')


@pytest.fixture
def small_assignment(project, pm, annotator) -> Assignment:
    """One run (a tool call with one argument, then a reply) claimed by the annotator."""
    Project.objects.filter(pk=project.pk).update(gold_rate=0)
    freeze_registry(project, pm)
    run_import(project, run_record(1))
    return assignment_claim_next(annotator=annotator, project=project)


def test_a_whole_demo_trajectory_is_labelled_and_submitted_with_the_keyboard_only(page, live_server) -> None:
    demo_seed(stdout=io.StringIO(), run_now=True)
    project = Project.objects.get(slug=TOOL_USE_PROJECT[1])
    Project.objects.filter(pk=project.pk).update(gold_rate=0)
    # The shortest run that has a tool call with two arguments; the others are not handed out.
    # (the demo's annotators have already labelled its first runs: take one nobody has touched)
    runs = Trajectory.objects.filter(project=project, assignments__isnull=True).order_by("step_count", "id")
    chosen = next(
        t
        for t in runs
        if any(
            s.kind == StepKind.TOOL_CALL and isinstance(s.arguments, dict) and len(s.arguments) >= 2
            for s in Step.objects.filter(trajectory=t)
        )
    )
    Trajectory.objects.filter(project=project).exclude(pk=chosen.pk).update(status=TrajectoryStatus.REJECTED)
    steps = list(Step.objects.filter(trajectory=chosen).order_by("index"))
    axes = len(project.rubric_axes)
    assert steps and axes
    ann1 = next(u for u in DEMO_USERS if u.username == "ann1")

    log_in(page, live_server, ann1.username, ann1.password)
    page.goto(f"{live_server.url}/p/{project.slug}/work/")
    page.wait_for_selector("#start-next")
    keys(page, "Enter")  # Start next
    page.wait_for_selector('#workspace[data-page="step"][data-step-index="0"]')
    assignment = Assignment.objects.get(annotator__username=ann1.username, trajectory=chosen)
    assert assignment.trajectory_id == chosen.pk and not assignment.is_gold

    for step in steps:
        page.wait_for_selector(f'#workspace[data-page="step"][data-step-index="{step.index}"]')
        if step.kind == StepKind.TOOL_CALL:
            for _ in step.arguments:
                keys(page, "1")  # valid, for the focused (then the next unjudged) argument
            keys(page, "t", "1", "s", "1")  # right tool, environment: success
        keys(page, "f")  # failure-mode picker: filter, toggle, close
        page.wait_for_selector("#fm-picker[open]")
        page.keyboard.type("no failure")
        keys(page, "Enter", "Escape")
        page.wait_for_function("!document.getElementById('fm-picker').open")
        for _ in range(axes):
            keys(page, "r", "4")
        keys(page, "0")  # process reward 0
        page.wait_for_selector(f"#outline-{step.index}.c")  # complete
        page.wait_for_selector(SAVED)
        if step.index < steps[-1].index:
            keys(page, "j")

    keys(page, "Control+Enter")  # to the verdict page
    page.wait_for_selector('#workspace[data-page="verdict"]')
    keys(page, "r", "5", "r", "3")  # efficiency, then error handling
    tab_to(page, "input[name=overall_success]", backwards=True)
    keys(page, "Space")
    tab_to(page, "input[name=goal_completed]", backwards=True)
    keys(page, "Space")
    page.wait_for_selector(SAVED)
    expect(page.locator("#missing")).to_contain_text("ready to submit")
    keys(page, "Control+Enter")  # submit
    page.wait_for_url(f"{live_server.url}/p/{project.slug}/work/")
    eventually(
        lambda: Assignment.objects.get(pk=assignment.pk).status == AssignmentStatus.SUBMITTED,
        what="the assignment is submitted",
    )
    assignment.refresh_from_db()
    assert missing_labels(assignment=assignment) == []
    labels = {
        label.step.index: label for label in StepLabel.objects.filter(assignment=assignment).select_related("step")
    }
    assert sorted(labels) == [s.index for s in steps]
    for step in steps:
        label = labels[step.index]
        assert label.failure_modes == ["none"] and label.process_reward == 0
        assert label.rubric == {str(a["key"]): 4 for a in project.rubric_axes}
        if step.kind == StepKind.TOOL_CALL:
            assert label.argument_verdicts == dict.fromkeys(step.arguments, "valid")
            assert (label.tool_verdict, label.env_feedback) == ("right", "success")
    verdict = TrajectoryLabel.objects.get(assignment=assignment)
    assert (verdict.efficiency, verdict.error_handling) == (5, 3)
    assert verdict.goal_completed is not None and verdict.overall_success is not None
    assert page.js_errors == []


def test_a_reload_mid_way_loses_nothing(page, live_server, project, annotator, small_assignment) -> None:
    url = step_url(live_server, project, small_assignment)
    log_in(page, live_server, annotator.username, PASSWORD)
    open_step(page, url)
    keys(page, "1", "t", "1", "+")  # the argument valid, the right tool, process reward +1
    page.wait_for_selector(SAVED)
    page.wait_for_selector("#outline-0.d")  # draft

    def saved() -> bool:
        label = StepLabel.objects.filter(assignment=small_assignment, step__index=0).first()
        return bool(label) and (label.argument_verdicts, label.tool_verdict, label.process_reward) == (
            {"reservation_id": "valid"},
            "right",
            1,
        )

    eventually(saved, what="the labels are in the database")
    page.reload()
    page.wait_for_selector('#workspace[data-page="step"][data-step-index="0"]')
    expect(page.locator('.argrow[data-arg="reservation_id"]')).to_have_attribute("data-verdict", "valid")
    expect(page.locator("input[name=tool_verdict][value=right]")).to_be_checked()
    expect(page.locator("input[name=process_reward][value='1']")).to_be_checked()
    expect(page.locator("#outline-0")).to_have_class(re.compile(r"\bd\b"))
    label = StepLabel.objects.get(assignment=small_assignment, step__index=0)
    expect(page.locator("#label-version")).to_have_value(str(label.version))
    assert page.js_errors == []


def test_two_tabs_on_one_step_give_a_conflict_not_a_lost_update(
    page, live_server, project, annotator, small_assignment
) -> None:
    url = step_url(live_server, project, small_assignment)
    log_in(page, live_server, annotator.username, PASSWORD)
    open_step(page, url)
    tab_b = page.context.new_page()
    errors_b: list[str] = []
    tab_b.on("pageerror", lambda exc: errors_b.append(str(exc)))
    open_step(tab_b, url)  # same session, same version 0 as tab A

    page.bring_to_front()
    keys(page, "+")  # tab A: process reward +1
    page.wait_for_selector(SAVED)
    eventually(
        lambda: StepLabel.objects.filter(assignment=small_assignment, step__index=0, process_reward=1).exists(),
        what="tab A's save is in the database",
    )

    tab_b.bring_to_front()
    keys(tab_b, "-")  # tab B, still on version 0: process reward −1
    state = tab_b.locator("#save-state")
    expect(state).to_have_attribute("data-state", "conflict")
    expect(state).to_contain_text("conflict")
    expect(state).to_contain_text("your input is kept")
    expect(tab_b.locator("input[name=process_reward][value='-1']")).to_be_checked()  # B's input stays on screen

    label = StepLabel.objects.get(assignment=small_assignment, step__index=0)
    assert (label.process_reward, label.version) == (1, 1)  # A's value, not overwritten
    expect(page.locator("input[name=process_reward][value='1']")).to_be_checked()
    assert page.js_errors == [] and errors_b == []


def test_html_in_an_observation_stays_inert_in_the_step_view(page, live_server, project, pm, annotator) -> None:
    Project.objects.filter(pk=project.pk).update(gold_rate=0)
    freeze_registry(project, pm)
    run_import(project, run_record(1, observation=HOSTILE))
    assignment = assignment_claim_next(annotator=annotator, project=project)
    dialogs: list[str] = []
    csp: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
    page.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation',"
        " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    log_in(page, live_server, annotator.username, PASSWORD)
    open_step(page, step_url(live_server, project, assignment))
    observation = page.locator("#observation")
    expect(observation).to_contain_text(HOSTILE)
    assert observation.locator("img").count() == 0 and observation.locator("script").count() == 0
    assert page.evaluate("window.__pwned === undefined")
    assert page.evaluate("window.__csp") == []
    assert dialogs == [] and csp == [] and page.js_errors == []


def test_shortcuts_dialog_and_j_k_between_steps(page, live_server, project, annotator, small_assignment) -> None:
    url = step_url(live_server, project, small_assignment)
    log_in(page, live_server, annotator.username, PASSWORD)
    open_step(page, url)
    shortcuts = page.locator("#shortcuts")
    expect(shortcuts).not_to_have_attribute("open", "")
    keys(page, "?")
    expect(shortcuts).to_have_attribute("open", "")
    expect(shortcuts).to_contain_text("Keyboard shortcuts")
    keys(page, "Escape")
    expect(shortcuts).not_to_have_attribute("open", "")

    keys(page, "j")
    page.wait_for_selector('#workspace[data-step-index="1"]')
    expect(page).to_have_url(step_url(live_server, project, small_assignment, 1))
    expect(page.locator("#outline-1")).to_have_class(re.compile(r"\bcurrent\b"))
    expect(page.locator("#outline-1 a")).to_have_attribute("aria-current", "step")
    expect(page.locator("#outline li.current")).to_have_count(1)  # the marker moved; the outline was kept
    expect(page.locator("#outline-0 a")).not_to_have_attribute("aria-current", "step")
    expect(page.locator("#step-position")).to_have_text("step 2 / 2")
    keys(page, "k")
    page.wait_for_selector('#workspace[data-step-index="0"]')
    expect(page).to_have_url(url)
    assert page.js_errors == []


def test_a_screenshot_of_the_step_view_is_saved(page, live_server, project, annotator, small_assignment) -> None:
    path = SCREENSHOTS / "step-view.png"
    path.unlink(missing_ok=True)
    log_in(page, live_server, annotator.username, PASSWORD)
    open_step(page, step_url(live_server, project, small_assignment))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_an_outline_click_saves_first_then_swaps_the_step_and_pushes_its_url(
    page, live_server, project, annotator, small_assignment
) -> None:
    url = step_url(live_server, project, small_assignment)
    log_in(page, live_server, annotator.username, PASSWORD)
    open_step(page, url)
    page.evaluate("window.__samePage = 1")
    keys(page, "c")
    page.keyboard.type("seen on step 1")
    page.click("#outline-1 a")  # before the autosave's pause has passed: the click sends it first
    page.wait_for_selector('#workspace[data-step-index="1"]')
    expect(page).to_have_url(step_url(live_server, project, small_assignment, 1))
    assert page.evaluate("window.__samePage") == 1  # a fragment swap, not a page load
    expect(page.locator("#outline li.current")).to_have_count(1)
    expect(page.locator("#outline-1 a")).to_have_attribute("aria-current", "step")
    eventually(
        lambda: StepLabel.objects.filter(assignment=small_assignment, step__index=0, comment="seen on step 1").exists(),
        what="the comment was saved before leaving the step",
    )
    page.go_back()
    page.wait_for_selector('#workspace[data-step-index="0"]')
    expect(page).to_have_url(url)
    expect(page.locator("#comment")).to_have_value("seen on step 1")
    assert page.js_errors == []
