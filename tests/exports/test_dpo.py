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


def _run(trial: int, reward: float, *turns: dict) -> bytes:
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_reservation", "arguments": '{"reservation_id": "ZFA001"}'},
    }
    messages = [
        {"role": "user", "content": "please g1"},
        *({"tool_calls": [call], **t} if t.get("call") else t for t in turns),
    ]
    for m in messages:
        m.pop("call", None)
    record = {"messages": messages, "metadata": {"goal_id": "g1", "trial": trial, "reward": reward, "model": "m"}}
    return orjson.dumps(record) + b"\n"


CALL = {"role": "assistant", "content": None, "call": True}


def test_llamafactory_same_goal_pairs_part_at_the_first_differing_agent_turn(project, pm, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.review_rate = 0.0
    project.save(update_fields=["gold_rate", "review_rate"])
    ok = {"role": "tool", "tool_call_id": "c1", "content": "confirmed"}
    records = [
        _run(0, 1.0, CALL, ok, {"role": "assistant", "content": "done A"}),
        _run(1, 0.0, CALL, ok, {"role": "assistant", "content": "done B"}),  # parts at the reply
        _run(2, 0.0, CALL, {**ok, "content": "not found"}, {"role": "assistant", "content": "done C"}),  # at a result
        _run(3, 0.0, {"role": "assistant", "content": "no lookup"}),  # parts at the first turn
        _run(4, 0.0, CALL, ok, {"role": "user", "content": "and?"}, {"role": "assistant", "content": "x"}),
    ]
    run_import(project, b"".join(records))
    runs = list(Trajectory.objects.filter(project=project).order_by("id"))
    users = team(project, pm)
    for run in runs:
        for user in users:
            label_and_submit(claim(project, user, run), user)
        trajectory_consensus_compute(trajectory_id=run.pk)
    batch = batch_create(actor=pm, project=project, name="pairs", filters={})
    job = export_job_run(job_id=export_job_create(actor=pm, batch=batch, format="llamafactory_dpo").pk)
    rows = [orjson.loads(line) for line in (export_dir(job) / job.files[0]["name"]).read_bytes().splitlines()]
    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "exports/formats/llamafactory_dpo.schema.json").read_text()
    )
    validator = Draft202012Validator(schema)
    for row in rows:
        assert not list(validator.iter_errors(row))
        assert len(row["conversations"]) % 2 == 1 and row["pair"] == "same_goal"
    # A over C parts at a tool result, A over E where E's user speaks after a result (no LLaMA-Factory turn):
    # neither is an agent's choice between the same inputs, so neither is written
    by_rejected = {r["rejected_trajectory"]: r for r in rows}
    assert sorted(by_rejected) == sorted(str(runs[i].pk) for i in (1, 3))
    call = {"from": "function_call", "value": '{"name": "get_reservation", "arguments": {"reservation_id": "ZFA001"}}'}
    reply = by_rejected[str(runs[1].pk)]
    assert reply["conversations"] == [
        {"from": "human", "value": "please g1"},
        call,
        {"from": "observation", "value": "confirmed"},
    ]
    assert (reply["chosen"], reply["rejected"]) == (
        {"from": "gpt", "value": "done A"},
        {"from": "gpt", "value": "done B"},
    )
    first = by_rejected[str(runs[3].pk)]
    assert first["conversations"] == [{"from": "human", "value": "please g1"}]
    assert (first["chosen"], first["rejected"]) == (call, {"from": "gpt", "value": "no lookup"})
    assert all(r["chosen_trajectory"] == str(runs[0].pk) for r in rows)
    # TRL's pairs keep whole runs: the same preferences, the one parting at a result included
    job = export_job_run(job_id=export_job_create(actor=pm, batch=batch, format="trl_dpo").pk)
    trl = [orjson.loads(line) for line in (export_dir(job) / job.files[0]["name"]).read_bytes().splitlines()]
    assert sorted(r["rejected_trajectory"] for r in trl) == sorted(str(runs[i].pk) for i in (1, 2, 3, 4))
