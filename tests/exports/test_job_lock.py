"""One writer per export job (PostgreSQL): a second run of the same job, a task delivered twice or the command
line beside a worker, waits for the run in progress and then finds the job done, instead of writing the same
files at the same time."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections

from exports.models import ExportStatus
from exports.services import jobs
from exports.services.jobs import export_dir, export_job_create, export_job_run, verify_manifest


def _waiting_on_the_lock(job_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = %s AND objid = %s",
            [jobs._LOCKS, job_id],
        )
        return cursor.fetchone()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_a_second_run_of_an_export_job_waits_for_the_first_and_writes_nothing(batch, pm, monkeypatch) -> None:
    job = export_job_create(actor=pm, batch=batch, format="openai_sft")
    writers: list[str] = []
    inside, release = threading.Event(), threading.Event()
    write = jobs._write

    def paused_write(job, on_progress=None) -> None:
        writers.append(threading.current_thread().name)
        inside.set()
        assert release.wait(60)
        write(job, on_progress)

    monkeypatch.setattr(jobs, "_write", paused_write)
    finished: dict[str, object] = {}

    def run() -> None:
        try:
            finished[threading.current_thread().name] = export_job_run(job_id=job.pk)
        finally:
            connections.close_all()  # this thread's connection

    first = threading.Thread(target=run, name="first")
    first.start()
    assert inside.wait(60)
    second = threading.Thread(target=run, name="second")
    second.start()
    deadline = time.monotonic() + 60
    while not _waiting_on_the_lock(job.pk):  # the second run is blocked on the first's lock
        assert time.monotonic() < deadline, "the second run never waited for the first"
        time.sleep(0.05)
    assert "second" not in finished
    release.set()
    first.join(60)
    second.join(60)
    assert writers == ["first"]  # the second found the job done and wrote nothing
    assert {name: run.status for name, run in finished.items()} == {
        "first": ExportStatus.DONE,
        "second": ExportStatus.DONE,
    }
    assert verify_manifest(export_dir(job) / "manifest.json") == []
