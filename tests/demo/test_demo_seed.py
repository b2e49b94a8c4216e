"""demo_seed through the real services and the real import path (in-process imports)."""

from __future__ import annotations

import io

import orjson
import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command

from core.models import AuditEvent, Membership, Project
from demo import rollouts
from demo.services import DEMO_USERS, demo_seed
from tests.trajectories.fixtures_util import run_import
from trajectories.models import Goal, ImportJob, Step, SweTask, Tool, ToolRegistry, Trajectory
from trajectories.services.registries import registry_create, registry_freeze, registry_sha256

pytestmark = pytest.mark.django_db(transaction=True)


def _counts() -> dict[str, int]:
    models = (
        get_user_model(),
        Project,
        Membership,
        ToolRegistry,
        Tool,
        Goal,
        SweTask,
        ImportJob,
        Trajectory,
        Step,
        AuditEvent,
    )
    return {model.__name__: model.objects.count() for model in models}


def test_demo_seed_creates_everything_once():
    out = io.StringIO()
    summary = demo_seed(stdout=out, run_now=True)
    printed = out.getvalue()
    for spec in DEMO_USERS:
        user = get_user_model().objects.get(username=spec.username)
        assert user.check_password(spec.password)
        assert f"{spec.username:<10} {spec.password:<18} {spec.role}" in printed
    assert get_user_model().objects.get(username="admin").is_superuser

    tool_use = Project.objects.get(slug="airline-desk-demo", kind="tool_use")
    coding = Project.objects.get(slug="paginate-fixes-demo", kind="coding")
    assert Membership.objects.filter(project=tool_use, role="annotator").count() == 3
    for project, specs in ((tool_use, rollouts.tool_specs()), (coding, rollouts.coding_tool_specs())):
        registry = ToolRegistry.objects.get(project=project)
        assert registry.version == 1 and registry.is_frozen and len(registry.sha256) == 64
        assert registry.tools.count() == len(specs)
        assert registry.sha256 == registry_sha256(list(registry.tools.values()))

    assert all(job["status"] == "done" and job["rejected"] == 0 and job["imported"] > 0 for job in summary["imports"])
    goals = rollouts.goals()
    assert Goal.objects.filter(project=tool_use).count() == len(goals)
    runs = Trajectory.objects.filter(project=tool_use)
    assert runs.count() == sum(1 for _ in rollouts.tool_use_runs())
    assert not runs.filter(goal__isnull=True).exists()
    assert runs.filter(outcome_reward=1.0).exists() and runs.filter(outcome_reward=0.0).exists()
    assert (
        not Step.objects.filter(trajectory__project=tool_use, kind="tool_call", tool_known=False)
        .exclude(tool_name="add_checked_bags")
        .exists()
    )
    swe = Trajectory.objects.filter(project=coding)
    assert swe.count() == len(list(rollouts.coding_runs())) and not swe.filter(swe_task__isnull=True).exists()
    assert Step.objects.filter(trajectory__project=coding).count() > 0
    assert summary["steps"] == Step.objects.count() > 0

    # the audited part: three annotators labelled the first runs; disagreements wait for the QA lead
    from audit.models import AgreementRun, Consensus, Escalation

    assert summary["audited"] == 12
    qalead = get_user_model().objects.get(username="qalead")
    assert Escalation.objects.filter(project=tool_use, assigned_to=qalead, field="process_reward").count() == 3
    assert Escalation.objects.filter(project=tool_use, field="failure_modes").exists()
    assert Consensus.objects.filter(trajectory__project=tool_use, field="env_feedback").exists()
    assert AgreementRun.objects.filter(project=tool_use).exists()
    assert "12 airline trajectories labelled" in printed

    before = _counts()
    again = io.StringIO()
    call_command("demo_seed", "--run-imports-here", stdout=again)
    assert _counts() == before
    assert "0 rejected" in again.getvalue() and "ann3" in again.getvalue()


@pytest.mark.django_db(transaction=False)
def test_command_queues_by_default(django_capture_on_commit_callbacks):
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("demo_seed", stdout=out)
    assert len(callbacks) == 2  # one import task per demo project, enqueued after commit
    assert ImportJob.objects.filter(status="queued").count() == 2
    assert "username" in out.getvalue()


def test_every_generated_run_imports_without_rejection(project, coding_project):
    data = b"".join(orjson.dumps(r) + b"\n" for r in rollouts.tool_use_runs())
    job = run_import(project, data, name="runs.jsonl")
    assert job.status == "done" and job.rejected == 0 and job.errors == []
    assert job.trajectories_imported == job.records_seen
    job = run_import(coding_project, b"".join(orjson.dumps(r) + b"\n" for r in rollouts.coding_runs()))
    assert job.status == "done" and job.rejected == 0


def test_registry_create_versions_and_validates(project, pm):
    tools = rollouts.tool_specs()
    first = registry_create(actor=pm, project=project, tools=tools)
    second = registry_create(actor=pm, project=project, tools=tools[:2], name="subset")
    assert (first.version, second.version) == (1, 2)
    frozen = registry_freeze(actor=pm, registry=first)
    assert frozen.frozen_at and frozen.sha256 == registry_sha256(
        [
            {k: v for k, v in t.items() if k != "id"}
            for t in frozen.tools.values(
                "name", "description", "parameters", "returns", "side_effects", "latency_p99_ms"
            )
        ]
    )
    with pytest.raises(ValidationError, match="already frozen"):
        registry_freeze(actor=pm, registry=first)
    bad = {
        "type": "function",
        "function": {"name": "broken", "parameters": {"type": "object", "properties": {"x": {"type": "strng"}}}},
    }
    with pytest.raises(ValidationError, match=r"tool 'broken': invalid parameters schema at /properties/x/type"):
        registry_create(actor=pm, project=project, tools=[bad])
    assert AuditEvent.objects.filter(verb="registry.freeze", target_id=str(first.pk)).exists()
