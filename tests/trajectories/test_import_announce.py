"""An import announces its trajectories (hooks.fire_trajectories_imported) batch by batch, as each commits: on
PostgreSQL, with batches that really commit (a transactional test)."""

import threading

import pytest

from tests.trajectories.fixtures_util import run_import
from tests.trajectories.test_hooks import _canonical
from tests.trajectories.test_views import _record
from trajectories import hooks
from trajectories.hooks import (
    StoredRun,
    register_runs_stored,
    register_trajectories_imported,
    unregister_trajectories_imported,
)
from trajectories.models import ImportStatus, Trajectory
from trajectories.services import imports
from trajectories.services.storage import BatchWriter


@pytest.mark.django_db(transaction=True)  # batches really commit: a hook hears of each as it does
def test_each_batch_is_announced_as_it_commits_and_a_failed_import_announces_what_it_committed(
    project, monkeypatch
) -> None:
    heard: list[list[int]] = []
    stored_then: list[int] = []

    def hook(project_id: int, ids: list[int]) -> None:
        assert project_id == project.pk
        heard.append(ids)
        stored_then.append(Trajectory.objects.count())  # the import goes on only once the hook has run

    monkeypatch.setattr(imports, "BATCH_RUNS", 2)
    monkeypatch.setattr(imports, "EARLY_SHARE", 1)  # every batch full, not written early: they are known here
    register_trajectories_imported(hook)
    try:
        job = run_import(project, b"".join(_record(f"goal {n}") for n in range(5)))
        assert job.status == ImportStatus.DONE and job.trajectories_imported == 5
        ids = list(Trajectory.objects.order_by("id").values_list("id", flat=True))
        assert heard == [ids[0:2], ids[2:4], ids[4:5]] and stored_then == [2, 4, 5]

        # An import that stops on an internal error in its third batch (here, a higher app's runs-stored hook that
        # fails): the two batches it committed before stay, and are announced.
        heard.clear()
        monkeypatch.setattr(hooks, "_on_stored", [])
        stored_batches: list[int] = []

        def breaks_third(p, runs: list[StoredRun]) -> None:
            stored_batches.append(len(runs))
            if len(stored_batches) == 3:
                raise RuntimeError("the hook broke")

        register_runs_stored(breaks_third)
        failed = run_import(project, b"".join(_canonical(n, labels=[n]) for n in range(6)))
        assert failed.status == ImportStatus.FAILED and "internal error (RuntimeError)" in failed.error
        kept = list(
            Trajectory.objects.filter(source_file=failed.source_file).order_by("id").values_list("id", flat=True)
        )
        assert len(kept) == 4 and heard == [kept[0:2], kept[2:4]]
    finally:
        unregister_trajectories_imported(hook)


@pytest.mark.django_db(transaction=True)
def test_a_batch_is_written_before_it_is_full_when_no_more_records_are_ready(project, monkeypatch) -> None:
    # Batches of up to 8 runs, written early from 2 (a quarter) when nothing more is ready: the fourth record is
    # prepared only once a batch has been written, so the first batch holds two or three runs, not eight.
    monkeypatch.setattr(imports, "BATCH_RUNS", 8)
    monkeypatch.setattr(imports, "EARLY_SHARE", 4)
    written = threading.Event()
    batches: list[int] = []
    real_write = BatchWriter.write

    def write(self, batch):
        batches.append(len(batch))
        written.set()
        return real_write(self, batch)

    real_prepare = imports._prepare_one
    waited: list[bool] = []

    def prepare_one(importer, record, *args):
        if record.index == 3:
            waited.append(written.wait(timeout=30))
        return real_prepare(importer, record, *args)

    monkeypatch.setattr(BatchWriter, "write", write)
    monkeypatch.setattr(imports, "_prepare_one", prepare_one)
    job = run_import(project, b"".join(_canonical(n) for n in range(12)))  # a format read serially
    assert job.status == ImportStatus.DONE and job.trajectories_imported == 12
    assert waited == [True]
    assert 2 <= batches[0] <= 3 and sum(batches) == 12 and max(batches) <= 8
