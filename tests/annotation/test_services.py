"""Claims, leases, drafts with versions, skipping, submitting and gold items, through the services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, GoldItem, StepLabel
from annotation.services import (
    LEASE,
    Incomplete,
    LabelConflict,
    LeaseLost,
    NoWork,
    assignment_claim_next,
    assignment_skip,
    assignment_submit,
    gold_item_create,
    missing_labels,
    step_label_save,
    trajectory_label_save,
)
from core.models import AuditEvent, Role
from core.services import membership_set
from tests.annotation.helpers import freeze_registry, import_runs
from tests.conftest import make_user
from trajectories.models import TrajectoryStatus

pytestmark = pytest.mark.smoke

VERDICT = {"goal_completed": True, "overall_success": True, "efficiency": 4, "error_handling": 3}


@pytest.fixture
def ready(project, pm):
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.save(update_fields=["gold_rate"])
    return import_runs(project, 4)


def annotators(project, pm, count: int):
    users = [make_user(f"worker{i}") for i in range(count)]
    for user in users:
        membership_set(actor=pm, project=project, user=user, role=Role.ANNOTATOR)
    return users


def label_everything(assignment, annotator) -> None:
    axes = [a["key"] for a in assignment.trajectory.project.rubric_axes]
    for step in assignment.trajectory.steps.order_by("index"):
        values = {"failure_modes": ["none"], "process_reward": 1, "rubric": {a: 4 for a in axes}}
        if step.kind == "tool_call":
            values |= {
                "argument_verdicts": {name: "valid" for name in step.arguments},
                "tool_verdict": "right",
                "env_feedback": "success",
            }
        current = StepLabel.objects.filter(assignment=assignment, step=step).values_list("version", flat=True).first()
        step_label_save(annotator=annotator, assignment=assignment, step=step, values=values, base_version=current or 0)
    trajectory_label_save(annotator=annotator, assignment=assignment, values=VERDICT, base_version=0)


def test_no_work_before_the_registry_is_frozen(project, pm, annotator) -> None:
    import_runs(project, 1)
    with pytest.raises(NoWork, match="registry is frozen"):
        assignment_claim_next(annotator=annotator, project=project)
    assert not Assignment.objects.exists()


def test_only_annotators_receive_work(ready, project, reviewer) -> None:
    with pytest.raises(NoWork, match="annotators"):
        assignment_claim_next(annotator=reviewer, project=project)


def test_next_resumes_work_in_progress_and_marks_the_run(ready, project, annotator) -> None:
    first = assignment_claim_next(annotator=annotator, project=project)
    assert assignment_claim_next(annotator=annotator, project=project) == first
    first.trajectory.refresh_from_db()
    assert first.trajectory.status == TrajectoryStatus.IN_ANNOTATION
    assert first.lease_expires_at > timezone.now() + LEASE - timedelta(minutes=1)
    assert AuditEvent.objects.filter(verb="assignment.claim", target_id=str(first.pk)).exists()


def test_overlap_distinct_annotators_and_never_the_same_run_twice(ready, project, pm) -> None:
    workers = annotators(project, pm, 4)
    got: dict[int, list[int]] = {}
    for worker in workers:
        for _ in range(len(ready)):
            try:
                assignment = assignment_claim_next(annotator=worker, project=project)
            except NoWork:
                break
            label_everything(assignment, worker)
            assignment_submit(annotator=worker, assignment=assignment)
            got.setdefault(assignment.trajectory_id, []).append(worker.pk)
    assert all(len(holders) == project.overlap == len(set(holders)) for holders in got.values())
    assert len(got) == len(ready)
    for trajectory in ready:
        trajectory.refresh_from_db()
        assert trajectory.status == TrajectoryStatus.ANNOTATED
    with pytest.raises(NoWork, match="Nothing left"):
        assignment_claim_next(annotator=workers[0], project=project)


def test_an_expired_lease_returns_the_place_and_keeps_the_draft(ready, project, pm) -> None:
    project.overlap = 1
    project.save(update_fields=["overlap"])
    ann, other = annotators(project, pm, 2)
    now = timezone.now()
    mine = assignment_claim_next(annotator=ann, project=project, now=now)
    step = mine.trajectory.steps.get(index=0)
    step_label_save(
        annotator=ann, assignment=mine, step=step, values={"tool_verdict": "right"}, base_version=0, now=now
    )
    later = now + LEASE + timedelta(seconds=1)
    # The other annotator's next run is the first one free: the expired place counts as free.
    taken = [assignment_claim_next(annotator=other, project=project, now=later)]
    while taken[-1].trajectory_id != mine.trajectory_id:
        label_everything(taken[-1], other)
        assignment_submit(annotator=other, assignment=taken[-1], now=later)
        taken.append(assignment_claim_next(annotator=other, project=project, now=later))
    with pytest.raises(LeaseLost, match="draft is kept"):
        step_label_save(annotator=ann, assignment=mine, step=step, values={"comment": "x"}, base_version=1, now=later)
    assert StepLabel.objects.get(assignment=mine, step=step).tool_verdict == "right"


def test_an_expired_draft_comes_back_to_its_annotator_while_there_is_room(ready, project, annotator) -> None:
    now = timezone.now()
    mine = assignment_claim_next(annotator=annotator, project=project, now=now)
    step = mine.trajectory.steps.get(index=0)
    step_label_save(
        annotator=annotator, assignment=mine, step=step, values={"tool_verdict": "wrong"}, base_version=0, now=now
    )
    back = assignment_claim_next(annotator=annotator, project=project, now=now + LEASE * 2)
    assert back.pk == mine.pk and back.lease_expires_at > now + LEASE * 2
    assert StepLabel.objects.get(assignment=back, step=step).tool_verdict == "wrong"


def test_a_save_renews_a_live_lease_and_adds_the_time_in_one_statement(
    ready, project, annotator, django_assert_num_queries
) -> None:
    now = timezone.now()
    mine = assignment_claim_next(annotator=annotator, project=project, now=now)
    step = mine.trajectory.steps.get(index=0)
    step_label_save(annotator=annotator, assignment=mine, step=step, values={"comment": "a"}, base_version=0, now=now)
    later = now + LEASE - timedelta(seconds=1)  # still live
    # savepoint, the lease renewed and the time added, the label locked and read, written, savepoint released
    with django_assert_num_queries(5):
        step_label_save(
            annotator=annotator,
            assignment=mine,
            step=step,
            values={"comment": "b"},
            base_version=1,
            elapsed_ms=1200,
            now=later,
        )
    held = Assignment.objects.get(pk=mine.pk)
    assert held.status == AssignmentStatus.ACTIVE and held.lease_expires_at == later + LEASE
    assert held.time_spent_ms == 1200
    # At the very moment the lease runs out it is no longer live: the step-by-step path takes over (and, the
    # place being free, renews it).
    step_label_save(
        annotator=annotator, assignment=mine, step=step, values={"comment": "c"}, base_version=2, now=later + LEASE
    )
    held.refresh_from_db()
    assert held.lease_expires_at == later + LEASE * 2 and held.time_spent_ms == 1200


def test_saves_are_versioned_and_a_stale_save_is_refused(ready, project, annotator) -> None:
    assignment = assignment_claim_next(annotator=annotator, project=project)
    step = assignment.trajectory.steps.get(index=0)
    first = step_label_save(
        annotator=annotator, assignment=assignment, step=step, values={"comment": "a"}, base_version=0
    )
    assert first.version == 1
    second = step_label_save(
        annotator=annotator, assignment=assignment, step=step, values={"comment": "b"}, base_version=1, elapsed_ms=1500
    )
    assert (second.version, second.comment, second.time_spent_ms) == (2, "b", 1500)
    with pytest.raises(LabelConflict) as conflict:
        step_label_save(annotator=annotator, assignment=assignment, step=step, values={"comment": "c"}, base_version=1)
    assert conflict.value.current_version == 2
    assert StepLabel.objects.get(pk=second.pk).comment == "b"


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"argument_verdicts": {"flight": "valid"}}, "argument_verdicts", "not an argument"),
        ({"argument_verdicts": {"reservation_id": "maybe"}}, "argument_verdicts", "not valid, invalid or unsure"),
        ({"corrected_arguments": {"reservation_id": "zfa-1"}}, "corrected_arguments.reservation_id", "does not match"),
        ({"corrected_arguments": {"cabin": "first"}}, "corrected_arguments.cabin", "is not one of"),
        ({"failure_modes": ["astrology"]}, "failure_modes", "not in the project's taxonomy"),
        ({"failure_modes": ["none", "wrong_tool"]}, "failure_modes", "cannot be combined"),
        ({"rubric": {"politeness": 6}}, "rubric", "1 to 5"),
        ({"rubric": {"charm": 3}}, "rubric", "not a rubric axis"),
        ({"process_reward": 2}, "process_reward", "+1"),
        ({"env_feedback": "meh"}, "env_feedback", "success, partial or failure"),
        ({"correct_tool": "teleport"}, "correct_tool", "not a tool of the frozen registry"),
    ],
)
def test_bad_labels_are_refused_with_the_field_and_why(ready, project, annotator, values, field, message) -> None:
    assignment = assignment_claim_next(annotator=annotator, project=project)
    step = assignment.trajectory.steps.get(index=0)
    with pytest.raises(ValidationError) as refused:
        step_label_save(annotator=annotator, assignment=assignment, step=step, values=values, base_version=0)
    assert field in refused.value.message_dict
    assert message in " ".join(refused.value.message_dict[field])
    assert not StepLabel.objects.filter(assignment=assignment).exists()


def test_a_corrected_value_that_fits_the_schema_is_kept(ready, project, annotator) -> None:
    assignment = assignment_claim_next(annotator=annotator, project=project)
    step = assignment.trajectory.steps.get(index=0)
    label = step_label_save(
        annotator=annotator,
        assignment=assignment,
        step=step,
        values={
            "argument_verdicts": {"reservation_id": "invalid"},
            "corrected_arguments": {"reservation_id": "ZFA004"},
        },
        base_version=0,
    )
    assert label.corrected_arguments == {"reservation_id": "ZFA004"}


def test_submit_lists_what_is_missing_then_succeeds(ready, project, annotator) -> None:
    assignment = assignment_claim_next(annotator=annotator, project=project)
    with pytest.raises(Incomplete) as incomplete:
        assignment_submit(annotator=annotator, assignment=assignment)
    missing = incomplete.value.missing
    assert any(m.step_index == 0 and m.what == "argument verdicts: reservation_id" for m in missing)
    assert any(m.step_index == 1 and m.what.startswith("rubric:") for m in missing)
    assert any(m.step_index is None and "goal completed" in m.what for m in missing)
    label_everything(assignment, annotator)
    assert missing_labels(assignment=assignment) == []
    done = assignment_submit(annotator=annotator, assignment=assignment)
    assert done.status == AssignmentStatus.SUBMITTED and done.submitted_at is not None
    with pytest.raises(ValidationError, match="already submitted"):
        step_label_save(
            annotator=annotator,
            assignment=done,
            step=done.trajectory.steps.get(index=0),
            values={"comment": "late"},
            base_version=1,
        )


def test_skip_needs_a_reason_and_the_run_never_comes_back(ready, project, annotator) -> None:
    assignment = assignment_claim_next(annotator=annotator, project=project)
    with pytest.raises(ValidationError):
        assignment_skip(annotator=annotator, assignment=assignment, reason="  ")
    skipped = assignment_skip(annotator=annotator, assignment=assignment, reason="Observation is truncated")
    assert skipped.status == AssignmentStatus.SKIPPED
    seen = {assignment.trajectory_id}
    for _ in range(len(ready) - 1):
        nxt = assignment_claim_next(annotator=annotator, project=project)
        assert nxt.trajectory_id not in seen
        seen.add(nxt.trajectory_id)
        assignment_skip(annotator=annotator, assignment=nxt, reason="later")


def test_gold_items_are_mixed_in_and_do_not_take_a_place(ready, project, pm, annotator) -> None:
    gold_run = ready[0]
    reference = {}
    for step in gold_run.steps.order_by("index"):
        values = {"failure_modes": ["none"], "process_reward": 1}
        if step.kind == "tool_call":
            values |= {"argument_verdicts": {"reservation_id": "valid"}, "tool_verdict": "right"}
        reference[str(step.index)] = values
    with pytest.raises(ValidationError, match="missing for steps 1"):
        gold_item_create(actor=pm, trajectory=gold_run, reference={"0": reference["0"]})
    with pytest.raises(ValidationError, match="/0"):
        gold_item_create(actor=pm, trajectory=gold_run, reference={**reference, "0": {"process_reward": 7}})
    gold_item_create(actor=pm, trajectory=gold_run, reference=reference)
    project.gold_rate = 1.0
    project.save(update_fields=["gold_rate"])
    served = assignment_claim_next(annotator=annotator, project=project)
    assert served.is_gold and served.trajectory_id == gold_run.pk
    label_everything(served, annotator)
    assignment_submit(annotator=annotator, assignment=served)
    project.gold_rate = 0.0
    project.save(update_fields=["gold_rate"])
    regular = {assignment_claim_next(annotator=annotator, project=project).trajectory_id}
    assert gold_run.pk not in regular  # a gold item is never handed out as ordinary work
    assert GoldItem.objects.get(trajectory=gold_run).reference["0"]["tool_verdict"] == "right"
