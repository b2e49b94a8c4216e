import orjson
import pytest

from core.models import AuditEvent
from core.services import audit_record
from tests.trajectories.fixtures_util import run_import
from tests.trajectories.test_views import _record
from trajectories import hooks
from trajectories.formats.base import RecordError
from trajectories.hooks import (
    StoredRun,
    register_runs_stored,
    register_trajectories_imported,
    unregister_runs_stored,
    unregister_trajectories_imported,
)
from trajectories.models import Trajectory

pytestmark = pytest.mark.smoke


def test_higher_apps_hear_of_new_trajectories_after_commit(project, django_capture_on_commit_callbacks) -> None:
    heard: list[tuple[int, list[int]]] = []

    def hook(project_id: int, ids: list[int]) -> None:
        heard.append((project_id, ids))

    register_trajectories_imported(hook)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run_import(project, _record("one") + _record("two"))
        assert heard == [(project.pk, sorted(Trajectory.objects.values_list("id", flat=True)))]
        with django_capture_on_commit_callbacks(execute=True):
            run_import(project, _record("one"))  # a duplicate: nothing new to announce
        assert len(heard) == 1
    finally:
        unregister_trajectories_imported(hook)


def _canonical(n: int, **sections) -> bytes:
    step = {
        "index": 0,
        "kind": "respond",
        "state": [],
        "plan": f"Answer {n}.",
        "tool_call": None,
        "arguments": None,
        "observation": None,
        "reflection": "",
        "success_flag": None,
    }
    run = {"format": "stepwise.trajectory", "version": 1, "goal": {"prompt": f"Q{n}"}, "steps": [step]}
    return orjson.dumps(run | sections) + b"\n"


def test_a_runs_stored_hook_writes_with_the_runs_and_can_refuse_a_record(project, monkeypatch) -> None:
    monkeypatch.setattr(hooks, "_on_stored", [])  # this hook only, not the higher apps'
    seen: list[dict] = []

    def hook(p, runs: list[StoredRun]) -> None:
        for run in runs:
            if run.sections["labels"] == "refuse":
                raise RecordError("refused here", pointer="/labels")
            seen.append(run.sections)
            audit_record(actor=None, verb="test.stored", target=Trajectory.objects.get(pk=run.trajectory_id))

    register_runs_stored(hook)
    data = _canonical(0, labels=[0]) + _canonical(1, labels="refuse") + _canonical(2) + _canonical(3, labels=[3])
    job = run_import(project, data)
    assert (job.trajectories_imported, job.rejected) == (3, 1)
    assert [(e["line"], e["pointer"], e["message"]) for e in job.errors] == [(2, "/labels", "refused here")]
    assert not Trajectory.objects.filter(goal_text="Q1").exists()
    # Only the runs with sections reach it; what it wrote for the refused batch went with it.
    stored = AuditEvent.objects.filter(verb="test.stored").values_list("target_id", flat=True)
    assert sorted(map(int, stored)) == sorted(Trajectory.objects.exclude(goal_text="Q2").values_list("id", flat=True))
    assert seen[-2:] == [{"labels": [0]}, {"labels": [3]}]

    seen.clear()
    job = run_import(project, data + b"\n")  # the runs it holds are duplicates: the hook hears nothing
    assert (job.trajectories_imported, job.duplicates) == (0, 3) and seen == []
    unregister_runs_stored(hook)
