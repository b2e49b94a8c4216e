"""Seeding the demo: users, two projects, frozen registries, goals, a SWE task and imported runs.

Idempotent: everything is looked up before it is made, and a rollout file already imported
(same bytes, same project) is not imported again.
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass
from typing import IO, Any, Protocol

import orjson
from django.contrib.auth.models import Permission, User
from django.db import transaction

from core.models import Project, ProjectKind, Role
from core.services import audit_record, membership_set, project_create
from demo import rollouts
from demo.audit import demo_audit_seed
from trajectories.models import Goal, ImportJob, ImportStatus, SourceFile, Step, SweTask, ToolRegistry, Trajectory
from trajectories.selectors.registries import registry_active
from trajectories.services.imports import import_job_create, import_job_run, source_file_store
from trajectories.services.registries import registry_create, registry_freeze
from verification.services import replay_config_for, replay_config_set


class Writer(Protocol):
    def write(self, text: str, /) -> object: ...


@dataclass(frozen=True, slots=True)
class DemoUser:
    username: str
    password: str
    role: str  # a core Role, or "admin" for the staff superuser
    first_name: str


DEMO_USERS = (
    DemoUser("admin", "stepwise-admin", "admin", "Ada"),
    DemoUser("pm", "stepwise-pm", Role.PROJECT_MANAGER, "Priya"),
    DemoUser("qalead", "stepwise-qa", Role.QA_LEAD, "Quentin"),
    DemoUser("reviewer", "stepwise-review", Role.REVIEWER, "Rosa"),
    DemoUser("ann1", "stepwise-ann1", Role.ANNOTATOR, "Ana"),
    DemoUser("ann2", "stepwise-ann2", Role.ANNOTATOR, "Bo"),
    DemoUser("ann3", "stepwise-ann3", Role.ANNOTATOR, "Chidi"),
)
TOOL_USE_PROJECT = ("Airline desk (demo)", "airline-desk-demo")
CODING_PROJECT = ("Paginate fixes (demo)", "paginate-fixes-demo")
TOOL_USE_GUIDELINES = """Judge each step of the airline agent: is the tool right, is every argument valid
(ids exactly as the user or a previous observation gave them, enums as the schema lists), did
the agent confirm before writing, and did it read errors and recover? Final-state reward is
already computed; your labels are about the steps."""
CODING_GUIDELINES = """Score each turn on relevance, factual grounding, tool selection, redundancy and
unsafe edits. A run is resolved only when FAIL_TO_PASS and PASS_TO_PASS tests all pass."""


def _ensure_user(spec: DemoUser) -> tuple[User, bool]:
    user, created = User.objects.get_or_create(
        username=spec.username,
        defaults={"first_name": spec.first_name, "email": f"{spec.username}@demo.stepwise.invalid"},
    )
    changed = []
    if not user.check_password(spec.password):
        user.set_password(spec.password)
        changed.append("password")
    if spec.role == "admin" and not (user.is_staff and user.is_superuser):
        user.is_staff = user.is_superuser = True
        changed += ["is_staff", "is_superuser"]
    if changed:
        user.save(update_fields=changed)
    if spec.role == Role.PROJECT_MANAGER:  # the demo's project manager may start projects ("New project")
        user.user_permissions.add(Permission.objects.get(content_type__app_label="core", codename="add_project"))
    return user, created


def _ensure_project(*, actor: User, name: str, slug: str, kind: str, guidelines: str) -> tuple[Project, bool]:
    project = Project.objects.filter(slug=slug).first()
    if project is not None:
        return project, False
    return project_create(actor=actor, name=name, slug=slug, kind=kind, guidelines=guidelines), True


def _ensure_registry(*, actor: User, project: Project, tools: list[dict[str, Any]], name: str) -> ToolRegistry:
    frozen = registry_active(project)
    if frozen is not None:
        return frozen
    registry = registry_create(actor=actor, project=project, tools=tools, name=name)
    return registry_freeze(actor=actor, registry=registry)


def _ensure_goals(*, actor: User, project: Project, goals: list[dict[str, Any]]) -> int:
    known = set(Goal.objects.filter(project=project).values_list("external_id", flat=True))
    fresh = [
        Goal(
            project=project,
            external_id=g["goal_id"],
            prompt=g["prompt"],
            band=g["band"],
            tags=g["tags"],
            expected_actions=g["expected_actions"],
            expected_outputs=g["expected_outputs"],
            prompt_sha256=hashlib.sha256(g["prompt"].encode("utf-8")).hexdigest(),
        )
        for g in goals
        if g["goal_id"] not in known
    ]
    if fresh:
        Goal.objects.bulk_create(fresh)
        audit_record(actor=actor, verb="demo.goals_seed", target=project, project=project, after={"goals": len(fresh)})
    return len(fresh)


def _ensure_task(*, actor: User, project: Project, task: dict[str, Any]) -> bool:
    if SweTask.objects.filter(project=project, instance_id=task["instance_id"]).exists():
        return False
    swe_task = SweTask.objects.create(
        project=project,
        instance_id=task["instance_id"],
        repo=task["repo"],
        base_commit=task["base_commit"],
        version=task["version"],
        problem_statement=task["problem_statement"],
        gold_patch=task["patch"],
        test_patch=task["test_patch"],
        fail_to_pass=task["FAIL_TO_PASS"],
        pass_to_pass=task["PASS_TO_PASS"],
        image=task["image"],
    )
    audit_record(
        actor=actor,
        verb="demo.task_seed",
        target=swe_task,
        project=project,
        after={"instance_id": swe_task.instance_id},
    )
    return True


def _jsonl(records: Any) -> bytes:
    return b"".join(orjson.dumps(record) + b"\n" for record in records)


def _import(*, actor: User, project: Project, name: str, data: bytes, run_now: bool) -> ImportJob:
    """Import `data` once: the same bytes already imported into the project are not queued again."""
    sha = hashlib.sha256(data).hexdigest()
    existing = (
        ImportJob.objects.filter(project=project, source_file__sha256=sha)
        .exclude(status=ImportStatus.FAILED)
        .order_by("-id")
        .first()
    )
    if existing is not None:
        return existing
    stream: IO[bytes] = io.BytesIO(data)
    if not run_now:
        return import_job_create(actor=actor, project=project, name=name, stream=stream)
    source: SourceFile = source_file_store(actor=actor, project=project, name=name, stream=stream)
    with transaction.atomic():
        job = ImportJob.objects.create(project=project, source_file=source, bytes_total=source.size, created_by=actor)
        audit_record(
            actor=actor,
            verb="import.create",
            target=job,
            project=project,
            after={"file": source.name, "format": "detect", "in_process": True},
        )
    return import_job_run(job_id=job.pk)


def _setup(seed: int) -> dict[str, Any]:
    """Users, projects, memberships, registries, goals and the task, in one transaction."""
    with transaction.atomic():
        users = {spec.username: _ensure_user(spec) for spec in DEMO_USERS}
        admin, pm = users["admin"][0], users["pm"][0]
        tool_use, _ = _ensure_project(
            actor=admin,
            name=TOOL_USE_PROJECT[0],
            slug=TOOL_USE_PROJECT[1],
            kind=ProjectKind.TOOL_USE,
            guidelines=TOOL_USE_GUIDELINES,
        )
        coding, _ = _ensure_project(
            actor=admin,
            name=CODING_PROJECT[0],
            slug=CODING_PROJECT[1],
            kind=ProjectKind.CODING,
            guidelines=CODING_GUIDELINES,
        )
        for project in (tool_use, coding):
            for spec in DEMO_USERS:
                if spec.role != "admin":
                    membership_set(actor=admin, project=project, user=users[spec.username][0], role=spec.role)
        airline = _ensure_registry(actor=pm, project=tool_use, tools=rollouts.tool_specs(), name="Airline desk tools")
        if replay_config_for(airline) is None:  # replay the airline calls on the same simulated desk
            replay_config_set(actor=pm, registry=airline, environment=rollouts.ENVIRONMENT, seed_key="env_seed")
        _ensure_registry(actor=pm, project=coding, tools=rollouts.coding_tool_specs(), name="SWE-agent commands")
        goals_created = _ensure_goals(actor=pm, project=tool_use, goals=rollouts.goals(seed))
        task_created = _ensure_task(actor=pm, project=coding, task=rollouts.coding_task())
    return {
        "pm": pm,
        "tool_use": tool_use,
        "coding": coding,
        "users_created": sum(created for _, created in users.values()),
        "goals_created": goals_created,
        "task_created": task_created,
    }


def demo_seed(
    *, stdout: Writer | None = None, run_now: bool = False, wait_s: float = 0, seed: int = 7
) -> dict[str, Any]:
    """Load the demo. `run_now` imports in this process; otherwise the imports go to the worker,
    and with `wait_s` > 0 this waits (up to that many seconds) for the worker to finish them."""
    made = _setup(seed)
    pm, tool_use, coding = made["pm"], made["tool_use"], made["coding"]
    jobs = [
        _import(
            actor=pm,
            project=tool_use,
            name="demo-rollouts.jsonl",
            data=_jsonl(rollouts.tool_use_runs(seed)),
            run_now=run_now,
        ),
        _import(
            actor=pm, project=coding, name="demo-swe-runs.jsonl", data=_jsonl(rollouts.coding_runs()), run_now=run_now
        ),
    ]
    projects = [tool_use, coding]
    if wait_s > 0 and not run_now:
        jobs = _wait_for_jobs(jobs, timeout_s=wait_s, stdout=stdout)
    audited = {"labelled": 0}
    if run_now or wait_s > 0:  # the runs are in: three annotators label some, consensus and agreement follow
        audited = demo_audit_seed(project=tool_use)
    summary = {
        "users_created": made["users_created"],
        "goals_created": made["goals_created"],
        "task_created": made["task_created"],
        "projects": {p.slug: p.pk for p in projects},
        "imports": [
            {
                "job": j.pk,
                "project": j.project.slug,
                "status": j.status,
                "imported": j.trajectories_imported,
                "duplicates": j.duplicates,
                "rejected": j.rejected,
            }
            for j in jobs
        ],
        "trajectories": Trajectory.objects.filter(project__in=projects).count(),
        "audited": audited["labelled"],
        "steps": Step.objects.filter(trajectory__project__in=projects).count(),
        "credentials": [(u.username, u.password, u.role) for u in DEMO_USERS],
    }
    if stdout is not None:
        _print(stdout, summary)
    return summary


def _wait_for_jobs(jobs: list[ImportJob], *, timeout_s: float, stdout: Writer | None) -> list[ImportJob]:
    """Poll the import jobs until the worker has finished them; TimeoutError names the stuck ones."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        jobs = [ImportJob.objects.get(pk=j.pk) for j in jobs]
        line = ", ".join(f"import #{j.pk} {j.status} {j.percent}%" for j in jobs)
        if stdout is not None and line != last:
            stdout.write(line + "\n")
            last = line
        if all(j.is_finished for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            stuck = ", ".join(f"#{j.pk}" for j in jobs if not j.is_finished)
            raise TimeoutError(f"the worker did not finish import(s) {stuck} within {timeout_s:.0f} s; is it running?")
        time.sleep(0.5)


def _print(out: Writer, summary: dict[str, Any]) -> None:
    for job in summary["imports"]:
        out.write(
            f"import #{job['job']} into {job['project']}: {job['status']} ({job['imported']} imported, {job['duplicates']} duplicates, {job['rejected']} rejected)\n"
        )
    out.write(f"{summary['trajectories']} trajectories, {summary['steps']} steps in the demo projects\n")
    out.write(
        f"{summary['audited']} airline trajectories labelled by ann1–ann3 and settled (escalations for qalead)\n\n"
    )
    out.write(f"{'username':<10} {'password':<18} role\n{'-' * 10} {'-' * 18} {'-' * 16}\n")
    for username, password, role in summary["credentials"]:
        out.write(f"{username:<10} {password:<18} {role}\n")
