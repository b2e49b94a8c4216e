"""Import of agent-run files: store the upload byte for byte, then stream it into steps."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from typing import IO, Any, cast

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from core.models import Project
from core.services import audit_record
from trajectories.formats import IMPORTERS, Importer, RecordError, importer_detect, importer_get
from trajectories.formats.reading import open_maybe_gzip
from trajectories.hooks import fire_trajectories_imported
from trajectories.models import ImportJob, ImportStatus, SourceFile, ToolRegistry
from trajectories.services.storage import BatchWriter, PreparedRun, prepare

logger = logging.getLogger(__name__)

UserLike = User | AnonymousUser | None
MAX_STORED_ERRORS = 1000
BATCH_STEPS = 5000
BATCH_RUNS = 1000
IMPORT_TASK = "trajectories.tasks.import_job_run_task"


def _actor(user: UserLike) -> User | None:
    return user if isinstance(user, User) else None


def source_file_store(*, actor: UserLike, project: Project, name: str, stream: IO[bytes]) -> SourceFile:
    """Keep the upload byte for byte (gzip on disk); the same bytes twice are stored once."""
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(dir=_tmp_dir(), suffix=".gz", delete=False) as tmp:
        try:
            with gzip.GzipFile(fileobj=tmp, mode="wb", compresslevel=1, mtime=0) as gz:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    if size > settings.STEPWISE_MAX_UPLOAD_BYTES:
                        raise ValidationError(
                            f"{name}: larger than the limit of {settings.STEPWISE_MAX_UPLOAD_BYTES} bytes"
                        )
                    gz.write(chunk)
            tmp.flush()
            sha = digest.hexdigest()
            existing = SourceFile.objects.filter(project=project, sha256=sha).first()
            if existing is not None:
                return existing
            with transaction.atomic():
                source = SourceFile(project=project, name=os.path.basename(name)[:255] or "upload", sha256=sha, size=size, uploaded_by=_actor(actor))
                with open(tmp.name, "rb") as stored:
                    source.stored.save(f"{sha}.gz", File(stored), save=False)
                source.save()
                audit_record(actor=actor, verb="source_file.store", target=source, project=project, after={"name": source.name, "sha256": sha, "size": size})
            return source
        finally:
            os.unlink(tmp.name)


def _tmp_dir() -> str:
    path = settings.MEDIA_ROOT / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def import_job_create(
    *, actor: UserLike, project: Project, name: str, stream: IO[bytes], format_name: str = ""
) -> ImportJob:
    """Store the file and queue its import; the worker starts once this transaction commits."""
    if format_name and format_name not in IMPORTERS:
        raise ValidationError({"format": f"unknown format {format_name!r}; known: {', '.join(sorted(IMPORTERS))}"})
    source = source_file_store(actor=actor, project=project, name=name, stream=stream)
    with transaction.atomic():
        job = ImportJob.objects.create(
            project=project,
            source_file=source,
            format_requested=format_name,
            bytes_total=source.size,
            created_by=_actor(actor),
        )
        audit_record(actor=actor, verb="import.create", target=job, project=project, after={"file": source.name, "format": format_name or "detect"})
        transaction.on_commit(lambda: current_app.send_task(IMPORT_TASK, args=[job.pk]))
    return job


class _Counting:
    """A read-only stream that counts what was read (for progress)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        return data

    def readline(self, n: int = -1) -> bytes:
        data = self.raw.readline(n)
        self.count += len(data)
        return data

    def __iter__(self) -> _Counting:
        return self

    def __next__(self) -> bytes:
        line = self.raw.readline()
        if not line:
            raise StopIteration
        self.count += len(line)
        return line

    def seek(self, pos: int) -> int:
        self.count = pos
        return self.raw.seek(pos)


def active_registry_tools(project: Project) -> dict[str, int] | None:
    """Tool name → id of the project's latest frozen registry, or None when none is frozen."""
    registry = ToolRegistry.objects.filter(project=project, frozen_at__isnull=False).order_by("-version").first()
    if registry is None:
        return None
    return dict(registry.tools.values_list("name", "id"))


def import_job_run(*, job_id: int, on_progress: Callable[[ImportJob], None] | None = None) -> ImportJob:
    """Run a queued import. Idempotent: a finished job is left as it is."""
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().select_related("project", "source_file").get(pk=job_id)
        if job.is_finished:
            return job
        # A job that was running when its worker died starts again from the top: rows already
        # committed come back as duplicates, so nothing is written twice.
        job.status = ImportStatus.RUNNING
        job.started_at = timezone.now()
        job.records_seen = job.trajectories_imported = job.steps_imported = job.duplicates = 0
        job.rejected = job.unknown_tool_calls = job.bytes_done = 0
        job.errors = []
        job.save(update_fields=["status", "started_at", *_PROGRESS_FIELDS])
    try:
        with job.source_file.stored.open("rb") as stored, gzip.GzipFile(fileobj=stored, mode="rb") as plain:
            _run(job, cast(IO[bytes], plain), on_progress)
    except Exception as exc:  # the job must end in a state a person can read, whatever happened
        logger.exception("import job %s failed", job_id)
        message = str(exc) if isinstance(exc, RecordError) else f"the import stopped on an internal error ({type(exc).__name__}); rows already committed are complete"
        ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.FAILED, error=message, finished_at=timezone.now())
        job.refresh_from_db()
        return job
    return job


def _run(job: ImportJob, plain: IO[bytes], on_progress: Callable[[ImportJob], None] | None) -> None:
    body = open_maybe_gzip(plain)  # the upload itself may have been gzipped
    head = body.read(65536)
    body.seek(0)
    try:
        importer: Importer = importer_get(job.format_requested) if job.format_requested else importer_detect(head)
    except RecordError as exc:
        job.errors = [exc.as_dict()]
        job.rejected = 1 if head.strip() else 0
        job.error = f"{job.source_file.name}: {exc}"
        job.status = ImportStatus.FAILED
        job.finished_at = timezone.now()
        job.save(update_fields=["errors", "rejected", "error", "status", "finished_at"])
        return
    job.format_detected = importer.name
    job.save(update_fields=["format_detected"])
    writer = BatchWriter(
        project=job.project,
        source_file=job.source_file,
        importer_name=importer.name,
        importer_version=importer.version,
        tools=active_registry_tools(job.project),
    )
    counting = _Counting(body)
    batch: list[PreparedRun] = []
    batch_steps = 0
    created_ids: list[int] = []
    last_progress = time.monotonic()

    def flush() -> None:
        nonlocal batch, batch_steps, last_progress
        if batch:
            result = writer.write(batch)
            created_ids.extend(result.trajectory_ids)
            job.trajectories_imported += len(result.trajectory_ids)
            job.steps_imported += result.steps
            job.duplicates += result.duplicates
            job.unknown_tool_calls += result.unknown_tool_calls
            batch, batch_steps = [], 0
        job.bytes_done = min(counting.count, job.bytes_total)
        job.save(update_fields=_PROGRESS_FIELDS)
        last_progress = time.monotonic()
        if on_progress:
            on_progress(job)

    for item in importer.records(counting):  # type: ignore[arg-type]
        job.records_seen += 1
        if isinstance(item, RecordError):
            _reject(job, item)
            continue
        try:
            prepared = prepare(item, importer.parse(item))
        except RecordError as exc:
            exc.where = exc.where or item.where
            exc.line = exc.line or item.line
            _reject(job, exc)
            continue
        batch.append(prepared)
        batch_steps += len(prepared.run.steps)
        if batch_steps >= BATCH_STEPS or len(batch) >= BATCH_RUNS or time.monotonic() - last_progress > 5:
            flush()
    if job.records_seen == 0 and not job.errors:
        _reject(job, RecordError("the file holds no records", where="line 1", line=1))
    flush()
    job.status = ImportStatus.DONE
    job.finished_at = timezone.now()
    job.bytes_done = job.bytes_total
    with transaction.atomic():
        job.save(update_fields=[*_PROGRESS_FIELDS, "status", "finished_at"])
        audit_record(
            actor=job.created_by,
            verb="import.finish",
            target=job,
            project=job.project,
            after={k: v for k, v in import_report(job).items() if k not in ("errors", "error")},
        )
    if created_ids:
        project_id = job.project_id
        transaction.on_commit(lambda: fire_trajectories_imported(project_id, created_ids))


_PROGRESS_FIELDS = [
    "records_seen", "trajectories_imported", "steps_imported", "duplicates", "rejected",
    "unknown_tool_calls", "errors", "bytes_done",
]


def _reject(job: ImportJob, error: RecordError) -> None:
    job.rejected += 1
    if len(job.errors) < MAX_STORED_ERRORS:
        job.errors.append(error.as_dict())


def import_report(job: ImportJob) -> dict[str, Any]:
    return {
        "file": job.source_file.name,
        "format": job.format_detected or job.format_requested,
        "status": job.status,
        "records": job.records_seen,
        "imported": job.trajectories_imported,
        "steps": job.steps_imported,
        "duplicates": job.duplicates,
        "rejected": job.rejected,
        "unknown_tool_calls": job.unknown_tool_calls,
        "errors": job.errors,
        "error": job.error,
    }
