"""The parse workers of a PostgreSQL import (trajectories.services.import_workers): the same
rows, errors and counts as the serial path, a failing worker ends the job readably, and the
workers start inside Celery's prefork pool too (whose processes are daemonic)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings

from config.celery import app as celery_app
from tests.trajectories.test_views import _record
from tests.trajectories.test_worker import _database_url, _stop, _wait_for
from trajectories.models import ImportJob, ImportStatus, Step, Trajectory
from trajectories.selectors.runs import chat_unpacker, trajectory_payload
from trajectories.services import import_workers, imports
from trajectories.services.imports import import_job_create, import_job_run, source_file_store

ROOT = Path(__file__).resolve().parents[2]


def _tau_bench_file() -> bytes:
    """τ-bench results as JSON Lines (an array is parsed by its reader, and so not in workers):
    runs, a rejected one, a malformed line, a duplicate, NULs, tabs and backslashes."""
    runs = []
    for i in range(7):
        runs.append(
            {
                "task_id": i % 3,
                "trial": i,
                "reward": 1.0,
                "info": {
                    "task": {"actions": [], "outputs": []},
                    "source": f"src\u0000{i}",
                    "api_key": f"key-{i}-abcdef",
                },
                "traj": [
                    {"role": "system", "content": "# Airline Agent Policy\n..."},
                    {"role": "user", "content": f"please help {i}\ttab"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": f"c{i}", "function": {"name": "think", "arguments": json.dumps({"thought": "x\\y"})}}
                        ],
                    },
                    {"role": "tool", "tool_call_id": f"c{i}", "content": "Error: nope\nline two"},
                    {"role": "assistant", "content": f"done {i}"},
                ],
            }
        )
    runs[3]["reward"] = "bad"
    runs.append(runs[1])
    lines = [json.dumps(run).encode() for run in runs]
    lines.insert(5, b'{"task_id": 1, "traj": [')
    return b"\n".join(lines) + b"\n"


def _import(project, name: str, data: bytes) -> ImportJob:
    source = source_file_store(actor=None, project=project, name=name, stream=io.BytesIO(data))
    job = ImportJob.objects.create(project=project, source_file=source, bytes_total=source.size)
    return import_job_run(job_id=job.pk)


def _stored(project) -> list[tuple]:
    steps = Step.objects.filter(trajectory__project=project).order_by("trajectory_id", "index")
    step_rows = [tuple(v for k, v in row.items() if k not in ("id", "trajectory_id")) for row in steps.values()]
    # payloads and chat messages as their bytes: each process compresses against a dictionary of its own
    # (blobs.PayloadPacker)
    ignored = ("id", "project_id", "source_file_id", "goal_id", "created_at", "payload", "chat")
    unpacker = chat_unpacker()
    trajectories = [
        (
            *(v for k, v in row.items() if k not in ignored),
            trajectory_payload(t),
            t.chat[:2],
            unpacker.unpack(bytes(t.chat[2:])),
        )
        for t, row in zip(
            Trajectory.objects.filter(project=project).order_by("id"),
            Trajectory.objects.filter(project=project).order_by("id").values(),
            strict=True,
        )
    ]
    return [*trajectories, *step_rows]


def _report(job: ImportJob) -> tuple:
    return (
        job.status,
        job.records_seen,
        job.trajectories_imported,
        job.steps_imported,
        job.duplicates,
        job.rejected,
        job.errors,
        job.scrubbed,
    )


@pytest.mark.parametrize("group", [1, 3, 16])
@pytest.mark.django_db
def test_workers_store_what_the_serial_path_stores(project, pm, monkeypatch, group: int) -> None:
    """Whatever the groups records go to the workers in (a rejected record, a malformed line, a duplicate
    anywhere in one)."""
    from core.services import project_create

    monkeypatch.setattr(import_workers, "GROUP_RECORDS", group)
    data = _tau_bench_file()
    forks: list[int] = []
    fork = import_workers.ParseWorkers._fork
    monkeypatch.setattr(
        import_workers.ParseWorkers, "_fork", lambda self, tx, number: (forks.append(1), fork(self, tx, number))
    )
    parallel = _import(project, "runs.jsonl", data)
    assert len(forks) == imports.PARSE_WORKERS > 0  # the workers ran
    other = project_create(actor=pm, name="Serial", kind=project.kind)
    monkeypatch.setattr(imports, "PARSE_WORKERS", 0)  # the serial path
    serial = _import(other, "runs.jsonl", data)
    assert parallel.status == ImportStatus.DONE, parallel.error
    assert _report(parallel) == _report(serial)
    assert (parallel.rejected, parallel.duplicates, parallel.trajectories_imported) == (2, 1, 6)
    assert [e["where"] for e in parallel.errors] == ["line 4", "line 6"]
    assert _stored(project) == _stored(other)


@pytest.mark.django_db
def test_a_worker_that_dies_fails_the_job_readably(project, monkeypatch) -> None:
    monkeypatch.setattr(import_workers.ParseWorkers, "_work", lambda self, inbox, outbox, tx, prepare_one: os._exit(3))
    job = _import(project, "runs.jsonl", _record("one") + _record("two"))
    assert job.status == ImportStatus.FAILED
    assert "internal error (WorkerCrashed)" in job.error
    assert Trajectory.objects.filter(project=project).count() == 0


@pytest.mark.django_db(transaction=True)
def test_workers_start_inside_a_celery_prefork_pool(project, pm, tmp_path) -> None:
    celery_app.control.purge()
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": _database_url(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork", "--concurrency", "1"]
    command += ["--loglevel", "INFO", "-Q", "default,imports", "--without-heartbeat", "--without-mingle"]
    command += ["--without-gossip"]
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: bool(celery_app.control.ping(timeout=0.5)), timeout=60, what="the worker", log=log)
        data = _record("goal one") + _record("goal two") + b"{broken\n"
        job = import_job_create(actor=pm, project=project, name="runs.jsonl", stream=io.BytesIO(data))

        def finished() -> bool:
            job.refresh_from_db()
            return job.is_finished

        _wait_for(finished, timeout=60, what=f"import job {job.pk} to finish", log=log)
    finally:
        _stop(worker)
    assert job.status == ImportStatus.DONE, job.error
    assert (job.trajectories_imported, job.steps_imported, job.rejected) == (2, 4, 1)
    assert job.errors[0]["where"] == "line 3"
    assert "daemonic" not in log.read_text()


def _tau_bench_array(tail: bytes = b"\n]\n") -> bytes:
    """The same runs as a τ-bench results array (one element per line, as τ-bench writes them),
    with an element that is not UTF-8; `tail` ends the file (or breaks it)."""
    runs = [json.loads(line) for line in _tau_bench_file().splitlines() if line.endswith(b"}")]
    elements = [json.dumps(run, indent=1).encode() for run in runs]
    elements[2] = elements[2].replace(b"please help", b"please \xff help")
    return b"[\n" + b",\n".join(elements) + tail


@pytest.mark.parametrize(
    "tail",
    [b"\n]\n", b',\n{"task_id": 1, "traj": [tru]}\n]', b',\n{"task_id": 1, "tr', b"\n] trailing", b"\n}"],
    ids=["whole", "malformed-element", "truncated", "data-after-the-array", "wrong-bracket"],
)
@pytest.mark.parametrize("group", [1, 3, 16])
@pytest.mark.django_db
def test_workers_read_a_json_array_as_the_serial_path_does(project, pm, monkeypatch, tail: bytes, group: int) -> None:
    """Whatever the groups elements go to the workers in: a fault first or last in a group, or inside one."""
    from core.services import project_create

    monkeypatch.setattr(import_workers, "GROUP_RECORDS", group)
    data = _tau_bench_array(tail)
    forks: list[int] = []
    fork = import_workers.ParseWorkers._fork
    monkeypatch.setattr(
        import_workers.ParseWorkers, "_fork", lambda self, tx, number: (forks.append(1), fork(self, tx, number))
    )
    parallel = _import(project, "results.json", data)
    assert len(forks) == imports.PARSE_WORKERS > 0  # the array's elements went to the workers
    other = project_create(actor=pm, name="Serial", kind=project.kind)
    monkeypatch.setattr(imports, "PARSE_WORKERS", 0)
    serial = _import(other, "results.json", data)
    assert parallel.status == ImportStatus.DONE, parallel.error
    assert _report(parallel) == _report(serial)
    assert parallel.trajectories_imported == 5  # 8 runs: one not UTF-8, one bad reward, one duplicate
    assert "element 2 (line " in parallel.errors[0]["where"]
    assert _stored(project) == _stored(other)
    if tail != b"\n]\n":  # the fault after the last whole element is located as the serial reader does
        assert parallel.errors[-1] == serial.errors[-1]
        assert parallel.errors[-1]["where"].startswith(("element 8", "line "))


@pytest.mark.django_db
def test_an_import_looks_duplicates_up_in_the_unique_index(project) -> None:
    """The duplicate lookups of a PostgreSQL import read the unique (project, content hash) index, even on a
    table with no statistics yet (it is truncated here, as a fresh database's is): plans as PostgreSQL made
    them, shown by auto_explain."""
    from django.db import connection

    plans: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE trajectories_trajectory CASCADE")  # no statistics: relpages 0, reltuples -1
        cursor.execute("LOAD 'auto_explain'")
        cursor.execute("SET auto_explain.log_min_duration = 0")
        cursor.execute("SET auto_explain.log_level = notice")
        cursor.execute("SET auto_explain.log_format = json")
        handler = lambda notice: plans.append(notice.message_primary or "")  # noqa: E731
        connection.connection.add_notice_handler(handler)
    try:
        data = b"".join(_record(f"run {i}") for i in range(60))
        first = _import(project, "a.jsonl", data)
        again = _import(project, "b.jsonl", data + _record("one more"))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET auto_explain.log_min_duration = -1")
        connection.connection.remove_notice_handler(handler)
    assert first.status == ImportStatus.DONE and first.trajectories_imported == 60
    assert again.duplicates == 60
    lookups = [json.loads(p[p.index("{") :]) for p in plans if "unnest(" in p and "content_sha256" in p]
    assert len(lookups) >= 2

    def scans(node: dict) -> list[tuple[str, str]]:
        found = [(node.get("Node Type", ""), node.get("Index Name", ""))]
        for child in node.get("Plans", []):
            found += scans(child)
        return found

    for lookup in lookups:
        nodes = scans(lookup["Plan"])
        assert ("Index Only Scan", "trajectory_unique_content") in nodes or (
            "Index Scan",
            "trajectory_unique_content",
        ) in nodes, nodes


@pytest.mark.django_db
def test_an_import_leaves_the_garbage_collector_as_it_found_it(project) -> None:
    """An import makes collections rare while it runs (and freezes what the process held); after it, done
    or failed, the process's thresholds and collectable objects are as they were."""
    import gc

    gc.set_threshold(700, 10, 10)
    try:
        done = _import(project, "runs.jsonl", _tau_bench_file())
        failed = _import(project, "empty.jsonl", b"\n\n")
        assert (done.status, failed.status) == (ImportStatus.DONE, ImportStatus.FAILED)
        assert gc.get_threshold() == (700, 10, 10)
        assert gc.get_freeze_count() == 0
    finally:
        gc.set_threshold(700, 10, 10)


@pytest.mark.parametrize("array", [False, True], ids=["json-lines", "json-array"])
@pytest.mark.django_db
def test_workers_read_the_file_as_it_is_unpacked(project, pm, monkeypatch, array: bool) -> None:
    """The scan starts before the kept upload is unpacked: here each chunk of it waits until the import has asked
    for bytes that are not there yet (the serial path, for the whole file). The same rows, errors and counts as
    the serial path."""
    from core.services import project_create
    from trajectories import blobs
    from trajectories.formats import reading

    copies = [_tau_bench_file().replace(b"please help", b"please help %d" % k) for k in range(100)]
    if array:  # one element a line; a malformed one late in the file hands the rest to the serial reader
        lines = [line for copy in copies for line in copy.splitlines() if not line.endswith(b"[")]
        lines.insert(len(lines) * 3 // 4, b'{"task_id": 1, "traj": [}')
        data = b"[\n" + b",\n".join(lines) + b"\n]\n"
    else:
        data = b"".join(copies)
    assert len(data) > 4 * imports._HEAD_BYTES
    monkeypatch.setattr(blobs, "UNPACK_CHUNK", 4096)
    monkeypatch.setattr(reading, "SCAN_CHUNK", 1024)  # each of the scan's asks is met by the next chunk
    monkeypatch.setattr(reading, "LINE_CHUNK", 1024)
    asked, wanted, waits = threading.Condition(), [0], []  # the furthest end the import has asked for
    ready, progress = imports._Unpacking.ready, imports._Unpacking._progress

    def ready_(self: imports._Unpacking, end: int) -> None:
        if end > self._written and not self._finished:
            waits.append((end, self._written))
        with asked:
            wanted[0] = max(wanted[0], end)
            asked.notify_all()
        ready(self, end)

    def progress_(self: imports._Unpacking, written: int) -> None:
        progress(self, written)
        if imports._HEAD_BYTES <= written < len(data):
            with asked:  # the next chunk once the import wants more than there is
                assert asked.wait_for(lambda: wanted[0] > written, timeout=30), "the import did not ask for more"

    monkeypatch.setattr(imports._Unpacking, "ready", ready_)
    monkeypatch.setattr(imports._Unpacking, "_progress", progress_)
    parallel = _import(project, "runs.json" if array else "runs.jsonl", data)
    assert sum(1 for end, written in waits if written >= imports._HEAD_BYTES) > 10  # the scan waited, often
    other = project_create(actor=pm, name="Serial", kind=project.kind)
    monkeypatch.setattr(imports, "PARSE_WORKERS", 0)
    wanted[0] = 0
    serial = _import(other, "runs.json" if array else "runs.jsonl", data)
    assert parallel.status == ImportStatus.DONE, parallel.error
    assert _report(parallel) == _report(serial)
    assert parallel.trajectories_imported > 100 and parallel.rejected > 0
    assert _stored(project) == _stored(other)


@pytest.mark.django_db
def test_a_damaged_kept_upload_fails_the_job_readably_whatever_was_read(project, monkeypatch) -> None:
    """The unpacking stops on a damaged blob while the import reads it: the job fails, saying so."""
    from trajectories import blobs

    data = b"".join(_tau_bench_file().replace(b"please help", b"please help %d" % k) for k in range(100))
    source = source_file_store(actor=None, project=project, name="runs.jsonl", stream=io.BytesIO(data))
    stored = source.stored.path
    with open(stored, "r+b") as f:  # a byte of the compressed data changed, past the head
        f.seek(os.path.getsize(stored) * 3 // 4)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(blobs, "UNPACK_CHUNK", 4096)
    job = import_job_run(
        job_id=ImportJob.objects.create(project=project, source_file=source, bytes_total=source.size).pk
    )
    assert job.status == ImportStatus.FAILED
    assert "internal error" in job.error and "ZstdError" in job.error


@pytest.mark.django_db
def test_a_file_that_starts_as_json_is_read_as_json_whatever_its_end_holds(project) -> None:
    """Its head tells what it is before the whole of it is unpacked: a zip directory at its end does not make
    JSON Lines an archive (a zip's own head still does)."""
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("runs.jsonl", _tau_bench_file())
    polyglot = _tau_bench_file() + archive.getvalue()  # JSON Lines, then a whole zip archive
    assert zipfile.is_zipfile(io.BytesIO(polyglot))
    job = _import(project, "runs.jsonl", polyglot)
    assert job.format_detected == "tau_bench" and job.trajectories_imported == 6
    assert job.errors[-1]["line"] > len(_tau_bench_file().splitlines())  # the zip's bytes: lines that are not JSON
    zipped = _import(project, "runs.zip", archive.getvalue())
    assert zipped.status == ImportStatus.DONE and zipped.duplicates == 7  # the same runs, read from the archive
