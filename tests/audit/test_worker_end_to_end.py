"""Three annotators label one run through the real views with one planted disagreement; a real Celery
worker computes consensus; the QA lead resolves the escalation through the views; the item becomes
gold and the agreement figures are recomputed by the worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.urls import reverse

from annotation.models import Assignment, GoldItem
from audit.models import AgreementRun, Consensus, Escalation, EscalationStatus
from tests.annotation.helpers import freeze_registry, import_runs
from tests.audit.helpers import team
from tests.conftest import login
from tests.trajectories.test_worker import _start_worker, _stop, _wait_for
from trajectories.models import TrajectoryStatus

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def worker(tmp_path) -> Iterator[Path]:
    from config.celery import app as celery_app

    celery_app.control.purge()
    log = tmp_path / "worker.log"
    process = _start_worker({}, log, queues="default,imports,checks")
    try:
        _wait_for(lambda: bool(celery_app.control.ping(timeout=0.5)), timeout=60, what="ping", log=log)
        yield log
    finally:
        _stop(process)


def _label_through_the_views(client, project, reward: int) -> None:
    start = client.post(reverse("annotation:start_next", kwargs={"project_slug": project.slug}))
    assert start.status_code == 302
    assignment = Assignment.objects.filter(annotator_id=client.session["_auth_user_id"]).get()
    axes = [a["key"] for a in project.rubric_axes]
    for step in assignment.trajectory.steps.order_by("index"):
        data: dict = {
            "field": ["failure_modes", "rubric", "process_reward"],
            "failure_modes": ["none"],
            "process_reward": str(reward if step.index == 0 else 1),
            "base_version": 0,
            **{f"rubric-{a}": "4" for a in axes},
        }
        if step.kind == "tool_call":
            data["field"] += ["argument_verdicts", "tool_verdict", "env_feedback"]
            data |= {"verdict-0": "valid", "tool_verdict": "right", "env_feedback": "success"}
        url = reverse(
            "annotation:step_save",
            kwargs={"project_slug": project.slug, "assignment_id": assignment.pk, "index": step.index},
        )
        assert client.post(url, data, **HX).status_code == 200
    verdict = {
        "field": ["goal_completed", "overall_success", "efficiency", "error_handling"],
        "goal_completed": "yes",
        "overall_success": "yes",
        "efficiency": "4",
        "error_handling": "4",
        "base_version": 0,
    }
    kwargs = {"project_slug": project.slug, "assignment_id": assignment.pk}
    assert client.post(reverse("annotation:verdict_save", kwargs=kwargs), verdict, **HX).status_code == 200
    assert client.post(reverse("annotation:submit", kwargs=kwargs)).status_code == 302


@pytest.mark.django_db(transaction=True)
def test_consensus_escalation_adjudication_gold_and_agreement_with_a_real_worker(project, pm, qa_lead, worker) -> None:
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.review_rate = 0.0
    project.save(update_fields=["gold_rate", "review_rate"])
    (run,) = import_runs(project, 1)
    for user, reward in zip(team(project, pm), (-1, 0, 1), strict=True):  # the planted disagreement
        _label_through_the_views(login(user), project, reward)

    _wait_for(lambda: Escalation.objects.filter(trajectory=run).exists(), timeout=60, what="the escalation", log=worker)
    _wait_for(lambda: AgreementRun.objects.filter(project=project).exists(), timeout=60, what="agreement", log=worker)
    escalation = Escalation.objects.get()
    assert escalation.field == "process_reward" and escalation.assigned_to == qa_lead
    run.refresh_from_db()
    assert run.status == TrajectoryStatus.ESCALATED
    assert Consensus.objects.filter(trajectory=run, field="env_feedback").get().agreement == "3/3"

    lead = login(qa_lead)
    queue = lead.get(reverse("audit:escalations"), {"project": project.slug}).content.decode()
    url = reverse("audit:escalation", kwargs={"escalation_id": escalation.pk})
    assert f'href="{url}"' in queue
    runs_before = AgreementRun.objects.filter(project=project).count()
    response = lead.post(
        url, {"choice": "C", "kind": "annotator_error", "reason": "The lookup worked: +1.", "then": "stay"}
    )
    assert response.status_code == 302
    escalation.refresh_from_db()
    assert escalation.status == EscalationStatus.RESOLVED
    assert GoldItem.objects.get(trajectory=run).reference["0"]["process_reward"] == 1
    _wait_for(
        lambda: AgreementRun.objects.filter(project=project).count() > runs_before,
        timeout=60,
        what="the agreement figures to be recomputed",
        log=worker,
    )
    page = lead.get(reverse("audit:quality", kwargs={"project_slug": project.slug})).content.decode()
    assert 'id="headline-kappa"' in page
