"""Verification by a real Celery worker on Redis, started by the import hook."""

from __future__ import annotations

import io
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import orjson
import pytest
import redis
from django.conf import settings

from demo import rollouts
from demo.services import _ensure_goals
from tests.trajectories.test_worker import _start_worker, _stop, _wait_for
from trajectories.models import ImportStatus, Trajectory
from trajectories.services.imports import import_job_create
from trajectories.services.registries import registry_create, registry_freeze
from verification.models import CheckRun, Finding
from verification.services import replay_config_set

SEED = 7


@pytest.fixture
def checks_worker(tmp_path) -> Iterator[Path]:
    from config.celery import app as celery_app

    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("default", "imports", "checks")  # leftovers of other tests
    log = tmp_path / "worker.log"
    worker = _start_worker({}, log, queues="default,imports,checks")
    try:
        _wait_for(lambda: bool(celery_app.control.ping(timeout=0.5)), timeout=60, what="ping", log=log)
        yield log
    finally:
        _stop(worker)


@pytest.mark.django_db(transaction=True)
def test_an_import_is_verified_end_to_end_by_a_worker(project, pm, checks_worker) -> None:
    registry = registry_freeze(
        actor=pm, registry=registry_create(actor=pm, project=project, tools=rollouts.tool_specs())
    )
    replay_config_set(actor=pm, registry=registry, environment=rollouts.ENVIRONMENT, seed_key="env_seed")
    _ensure_goals(actor=pm, project=project, goals=rollouts.goals(SEED))
    runs = list(islice(rollouts.tool_use_runs(SEED), 14))
    assert {r["metadata"]["demo_behaviour"] for r in runs} > {"success"}
    data = b"".join(orjson.dumps(r) + b"\n" for r in runs)
    job = import_job_create(actor=pm, project=project, name="demo.jsonl", stream=io.BytesIO(data))

    def verified() -> bool:
        return CheckRun.objects.filter(trajectory__project=project).count() == 4 * len(runs)

    _wait_for(verified, timeout=120, what="every run to be verified", log=checks_worker)
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE
    for trajectory in Trajectory.objects.filter(project=project):
        assert trajectory.verified_reward == trajectory.outcome_reward, trajectory.rollout_id
        kinds = set(CheckRun.objects.filter(trajectory=trajectory).values_list("kind", flat=True))
        assert kinds == {"schema", "grounding", "replay", "final_state"}
        injected = trajectory.metadata.get("demo_injected", {}).get("kind")
        findings = set(Finding.objects.filter(trajectory=trajectory).values_list("code", flat=True))
        if trajectory.metadata["demo_behaviour"] == "success":
            assert findings == set(), trajectory.rollout_id
        if injected == "invented_key":
            assert "unexpected_property" in findings
