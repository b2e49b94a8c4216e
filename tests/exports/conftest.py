"""A batch of three audited runs: one plain, one with a corrected argument, one with a wrong tool; the plain one
has a −1 process reward on its reply. `audited`: a project for the Stepwise round trip."""

from __future__ import annotations

import orjson
import pytest

from audit.models import Escalation
from audit.services.consensus import trajectory_consensus_compute
from audit.services.escalations import escalation_resolve
from core.models import Project
from exports.services.batches import batch_create
from tests.annotation.helpers import freeze_registry, import_runs
from tests.audit.helpers import claim, label_and_submit, team
from tests.trajectories.fixtures_util import run_import
from trajectories.models import Trajectory
from verification.services import trajectories_verify


@pytest.fixture
def batch(project, pm, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.review_rate = 0.0
    project.save(update_fields=["gold_rate", "review_rate"])
    runs = import_runs(project, 3)
    users = team(project, pm)
    fix = {"argument_verdicts": {"reservation_id": "invalid"}, "corrected_arguments": {"reservation_id": "ZFA999"}}
    for r, run in enumerate(runs):
        for user in users:
            wrong = {0: {"tool_verdict": "wrong", "correct_tool": "get_reservation"}}
            steps = {0: fix} if r == 1 else wrong if r == 2 else {1: {"process_reward": -1}}
            label_and_submit(claim(project, user, run), user, steps=steps)
        trajectory_consensus_compute(trajectory_id=run.pk)
    return batch_create(actor=pm, project=project, name="sft", filters={})


@pytest.fixture
def audited(project, pm, qa_lead, settings, tmp_path) -> Project:
    """Three runs, three annotators each (one run with a split vote a QA lead adjudicated, one with a
    corrected argument), consensus on all, and the machine checks' evidence (a schema finding on one run)."""
    settings.MEDIA_ROOT = tmp_path
    freeze_registry(project, pm)
    project.gold_rate = project.review_rate = 0.0
    project.save(update_fields=["gold_rate", "review_rate"])
    runs = import_runs(project, 2)
    # …and one in the canonical format, timed as many files write it ("Z", which an export writes as +00:00)
    step = {"turn_id": "", "plan": "", "arguments_raw": None, "reflection": "", "usage": None}
    canonical = {
        "format": "stepwise.trajectory",
        "version": 1,
        "goal": {"prompt": "Where is it?"},
        "model": "gpt-4o",
        "rollout_id": "run-bad",
        "steps": [
            step
            | {
                "index": 0,
                "kind": "tool_call",
                "state": [{"role": "user", "content": "Where is it?"}],
                "tool_call": {"name": "get_reservation", "id": "c9"},
                "arguments": {"reservation_id": "not-an-id"},
                "observation": "not found",
                "success_flag": False,
                "timing": {
                    "started_at": "2025-03-01T10:00:00Z",
                    "ended_at": "2025-03-01T10:00:01.5Z",
                    "latency_ms": 1500,
                },
            },
            step
            | {
                "index": 1,
                "kind": "respond",
                "state": [],
                "tool_call": None,
                "arguments": None,
                "observation": None,
                "success_flag": None,
                "plan": "I could not find it.",
                "timing": None,
            },
        ],
    }
    job = run_import(project, orjson.dumps(canonical) + b"\n", name="bad.jsonl")
    assert job.trajectories_imported == 1, job.errors
    runs.append(Trajectory.objects.get(project=project, rollout_id="run-bad"))
    assert trajectories_verify(trajectory_ids=[r.pk for r in runs]) == {  # every machine check, as on import
        "schema:created": 3,
        "grounding:created": 3,
        "replay:created": 3,
        "final_state:skipped": 3,
    }
    users = team(project, pm)
    fix = {"argument_verdicts": {"reservation_id": "invalid"}, "corrected_arguments": {"reservation_id": "ZFA999"}}
    for r, run in enumerate(runs):
        for u, user in enumerate(users):
            steps = {0: {"process_reward": u - 1}} if r == 0 else {0: fix} if r == 1 else {1: {"comment": f"u{u}"}}
            label_and_submit(claim(project, user, run), user, steps=steps, verdict={"first_failing_step": None})
        trajectory_consensus_compute(trajectory_id=run.pk)
    escalation_resolve(
        actor=qa_lead, escalation=Escalation.objects.get(), choice="C", kind="annotator_error", reason="+1."
    )
    return project
