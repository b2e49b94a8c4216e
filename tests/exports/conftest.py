"""A batch of three audited runs: one plain, one with a corrected argument, one with a wrong tool; the plain one
has a −1 process reward on its reply."""

from __future__ import annotations

import pytest

from audit.services.consensus import trajectory_consensus_compute
from exports.services.batches import batch_create
from tests.annotation.helpers import freeze_registry, import_runs
from tests.audit.helpers import claim, label_and_submit, team


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
