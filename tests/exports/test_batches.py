"""Cutting batches from audited trajectories by filters, through the service and the pages."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.services.consensus import trajectory_consensus_compute
from core.models import AuditEvent
from exports.models import Batch
from exports.services.batches import batch_create
from tests.annotation.helpers import freeze_registry, import_runs
from tests.audit.helpers import claim, label_and_submit, team
from tests.conftest import login

pytestmark = pytest.mark.smoke


@pytest.fixture
def audited(project, pm):
    """Four runs: three settled unanimously, one escalated (three different rewards on step 0)."""
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.review_rate = 0.0
    project.save(update_fields=["gold_rate", "review_rate"])
    runs = import_runs(project, 4)
    users = team(project, pm)
    for r, run in enumerate(runs):
        for u, user in enumerate(users):
            steps = {0: {"process_reward": u - 1}} if r == 3 else None
            label_and_submit(claim(project, user, run), user, steps=steps)
        trajectory_consensus_compute(trajectory_id=run.pk)
    return runs


def test_a_batch_freezes_the_audited_runs_the_filters_select(audited, project, pm) -> None:
    batch = batch_create(actor=pm, project=project, name="v1", filters={"model": ["gpt-4o"], "consensus": "unanimous"})
    assert set(batch.trajectories.values_list("id", flat=True)) == {r.pk for r in audited[:3]}
    assert batch.frozen_at is not None and batch.summary["trajectories"] == 3 and batch.summary["steps"] == 6
    assert batch.summary["models"] == {"gpt-4o": 3}
    target = next(
        f for f in batch.summary["agreement"] if f["measure"] == "target" and f["coefficient"] == "cohen_kappa"
    )
    assert target["n_items"] > 0 and target["raw_agreement"] == 1.0
    assert AuditEvent.objects.filter(verb="batch.create").count() == 1


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"band": ["huge"]}, "/band/0"),
        ({"reward_min": "high"}, "/reward_min"),
        ({"colour": ["red"]}, "Additional properties"),
        ({"imported_from": "yesterday"}, "/imported_from"),
        ({"model": ["claude-9"]}, "no audited trajectory"),
    ],
)
def test_bad_filters_are_refused_with_the_place(audited, project, pm, filters, message) -> None:
    with pytest.raises(ValidationError) as refused:
        batch_create(actor=pm, project=project, name="bad", filters=filters)
    assert message in " ".join(refused.value.messages)
    assert not Batch.objects.exists()


def test_names_are_unique_per_project(audited, project, pm) -> None:
    batch_create(actor=pm, project=project, name="v1", filters={})
    with pytest.raises(ValidationError, match="already has a batch"):
        batch_create(actor=pm, project=project, name="v1", filters={})


def test_the_pages_cut_and_show_a_batch(audited, project, pm, annotator, reviewer) -> None:
    url = reverse("exports:batches", kwargs={"project_slug": project.slug})
    assert login(annotator).get(url).status_code == 403
    assert login(reviewer).post(url, {"name": "x", "consensus": "any"}).status_code == 403
    bad = login(pm).post(url, {"name": "x", "consensus": "any", "reward_min": "lots"})
    assert bad.status_code == 422 and "Enter a number" in bad.content.decode()
    done = login(pm).post(url, {"name": "release 1", "consensus": "any", "model": "gpt-4o", "band": []})
    assert done.status_code == 302
    batch = Batch.objects.get()
    page = login(reviewer).get(reverse("exports:batch", kwargs={"project_slug": project.slug, "batch_id": batch.pk}))
    html = page.content.decode()
    assert page.status_code == 200 and "release 1" in html and "cohen_kappa" in html
    assert batch.trajectories.count() == 3  # the escalated run is not audited
