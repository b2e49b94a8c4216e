"""Export jobs: a batch in a format, written by a Celery worker as files with a provenance manifest.

The data files are repeatable — the same batch and options give the same bytes (rows in trajectory
order, canonical JSON) — and only the manifest's creation time differs between runs. The manifest
hashes every record and every file; `verify_manifest` finds any changed byte.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus
from core.services import audit_record
from exports.formats import FORMATS
from exports.formats.base import Source, sources
from exports.models import Batch, ExportJob, ExportStatus, Pseudonym
from trajectories.models import Trajectory
from trajectories.selectors.registries import registry_active
from verification.models import CheckRun

EXPORT_TASK = "exports.tasks.export_job_run_task"
OPTIONS = ("apply_corrections", "drop_wrong", "parquet")
LICENCE_MAX = 64
PROGRESS_EVERY = 200


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


def export_job_run(*, job_id: int) -> ExportJob:
    """Write the job's files and manifest; a failure is recorded on the job with its reason."""
    job = ExportJob.objects.select_related("batch__project").get(pk=job_id)
    if job.status == ExportStatus.DONE:
        return job
    job.status, job.error, job.records_done = ExportStatus.RUNNING, "", 0
    job.save(update_fields=["status", "error", "records_done"])
    try:
        _write(job)
    except Exception as exc:  # the job says why; the worker keeps running
        job.status, job.error = ExportStatus.FAILED, f"{type(exc).__name__}: {exc}"[:2000]
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
        raise
    return job


def _write(job: ExportJob) -> None:
    batch = job.batch
    project = batch.project
    exporter = FORMATS[job.format](project=project, options=job.options)
    grouped = getattr(exporter, "grouped", False)
    order = ("goal_id", "id") if grouped else ("id",)
    ids = list(batch.trajectories.order_by(*order).values_list("id", flat=True))
    folder = export_dir(job)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{project.slug}-{batch.pk}-{exporter.name}.{exporter.extension}"
    records: list[dict[str, Any]] = []
    whole = hashlib.sha256()
    size = 0
    with (folder / name).open("wb") as out:

        def emit(rows: Iterable[tuple[dict[str, Any], list[Trajectory]]]) -> None:
            nonlocal size
            for row, origin in rows:
                line = orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n"
                out.write(line)
                whole.update(line)
                size += len(line)
                records.append(
                    {
                        "line": len(records) + 1,
                        "sha256": hashlib.sha256(line).hexdigest(),
                        "trajectory": "+".join(t.rollout_id or str(t.pk) for t in origin),
                        "content_sha256": "+".join(t.content_sha256 for t in origin),
                        "source_payload_sha256": "+".join(t.payload_sha256 for t in origin),
                        "importer": "+".join(sorted({t.source_format for t in origin})),
                        "importer_version": "+".join(sorted({t.importer_version for t in origin})),
                    }
                )

        # a grouped exporter's rows come from all of a goal's runs at once, each with the runs it came from
        group: list[Source] = []
        for done, source in enumerate(sources(ids, getattr(exporter, "prefetch", None)), start=1):
            if grouped:
                if group and group[0].trajectory.goal_id != source.trajectory.goal_id:
                    emit(exporter.group_rows(group))  # type: ignore[attr-defined]
                    group = []
                group.append(source)
            else:
                emit((row, [source.trajectory]) for row in exporter.rows(source))
            if done % PROGRESS_EVERY == 0:
                ExportJob.objects.filter(pk=job.pk).update(records_done=done)
        if group:
            emit(exporter.group_rows(group))  # type: ignore[attr-defined]
    files = [{"name": name, "bytes": size, "sha256": whole.hexdigest(), "records": len(records)}]
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
    annotators = sorted(
        set(
            pseudonyms(
                project.pk,
                Assignment.objects.filter(trajectory_id__in=ids, status=AssignmentStatus.SUBMITTED).values_list(
                    "annotator_id", flat=True
                ),
            ).values()
        )
    )
    verifiers = sorted(
        {
            f"{kind}:{version}"
            for kind, version in CheckRun.objects.filter(trajectory_id__in=ids)
            .values_list("kind", "verifier_version")
            .distinct()
        }
    )
    manifest = {
        "created_at": timezone.now().isoformat(),
        "format": {"name": exporter.name, "version": exporter.version, "options": job.options},
        "project": project.slug,
        "batch": {
            "id": batch.pk,
            "name": batch.name,
            "frozen_at": batch.frozen_at.isoformat() if batch.frozen_at else None,
            "filters": batch.filters,
            "trajectories": len(ids),
        },
        "registry": {"version": registry.version, "sha256": registry.sha256} if registry else None,
        "guideline_version": project.guideline_version,
        "verifiers": verifiers,
        "container_images": [],
        "annotators": annotators,
        "agreement": [f for f in batch.summary.get("agreement", []) if f.get("measure") == "target"],
        "records": records,
    }
    card = dataset_card(job=job, exporter=exporter, manifest=manifest, files=files, companions=tuple(companions))
    (folder / "README.md").write_text(card, encoding="utf-8")
    files.append(_file_entry(folder, "README.md"))
    manifest["files"] = files
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    job.files = [*({k: f[k] for k in ("name", "bytes", "sha256")} for f in files), {"name": "manifest.json"}]
    job.manifest = {k: v for k, v in manifest.items() if k != "records"}
    job.records_done = len(ids)
    job.status = ExportStatus.DONE
    job.finished_at = timezone.now()
    job.save(update_fields=["files", "manifest", "records_done", "status", "finished_at"])


def _file_entry(folder: Path, name: str) -> dict[str, Any]:
    data = (folder / name).read_bytes()
    return {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


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


def verify_manifest(path: Path) -> list[str]:
    """Every difference between the files beside a manifest and what it recorded ([] when none)."""
    try:
        manifest = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        return [f"{path}: not a readable manifest ({exc})"]
    problems: list[str] = []
    for entry in manifest.get("files", []):
        file = path.parent / entry["name"]
        if not file.exists():
            problems.append(f"{entry['name']}: missing")
            continue
        data = file.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            problems.append(f"{entry['name']}: sha256 differs from the manifest")
        if "records" not in entry:
            continue  # Parquet and the card are checked by their sha256 alone
        lines = data.splitlines(keepends=True)
        records = manifest.get("records", [])
        if len(lines) != len(records):
            problems.append(f"{entry['name']}: {len(lines)} lines, the manifest lists {len(records)} records")
        for record, line in zip(records, lines, strict=False):
            if hashlib.sha256(line).hexdigest() != record["sha256"]:
                problems.append(f"{entry['name']}: line {record['line']} ({record['trajectory']}) changed")
    return problems
