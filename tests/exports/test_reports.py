"""The reports page: pass@1 / pass^k as τ-bench defines them, failure modes per model, rewards, cost; CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.urls import reverse

from audit.services.consensus import trajectory_consensus_compute
from tests.annotation.helpers import freeze_registry, import_runs
from tests.audit.helpers import claim, label_and_submit, team
from tests.conftest import login
from tests.trajectories.fixtures_util import run_import

pytestmark = pytest.mark.smoke


def _csv(response) -> list[list[str]]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_pass_k_of_the_tau_bench_sample_on_the_page_and_in_csv(project, pm, samples_dir: Path) -> None:
    run_import(project, (samples_dir / "tau-bench_gpt-4o-airline_excerpt.json").read_bytes(), name="tau.json")
    url = reverse("reports", kwargs={"project_slug": project.slug})
    html = login(pm).get(url).content.decode()
    assert "pass^4" in html and "0.333" in html
    header, row = _csv(login(pm).get(url, {"csv": "reliability"}))
    assert header[:7] == ["model", "model", "goals", "trials", "successes", "avg_reward", "pass@1"]
    values = dict(zip(header, row, strict=True))
    assert (values["goals"], values["trials"], values["successes"]) == ("4", "16", "8")
    assert [round(float(values[f"pass^{k}"]), 4) for k in (1, 2, 3, 4)] == [0.5, 0.3333, 0.25, 0.25]
    by_goal = _csv(login(pm).get(url, {"csv": "reliability", "by": "goal"}))
    assert len(by_goal) == 5 and by_goal[0][1] == "goal"


def test_failure_modes_rewards_and_cost_per_model(project, pm, annotator) -> None:
    freeze_registry(project, pm)
    project.gold_rate = 0.0
    project.review_rate = 0.0
    project.save(update_fields=["gold_rate", "review_rate"])
    runs = import_runs(project, 2)
    users = team(project, pm)
    for r, run in enumerate(runs):
        for user in users:
            steps = {0: {"failure_modes": ["schema_drift"]}} if r == 0 else None
            label_and_submit(claim(project, user, run), user, steps=steps)
        trajectory_consensus_compute(trajectory_id=run.pk)
    url = reverse("reports", kwargs={"project_slug": project.slug})
    failures = _csv(login(pm).get(url, {"csv": "failures"}))
    header, row = failures
    counts = dict(zip(header, row, strict=True))
    assert counts["model"] == "gpt-4o" and counts["steps"] == "4"
    assert counts["schema_drift"] == "1" and counts["none"] == "3"
    costs = dict(zip(*_csv(login(pm).get(url, {"csv": "costs"})), strict=True))
    assert costs["audited_trajectories"] == "2"
    assert login(annotator).get(url).status_code == 403
