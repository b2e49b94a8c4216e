"""Reads of the verification app: the project's machine evidence, summed up or for one run.

"Latest" means the most recently stored CheckRun of a trajectory and kind: older runs (another
verifier version, other inputs) stay in the database as history but are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, Max, Q, QuerySet
from django.http import Http404

from core.models import Project
from core.selectors import REVIEW_ROLES, UserLike, project_get_for_user
from trajectories.models import Step, ToolRegistry, Trajectory
from verification.models import CheckKind, CheckRun, CheckStatus, Finding, FindingCode, ReplayConfig
from verification.services import registry_active, replay_config_for

# Who may read machine evidence page by page. Annotators will see it inside their own assignments.
EVIDENCE_ROLES = REVIEW_ROLES
MOST_FLAGGED = 20
# What the evidence page shows of a step (not its context or observation, which can be large).
STEP_FIELDS = (
    "id",
    "trajectory_id",
    "index",
    "kind",
    "tool_name",
    "tool_known",
    "arguments",
    "arguments_raw",
    "arguments_error",
)


def evidence_project_get_for_user(*, user: UserLike, slug: str) -> tuple[Project, str]:
    """The project and the user's role; Http404 for outsiders and for roles that do not read evidence."""
    project, role = project_get_for_user(user=user, slug=slug)
    if role not in EVIDENCE_ROLES:
        raise Http404("No such page.")
    return project, role


def check_runs_latest(*, project: Project) -> QuerySet[CheckRun]:
    """The latest CheckRun of each trajectory and kind in the project."""
    latest = (
        CheckRun.objects.filter(trajectory__project=project)
        .values("trajectory_id", "kind")
        .annotate(latest=Max("id"))
        .values("latest")
    )
    return CheckRun.objects.filter(id__in=latest)


@dataclass(frozen=True)
class ConfigView:
    """The replay configuration that applies to the active registry, and where it comes from."""

    config: ReplayConfig | None
    inherited_from: int | None  # the registry version it was set on, when not the active one


def replay_config_view(*, registry: ToolRegistry | None) -> ConfigView:
    config = replay_config_for(registry)
    inherited = None
    if config is not None and registry is not None and config.registry_id != registry.pk:
        inherited = config.registry.version
    return ConfigView(config=config, inherited_from=inherited)


@dataclass(frozen=True)
class FlaggedRun:
    trajectory: Trajectory
    findings: int
    codes: list[tuple[str, str, int]]  # (code, label, count), most frequent first


@dataclass
class VerificationSummary:
    registry: ToolRegistry | None
    config: ConfigView
    statuses: list[tuple[str, str]]
    kind_rows: list[tuple[str, str, list[int], int]]  # (kind, label, count per status, total)
    status_totals: list[int]
    runs_total: int
    checked: int
    trajectories: int
    findings: list[tuple[str, str, int, int]]  # (code, label, findings, trajectories)
    rewards: dict[str, int]
    flagged: list[FlaggedRun] = field(default_factory=list)


def verification_summary(*, project: Project) -> VerificationSummary:
    """Counts over the latest run of each trajectory and kind, rewards and the most-flagged runs."""
    registry = registry_active(project)
    latest = check_runs_latest(project=project)
    statuses = list(CheckStatus.choices)
    counts = {(r["kind"], r["status"]): r["n"] for r in latest.values("kind", "status").annotate(n=Count("id"))}
    kind_rows = []
    for kind, label in CheckKind.choices:
        row = [counts.get((kind, status), 0) for status, _ in statuses]
        if any(row):
            kind_rows.append((kind, label, row, sum(row)))
    status_totals = [sum(r[2][i] for r in kind_rows) for i in range(len(statuses))]

    latest_findings = Finding.objects.filter(check_run__in=latest)
    code_labels = dict(FindingCode.choices)
    findings = [
        (r["code"], code_labels.get(r["code"], r["code"]), r["n"], r["runs"])
        for r in latest_findings.values("code")
        .annotate(n=Count("id"), runs=Count("trajectory_id", distinct=True))
        .order_by("-n", "code")
    ]
    rewards = Trajectory.objects.filter(project=project).aggregate(
        total=Count("id"),
        verified=Count("id", filter=Q(verified_reward__isnull=False)),
        comparable=Count("id", filter=Q(verified_reward__isnull=False, outcome_reward__isnull=False)),
        agree=Count("id", filter=Q(verified_reward__isnull=False, outcome_reward=F("verified_reward"))),
    )
    rewards["disagree"] = rewards["comparable"] - rewards["agree"]
    rewards["no_source"] = rewards["verified"] - rewards["comparable"]
    return VerificationSummary(
        registry=registry,
        config=replay_config_view(registry=registry),
        statuses=statuses,
        kind_rows=kind_rows,
        status_totals=status_totals,
        runs_total=sum(status_totals),
        checked=latest.values("trajectory_id").distinct().count(),
        trajectories=rewards["total"],
        findings=findings,
        rewards=rewards,
        flagged=_most_flagged(latest_findings, code_labels),
    )


def _most_flagged(findings: QuerySet[Finding], code_labels: dict[str, str]) -> list[FlaggedRun]:
    top = list(findings.values("trajectory_id").annotate(n=Count("id")).order_by("-n", "trajectory_id")[:MOST_FLAGGED])
    if not top:
        return []
    ids = [r["trajectory_id"] for r in top]
    runs = Trajectory.objects.only(
        "id", "model_name", "goal_text", "step_count", "outcome_reward", "verified_reward", "project_id"
    ).in_bulk(ids)
    codes: dict[int, list[tuple[str, str, int]]] = {}
    for r in (
        findings.filter(trajectory_id__in=ids)
        .values("trajectory_id", "code")
        .annotate(n=Count("id"))
        .order_by("trajectory_id", "-n", "code")
    ):
        codes.setdefault(r["trajectory_id"], []).append((r["code"], code_labels.get(r["code"], r["code"]), r["n"]))
    return [
        FlaggedRun(trajectory=runs[r["trajectory_id"]], findings=r["n"], codes=codes.get(r["trajectory_id"], []))
        for r in top
        if r["trajectory_id"] in runs
    ]


# --- one trajectory ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FindingView:
    finding: Finding
    label: str
    failure_mode_label: str
    check: str  # the label of the kind of check that found it


@dataclass(frozen=True)
class StepEvidence:
    step: Step
    findings: list[FindingView]


@dataclass
class TrajectoryEvidence:
    runs: list[CheckRun]
    final_state: dict[str, Any] | None
    run_findings: list[FindingView]  # about the whole run, not one step
    steps: list[StepEvidence]
    total: int


def trajectory_evidence(*, trajectory: Trajectory, project: Project) -> TrajectoryEvidence:
    """The latest run of each kind and its findings grouped by step: three queries, whatever the size."""
    latest = CheckRun.objects.filter(trajectory=trajectory).values("kind").annotate(latest=Max("id")).values("latest")
    order = {kind: i for i, (kind, _) in enumerate(CheckKind.choices)}
    runs = sorted(CheckRun.objects.filter(id__in=latest), key=lambda r: order.get(r.kind, len(order)))
    kinds = {r.pk: r.get_kind_display() for r in runs}
    code_labels = dict(FindingCode.choices)
    modes = {
        str(t.get("key")): str(t.get("label") or t.get("key"))
        for t in (project.failure_taxonomy if isinstance(project.failure_taxonomy, list) else [])
        if isinstance(t, dict) and t.get("key")
    }
    findings = list(Finding.objects.filter(check_run_id__in=list(kinds)).order_by("step_id", "id"))
    step_ids = {f.step_id for f in findings if f.step_id is not None}
    steps = {s.pk: s for s in Step.objects.filter(trajectory=trajectory, id__in=step_ids).only(*STEP_FIELDS)}
    by_step: dict[int, list[FindingView]] = {}
    run_findings: list[FindingView] = []
    for f in findings:
        view = FindingView(
            finding=f,
            label=code_labels.get(f.code, f.code),
            failure_mode_label=modes.get(f.failure_mode, f.failure_mode),
            check=kinds.get(f.check_run_id, ""),
        )
        if f.step_id in steps:
            by_step.setdefault(f.step_id, []).append(view)
        else:
            run_findings.append(view)
    final = next((r for r in runs if r.kind == CheckKind.FINAL_STATE), None)
    final_state = final.result if final is not None and isinstance(final.result, dict) else None
    if final_state is not None and "reward" not in final_state:  # an error run: its logs say why
        final_state = None
    return TrajectoryEvidence(
        runs=runs,
        final_state=final_state,
        run_findings=run_findings,
        steps=[
            StepEvidence(step=steps[sid], findings=by_step[sid])
            for sid in sorted(by_step, key=lambda i: steps[i].index)
        ],
        total=len(findings),
    )
