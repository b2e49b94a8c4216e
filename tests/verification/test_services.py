"""Verification of the demo project through the real services: findings, rewards, no-op reruns."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from django.core.exceptions import ValidationError

from core.models import AuditEvent, Project
from demo.services import demo_seed
from trajectories.models import Trajectory
from trajectories.services.registries import registry_freeze, registry_new_version, tool_update
from verification.models import CheckRun, CheckStatus, Finding, RecordedObservation
from verification.services import (
    project_verify_request,
    registry_active,
    replay_config_for,
    replay_config_set,
    trajectories_verify,
    trajectory_verify,
)

# The demo agents' own injected mistakes, and the finding each must produce on the step it hit.
CAUGHT_BY = {
    "invented_key": {"unexpected_property"},
    "bad_enum": {"not_in_enum"},
    "wrong_type": {"wrong_type"},
    "typo_id": {"ungrounded_value", "contradicts_observation"},
}


@pytest.fixture
def demo(db) -> Project:
    demo_seed(stdout=io.StringIO(), run_now=True)
    return Project.objects.get(slug="airline-desk-demo")


def _runs(project: Project, **metadata) -> list[Trajectory]:
    qs = Trajectory.objects.filter(project=project).order_by("id")
    for key, value in metadata.items():
        qs = qs.filter(**{f"metadata__{key}": value})
    return list(qs)


def test_faithful_demo_runs_raise_no_finding_and_their_reward_is_reproduced(demo) -> None:
    runs = _runs(demo, demo_behaviour="success")[:25]
    assert len(runs) == 25
    counts = trajectories_verify(trajectory_ids=[t.pk for t in runs])
    assert counts == {"schema:created": 25, "grounding:created": 25, "replay:created": 25, "final_state:created": 25}
    assert Finding.objects.filter(trajectory__in=runs).count() == 0
    replays = CheckRun.objects.filter(trajectory__in=runs, kind="replay")
    assert all(r.result["replayed"] >= 1 and r.result["matched"] == r.result["replayed"] for r in replays)
    assert {r.result["modes"][0] for r in replays} == {"environment"}
    for run in runs:
        run.refresh_from_db()
        assert run.verified_reward == run.outcome_reward == 1.0


def test_rewards_of_every_behaviour_match_the_ones_the_file_carried(demo) -> None:
    runs = [t for b in ("give_up", "wrong_tool", "error", "recover") for t in _runs(demo, demo_behaviour=b)[:4]]
    assert len(runs) >= 12
    trajectories_verify(trajectory_ids=[t.pk for t in runs], kinds=["final_state"])
    zero = 0
    for run in runs:
        run.refresh_from_db()
        assert run.verified_reward == run.outcome_reward, run.metadata
        if run.verified_reward == 0.0:
            zero += 1
            check = CheckRun.objects.get(trajectory=run, kind="final_state")
            assert {f.code for f in check.findings.all()} <= {"final_state_mismatch", "output_missing"}
            assert check.findings.exists()
    assert zero >= 4


def test_each_injected_mistake_is_found_on_the_step_it_hit(demo) -> None:
    seen: Counter[str] = Counter()
    for run in _runs(demo):
        injected = run.metadata.get("demo_injected") or {}
        if injected.get("kind") not in CAUGHT_BY or seen[injected["kind"]] >= 3:
            continue
        seen[injected["kind"]] += 1
        trajectory_verify(trajectory_id=run.pk, kinds=["schema", "grounding"])
        hit = run.steps.filter(tool_name=injected["call"]).order_by("index").first()
        assert hit is not None
        codes = set(Finding.objects.filter(trajectory=run).values_list("code", flat=True))
        assert codes & CAUGHT_BY[injected["kind"]], (injected, codes)
        assert Finding.objects.filter(trajectory=run, code__in=CAUGHT_BY[injected["kind"]], step__index__gte=hit.index)
    assert set(seen) == set(CAUGHT_BY)


def test_rerunning_with_the_same_inputs_is_a_no_op(demo) -> None:
    ids = [t.pk for t in _runs(demo)[:6]]
    trajectories_verify(trajectory_ids=ids)
    trajectories_verify(trajectory_ids=ids)  # the mock store learnt from the other runs: replay inputs changed once
    before = CheckRun.objects.count(), Finding.objects.count(), RecordedObservation.objects.count()
    assert trajectories_verify(trajectory_ids=ids) == {
        "schema:unchanged": 6,
        "grounding:unchanged": 6,
        "replay:unchanged": 6,
        "final_state:unchanged": 6,
    }
    assert (CheckRun.objects.count(), Finding.objects.count(), RecordedObservation.objects.count()) == before


def test_a_new_registry_version_is_checked_afresh(demo, pm_demo) -> None:
    run = _runs(demo, demo_behaviour="success")[0]
    first = run.steps.filter(kind="tool_call").first()
    trajectory_verify(trajectory_id=run.pk, kinds=["schema"])
    old = registry_active(demo)
    draft = registry_new_version(actor=pm_demo, registry=old)
    tool = draft.tools.get(name=first.tool_name)
    parameters = dict(tool.parameters)
    parameters["required"] = [*parameters.get("required", []), "brand_new_parameter"]
    parameters["properties"] = {**parameters["properties"], "brand_new_parameter": {"type": "string"}}
    tool_update(
        actor=pm_demo,
        tool=tool,
        description=tool.description,
        parameters=parameters,
        returns=tool.returns,
        side_effects=tool.side_effects,
        latency_p99_ms=tool.latency_p99_ms,
    )
    registry_freeze(actor=pm_demo, registry=draft)
    assert replay_config_for(registry_active(demo)).environment == "airline"  # carried over from the old version
    assert trajectory_verify(trajectory_id=run.pk, kinds=["schema"]) == {"schema": "created"}
    latest = CheckRun.objects.filter(trajectory=run, kind="schema").order_by("-id").first()
    assert latest.result["registry"] == draft.version
    assert latest.findings.filter(code="missing_required", pointer="/brand_new_parameter", step=first).exists()


def test_project_verify_request_queues_every_run_after_commit(
    demo, pm_demo, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        count = project_verify_request(actor=pm_demo, project=demo, kinds=["schema"])
    assert count == Trajectory.objects.filter(project=demo).count()
    assert len(callbacks) == -(-count // 100)  # chunks of 100 runs
    assert AuditEvent.objects.filter(verb="verification.request", project=demo).exists()
    with pytest.raises(ValidationError):
        project_verify_request(actor=pm_demo, project=demo, kinds=["astrology"])


def test_replay_settings_are_validated(demo, pm_demo) -> None:
    registry = registry_active(demo)
    bad = {
        "environment": "no-such-desk",
        "http_base_url": "ftp://example.invalid/",
        "http_routes": {"get_user_details": {"method": "FETCH", "path": "/u"}},
        "sql_tools": ["not_a_tool"],
    }
    for field, value in bad.items():
        with pytest.raises(ValidationError) as caught:
            replay_config_set(actor=pm_demo, registry=registry, **{field: value})
        assert field in caught.value.message_dict
    assert replay_config_for(registry).environment == "airline"  # nothing half-written


def test_a_run_the_sandbox_cannot_finish_is_an_error_not_a_crash(demo, monkeypatch) -> None:
    from verification import services

    run = _runs(demo, demo_behaviour="success")[0]
    monkeypatch.setattr(services, "SANDBOX_TIMEOUT_S", 1e-6)
    services._seed_states.clear()
    outcome = trajectory_verify(trajectory_id=run.pk, kinds=["replay"])
    assert outcome == {"replay": "created"}
    check = CheckRun.objects.get(trajectory=run, kind="replay")
    assert check.status == CheckStatus.ERROR
    assert "environment replay stopped: took longer than" in check.logs


@pytest.fixture
def pm_demo(demo):
    from django.contrib.auth.models import User

    return User.objects.get(username="pm")


def test_the_command_verifies_in_process_and_queues_on_request(demo, django_capture_on_commit_callbacks) -> None:
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    Trajectory.objects.filter(project=demo).exclude(pk__in=[t.pk for t in _runs(demo)[:5]]).delete()
    call_command("verify_trajectories", demo.slug, "--kind", "schema", stdout=out)
    assert "verified 5 runs" in out.getvalue() and "schema created: 5" in out.getvalue()
    assert CheckRun.objects.filter(trajectory__project=demo, kind="schema").count() == 5
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        call_command("verify_trajectories", demo.slug, "--queue", "--as", "pm", stdout=out)
    assert "queued the checks of 5 runs" in out.getvalue() and len(callbacks) == 1
    with pytest.raises(CommandError, match="no project"):
        call_command("verify_trajectories", "nope")


def test_a_check_that_ended_in_an_error_is_tried_again(demo, monkeypatch) -> None:
    from verification import services

    run = _runs(demo, demo_behaviour="success")[0]
    monkeypatch.setattr(services, "SANDBOX_TIMEOUT_S", 1e-6)
    services._seed_states.clear()
    trajectory_verify(trajectory_id=run.pk, kinds=["replay"])
    assert CheckRun.objects.get(trajectory=run, kind="replay").status == CheckStatus.ERROR
    monkeypatch.setattr(services, "SANDBOX_TIMEOUT_S", 60.0)
    assert trajectory_verify(trajectory_id=run.pk, kinds=["replay"]) == {"replay": "created"}
    checks = list(CheckRun.objects.filter(trajectory=run, kind="replay").values("status", "inputs_sha256", "logs"))
    assert len(checks) == 1, checks
    (check,) = CheckRun.objects.filter(trajectory=run, kind="replay")
    assert check.status == CheckStatus.PASSED
