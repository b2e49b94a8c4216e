"""Reads of goals, their balance across bands and tags, and SWE tasks (with contamination flags)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.http import Http404

from core.models import Project
from core.selectors import REVIEW_ROLES, check_role
from trajectories.models import Band, Goal, LeakList, SweTask, Trajectory

# Project managers, QA leads and reviewers may look; annotators work from their queue (403).
VIEW_ROLES = REVIEW_ROLES


@dataclass(frozen=True)
class GoalFilters:
    band: str = ""  # a band, "none" for goals without one, or "" for any
    tag: str = ""
    q: str = ""


def goal_list_for_user(*, project: Project, role: str, filters: GoalFilters) -> QuerySet[Goal]:
    """The project's goals with `trajectory_count`; PermissionDenied for roles that may not browse."""
    check_role(role=role, allowed=VIEW_ROLES)
    qs = Goal.objects.filter(project=project).annotate(trajectory_count=Count("trajectories"))
    if filters.band == "none":
        qs = qs.filter(band="")
    elif filters.band:
        qs = qs.filter(band=filters.band)
    if filters.tag:
        if connection.features.supports_json_field_contains:
            qs = qs.filter(tags__contains=[filters.tag])
        else:  # SQLite: no JSON containment; goals per project are few enough to match here
            ids = [
                pk for pk, tags in Goal.objects.filter(project=project).values_list("pk", "tags") if filters.tag in tags
            ]
            qs = qs.filter(pk__in=ids)
    if filters.q:
        term = filters.q.strip()
        qs = qs.filter(Q(prompt__icontains=term) | Q(external_id__icontains=term))
    return qs.order_by("id")


def goal_get_for_user(*, project: Project, role: str, goal_id: int) -> Goal:
    check_role(role=role, allowed=VIEW_ROLES)
    goal = Goal.objects.filter(project=project, pk=goal_id).first()
    if goal is None:
        raise Http404("No such goal.")
    return goal


def goal_tag_choices(*, project: Project) -> list[str]:
    return sorted({tag for tags in Goal.objects.filter(project=project).values_list("tags", flat=True) for tag in tags})


@dataclass(frozen=True)
class BalanceRow:
    key: str
    label: str
    goals: int
    trajectories: int
    goals_without_runs: int


@dataclass
class Balance:
    bands: list[BalanceRow]
    tags: list[BalanceRow]
    goals: int = 0
    trajectories: int = 0
    trajectories_without_goal: int = 0
    untagged_goals: int = 0
    max_goals: int = field(default=1)
    max_trajectories: int = field(default=1)


def goal_balance(*, project: Project, role: str) -> Balance:
    """Goals and trajectories per band and per tag, in two queries.

    A trajectory counts under its goal's band and under each of its goal's tags, so tag rows may add
    up to more than the total. Trajectories without a goal are counted on their own.
    """
    check_role(role=role, allowed=VIEW_ROLES)
    rows = Goal.objects.filter(project=project).annotate(n=Count("trajectories")).values_list("band", "tags", "n")
    band_goals: Counter[str] = Counter()
    band_runs: Counter[str] = Counter()
    band_idle: Counter[str] = Counter()
    tag_goals: Counter[str] = Counter()
    tag_runs: Counter[str] = Counter()
    tag_idle: Counter[str] = Counter()
    untagged = 0
    for band, tags, n in rows:
        band_goals[band] += 1
        band_runs[band] += n
        band_idle[band] += n == 0
        untagged += not tags
        for tag in tags or ["(no tag)"]:
            tag_goals[tag] += 1
            tag_runs[tag] += n
            tag_idle[tag] += n == 0
    without_goal = Trajectory.objects.filter(project=project, goal__isnull=True).count()
    bands = [
        BalanceRow(value, label, band_goals[value], band_runs[value], band_idle[value]) for value, label in Band.choices
    ]
    if band_goals[""]:
        bands.append(BalanceRow("none", "No band", band_goals[""], band_runs[""], band_idle[""]))
    tags = [
        BalanceRow(tag, tag, tag_goals[tag], tag_runs[tag], tag_idle[tag])
        for tag in sorted(tag_goals, key=lambda t: (t == "(no tag)", -tag_goals[t], t))
    ]
    everything = bands + tags
    return Balance(
        bands=bands,
        tags=tags,
        goals=sum(band_goals.values()),
        trajectories=sum(band_runs.values()),
        trajectories_without_goal=without_goal,
        untagged_goals=untagged,
        max_goals=max((r.goals for r in everything), default=0) or 1,
        max_trajectories=max((r.trajectories for r in everything), default=0) or 1,
    )


@dataclass(frozen=True)
class SweTaskFilters:
    status: str = ""  # "", "flagged", "overridden", "available"
    q: str = ""
    repo: str = ""  # exactly, e.g. "pydicom/pydicom"


def _flagged() -> Q:
    return ~Q(contamination_flags=[])


def swe_tasks_available(*, project: Project) -> QuerySet[SweTask]:
    """SWE tasks that may go to annotation: matching no leak list, or let through by a PM with a reason."""
    return SweTask.objects.filter(project=project).filter(~_flagged() | ~Q(contamination_override=""))


def swe_task_available_for_annotation(task: SweTask) -> bool:
    return not task.contamination_flags or bool(task.contamination_override.strip())


def swe_task_list_for_user(*, project: Project, role: str, filters: SweTaskFilters) -> QuerySet[SweTask]:
    check_role(role=role, allowed=VIEW_ROLES)
    qs = (
        SweTask.objects.filter(project=project)
        .annotate(trajectory_count=Count("trajectories"))
        .defer("gold_patch", "test_patch", "pass_to_pass")
    )
    if filters.status == "flagged":
        qs = qs.filter(_flagged(), contamination_override="")
    elif filters.status == "overridden":
        qs = qs.filter(_flagged()).exclude(contamination_override="")
    elif filters.status == "available":
        qs = qs.filter(~_flagged() | ~Q(contamination_override=""))
    if filters.q:
        term = filters.q.strip()
        qs = qs.filter(Q(instance_id__icontains=term) | Q(repo__icontains=term))
    if filters.repo:
        qs = qs.filter(repo=filters.repo.strip())
    return qs.order_by("instance_id")


def swe_task_counts(*, project: Project) -> dict[str, int]:
    return SweTask.objects.filter(project=project).aggregate(
        total=Count("id"),
        flagged=Count("id", filter=_flagged() & Q(contamination_override="")),
        overridden=Count("id", filter=_flagged() & ~Q(contamination_override="")),
    )


def swe_task_get_for_user(*, project: Project, role: str, task_id: int) -> SweTask:
    check_role(role=role, allowed=VIEW_ROLES)
    task = SweTask.objects.filter(project=project, pk=task_id).first()
    if task is None:
        raise Http404("No such SWE task.")
    return task


def leak_lists_for_user(*, project: Project, role: str) -> QuerySet[LeakList]:
    check_role(role=role, allowed=VIEW_ROLES)
    return LeakList.objects.filter(project=project).select_related("uploaded_by").order_by("name")
