"""Consensus, escalation, routing, adjudication, gold and review through the real services."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from annotation.models import GoldItem, GoldSource
from audit.models import (
    Consensus,
    ConsensusMethod,
    Escalation,
    EscalationStatus,
    Review,
    ReviewStatus,
)
from audit.services.consensus import trajectory_consensus_compute
from audit.services.escalations import (
    escalation_reassign,
    escalation_resolve,
    escalation_votes,
    review_confirm,
    review_send,
)
from core.models import AuditEvent, Role
from core.services import membership_set
from tests.annotation.helpers import freeze_registry, import_runs
from tests.audit.helpers import claim, label_and_submit, team
from tests.conftest import make_user
from trajectories.models import TrajectoryStatus

pytestmark = pytest.mark.smoke


@pytest.fixture
def setup(project, pm):
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.review_rate = 0.0
    project.save(update_fields=["gold_rate", "review_rate"])
    runs = import_runs(project, 2)
    return runs, team(project, pm)


def _label_all(project, runs, users, overrides=None):
    """Each annotator labels each run; overrides[(run index, user index)] = {step index: values}."""
    for r, run in enumerate(runs):
        for u, user in enumerate(users):
            label_and_submit(claim(project, user, run), user, steps=(overrides or {}).get((r, u)))


def test_three_agreeing_annotators_settle_everything_unanimously(setup, project) -> None:
    runs, users = setup
    _label_all(project, runs[:1], users)
    run = runs[0]
    run.refresh_from_db()
    assert run.status == TrajectoryStatus.ANNOTATED
    report = trajectory_consensus_compute(trajectory_id=run.pk)
    assert report.escalated == 0 and report.status == TrajectoryStatus.AUDITED
    rows = {(c.step.index if c.step else None, c.field): c for c in Consensus.objects.filter(trajectory=run)}
    assert rows[(0, "argument:reservation_id")].value == "valid"
    assert rows[(0, "argument:reservation_id")].method == ConsensusMethod.UNANIMOUS
    assert rows[(0, "argument:reservation_id")].agreement == "3/3"
    assert len(rows[(0, "env_feedback")].source_labels) == 3
    assert rows[(1, "failure_modes")].value == ["none"]
    assert rows[(None, "goal_completed")].value is True
    assert (1, "argument:reservation_id") not in rows  # the reply step has no call
    assert not Escalation.objects.exists()


def test_a_planted_disagreement_escalates_to_the_least_loaded_qa_lead(setup, project, pm, qa_lead) -> None:
    runs, users = setup
    other_lead = make_user("lead2")
    membership_set(actor=pm, project=project, user=other_lead, role=Role.QA_LEAD)
    overrides = {
        (0, 0): {0: {"process_reward": -1}},
        (0, 1): {0: {"process_reward": 0}},  # -1 / 0 / +1: three different → escalate
        (0, 2): {0: {"rubric": {"latency": 1}}},  # 4, 4, 1: the pair wins, the outlier is flagged
        (1, 0): {0: {"argument_verdicts": {"reservation_id": "invalid"}}},
        (1, 1): {0: {"argument_verdicts": {"reservation_id": "unsure"}}},  # valid / invalid / unsure → escalate
    }
    _label_all(project, runs, users, overrides)
    first = trajectory_consensus_compute(trajectory_id=runs[0].pk)
    second = trajectory_consensus_compute(trajectory_id=runs[1].pk)
    assert (first.new_escalations, second.new_escalations) == (1, 1)
    reward = Escalation.objects.get(trajectory=runs[0])
    argument = Escalation.objects.get(trajectory=runs[1])
    assert (
        reward.field == "process_reward" and reward.reason == "votes differ" and reward.tool_name == "get_reservation"
    )
    assert argument.field == "argument:reservation_id"
    assert {reward.assigned_to_id, argument.assigned_to_id} == {qa_lead.pk, other_lead.pk}  # least loaded: one each
    latency = Consensus.objects.get(trajectory=runs[0], step__index=0, field="rubric:latency")
    assert latency.value == 4 and latency.method == ConsensusMethod.MAJORITY and len(latency.outliers) == 1
    assert [v for _, _, v in escalation_votes(reward)] == [-1, 0, 1]
    runs[0].refresh_from_db()
    assert runs[0].status == TrajectoryStatus.ESCALATED
    # idempotent: a rerun changes nothing, opens nothing twice and logs nothing
    events = AuditEvent.objects.filter(verb="consensus.compute").count()
    again = trajectory_consensus_compute(trajectory_id=runs[0].pk)
    assert AuditEvent.objects.filter(verb="consensus.compute").count() == events
    assert again.new_escalations == 0 and Escalation.objects.count() == 2
    assert Consensus.objects.filter(trajectory=runs[0]).count() == first.settled


def test_round_robin_routing_takes_turns(setup, project, pm, qa_lead) -> None:
    runs, users = setup
    other_lead = make_user("lead2")
    membership_set(actor=pm, project=project, user=other_lead, role=Role.QA_LEAD)
    project.consensus_rules = {"routing": "round_robin"}
    project.save(update_fields=["consensus_rules"])
    split = {0: {"process_reward": -1}}
    _label_all(
        project,
        runs,
        users,
        {(0, 0): split, (0, 1): {0: {"process_reward": 0}}, (1, 0): split, (1, 1): {0: {"process_reward": 0}}},
    )
    for run in runs:
        trajectory_consensus_compute(trajectory_id=run.pk)
    assert [e.assigned_to_id for e in Escalation.objects.order_by("id")] == [qa_lead.pk, other_lead.pk]


def test_resolving_an_annotator_error_makes_the_item_gold(setup, project, qa_lead) -> None:
    runs, users = setup
    _label_all(project, runs[:1], users, {(0, 0): {0: {"process_reward": -1}}, (0, 1): {0: {"process_reward": 0}}})
    trajectory_consensus_compute(trajectory_id=runs[0].pk)
    escalation = Escalation.objects.get()
    with pytest.raises(ValidationError, match="say why"):
        escalation_resolve(actor=qa_lead, escalation=escalation, choice="C", kind="annotator_error", reason=" ")
    with pytest.raises(ValidationError, match="not one of the labels"):
        escalation_resolve(actor=qa_lead, escalation=escalation, choice="D", kind="annotator_error", reason="x")
    with pytest.raises(ValidationError, match="−1, 0 or \\+1"):
        escalation_resolve(
            actor=qa_lead, escalation=escalation, choice="own", value=5, kind="annotator_error", reason="x"
        )
    escalation_resolve(
        actor=qa_lead, escalation=escalation, choice="C", kind="annotator_error", reason="The lookup succeeded: +1."
    )
    escalation.refresh_from_db()
    assert escalation.status == EscalationStatus.RESOLVED and escalation.decision == 1
    settled = Consensus.objects.get(trajectory=runs[0], step__index=0, field="process_reward")
    assert settled.method == ConsensusMethod.ADJUDICATED and settled.value == 1 and settled.escalation == escalation
    runs[0].refresh_from_db()
    assert runs[0].status == TrajectoryStatus.AUDITED
    gold = GoldItem.objects.get(trajectory=runs[0])
    assert gold.source == GoldSource.ADJUDICATED and "succeeded" in gold.explanation
    assert gold.reference["0"]["process_reward"] == 1
    assert gold.reference["0"]["argument_verdicts"] == {"reservation_id": "valid"}
    assert gold.reference["verdict"]["goal_completed"] is True
    assert AuditEvent.objects.filter(verb="escalation.resolve").count() == 1
    with pytest.raises(ValidationError, match="already resolved"):
        escalation_resolve(actor=qa_lead, escalation=escalation, choice="A", kind="ambiguous", reason="x")
    # the adjudication survives a rerun
    trajectory_consensus_compute(trajectory_id=runs[0].pk)
    assert Consensus.objects.get(trajectory=runs[0], step__index=0, field="process_reward").value == 1


def test_an_ambiguous_item_never_becomes_gold(setup, project, qa_lead) -> None:
    runs, users = setup
    _label_all(project, runs[:1], users, {(0, 0): {0: {"process_reward": -1}}, (0, 1): {0: {"process_reward": 0}}})
    trajectory_consensus_compute(trajectory_id=runs[0].pk)
    escalation_resolve(
        actor=qa_lead,
        escalation=Escalation.objects.get(),
        choice="own",
        value=0,
        kind="ambiguous",
        reason="The guideline does not say how to score a lookup the user did not need.",
    )
    assert not GoldItem.objects.exists()
    runs[0].refresh_from_db()
    assert runs[0].status == TrajectoryStatus.AUDITED


def test_an_adjudicated_invalid_argument_then_settles_its_corrected_value(setup, project, qa_lead) -> None:
    runs, users = setup
    fix = {"argument_verdicts": {"reservation_id": "invalid"}, "corrected_arguments": {"reservation_id": "ZFA999"}}
    _label_all(
        project,
        runs[:1],
        users,
        {(0, 0): {0: fix}, (0, 1): {0: fix | {"argument_verdicts": {"reservation_id": "unsure"}}}},
    )
    trajectory_consensus_compute(trajectory_id=runs[0].pk)
    escalation = Escalation.objects.get()
    assert escalation.field == "argument:reservation_id"
    assert not Consensus.objects.filter(field="corrected:reservation_id").exists()
    escalation_resolve(actor=qa_lead, escalation=escalation, choice="A", kind="annotator_error", reason="It is ZFA999.")
    corrected = Consensus.objects.get(field="corrected:reservation_id")
    assert corrected.value == "ZFA999" and corrected.agreement == "2/3"


def test_only_qa_leads_resolve_and_reassign_to_qa_leads(setup, project, pm, qa_lead) -> None:
    runs, users = setup
    _label_all(project, runs[:1], users, {(0, 0): {0: {"process_reward": -1}}, (0, 1): {0: {"process_reward": 0}}})
    trajectory_consensus_compute(trajectory_id=runs[0].pk)
    escalation = Escalation.objects.get()
    with pytest.raises(ValidationError, match="QA leads"):
        escalation_resolve(actor=users[0], escalation=escalation, choice="A", kind="ambiguous", reason="x")
    with pytest.raises(ValidationError, match="not a QA lead"):
        escalation_reassign(actor=pm, escalation=escalation, lead=users[1])
    other = make_user("lead2")
    membership_set(actor=pm, project=project, user=other, role=Role.QA_LEAD)
    escalation_reassign(actor=pm, escalation=escalation, lead=other)
    escalation.refresh_from_db()
    assert escalation.assigned_to == other


def test_a_sampled_review_is_confirmed_or_sent_to_the_qa_lead(setup, project, reviewer, qa_lead) -> None:
    runs, users = setup
    project.review_rate = 1.0
    project.save(update_fields=["review_rate"])
    _label_all(project, runs, users)
    for run in runs:
        assert trajectory_consensus_compute(trajectory_id=run.pk).reviewed
    first, second = Review.objects.order_by("id")
    review_confirm(actor=reviewer, review=first)
    first.refresh_from_db()
    assert first.status == ReviewStatus.CONFIRMED and first.reviewer == reviewer
    value = Consensus.objects.get(trajectory=second.trajectory, step__index=0, field="env_feedback")
    with pytest.raises(ValidationError, match="say what"):
        review_send(actor=reviewer, review=second, consensus=value, note="")
    escalation = review_send(actor=reviewer, review=second, consensus=value, note="The call returned an error.")
    assert escalation.assigned_to == qa_lead and len(escalation.label_ids) == 3
    second.trajectory.refresh_from_db()
    assert second.trajectory.status == TrajectoryStatus.ESCALATED
    escalation_resolve(
        actor=qa_lead,
        escalation=escalation,
        choice="own",
        value="failure",
        kind="annotator_error",
        reason="Error in the observation.",
    )
    value.refresh_from_db()
    assert value.value == "failure" and value.method == ConsensusMethod.ADJUDICATED
    second.trajectory.refresh_from_db()
    assert second.trajectory.status == TrajectoryStatus.AUDITED


def test_review_sampling_is_deterministic(setup, project) -> None:
    from audit.services.consensus import review_sampled

    runs, _ = setup
    assert [review_sampled(r, 0.5) for r in runs] == [review_sampled(r, 0.5) for r in runs]
    assert not any(review_sampled(r, 0.0) for r in runs) and all(review_sampled(r, 1.0) for r in runs)


def test_waiting_for_the_other_annotators(setup, project) -> None:
    runs, users = setup
    label_and_submit(claim(project, users[0], runs[0]), users[0])
    report = trajectory_consensus_compute(trajectory_id=runs[0].pk)
    assert report.waiting == "1 of 3 annotators submitted" and not Consensus.objects.exists()
