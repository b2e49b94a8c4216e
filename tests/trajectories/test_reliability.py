"""pass@1 and pass^k (τ-bench's definition, FORMATS.md §1.5) from imported trajectories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.trajectories.fixtures_util import run_import
from trajectories.models import Goal, ImportStatus
from trajectories.selectors.reliability import pass_hat_k, reliability_for_project

pytestmark = pytest.mark.smoke  # one aggregate query: PostgreSQL and SQLite alike

SAMPLE = "tau-bench_gpt-4o-airline_excerpt.json"


def test_pass_hat_k_is_the_chance_that_k_trials_all_succeeded() -> None:
    assert pass_hat_k(4, 4, 4) == 1.0
    assert pass_hat_k(2, 4, 1) == 0.5
    assert pass_hat_k(2, 4, 2) == pytest.approx(1 / 6)
    assert pass_hat_k(2, 4, 3) == 0.0  # fewer successes than k
    assert pass_hat_k(0, 3, 1) == 0.0
    for bad in ((5, 4, 1), (-1, 4, 1), (2, 4, 0), (2, 4, 5)):
        with pytest.raises(ValueError):
            pass_hat_k(*bad)


def test_the_real_sample_gives_tau_benchs_own_figures(project, samples_dir: Path, django_assert_num_queries) -> None:
    job = run_import(project, (samples_dir / SAMPLE).read_bytes(), name=SAMPLE)
    assert job.status == ImportStatus.DONE
    with django_assert_num_queries(1):
        [row] = reliability_for_project(project=project)
    assert (row.model, row.label, row.goals, row.trials, row.successes) == ("", "(no model)", 4, 16, 8)
    assert row.avg_reward == 0.5
    assert row.pass_at_1 == 0.5
    assert {k: round(v, 4) for k, v in row.pass_hat.items()} == {1: 0.5, 2: 0.3333, 3: 0.25, 4: 0.25}
    assert row.goals_at_k == {1: 4, 2: 4, 3: 4, 4: 4}
    assert (row.full_k, row.max_k) == (4, 4)
    assert {g.external_id: (g.successes, g.trials) for g in row.per_goal} == {
        "tau-bench:airline:8": (0, 4),
        "tau-bench:airline:41": (2, 4),
        "tau-bench:airline:44": (2, 4),
        "tau-bench:airline:48": (4, 4),
    }
    by_goal = reliability_for_project(project=project, by="goal")
    assert [(r.label, r.pass_hat[2]) for r in by_goal] == [
        ("tau-bench:airline:8", 0.0),
        ("tau-bench:airline:41", pytest.approx(1 / 6)),
        ("tau-bench:airline:44", pytest.approx(1 / 6)),
        ("tau-bench:airline:48", 1.0),
    ]
    assert reliability_for_project(project=project, model="gpt-4o") == []


def chat(goal: str, trial: int, reward: float | None, model: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"goal_id": goal, "trial": trial, "model": model}
    if reward is not None:
        metadata["reward"] = reward
    return {
        "messages": [
            {"role": "user", "content": f"do {goal}"},
            {"role": "assistant", "content": f"done {goal} {trial}"},
        ],
        "metadata": metadata,
    }


def import_runs(project, runs: list[dict[str, Any]]) -> None:
    job = run_import(project, b"".join(json.dumps(r).encode() + b"\n" for r in runs), name="runs.jsonl")
    assert (job.status, job.rejected) == (ImportStatus.DONE, 0), job.errors


def test_goals_with_fewer_trials_than_k_are_left_out_of_pass_k(project) -> None:
    import_runs(
        project,
        [
            chat("short", 0, 1.0, "m"),
            chat("short", 1, 0.0, "m"),
            *(chat("long", t, 1.0, "m") for t in range(4)),
        ],
    )
    [row] = reliability_for_project(project=project)
    assert row.goals_at_k == {1: 2, 2: 2, 3: 1, 4: 1}
    assert row.pass_hat[1] == pytest.approx((1 / 2 + 1) / 2)
    assert row.pass_hat[2] == pytest.approx((0 + 1) / 2)
    assert row.pass_hat[3] == 1.0  # only "long" has 3 trials
    assert row.pass_hat[4] == 1.0
    assert (row.full_k, row.max_k) == (2, 4)
    assert row.pass_at_1 == pytest.approx(5 / 6)  # per trial, where pass^1 is per goal


def test_success_is_a_reward_of_one_within_tau_benchs_tolerance_and_runs_without_a_reward_are_not_trials(
    project,
) -> None:
    import_runs(
        project,
        [
            chat("g", 0, 0.9999995, "m"),
            chat("g", 1, 1.0000005, "m"),
            chat("g", 2, 0.99, "m"),
            chat("g", 3, 2.0, "m"),
            chat("g", 4, None, "m"),
        ],
    )
    [row] = reliability_for_project(project=project)
    assert (row.trials, row.successes) == (4, 2)
    assert row.avg_reward == pytest.approx((0.9999995 + 1.0000005 + 0.99 + 2.0) / 4)


def test_per_model_and_per_band(project, django_assert_num_queries) -> None:
    import_runs(
        project,
        [
            *(chat("easy", t, 1.0, "alpha") for t in range(2)),
            *(chat("hard", t, float(t == 0), "alpha") for t in range(2)),
            *(chat("easy", t, float(t == 0), "beta") for t in range(2)),
            *(chat("hard", t, 0.0, "beta") for t in range(2)),
        ],
    )
    Goal.objects.filter(project=project, external_id="easy").update(band="atomic")
    Goal.objects.filter(project=project, external_id="hard").update(band="composite")
    with django_assert_num_queries(1):
        by_model = reliability_for_project(project=project)
    assert [(r.model, r.pass_hat) for r in by_model] == [
        ("alpha", {1: 0.75, 2: 0.5}),
        ("beta", {1: 0.25, 2: 0.0}),
    ]
    by_band = reliability_for_project(project=project, by="band")
    assert [(r.model, r.label, r.pass_hat[1]) for r in by_band] == [
        ("alpha", "atomic", 1.0),
        ("alpha", "composite", 0.5),
        ("beta", "atomic", 0.5),
        ("beta", "composite", 0.0),
    ]
    [beta] = reliability_for_project(project=project, model="beta")
    assert (beta.model, beta.goals, beta.trials) == ("beta", 2, 4)
    with pytest.raises(ValueError):
        reliability_for_project(project=project, by="scaffold")
