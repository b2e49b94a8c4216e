"""The full Stepwise JSONL: the run re-imports through the canonical importer with the same content hash;
labels (pseudonymous), consensus with how it was reached, adjudications and evidence travel with it."""

from __future__ import annotations

import orjson
import pytest

from audit.models import Escalation
from audit.services.escalations import escalation_resolve
from core.services import project_create
from exports.services.batches import batch_create
from exports.services.jobs import export_dir, export_job_create, export_job_run
from tests.trajectories.fixtures_util import run_import
from trajectories.models import Trajectory

pytestmark = pytest.mark.smoke


def test_everything_travels_and_the_run_reimports_identically(batch, project, pm, qa_lead) -> None:
    job = export_job_run(job_id=export_job_create(actor=pm, batch=batch, format="stepwise").pk)
    data = (export_dir(job) / job.files[0]["name"]).read_bytes()
    rows = [orjson.loads(line) for line in data.splitlines()]
    assert len(rows) == 3
    first = rows[0]
    assert first["format"] == "stepwise.trajectory" and len(first["labels"]) == 3
    assert all(label["annotator"].startswith("annotator-") for label in first["labels"])
    assert first["labels"][0]["steps"]["0"]["argument_verdicts"] == {"reservation_id": "valid"}
    assert first["consensus"]["steps"]["0"]["env_feedback"] == {
        "value": "success",
        "method": "unanimous",
        "agreement": "3/3",
    }
    assert first["consensus"]["verdict"]["goal_completed"]["value"] is True
    assert (
        first["source"]["content_sha256"] == Trajectory.objects.get(rollout_id="run-0", project=project).content_sha256
    )

    other = project_create(actor=pm, name="Elsewhere", kind="tool_use")
    job_in = run_import(other, data, name="export.jsonl")
    assert job_in.rejected == 0 and job_in.trajectories_imported == 3
    for original in Trajectory.objects.filter(project=project):
        copy = Trajectory.objects.get(project=other, rollout_id=original.rollout_id)
        assert copy.content_sha256 == original.content_sha256 and copy.step_count == original.step_count


def test_adjudications_are_exported(project, pm, qa_lead, settings, tmp_path) -> None:
    from audit.services.consensus import trajectory_consensus_compute
    from tests.annotation.helpers import freeze_registry, import_runs
    from tests.audit.helpers import claim, label_and_submit, team

    settings.MEDIA_ROOT = tmp_path
    freeze_registry(project, pm)
    project.gold_rate = project.review_rate = 0.0
    project.save(update_fields=["gold_rate", "review_rate"])
    (run,) = import_runs(project, 1)
    for u, user in enumerate(team(project, pm)):
        label_and_submit(claim(project, user, run), user, steps={0: {"process_reward": u - 1}})
    trajectory_consensus_compute(trajectory_id=run.pk)
    escalation_resolve(
        actor=qa_lead, escalation=Escalation.objects.get(), choice="C", kind="annotator_error", reason="+1."
    )
    batch = batch_create(actor=pm, project=project, name="adj", filters={})
    job = export_job_run(job_id=export_job_create(actor=pm, batch=batch, format="stepwise").pk)
    (row,) = [orjson.loads(line) for line in (export_dir(job) / job.files[0]["name"]).read_bytes().splitlines()]
    assert row["consensus"]["steps"]["0"]["process_reward"]["method"] == "adjudicated"
    (adjudication,) = row["consensus"]["adjudications"]
    assert adjudication | {"explanation": ""} == {
        "step": 0,
        "field": "process_reward",
        "source": "consensus",
        "reason": "votes differ",
        "choice": "C",
        "value": 1,
        "kind": "annotator_error",
        "explanation": "",
    }
