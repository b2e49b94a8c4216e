"""Agreement figures recomputed from the labels in the database, checked against a plain computation."""

from __future__ import annotations

import pytest

from annotation.models import CalibrationRequirement, StepLabel
from annotation.services import assignment_claim_next, gold_item_create
from audit.agreement import cohen_kappa
from audit.models import AgreementRun, AgreementSnapshot, CalibrationFlag
from audit.services.agreement import calibration_flag_clear, project_agreement_compute
from audit.services.consensus import trajectory_consensus_compute
from core.models import AuditEvent
from tests.annotation.helpers import freeze_registry, import_runs
from tests.audit.helpers import claim, label_and_submit, step_values, team

pytestmark = pytest.mark.smoke

RUNS = 12


@pytest.fixture
def labelled(project, pm):
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.review_rate = 0.0
    project.consensus_rules = {"min_items": 5, "calibration_window": 20, "bootstrap_resamples": 200}
    project.calibration_threshold = 0.95
    project.save(update_fields=["gold_rate", "review_rate", "consensus_rules", "calibration_threshold"])
    runs = import_runs(project, RUNS)
    users = team(project, pm)
    for r, run in enumerate(runs):
        for u, user in enumerate(users):
            step0: dict = {"env_feedback": "failure" if r % 2 else "success"}
            if u == 2 and r % 3 == 0:
                step0["env_feedback"] = "partial"  # the third annotator disagrees on every third run
            if u == 1 and r % 4 == 1:
                step0["argument_verdicts"] = {"reservation_id": "invalid"}
            if u == 0 and r % 2 == 0:
                step0["rubric"] = {"latency": 2}
            label_and_submit(claim(project, user, run), user, steps={0: step0})
        trajectory_consensus_compute(trajectory_id=run.pk)
    return runs, users


ARG = {"valid": 0, "invalid": 1, "unsure": None}
ENV = {"success": 2, "partial": 3, "failure": 4}


def expected_tables(users):
    """Own value vs the other two annotators' common value, pooled over arguments and env feedback."""
    per_user = {u.pk: [[0] * 5 for _ in range(5)] for u in users}
    labels = StepLabel.objects.filter(step__index=0).select_related("assignment")
    by_step: dict[int, list[StepLabel]] = {}
    for label in labels:
        by_step.setdefault(label.step_id, []).append(label)
    for group in by_step.values():
        for label in group:
            others = [o for o in group if o.pk != label.pk]
            for own, theirs in (
                (
                    ARG.get(label.argument_verdicts["reservation_id"]),
                    [ARG.get(o.argument_verdicts["reservation_id"]) for o in others],
                ),
                (ENV[label.env_feedback], [ENV[o.env_feedback] for o in others]),
            ):
                if own is not None and theirs[0] is not None and theirs[0] == theirs[1]:
                    per_user[label.assignment.annotator_id][own][theirs[0]] += 1
    return per_user


def test_target_kappa_per_annotator_and_project_match_a_plain_computation(labelled, project) -> None:
    _runs, users = labelled
    run = project_agreement_compute(project_id=project.pk)
    assert run.label_rows == RUNS * 2 * 3
    assert run.definition["coefficient"] == "cohen_kappa" and run.definition["target"] == project.agreement_target
    snaps = AgreementSnapshot.objects.filter(run=run, measure="target")
    tables = expected_tables(users)
    total = [[sum(t[i][j] for t in tables.values()) for j in range(5)] for i in range(5)]
    project_figure = snaps.get(scope="project", coefficient="cohen_kappa")
    assert project_figure.value == pytest.approx(cohen_kappa(total).value, abs=1e-12)
    assert project_figure.n_items == sum(map(sum, total))
    assert project_figure.ci_low is not None and project_figure.ci_low <= project_figure.value <= project_figure.ci_high
    for user in users:
        mine = snaps.get(scope="annotator", annotator=user)
        expected = cohen_kappa(tables[user.pk])
        if expected.value is None:
            assert mine.value is None and mine.reason == expected.reason
        else:
            assert mine.value == pytest.approx(expected.value, abs=1e-12)
    pairs = snaps.filter(scope="pair")
    assert pairs.count() == 3 and all(p.n_items == RUNS * 2 for p in pairs)
    slices = {s.slice_key for s in snaps.filter(scope="slice")}
    assert {"tool:get_reservation", "kind:tool_call", "model:gpt-4o"} <= slices
    assert AgreementSnapshot.objects.filter(run=run, measure="rubric:latency", scope="project").exists()
    assert AgreementSnapshot.objects.filter(run=run, measure="tag:none").exists()


def test_not_enough_data_says_so_instead_of_a_number(labelled, project) -> None:
    project.consensus_rules = {"min_items": 1000}
    project.save(update_fields=["consensus_rules"])
    run = project_agreement_compute(project_id=project.pk, bootstrap=False)
    headline = AgreementSnapshot.objects.get(run=run, scope="project", measure="target", coefficient="cohen_kappa")
    assert headline.value is None and headline.reason == "not enough data" and headline.n_items > 0


def test_a_disagreeing_annotator_is_flagged_served_gold_and_cleared_by_the_lead(labelled, project, pm, qa_lead) -> None:
    _runs, users = labelled
    project_agreement_compute(project_id=project.pk)
    flags = CalibrationFlag.objects.filter(project=project, slice_key="project")
    assert users[2].pk in set(flags.values_list("annotator_id", flat=True))
    flag = flags.get(annotator=users[2])
    assert flag.upper_bound < project.calibration_threshold and flag.n_items == 20
    requirement = CalibrationRequirement.objects.get(project=project, annotator=users[2], slice_key="project")
    assert requirement.active
    project_agreement_compute(project_id=project.pk)  # a rerun does not flag twice
    assert CalibrationFlag.objects.filter(project=project, annotator=users[2], slice_key="project").count() == 1
    # while flagged, the annotator is served gold items of the slice (the project's gold rate is 0 here)
    extra = import_runs(project, RUNS + 1)[-1]
    gold_item_create(
        actor=pm,
        trajectory=extra,
        reference={
            str(s.index): step_values(s, axes=[a["key"] for a in project.rubric_axes]) for s in extra.steps.all()
        },
    )
    served = assignment_claim_next(annotator=users[2], project=project)
    assert served.trajectory_id == extra.pk and served.is_gold
    calibration_flag_clear(actor=qa_lead, flag=flag)
    requirement.refresh_from_db()
    assert not requirement.active and AuditEvent.objects.filter(verb="calibration.clear").exists()


def test_a_request_queued_before_a_later_computation_is_a_no_op(labelled, project) -> None:
    import time

    queued = time.time()
    assert project_agreement_compute(project_id=project.pk, bootstrap=False) is not None
    assert project_agreement_compute(project_id=project.pk, bootstrap=False, queued_at=queued) is None
    assert AgreementRun.objects.filter(project=project).count() == 1


@pytest.mark.parametrize("seed", range(20))
def test_the_three_rater_shortcut_gives_the_general_rule(seed) -> None:
    """Leave-one-out targets: the fast path for units of at most three labels equals the counting rule."""
    import numpy as np

    from audit.services import agreement as a

    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, size=200)
    units = np.repeat(np.arange(200), sizes)
    code = rng.integers(-1, 3, size=units.size)
    gold = rng.random(units.size) < 0.1

    def votes():
        return a.Votes(unit=units.copy(), step=units, trajectory=units, annotator=np.arange(units.size),
                       gold=gold, submitted=units, code=code)  # fmt: skip

    fast = a.with_targets(votes(), 3, np.full(units.size, -1))
    general = votes()
    general.unit = general.unit[::-1].copy()  # not sorted: the counting path
    general.code, general.gold = code[::-1].copy(), gold[::-1].copy()
    general = a.with_targets(general, 3, np.full(units.size, -1))
    assert (fast.target == general.target[::-1]).all()
    assert (fast.target >= 0).any()
