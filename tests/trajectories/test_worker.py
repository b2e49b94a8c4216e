"""Imports through a real Celery worker process: on Redis (production) and on the filesystem
broker that the embedded default uses. The worker talks to the same test database."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from tests.trajectories.test_views import _record
from trajectories.models import ImportJob, ImportStatus, Trajectory
from trajectories.services.imports import IMPORT_TASK, import_job_create, source_file_store

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _start_worker(env: dict[str, str], log: Path, *, queues: str = "default,imports") -> subprocess.Popen[bytes]:
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": _database_url(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        **env,
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "-Q",
            queues,
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=full_env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _wait_for(condition, *, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; worker log:\n{log.read_text()[-4000:]}")


@pytest.fixture
def redis_worker(tmp_path) -> Iterator[Path]:
    celery_app.control.purge()  # messages left by tests that only checked what was enqueued
    log = tmp_path / "worker.log"
    worker = _start_worker({}, log)
    try:
        _wait_for(
            lambda: bool(celery_app.control.ping(timeout=0.5)), timeout=60, what="the worker to answer ping", log=log
        )
        yield log
    finally:
        _stop(worker)


@pytest.mark.django_db(transaction=True)
def test_upload_is_imported_by_a_real_worker_on_redis(project, pm, redis_worker) -> None:
    data = _record("goal one") + _record("goal two") + b"{broken\n"
    job = import_job_create(actor=pm, project=project, name="runs.jsonl", stream=io.BytesIO(data))

    def finished() -> bool:
        job.refresh_from_db()
        return job.is_finished

    _wait_for(finished, timeout=60, what=f"import job {job.pk} to finish", log=redis_worker)
    assert job.status == ImportStatus.DONE, job.error
    assert (job.trajectories_imported, job.steps_imported, job.rejected) == (2, 4, 1)
    assert job.errors[0]["where"] == "line 3"
    assert Trajectory.objects.filter(project=project).count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_embedded_filesystem_broker_runs_a_real_worker(project, pm, tmp_path) -> None:
    broker_dir = tmp_path / "broker"
    env = {
        "STEPWISE_VAR_DIR": str(tmp_path),
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_RESULT_BACKEND": f"file://{tmp_path / 'results'}",
    }
    (tmp_path / "results").mkdir()
    for sub in ("queue", "processed", "control"):
        (broker_dir / sub).mkdir(parents=True)
    log = tmp_path / "worker.log"
    worker = _start_worker(env, log)
    sender = Celery(broker="filesystem://", set_as_current=False)  # the suite keeps sending through its own app
    sender.conf.broker_transport_options = {
        "data_folder_in": str(broker_dir / "queue"),
        "data_folder_out": str(broker_dir / "queue"),
        "control_folder": str(broker_dir / "control"),
    }
    try:
        source = source_file_store(actor=pm, project=project, name="fs.jsonl", stream=io.BytesIO(_record("via files")))
        job = ImportJob.objects.create(project=project, source_file=source, bytes_total=source.size)
        sender.send_task(IMPORT_TASK, args=[job.pk], queue="imports")

        def finished() -> bool:
            job.refresh_from_db()
            return job.is_finished

        _wait_for(finished, timeout=60, what="the filesystem-broker worker to run the import", log=log)
    finally:
        _stop(worker)
    assert job.status == ImportStatus.DONE, job.error
    assert job.trajectories_imported == 1
