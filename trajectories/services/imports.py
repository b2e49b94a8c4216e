"""Import of agent-run files: store the upload byte for byte, then stream it into steps."""

from __future__ import annotations

import codecs
import contextlib
import gc
import hashlib
import itertools
import logging
import os
import queue
import tempfile
import threading
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from typing import IO, Any

import orjson
from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from core.models import Project
from core.services import audit_record
from trajectories.blobs import PayloadPacker, file_unpack, file_writer
from trajectories.formats import IMPORTERS, Importer, RawRecord, RecordError, importer_detect, importer_get
from trajectories.formats.reading import (
    RecordSpan,
    SerialFrom,
    open_maybe_gzip,
    scan_json_array,
    scan_jsonl,
    sniff_container,
)
from trajectories.formats.scrub import SCRUBBED
from trajectories.hooks import fire_trajectories_imported
from trajectories.models import ImportJob, ImportStatus, SourceFile
from trajectories.selectors.registries import registry_active
from trajectories.services.import_workers import SELDOM_COLLECTIONS, ParseWorkers
from trajectories.services.storage import BatchWriter, Prepared, PreparedRun, prepare

logger = logging.getLogger(__name__)

UserLike = User | AnonymousUser | None
MAX_STORED_ERRORS = 1000
BATCH_STEPS = 10000
BATCH_RUNS = 1000
# …and at most about this much data (SWE-agent steps carry KBs each): the batch being written
# and the one read ahead are what the import holds in memory. 8 MB rather than 12: the importing
# process's peak on the τ-bench corpus is 133 MB in place of 145 MB (all processes: about 270 MB
# against a 300 MB budget), for 1 % more time there (SWE-agent: 106 MB in place of 116 MB, about 4 %);
# OpenHands batches are cut by their steps first either way.
BATCH_BYTES = 8 << 20
# A batch is written as soon as it holds this share of each limit and nothing more is ready: PostgreSQL waits
# for no full batch to gather (at the start, and whenever it is ahead of the parsing), and the batch written
# after the last records are read (alone: the other cores have nothing left to do) is short.
EARLY_SHARE = 4
# Parse workers (processes, see import_workers) for PostgreSQL imports: one per core. Only for
# formats whose records parse each on its own, from the record alone (their readers give no
# value beyond the JSON itself): a worker sees every N-th record only.
PARSE_WORKERS = min(len(os.sched_getaffinity(0)), 4)
PARALLEL_FORMATS = frozenset({"openai_chat", "tau_bench", "openhands", "swe_agent"})
IMPORT_TASK = "trajectories.tasks.import_job_run_task"


def _actor(user: UserLike) -> User | None:
    return user if isinstance(user, User) else None


def source_file_store(*, actor: UserLike, project: Project, name: str, stream: IO[bytes]) -> SourceFile:
    """Keep the upload byte for byte (zstd on disk); the same bytes twice are stored once."""
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(dir=_tmp_dir(), suffix=".zst", delete=False) as tmp:
        try:
            with file_writer(tmp) as gz, _Hashing(digest) as hashing:
                while chunk := stream.read(1 << 20):
                    size += len(chunk)
                    if size > settings.STEPWISE_MAX_UPLOAD_BYTES:
                        raise ValidationError(
                            f"{name}: larger than the limit of {settings.STEPWISE_MAX_UPLOAD_BYTES} bytes"
                        )
                    hashing.update(chunk)
                    gz.write(chunk)
            tmp.flush()
            sha = digest.hexdigest()
            existing = SourceFile.objects.filter(project=project, sha256=sha).first()
            if existing is not None:
                return existing
            with transaction.atomic():
                source = SourceFile(
                    project=project,
                    name=os.path.basename(name)[:255] or "upload",
                    sha256=sha,
                    size=size,
                    uploaded_by=_actor(actor),
                )
                with open(tmp.name, "rb") as stored:
                    source.stored.save(f"{sha}.zst", File(stored), save=False)
                source.save()
                audit_record(
                    actor=actor,
                    verb="source_file.store",
                    target=source,
                    project=project,
                    after={"name": source.name, "sha256": sha, "size": size},
                )
            return source
        finally:
            os.unlink(tmp.name)


_HEAD_BYTES = 65536  # what the import looks at to tell what the file is (unpacked before it does)
_ANY_SIZE = 1 << 62  # the size the scanners are given while the file is being unpacked: its size is not known


def _json_head(head: bytes) -> bool:
    """Does the file start as JSON or JSON Lines do (an object or an array, after a BOM and blanks)?"""
    return head.removeprefix(codecs.BOM_UTF8).lstrip()[:1] in (b"{", b"[")


class _Unpacking:
    """The kept upload unpacked into the plain file on a thread of its own, while the import reads what is
    there already: `ready(end)` waits for the first `end` bytes (or the end of the file), `done()` for all
    of it. What stops the unpacking (a damaged blob) is raised where the import waits. Leaving the block
    stops the unpacking (the import is over or failed) and waits for the thread."""

    def __init__(self, stored: IO[bytes], plain: IO[bytes]) -> None:
        self._written = 0
        self._finished = False
        self._stopping = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(stored, plain), name="import-unpack", daemon=True)

    def __enter__(self) -> _Unpacking:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._changed:
            self._stopping = True
        self._thread.join()

    def _run(self, stored: IO[bytes], plain: IO[bytes]) -> None:
        try:
            file_unpack(stored, plain, self._progress)
        except _Stopped:
            pass
        except BaseException as exc:  # raised to the import where it waits
            self._error = exc
        finally:
            with self._changed:
                self._finished = True
                self._changed.notify_all()

    def _progress(self, written: int) -> None:
        with self._changed:
            if self._stopping:
                raise _Stopped
            self._written = written
            self._changed.notify_all()

    def ready(self, end: int) -> None:
        with self._changed:
            while self._written < end and not self._finished:
                self._changed.wait()
            if self._error is not None:
                raise self._error

    def done(self) -> None:
        self.ready(_ANY_SIZE)


class _Stopped(Exception):
    pass


class _Hashing:
    """Feeds chunks to a hash on a thread of its own, in order: hashing the upload (sha256, about 2 GB/s)
    was the store's longest part, and it overlaps with compressing it (both release the GIL). The hash is
    complete when the block exits without an error."""

    def __init__(self, digest: Any) -> None:
        self._digest = digest
        self._chunks: queue.Queue[bytes | None] = queue.Queue(8)  # at most this many chunks wait
        self._thread = threading.Thread(target=self._run, name="upload-hash", daemon=True)

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self._digest.update(chunk)

    def __enter__(self) -> _Hashing:
        self._thread.start()
        return self

    def update(self, chunk: bytes) -> None:
        self._chunks.put(chunk)

    def __exit__(self, *exc_info: object) -> None:
        self._chunks.put(None)
        self._thread.join()


def _tmp_dir() -> str:
    path = settings.MEDIA_ROOT / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def import_job_create(
    *,
    actor: UserLike,
    project: Project,
    name: str,
    stream: IO[bytes],
    format_name: str = "",
    default_model: str = "",
    default_scaffold: str = "",
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
            default_model=default_model.strip()[:200],
            default_scaffold=default_scaffold.strip()[:100],
            bytes_total=source.size,
            created_by=_actor(actor),
        )
        audit_record(
            actor=actor,
            verb="import.create",
            target=job,
            project=project,
            after={"file": source.name, "format": format_name or "detect"},
        )
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
    registry = registry_active(project)
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
        job.scrubbed = {}
        job.save(update_fields=["status", "started_at", *_PROGRESS_FIELDS])
    # What this process holds already (Django, the worker's modules) is left out of the import's garbage
    # collections: they would traverse it again and again for nothing (the parse workers do the same). And
    # they come seldom: what an import makes goes by reference counting (a batch's runs once written), and
    # collections only ever find the rare cycle; on τ-bench runs they took 0.09 s of this process a 100k steps.
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(*SELDOM_COLLECTIONS)
    try:
        with (
            job.source_file.stored.open("rb") as stored,
            tempfile.TemporaryFile(dir=_tmp_dir()) as plain,  # a plain, seekable copy reads fastest
            _Unpacking(stored, plain) as unpacking,
        ):
            _run(job, plain, unpacking, on_progress)
    except Exception as exc:  # the job must end in a state a person can read, whatever happened
        logger.exception("import job %s failed", job_id)
        message = (
            str(exc)
            if isinstance(exc, RecordError)
            else f"the import stopped on an internal error ({type(exc).__name__}); rows already committed are complete"
        )
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED, error=message, finished_at=timezone.now()
        )
        job.refresh_from_db()
        return job
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()  # collectable again once the import is over
    return job


def _connect_to_broker() -> None:
    """Connect to the broker: the import ends by queueing work on what it stored (the checks, see
    verification), and a first connection takes about 60 ms, most of it Python (loading the transport).
    Done while this process mostly waits on the parse workers and PostgreSQL, it costs the import nothing."""
    try:
        with current_app.producer_or_acquire() as producer:  # back to the pool, connected, for send_task
            producer.connection.ensure_connection(max_retries=1)
    except Exception:  # the messages are sent at the end all the same, and fail there readably
        logger.info("could not connect to the broker ahead of the import's messages", exc_info=True)


def _run(
    job: ImportJob, plain: IO[bytes], unpacking: _Unpacking, on_progress: Callable[[ImportJob], None] | None
) -> None:
    # What the file is, from its head: read through `plain`, which must not meet the end of what is unpacked.
    unpacking.ready(_HEAD_BYTES)
    body = open_maybe_gzip(plain)  # the upload itself may have been gzipped
    if body is not plain:
        unpacking.done()  # read whole, through the gzip reader
    head = body.read(_HEAD_BYTES)
    body.seek(0)
    json_head = _json_head(head)
    if not json_head:
        unpacking.done()  # an archive is found by its end
    # a directory of runs, zipped (a file that starts as JSON does is read as JSON, whatever its end holds)
    archive = zipfile.ZipFile(body) if not json_head and zipfile.is_zipfile(body) else None
    body.seek(0)
    members = archive_members(archive) if archive is not None else []
    try:
        if archive is not None and not members:
            raise RecordError("the archive holds no files", where="archive")
        if archive is not None:
            with archive.open(members[0]) as first:
                head = first.read(_HEAD_BYTES)
        importer: Importer = importer_get(job.format_requested) if job.format_requested else importer_detect(head)
    except RecordError as exc:
        _fail(job, exc)
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
    done_in_archive = [0]
    if archive is not None:
        records = _archive_records(archive, members, importer, done_in_archive)
        bytes_so_far: Callable[[], int] = lambda: done_in_archive[0]  # noqa: E731
    else:
        records = _named(importer.records(counting), job.source_file.name)  # type: ignore[arg-type]
        bytes_so_far = lambda: counting.count  # noqa: E731
    batch: list[Prepared] = []
    batch_steps = batch_bytes = 0
    last_progress = time.monotonic()
    bytes_read = 0
    secrets: set[str] = set()

    def flush() -> None:
        nonlocal batch, batch_steps, batch_bytes, last_progress
        if batch:
            result = writer.write(batch)
            if result.trajectory_ids:
                # announced as each batch commits: the checks of a big import's first runs start while it reads
                # on, and the runs of an import that fails (or whose worker dies) later are checked all the same
                transaction.on_commit(partial(fire_trajectories_imported, job.project_id, result.trajectory_ids))
            job.trajectories_imported += len(result.trajectory_ids)
            job.steps_imported += result.steps
            job.duplicates += result.duplicates
            job.unknown_tool_calls += result.unknown_tool_calls
            for refused in result.rejected:
                _reject(job, refused)
            batch, batch_steps, batch_bytes = [], 0, 0
        job.bytes_done = min(bytes_read, job.bytes_total)
        job.save(update_fields=_PROGRESS_FIELDS)
        last_progress = time.monotonic()
        if on_progress:
            on_progress(job)

    defaults = (job.default_model, job.default_scaffold)
    # Each process that prepares records compresses their payloads with a packer of its own
    # (blobs.PayloadPacker): the parse workers, and this process where it prepares records itself.
    dictionary_ids = writer.allocate_dictionary_ids(PARSE_WORKERS + 1)

    def preparer(number: int) -> Callable[[RawRecord], PreparedRun | RecordError]:
        packer = PayloadPacker(dictionary_ids[number])
        return lambda record: _prepare_one(importer, record, defaults, packer)

    with contextlib.ExitStack() as stack:
        # How the importer cuts the file ("jsonl", "array", "document"); only the parallel formats say.
        container_of: Callable[[bytes], str] | None = getattr(importer, "container", None)
        container = container_of(head) if container_of is not None and importer.name in PARALLEL_FORMATS else ""
        workers_may = writer.use_copy and PARSE_WORKERS > 0
        spans: Iterator[RecordSpan | RecordError | SerialFrom] | None = None
        if workers_may and archive is None and body is plain and container in ("jsonl", "array"):
            # A plain file: this process only finds where the records are, as the file is unpacked; the workers
            # read them.
            scan = scan_json_array if container == "array" else scan_jsonl
            spans = scan(plain.fileno(), _ANY_SIZE, unpacking.ready)
        else:
            unpacking.done()  # read whole, through `body`
        # A JSON array that cannot be scanned (it is gzipped) is cut by its reader, which parses
        # each element to find its end: a worker would parse it a second time for nothing.
        parallel = spans is not None or (bool(container) and sniff_container(head) != "array")
        if workers_may and parallel:
            # Parsing runs in worker processes, one per core (see import_workers), and comes back
            # rendered; a thread collects it one batch ahead while this one feeds PostgreSQL.
            name = job.source_file.name

            def serial_from(count: int) -> Iterator[RawRecord | RecordError]:
                unpacking.done()
                body.seek(0)
                return itertools.islice(_named(importer.records(body), name), count, None)

            workers = stack.enter_context(
                ParseWorkers(
                    count=PARSE_WORKERS,
                    prepare_one=preparer,
                    writer=writer,
                    source_fd=plain.fileno(),
                    source_name=name,
                    serial_from=serial_from,
                )
            )
            items = workers.results(spans if spans is not None else records, bytes_so_far)
            stop: Callable[[], None] | None = workers.stop
        else:
            # Reading and parsing run one batch ahead in a thread of their own, so that they go on
            # while this thread waits for the database to take the previous batch (see _ReadAhead).
            items = _prepared_runs(records, bytes_so_far, preparer(PARSE_WORKERS))
            stop = None
        read_ahead = _ReadAhead(items, limit=BATCH_STEPS, limit_bytes=BATCH_BYTES, stop=stop)
        prepared_runs = stack.enter_context(read_ahead)
        # connected while the import runs, after the parse workers are forked (see _connect_to_broker)
        threading.Thread(target=_connect_to_broker, name="import-broker", daemon=True).start()
        for position, prepared in prepared_runs:
            bytes_read = position  # what flush() reports as done
            job.records_seen += 1
            if isinstance(prepared, RecordError):
                _reject(job, prepared)
                continue
            for pointer in prepared.scrubbed:
                job.scrubbed[pointer] = job.scrubbed.get(pointer, 0) + 1
            secrets |= prepared.secrets
            batch.append(prepared)
            batch_steps += prepared.step_count
            batch_bytes += prepared.size
            share = 1 if read_ahead.waiting() else EARLY_SHARE
            if (
                batch_steps * share >= BATCH_STEPS
                or len(batch) * share >= BATCH_RUNS
                or batch_bytes * share >= BATCH_BYTES
                or time.monotonic() - last_progress > 5
            ):
                flush()
    flush()
    unpacking.done()  # the scanners read to the end: this only raises what stopped the unpacking, if anything
    if job.records_seen == 0:
        _fail(job, RecordError("the file holds no records", where="line 1", line=1))
        return
    if secrets:
        _scrub_source_file(job.source_file, secrets)
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


def archive_members(archive: zipfile.ZipFile) -> list[str]:
    """The files of a zip archive in name order, without folders and system clutter."""
    return sorted(
        info.filename
        for info in archive.infolist()
        if not info.is_dir()
        and not info.filename.startswith("__MACOSX/")
        and not os.path.basename(info.filename).startswith(".")
    )


def _named(records: Iterator[RawRecord | RecordError], name: str) -> Iterator[RawRecord | RecordError]:
    for item in records:
        if isinstance(item, RawRecord):
            item.source_name = name
        yield item


def _archive_records(
    archive: zipfile.ZipFile, members: list[str], importer: Importer, done: list[int]
) -> Iterator[RawRecord | RecordError]:
    """Every member's records, each located as "<member>: <where in it>"."""
    for name in members:
        info = archive.getinfo(name)
        with archive.open(info) as member:
            for item in importer.records(member):
                item.where = f"{name}: {item.where}"
                if isinstance(item, RawRecord):
                    item.source_name = name
                yield item
        done[0] += info.compress_size


def _prepared_runs(
    records: Iterator[RawRecord | RecordError],
    position: Callable[[], int],
    prepare_one: Callable[[RawRecord], PreparedRun | RecordError],
) -> Iterator[tuple[int, PreparedRun | RecordError]]:
    """Each record parsed and prepared (or the located error that rejects it), with the bytes read so far."""
    for item in records:
        if isinstance(item, RecordError):
            yield position(), item
            continue
        prepared = prepare_one(item)
        yield position(), prepared


def _prepare_one(
    importer: Importer, item: RawRecord, defaults: tuple[str, str], packer: PayloadPacker | None = None
) -> PreparedRun | RecordError:
    """One record parsed and prepared, or the located error that rejects it."""
    try:
        run = importer.parse(item)
        run.model = run.model or defaults[0]  # what the uploader said, for files that name none
        run.scaffold = run.scaffold or defaults[1]
        return prepare(item, run, packer)
    except RecordError as exc:
        exc.where = exc.where or item.where
        exc.line = exc.line or item.line
        return exc
    except Exception as exc:  # an importer's own fault costs this record, not the file
        logger.exception("importer %s failed on %s", importer.name, item.where)
        return RecordError(
            f"this record could not be read ({type(exc).__name__}); it was skipped",
            where=item.where,
            line=item.line,
        )


_END = object()


class _ReadAhead:
    """The items of an iterator, produced by a background thread up to `limit` steps ahead.

    The import is CPU-bound in Python while it parses and mostly idle while PostgreSQL takes a
    batch (COPY, the deferred foreign-key checks at commit); libpq waits release the GIL, so the
    two overlap when parsing (or collecting what the parse workers made) runs in a thread of
    its own. That thread never touches the database; items come out in order, and an exception
    it raises is raised here, in its turn. Memory stays bounded: at most about one batch
    (`limit` steps, a rejected record counting as one, or `limit_bytes` of records) waits in
    the queue. `stop` is called when the consumer leaves early, before the thread is joined.
    """

    def __init__(
        self,
        items: Iterator[tuple[int, Prepared | RecordError]],
        *,
        limit: int,
        limit_bytes: int,
        stop: Callable[[], None] | None = None,
    ) -> None:
        self._items = items
        self._limit = limit
        self._limit_bytes = limit_bytes
        self._stop = stop
        self._ahead = 0  # steps produced and not yet taken
        self._ahead_bytes = 0
        self._queue: deque[tuple[Any, int, int, BaseException | None]] = deque()
        self._changed = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._produce, name="import-read-ahead", daemon=True)

    def __enter__(self) -> Iterator[tuple[int, Prepared | RecordError]]:
        self._thread.start()
        return self._consume()

    def __exit__(self, *exc_info: object) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        if self._stop is not None and self._thread.is_alive():
            self._stop()
        self._thread.join()

    def _produce(self) -> None:
        error: BaseException | None = None
        try:
            for item in self._items:
                prepared = item[1]
                weight, size = (1, 0) if isinstance(prepared, RecordError) else (prepared.step_count, prepared.size)
                with self._changed:
                    while (self._ahead >= self._limit or self._ahead_bytes >= self._limit_bytes) and not self._stopped:
                        self._changed.wait()
                    if self._stopped:
                        return
                    self._queue.append((item, weight, size, None))
                    self._ahead += weight
                    self._ahead_bytes += size
                    self._changed.notify_all()
        except BaseException as exc:  # handed to the consumer, raised there
            error = exc
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()
        with self._changed:
            self._queue.append((_END, 0, 0, error))
            self._changed.notify_all()

    def waiting(self) -> bool:
        """Is an item ready to be taken (or the end)?"""
        return bool(self._queue)

    def _consume(self) -> Iterator[tuple[int, Prepared | RecordError]]:
        while True:
            with self._changed:
                while not self._queue:
                    self._changed.wait()
                item, weight, size, error = self._queue.popleft()
                self._ahead -= weight
                self._ahead_bytes -= size
                self._changed.notify_all()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item


_PROGRESS_FIELDS = [
    "records_seen",
    "trajectories_imported",
    "steps_imported",
    "duplicates",
    "rejected",
    "unknown_tool_calls",
    "scrubbed",
    "errors",
    "bytes_done",
]


def _fail(job: ImportJob, error: RecordError) -> None:
    """The whole file cannot be imported (no record was read): say why, count nothing."""
    job.error = f"{job.source_file.name}: {error}"
    job.status = ImportStatus.FAILED
    job.finished_at = timezone.now()
    job.bytes_done = job.bytes_total
    with transaction.atomic():
        job.save(update_fields=[*_PROGRESS_FIELDS, "error", "status", "finished_at"])
        audit_record(
            actor=job.created_by, verb="import.fail", target=job, project=job.project, after={"error": job.error}
        )


def _scrub_source_file(source: SourceFile, secrets: set[str]) -> None:
    """Take the scrubbed secrets out of the stored upload too (its sha256 stays the original's,
    so the same upload is still recognised)."""
    literals = [orjson.dumps(s)[1:-1] for s in secrets]  # as they appear inside JSON strings
    overlap = max(len(x) for x in literals)
    with (
        tempfile.NamedTemporaryFile(dir=_tmp_dir(), suffix=".zst", delete=False) as tmp,
        tempfile.TemporaryFile(dir=_tmp_dir()) as unpacked,
    ):
        try:
            with source.stored.open("rb") as stored:
                file_unpack(stored, unpacked)
            unpacked.seek(0)
            plain = open_maybe_gzip(unpacked)  # an upload that was itself gzipped is kept unzipped
            with file_writer(tmp) as out:
                carry = b""
                while chunk := plain.read(1 << 20):
                    data = carry + chunk
                    for literal in literals:
                        data = data.replace(literal, SCRUBBED.encode())
                    carry, data = data[-overlap:], data[:-overlap]
                    out.write(data)
                for literal in literals:
                    carry = carry.replace(literal, SCRUBBED.encode())
                out.write(carry)
            tmp.flush()
            name = source.stored.name or f"{source.sha256}.zst"
            source.stored.delete(save=False)
            with open(tmp.name, "rb") as scrubbed:
                source.stored.save(os.path.basename(name), File(scrubbed), save=True)
        finally:
            os.unlink(tmp.name)


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
        "scrubbed": job.scrubbed,
        "errors": job.errors,
        "error": job.error,
    }
