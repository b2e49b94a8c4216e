"""Reliability of a model over repeated trials: pass@1 and pass^k, as τ-bench defines them.

FORMATS.md §1.5 (tau_bench/run.py:display_metrics, arXiv 2406.12045):

    success(r) = 1 - 1e-6 <= r <= 1 + 1e-6
    pass^k     = mean over tasks t of C(c_t, k) / C(n_t, k)

A task here is a goal as one model attempted it: its trials are that model's trajectories of the
goal that have a reward (a run without one — unknown outcome, or a τ² simulation τ² itself leaves
out of its metrics — is not a trial). Trials are counted per goal (n_t, as τ²-bench does), not
once for the whole file (τ-bench v1's global n; the two agree when every task has as many trials).
A goal with fewer trials than k says nothing about pass^k: it is left out of pass^k for that k,
and `goals_at_k` says how many goals each pass^k is the mean of. τ²-bench instead stops at the
smallest trial count (`max_k` here is the largest count; `full_k`, the smallest, is the last k
that every goal counts toward).

One aggregate query (trajectories grouped by model and goal); Python only adds up the groups.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from math import comb

from django.db.models import Count, Q, Sum

from core.models import Project
from trajectories.models import Trajectory

SUCCESS_TOLERANCE = 1e-6
GROUPINGS = ("model", "band", "goal")


def pass_hat_k(successes: int, trials: int, k: int) -> float:
    """C(c, k) / C(n, k): the chance that k trials drawn from the n all succeeded."""
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be between 0 and the trials ({trials}), not {successes}")
    if not 1 <= k <= trials:
        raise ValueError(f"k must be between 1 and the trials ({trials}), not {k}")
    return comb(successes, k) / comb(trials, k)


@dataclass(frozen=True, slots=True)
class GoalTrials:
    """One model's trials of one goal."""

    model: str
    goal_id: int
    external_id: str
    band: str
    trials: int
    successes: int
    reward_sum: float


@dataclass(frozen=True, slots=True)
class Reliability:
    """pass@1 and pass^k of one group: a model, a model on one band, or a model on one goal."""

    model: str
    key: str  # "" (by model), the band (by band; "" when unbanded) or the goal's id (by goal)
    label: str
    goals: int
    trials: int
    successes: int
    avg_reward: float  # mean of all rewards
    pass_at_1: float  # mean success over all trials
    pass_hat: dict[int, float]  # k → mean over goals with ≥ k trials of C(c, k) / C(n, k)
    goals_at_k: dict[int, int]  # k → how many goals pass^k is the mean of
    full_k: int  # the largest k every goal of the group counts toward (its smallest trial count)
    per_goal: list[GoalTrials] = field(default_factory=list)

    @property
    def max_k(self) -> int:
        return max(self.pass_hat, default=0)


def goal_trials_for_project(*, project: Project, model: str | None = None) -> list[GoalTrials]:
    """Trials and successes per (model, goal), in one aggregate query."""
    success = Q(outcome_reward__gte=1 - SUCCESS_TOLERANCE, outcome_reward__lte=1 + SUCCESS_TOLERANCE)
    qs = Trajectory.objects.filter(project=project, goal__isnull=False, outcome_reward__isnull=False)
    if model is not None:
        qs = qs.filter(model_name=model)
    rows = (
        qs.values("model_name", "goal_id", "goal__external_id", "goal__band")
        .annotate(trials=Count("id"), successes=Count("id", filter=success), reward_sum=Sum("outcome_reward"))
        .order_by("model_name", "goal_id")
    )
    return [
        GoalTrials(
            model=row["model_name"],
            goal_id=row["goal_id"],
            external_id=row["goal__external_id"],
            band=row["goal__band"],
            trials=row["trials"],
            successes=row["successes"],
            reward_sum=float(row["reward_sum"] or 0.0),
        )
        for row in rows
    ]


def reliability_of(
    goal_trials: Iterable[GoalTrials], *, model: str = "", key: str = "", label: str = ""
) -> Reliability:
    """pass@1 and pass^k (k = 1 … the most trials of any goal) over some goals' trials."""
    goals = list(goal_trials)
    trials = sum(g.trials for g in goals)
    successes = sum(g.successes for g in goals)
    max_k = max((g.trials for g in goals), default=0)
    pass_hat: dict[int, float] = {}
    goals_at_k: dict[int, int] = {}
    for k in range(1, max_k + 1):
        counted = [pass_hat_k(g.successes, g.trials, k) for g in goals if g.trials >= k]
        pass_hat[k] = sum(counted) / len(counted)
        goals_at_k[k] = len(counted)
    return Reliability(
        model=model,
        key=key,
        label=label,
        goals=len(goals),
        trials=trials,
        successes=successes,
        avg_reward=sum(g.reward_sum for g in goals) / trials if trials else 0.0,
        pass_at_1=successes / trials if trials else 0.0,
        pass_hat=pass_hat,
        goals_at_k=goals_at_k,
        full_k=min((g.trials for g in goals), default=0),
        per_goal=goals,
    )


def reliability_for_project(*, project: Project, model: str | None = None, by: str = "model") -> list[Reliability]:
    """pass@1 and pass^k per model (`by="model"`), per model and difficulty band (`"band"`), or
    per model and goal (`"goal"`); `model` keeps one model only ("" is the runs without a model).

    The caller has resolved `project` for the person asking (core.selectors.project_get_for_user).
    """
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    groups: dict[tuple[str, str], list[GoalTrials]] = defaultdict(list)
    labels: dict[tuple[str, str], str] = {}
    for goal in goal_trials_for_project(project=project, model=model):
        if by == "model":
            key, label = "", goal.model or "(no model)"
        elif by == "band":
            key, label = goal.band, goal.band or "(no band)"
        else:
            key, label = str(goal.goal_id), goal.external_id or f"goal {goal.goal_id}"
        groups[(goal.model, key)].append(goal)
        labels[(goal.model, key)] = label
    return [
        reliability_of(goals, model=model_name, key=key, label=labels[(model_name, key)])
        for (model_name, key), goals in (groups.items() if by == "goal" else sorted(groups.items()))
    ]
