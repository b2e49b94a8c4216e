"""Preference pairs from runs of the same goal, ordered by reward (then rubric)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from audit.services.consensus import trajectory_consensus_compute
from exports.services.batches import batch_create
from exports.services.jobs import export_dir, export_job_create, export_job_run
from tests.annotation.helpers import freeze_registry
from tests.audit.helpers import claim, label_and_submit, team
from tests.trajectories.fixtures_util import run_import
from trajectories.models import Trajectory

pytestmark = pytest.mark.smoke
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "exports/formats/trl_dpo.schema.json").read_text())


def _chat(goal: str, trial: int, reward: float) -> bytes:
    record = {
        "messages": [
            {"role": "user", "content": f"please {goal}"},
            {"role": "assistant", "content": f"answer {trial}"},
        ],
        "metadata": {"goal_id": goal, "trial": trial, "reward": reward, "model": "m"},
    }
    return orjson.dumps(record) + b"\n"


def test_pairs_prefer_the_higher_reward_within_a_goal(project, pm, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.review_rate = 0.0
    project.save(update_fields=["gold_rate", "review_rate"])
    run_import(project, b"".join([_chat("g1", 0, 1.0), _chat("g1", 1, 0.0), _chat("g1", 2, 0.0), _chat("g2", 0, 1.0)]))
    runs = list(Trajectory.objects.filter(project=project).order_by("id"))
    users = team(project, pm)
    for run in runs:
        for user in users:
            label_and_submit(claim(project, user, run), user)
        trajectory_consensus_compute(trajectory_id=run.pk)
    batch = batch_create(actor=pm, project=project, name="pairs", filters={})
    job = export_job_run(job_id=export_job_create(actor=pm, batch=batch, format="trl_dpo").pk)
    rows = [orjson.loads(line) for line in (export_dir(job) / job.files[0]["name"]).read_bytes().splitlines()]
    validator = Draft202012Validator(SCHEMA)
    assert len(rows) == 2  # g1: the rewarded run over each of the two others; g2 has one run
    for row in rows:
        assert not list(validator.iter_errors(row))
        assert row["prompt"] == [{"role": "user", "content": "please g1"}]
        assert row["chosen"] == [{"role": "assistant", "content": "answer 0"}]
    assert {r["rejected"][0]["content"] for r in rows} == {"answer 1", "answer 2"}
    manifest = orjson.loads((export_dir(job) / "manifest.json").read_bytes())
    assert all("+" in r["trajectory"] for r in manifest["records"])  # a pair comes from the goal's runs
