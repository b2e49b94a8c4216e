"""Export jobs: a batch in a format, written by a Celery worker as files with a provenance manifest.

The data files are repeatable — the same batch and options give the same bytes (rows in trajectory
order, canonical JSON) — and only the manifest's creation time differs between runs. The manifest
hashes every record and every file; `verify_manifest` finds any changed byte.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus
from core.services import audit_record
from exports.formats import FORMATS
from exports.formats.base import CHUNK, Source, sources
from exports.models import Batch, ExportJob, ExportStatus, Pseudonym
from exports.selectors import Origin
from trajectories.models import Trajectory
from trajectories.selectors.registries import registry_active
from verification.models import CheckRun

EXPORT_TASK = "exports.tasks.export_job_run_task"
OPTIONS = ("apply_corrections", "drop_wrong", "parquet")
LICENCE_MAX = 64
PROGRESS_EVERY = 200
PROGRESS_SECONDS = 1.0
RECORDS_PART = ".records.part"
MANIFEST_JSON = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
BLOCK = 1 << 20
_INDENT = b"    "  # a record's depth in manifest.json


def export_dir(job: ExportJob) -> Path:
    return Path(settings.MEDIA_ROOT) / "exports" / str(job.pk)


@transaction.atomic
def export_job_create(*, actor: User, batch: Batch, format: str, options: dict[str, Any] | None = None) -> ExportJob:
    if format not in FORMATS:
        raise ValidationError({"format": f"unknown format {format!r}; one of {', '.join(sorted(FORMATS))}"})
    given: dict[str, Any] = dict(options or {})
    licence = str(given.pop("licence", "") or "").strip()
    if len(licence) > LICENCE_MAX or any(c.isspace() for c in licence):
        raise ValidationError(
            {"licence": f"an SPDX identifier such as cc-by-4.0 (no spaces, at most {LICENCE_MAX} characters)"}
        )
    chosen: dict[str, Any] = {k: bool(v) for k, v in given.items() if v}
    unknown = sorted(set(chosen) - set(OPTIONS))
    if unknown:
        raise ValidationError({"options": f"unknown option(s): {', '.join(unknown)}"})
    if licence:
        chosen["licence"] = licence
    job = ExportJob.objects.create(
        batch=batch, format=format, options=chosen, created_by=actor, records_total=batch.trajectories.count()
    )
    audit_record(
        actor=actor,
        verb="export.create",
        target=job,
        project=batch.project,
        after={"format": format, "options": chosen},
    )
    transaction.on_commit(partial(current_app.send_task, EXPORT_TASK, args=[job.pk]))
    return job


def pseudonym_derived(project_id: int, user_id: int) -> str:
    """The name an account's labels in the project export under when it keeps none of its own."""
    return "annotator-" + hashlib.sha256(f"stepwise:{project_id}:{user_id}".encode()).hexdigest()[:12]


def pseudonym(project_id: int, user_id: int) -> str:
    """A stable name for an annotator in an export: never the account's name. An account restored
    from a full export keeps the pseudonym it had there (a Pseudonym row); any other's is derived."""
    return pseudonyms(project_id, [user_id])[user_id]


def pseudonyms(project_id: int, user_ids: Iterable[int]) -> dict[int, str]:
    """`pseudonym` of many accounts in one query."""
    wanted = set(user_ids)
    kept = dict(Pseudonym.objects.filter(project_id=project_id, user_id__in=wanted).values_list("user_id", "name"))
    return {u: kept.get(u) or pseudonym_derived(project_id, u) for u in wanted}


def export_job_run(*, job_id: int, on_progress: Callable[[int, int], None] | None = None) -> ExportJob:
    """Write the job's files and manifest; a failure is recorded on the job with its reason. `on_progress`
    (the command line's bar) hears (trajectories done, in all) as often as the job's progress is saved.
    A second run of the same job (a task delivered twice, the command line beside a worker) waits for the
    one in progress, then finds the job done: the two would write the same files."""
    with _one_writer(job_id):
        job = ExportJob.objects.select_related("batch__project").get(pk=job_id)
        if job.status == ExportStatus.DONE:
            return job
        job.status, job.error, job.records_done = ExportStatus.RUNNING, "", 0
        job.save(update_fields=["status", "error", "records_done"])
        try:
            _write(job, on_progress)
        except Exception as exc:  # the job says why; the worker keeps running
            job.status, job.error = ExportStatus.FAILED, f"{type(exc).__name__}: {exc}"[:2000]
            job.finished_at = timezone.now()
            job.save(update_fields=["status", "error", "finished_at"])
            raise
        return job


_LOCKS = 0x5E7E  # the advisory-lock space of export jobs (its second key is the job's id)


@contextlib.contextmanager
def _one_writer(job_id: int) -> Iterator[None]:
    """Hold the job's PostgreSQL advisory lock (a session lock: a dead process lets go of it). Other
    databases have none; the embedded default runs one worker."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [_LOCKS, job_id])
    try:
        yield
    finally:
        with contextlib.suppress(Exception), connection.cursor() as cursor:  # a lost connection has let go already
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCKS, job_id])


def _origin(t: Trajectory) -> Origin:
    return (t.rollout_id or str(t.pk), t.content_sha256, t.payload_sha256, t.source_format, t.importer_version)


def _id_chunks(batch: Batch, order: tuple[str, ...]) -> Iterator[list[int]]:
    """The batch's trajectory ids in export order, CHUNK at a time (a server-side cursor on PostgreSQL)."""
    ids = batch.trajectories.order_by(*order).values_list("id", flat=True).iterator(chunk_size=CHUNK * 10)
    yield from (list(chunk) for chunk in itertools.batched(ids, CHUNK))


Lines = list[tuple[list[Origin], bytes]]  # lines with the trajectories each came from


def _row_lines(exporter: Any, chunks: Iterable[list[int]], progress: Callable[[int], None]) -> Iterator[Lines]:
    """The rows the exporter makes, written as canonical JSON, with the trajectories they came from."""
    grouped = getattr(exporter, "grouped", False)

    def dump(rows: Iterable[dict[str, Any]], origin: list[Origin]) -> Iterator[Lines]:
        yield [(origin, orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n") for row in rows]

    def dump_grouped(rows: Iterable[tuple[dict[str, Any], list[Trajectory]]]) -> Iterator[Lines]:
        # a grouped exporter's rows come from all of a goal's runs at once, each with the runs it came from
        yield [
            ([_origin(t) for t in origin], orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n")
            for row, origin in rows
        ]

    group: list[Source] = []
    for done, source in enumerate(sources(chunks, getattr(exporter, "prefetch", None)), start=1):
        if grouped:
            if group and group[0].trajectory.goal_id != source.trajectory.goal_id:
                yield from dump_grouped(exporter.group_rows(group))
                group = []
            group.append(source)
        else:
            yield from dump(exporter.rows(source), [_origin(source.trajectory)])
        if done % PROGRESS_EVERY == 0:
            progress(done)
    if group:
        yield from dump_grouped(exporter.group_rows(group))


def _chunk_lines(
    lines: Callable[[list[int]], list[tuple[Origin, bytes]]],
    chunks: Iterable[list[int]],
    progress: Callable[[int], None],
) -> Iterator[Lines]:
    """The lines an exporter writes a chunk of trajectories at a time (its `lines`)."""
    done = 0
    for ids in chunks:
        yield [([origin], line) for origin, line in lines(ids)]
        done += len(ids)
        progress(done)


def _record(number: int, line: bytes, origin: list[Origin]) -> bytes:
    """A record of the manifest as it stands in manifest.json (an element of `records`, indented)."""
    digest = hashlib.sha256(line).hexdigest()
    if len(origin) == 1:  # the usual case, formatted as orjson formats the record (_record_of)
        trajectory, content, payload, importer, version = origin[0]
        dumps = orjson.dumps
        return _ONE_ORIGIN % (
            dumps(content),
            dumps(importer),
            dumps(version),
            number,
            digest.encode(),
            dumps(payload),
            dumps(trajectory),
        )
    return _record_of(number, digest, origin)


def _record_of(number: int, digest: str, origin: list[Origin]) -> bytes:
    record = {
        "line": number,
        "sha256": digest,
        "trajectory": "+".join(o[0] for o in origin),
        "content_sha256": "+".join(o[1] for o in origin),
        "source_payload_sha256": "+".join(o[2] for o in origin),
        "importer": "+".join(sorted({o[3] for o in origin})),
        "importer_version": "+".join(sorted({o[4] for o in origin})),
    }
    return _INDENT + orjson.dumps(record, option=MANIFEST_JSON).replace(b"\n", b"\n" + _INDENT)


_ONE_ORIGIN = (  # _record_of's bytes for one origin (keys sorted, indented by two and by the record's depth)
    b'    {\n      "content_sha256": %s,\n      "importer": %s,\n      "importer_version": %s,\n      "line": %d,\n'
    b'      "sha256": "%s",\n      "source_payload_sha256": %s,\n      "trajectory": %s\n    }'
)


def _write(job: ExportJob, on_progress: Callable[[int, int], None] | None = None) -> None:
    batch = job.batch
    project = batch.project
    exporter = FORMATS[job.format](project=project, options=job.options)
    order = ("goal_id", "id") if getattr(exporter, "grouped", False) else ("id",)
    folder = export_dir(job)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{project.slug}-{batch.pk}-{exporter.name}.{exporter.extension}"
    shown = time.monotonic()

    def progress(done: int) -> None:  # at most once a PROGRESS_SECONDS (each is a commit)
        nonlocal shown
        if time.monotonic() - shown >= PROGRESS_SECONDS:
            ExportJob.objects.filter(pk=job.pk).update(records_done=done)
            shown = time.monotonic()
            if on_progress is not None:
                on_progress(done, job.records_total)

    chunks = _id_chunks(batch, order)
    by_chunk = getattr(exporter, "lines", None)
    lines = _chunk_lines(by_chunk, chunks, progress) if by_chunk else _row_lines(exporter, chunks, progress)
    whole = hashlib.sha256()
    size = count = 0
    # the records go to a file beside the data as they come (memory does not grow with the batch) and are
    # spliced into manifest.json at the end
    records_path = folder / RECORDS_PART
    try:
        with (
            (folder / name).open("wb", buffering=BLOCK) as out,
            records_path.open("wb", buffering=BLOCK) as records,
            _Behind(out, whole) as behind,
        ):
            for block in lines:
                data = b"".join(line for _, line in block)
                behind.write(data)
                size += len(data)
                entries = [_record(count + n, line, origin) for n, (origin, line) in enumerate(block, start=1)]
                if entries:
                    records.write((b",\n" if count else b"") + b",\n".join(entries))
                count += len(entries)
    except BaseException:
        records_path.unlink(missing_ok=True)
        raise
    trajectories = batch.trajectories.count()
    files = [{"name": name, "bytes": size, "sha256": whole.hexdigest(), "records": count}]
    if job.options.get("parquet"):
        # in a child process: pyarrow starts threads, and this process (a Celery worker) forks import workers
        parquet = f"{name.rsplit('.', 1)[0]}.parquet"
        converted = subprocess.run(
            [sys.executable, "-m", "exports.parquet", str(folder / name), exporter.name, str(folder / parquet)],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
            timeout=7200,
        )
        if converted.returncode:
            raise RuntimeError(f"writing the Parquet file failed: {converted.stderr.strip()[-1500:]}")
        files.append(_file_entry(folder, parquet))
    companions: list[tuple[str, str]] = []  # files an exporter writes beside the data, e.g. a loader's config
    for companion, content, what in getattr(exporter, "companions", lambda _: [])(name):
        (folder / companion).write_bytes(content)
        files.append(_file_entry(folder, companion))
        companions.append((companion, what))
    registry = registry_active(project)
    in_batch = batch.trajectories.values("id")
    annotators = sorted(
        set(
            pseudonyms(
                project.pk,
                Assignment.objects.filter(trajectory_id__in=in_batch, status=AssignmentStatus.SUBMITTED).values_list(
                    "annotator_id", flat=True
                ),
            ).values()
        )
    )
    verifiers = sorted(
        {
            f"{kind}:{version}"
            for kind, version in CheckRun.objects.filter(trajectory_id__in=in_batch)
            .values_list("kind", "verifier_version")
            .distinct()
        }
    )
    manifest: dict[str, Any] = {
        "created_at": timezone.now().isoformat(),
        "format": {"name": exporter.name, "version": exporter.version, "options": job.options},
        "project": project.slug,
        "batch": {
            "id": batch.pk,
            "name": batch.name,
            "frozen_at": batch.frozen_at.isoformat() if batch.frozen_at else None,
            "filters": batch.filters,
            "trajectories": trajectories,
        },
        "registry": {"version": registry.version, "sha256": registry.sha256} if registry else None,
        "guideline_version": project.guideline_version,
        "verifiers": verifiers,
        "container_images": [],
        "annotators": annotators,
        "agreement": [f for f in batch.summary.get("agreement", []) if f.get("measure") == "target"],
    }
    card = dataset_card(job=job, exporter=exporter, manifest=manifest, files=files, companions=tuple(companions))
    (folder / "README.md").write_text(card, encoding="utf-8")
    files.append(_file_entry(folder, "README.md"))
    manifest["files"] = files
    _manifest_write(folder / "manifest.json", manifest, records_path)
    job.files = [*({k: f[k] for k in ("name", "bytes", "sha256")} for f in files), {"name": "manifest.json"}]
    job.manifest = manifest
    job.records_done = trajectories
    job.status = ExportStatus.DONE
    job.finished_at = timezone.now()
    job.save(update_fields=["files", "manifest", "records_done", "status", "finished_at"])


class _Behind:
    """Writes blocks to a file and hashes them on a thread of its own, at most QUEUED blocks behind: the write
    and sha256 let go of the GIL, so they run beside the lines being made. An error there is raised here."""

    QUEUED = 4

    def __init__(self, out: Any, digest: Any) -> None:
        self.out, self.digest = out, digest
        self.blocks: queue.Queue[bytes | None] = queue.Queue(self.QUEUED)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="export-write", daemon=True)

    def _run(self) -> None:
        while (block := self.blocks.get()) is not None:
            if self.error is None:
                try:
                    self.out.write(block)
                    self.digest.update(block)
                except BaseException as exc:  # raised on the export's thread
                    self.error = exc

    def write(self, block: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.blocks.put(block)

    def __enter__(self) -> _Behind:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.blocks.put(None)
        self.thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error


def _manifest_write(path: Path, manifest: dict[str, Any], records_path: Path) -> None:
    """manifest.json as orjson writes it (indented, sorted keys) with the records file as its `records` list."""
    text = orjson.dumps({**manifest, "records": []}, option=MANIFEST_JSON)
    slot = b'\n  "records": [],\n'  # a top-level key: only it has a newline and two blanks before it
    before, after = text.split(slot, 1)
    with path.open("wb") as out, records_path.open("rb") as records:
        if records_path.stat().st_size:
            out.write(before + b'\n  "records": [\n')
            shutil.copyfileobj(records, out, BLOCK)
            out.write(b"\n  ],\n" + after)
        else:
            out.write(text)
    records_path.unlink()


def _file_entry(folder: Path, name: str) -> dict[str, Any]:
    digest, size = _digest(folder / name)
    return {"name": name, "bytes": size, "sha256": digest}


def _digest(path: Path) -> tuple[str, int]:
    whole = hashlib.sha256()
    size = 0
    with path.open("rb") as data:
        while block := data.read(BLOCK):
            whole.update(block)
            size += len(block)
    return whole.hexdigest(), size


def dataset_card(
    *,
    job: ExportJob,
    exporter: Any,
    manifest: dict[str, Any],
    files: list[dict[str, Any]],
    companions: tuple[tuple[str, str], ...] = (),
) -> str:
    """The dataset card (README.md): what is in the files, where it came from, how much annotators agreed."""
    batch = job.batch
    summary = batch.summary or {}

    def table(counts: dict[str, int]) -> str:
        return "\n".join(f"| {k} | {v} |" for k, v in counts.items()) or "| — | 0 |"

    agreement = "\n".join(
        f"| {f['measure']} | {f['coefficient']} | {'' if f.get('value') is None else format(f['value'], '.4f')} "
        f"| {f.get('reason') or ''} | {f.get('n_items', 0)} |"
        for f in summary.get("agreement", [])
    )
    licence = job.options.get("licence") or "not stated"
    rows = files[0]["records"]
    parquet = any(f["name"].endswith(".parquet") for f in files)
    beside = "".join(f"\n- `{companion}` beside it: {what}" for companion, what in companions)
    return f"""---
license: {licence}
pretty_name: {batch.project.name} — {batch.name}
---

# {batch.project.name} — {batch.name} ({exporter.label})

Exported by Stepwise from batch #{batch.pk} ({batch.frozen_at:%Y-%m-%d}), format `{exporter.name}` {exporter.version},
options {job.options or "none"}. Licence: {licence}.

- Records: {rows} in `{files[0]["name"]}`{" and the same rows in Parquet" if parquet else ""}{beside}
- Trajectories: {summary.get("trajectories", 0)}, steps: {summary.get("steps", 0)}
- Registry: {manifest["registry"]["sha256"] if manifest.get("registry") else "none"} · guideline version {manifest["guideline_version"]}
- Annotators (pseudonyms): {len(manifest["annotators"])}

## Difficulty bands

| band | trajectories |
|---|---|
{table(summary.get("bands", {}))}

## Capability tags

| tag | trajectories |
|---|---|
{table(summary.get("tags", {}))}

## Models

| model | trajectories |
|---|---|
{table(summary.get("models", {}))}

## Agreement (pooled over the batch when it was cut)

| measure | coefficient | value | why no value | N |
|---|---|---|---|---|
{agreement}

## Provenance

`manifest.json` lists the sha256 of every file and every record, with each record's source payload sha256,
importer and version; `manage.py verify_export manifest.json` finds any changed byte.
"""


_BLANK = re.compile(r"[ \t\n\r]*")


class _Manifest:
    """A manifest read without holding its records: the rest as a dict, the records parsed one at a time
    from the text when asked for (a million-line export's records would take a few hundred MB as objects)."""

    def __init__(self, text: str) -> None:
        self.text, self.decoder = text, json.JSONDecoder()
        self.fields: dict[str, Any] = {}
        self.records_at: int | None = None
        self.records = 0
        i = self._blank(0)
        if text[i : i + 1] != "{":
            raise ValueError("not a JSON object")
        i = self._blank(i + 1)
        while text[i : i + 1] != "}":
            key, i = self.decoder.raw_decode(text, i)
            i = self._blank(i)
            if text[i : i + 1] != ":":
                raise ValueError(f"':' expected at character {i}")
            i = self._blank(i + 1)
            if key == "records" and text[i : i + 1] == "[":
                self.records_at = i
                for _ in self._records_from(i):
                    self.records += 1
                i = self._end
            else:
                self.fields[key], i = self.decoder.raw_decode(text, i)
            i = self._blank(i)
            if text[i : i + 1] == ",":
                i = self._blank(i + 1)
            elif text[i : i + 1] != "}":
                raise ValueError(f"',' or '}}' expected at character {i}")
        if text[self._blank(i + 1) :]:
            raise ValueError(f"extra data at character {self._blank(i + 1)}")

    def _blank(self, i: int) -> int:
        match = _BLANK.match(self.text, i)
        return match.end() if match else i

    def _records_from(self, i: int) -> Iterator[dict[str, Any]]:
        i = self._blank(i + 1)
        while self.text[i : i + 1] != "]":
            record, i = self.decoder.raw_decode(self.text, i)
            if not isinstance(record, dict):
                raise ValueError(f"a record is an object (character {i})")
            yield record
            i = self._blank(i)
            if self.text[i : i + 1] == ",":
                i = self._blank(i + 1)
            elif self.text[i : i + 1] != "]":
                raise ValueError(f"',' or ']' expected at character {i}")
        self._end = i + 1

    def iter_records(self) -> Iterator[dict[str, Any]]:
        return iter(()) if self.records_at is None else self._records_from(self.records_at)


def verify_manifest(path: Path) -> list[str]:
    """Every difference between the files beside a manifest and what it recorded ([] when none); the files
    are read a line or a block at a time and the manifest's records one at a time."""
    try:
        manifest = _Manifest(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [f"{path}: not a readable manifest ({exc})"]
    problems: list[str] = []
    for entry in manifest.fields.get("files", []):
        file = path.parent / entry["name"]
        if not file.exists():
            problems.append(f"{entry['name']}: missing")
            continue
        if "records" not in entry:  # Parquet and the card are checked by their sha256 alone
            if _digest(file)[0] != entry["sha256"]:
                problems.append(f"{entry['name']}: sha256 differs from the manifest")
            continue
        records = manifest.iter_records()
        whole = hashlib.sha256()
        lines = 0
        with file.open("rb") as data:
            for lines, line in enumerate(data, start=1):  # noqa: B007 (the count is read after the loop)
                whole.update(line)
                record = next(records, None)
                if record is not None and hashlib.sha256(line).hexdigest() != record["sha256"]:
                    problems.append(f"{entry['name']}: line {record['line']} ({record['trajectory']}) changed")
        if whole.hexdigest() != entry["sha256"]:
            problems.append(f"{entry['name']}: sha256 differs from the manifest")
        if lines != manifest.records:
            problems.append(f"{entry['name']}: {lines} lines, the manifest lists {manifest.records} records")
    return problems
