"""Reports beside the exports: reliability over luck (pass@1, pass^k), failure modes per model, rewards,
and the cost of a verified trajectory. Reads only; the caller resolved the project for the person asking."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Sum

from annotation.models import Assignment, AssignmentStatus
from audit.models import Consensus
from core.models import Project
from trajectories.models import Trajectory, TrajectoryStatus
from trajectories.selectors.reliability import Reliability, reliability_for_project
from verification.models import CheckRun

REWARD_BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass
class FailureRow:
    model: str
    steps: int  # steps with a settled failure-mode value
    counts: dict[str, int]


@dataclass
class RewardRow:
    model: str
    runs: int
    bins: list[int]  # REWARD_BINS[i] ≤ reward < REWARD_BINS[i + 1]; the last bin holds 1.0 exactly
    mean: float | None


@dataclass
class CostRow:
    model: str
    verified: int  # audited trajectories
    annotator_ms: int
    machine_ms: float

    @property
    def annotator_ms_per_trajectory(self) -> float | None:
        return self.annotator_ms / self.verified if self.verified else None

    @property
    def machine_ms_per_trajectory(self) -> float | None:
        return self.machine_ms / self.verified if self.verified else None


@dataclass
class Reports:
    by: str
    reliability: list[Reliability]
    max_k: int
    failures: list[FailureRow]
    taxonomy: list[tuple[str, str]]
    rewards: list[RewardRow]
    costs: list[CostRow]
    notes: list[str] = field(default_factory=list)


def failure_modes_by_model(*, project: Project) -> list[FailureRow]:
    """The settled failure modes of every step (consensus, adjudicated included), counted per model."""
    out: dict[str, FailureRow] = {}
    for model, value in Consensus.objects.filter(
        trajectory__project=project, field="failure_modes", step__isnull=False
    ).values_list("trajectory__model_name", "value"):
        row = out.setdefault(model or "", FailureRow(model or "", 0, defaultdict(int)))
        row.steps += 1
        for tag in value or []:
            row.counts[tag] += 1
    return [FailureRow(r.model, r.steps, dict(r.counts)) for _, r in sorted(out.items())]


def _bin(reward: float) -> int:
    for i in range(len(REWARD_BINS) - 1):
        if reward < REWARD_BINS[i + 1]:
            return i
    return len(REWARD_BINS) - 2


def rewards_by_model(*, project: Project) -> list[RewardRow]:
    """The distribution of each run's reward — the verified one where a verifier computed it, else the file's."""
    grouped: dict[str, list[float]] = defaultdict(list)
    for model, verified, outcome in Trajectory.objects.filter(project=project).values_list(
        "model_name", "verified_reward", "outcome_reward"
    ):
        reward = verified if verified is not None else outcome
        if reward is not None:
            grouped[model or ""].append(float(reward))
    rows = []
    for model, rewards in sorted(grouped.items()):
        bins = [0] * (len(REWARD_BINS) - 1)
        for reward in rewards:
            bins[_bin(min(max(reward, 0.0), 1.0))] += 1
        rows.append(RewardRow(model, len(rewards), bins, sum(rewards) / len(rewards)))
    return rows


def costs_by_model(*, project: Project) -> list[CostRow]:
    """Annotator time (every submitted assignment) and machine time (every check run) per audited trajectory."""
    audited = Trajectory.objects.filter(project=project, status=TrajectoryStatus.AUDITED)
    verified = dict(audited.values_list("model_name").annotate(n=Count("id")).values_list("model_name", "n"))
    annotator = dict(
        Assignment.objects.filter(trajectory__in=audited, status=AssignmentStatus.SUBMITTED)
        .values_list("trajectory__model_name")
        .annotate(ms=Sum("time_spent_ms"))
        .values_list("trajectory__model_name", "ms")
    )
    machine = dict(
        CheckRun.objects.filter(trajectory__in=audited)
        .values_list("trajectory__model_name")
        .annotate(ms=Sum("duration_ms"))
        .values_list("trajectory__model_name", "ms")
    )
    return [
        CostRow(model or "", n, int(annotator.get(model) or 0), float(machine.get(model) or 0.0))
        for model, n in sorted(verified.items())
    ]


def project_reports(*, project: Project, by: str = "model") -> Reports:
    reliability = reliability_for_project(project=project, by=by)
    taxonomy = [(str(t.get("key")), str(t.get("label") or t.get("key"))) for t in project.failure_taxonomy]
    return Reports(
        by=by,
        reliability=reliability,
        max_k=max((r.max_k for r in reliability), default=0),
        failures=failure_modes_by_model(project=project),
        taxonomy=[*taxonomy, ("none", "None")],
        rewards=rewards_by_model(project=project),
        costs=costs_by_model(project=project),
    )


def report_csv_rows(report: Reports, table: str) -> tuple[list[str], list[list[Any]]]:
    """One table of the reports as CSV rows."""
    if table == "failures":
        keys = [k for k, _ in report.taxonomy]
        return ["model", "steps", *keys], [
            [r.model, r.steps, *(r.counts.get(k, 0) for k in keys)] for r in report.failures
        ]
    if table == "rewards":
        edges = [f"{REWARD_BINS[i]:.1f}-{REWARD_BINS[i + 1]:.1f}" for i in range(len(REWARD_BINS) - 1)]
        return ["model", "runs", "mean", *edges], [
            [r.model, r.runs, "" if r.mean is None else f"{r.mean:.6f}", *r.bins] for r in report.rewards
        ]
    if table == "costs":
        return [
            "model",
            "audited_trajectories",
            "annotator_ms",
            "machine_ms",
            "annotator_ms_per_trajectory",
            "machine_ms_per_trajectory",
        ], [
            [
                c.model,
                c.verified,
                c.annotator_ms,
                f"{c.machine_ms:.1f}",
                f"{c.annotator_ms_per_trajectory or 0:.1f}",
                f"{c.machine_ms_per_trajectory or 0:.1f}",
            ]
            for c in report.costs
        ]
    ks = list(range(1, report.max_k + 1))
    header = [
        "model",
        report.by,
        "goals",
        "trials",
        "successes",
        "avg_reward",
        "pass@1",
        *(f"pass^{k}" for k in ks),
        *(f"goals_at_{k}" for k in ks),
    ]
    rows = [
        [
            r.model,
            r.label,
            r.goals,
            r.trials,
            r.successes,
            f"{r.avg_reward:.6f}",
            f"{r.pass_at_1:.6f}",
            *("" if k not in r.pass_hat else f"{r.pass_hat[k]:.6f}" for k in ks),
            *(r.goals_at_k.get(k, 0) for k in ks),
        ]
        for r in report.reliability
    ]
    return header, rows
