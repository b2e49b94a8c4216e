"""`manage.py export_batch`: the same export as the page's, from a shell, with its options and progress."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from exports.models import ExportJob
from exports.services import jobs
from exports.services.jobs import export_job_create, export_job_run, verify_manifest

pytestmark = pytest.mark.smoke


def test_the_command_writes_the_files_with_parquet_and_licence(batch, project) -> None:
    out = io.StringIO()
    call_command(
        "export_batch", project.slug, str(batch.pk), "--format", "openai_sft", "--parquet", "--licence", "cc-by-4.0",
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    job = ExportJob.objects.get()
    assert job.status == "done" and job.options == {"parquet": True, "licence": "cc-by-4.0"}
    paths = [Path(line) for line in out.getvalue().splitlines()[1:]]
    assert [p.suffix for p in paths] == [".jsonl", ".parquet", ".md", ".json"] and all(p.exists() for p in paths)
    assert "license: cc-by-4.0" in paths[2].read_text()
    assert verify_manifest(paths[3]) == []


def test_the_command_says_what_is_wrong(batch, project) -> None:
    with pytest.raises(CommandError, match="no batch 999"):
        call_command("export_batch", project.slug, "999", "--format", "openai_sft")
    with pytest.raises(CommandError, match="SPDX"):
        call_command("export_batch", project.slug, str(batch.pk), "--format", "openai_sft", "--licence", "my licence")
    assert not ExportJob.objects.exists()


def test_progress_is_told_as_it_is_saved(batch, pm, monkeypatch) -> None:
    monkeypatch.setattr(jobs, "PROGRESS_EVERY", 1)
    monkeypatch.setattr(jobs, "PROGRESS_SECONDS", 0.0)
    heard: list[tuple[int, int]] = []
    job = export_job_create(actor=pm, batch=batch, format="sharegpt")
    export_job_run(job_id=job.pk, on_progress=lambda done, total: heard.append((done, total)))
    assert heard == [(1, 3), (2, 3), (3, 3)]
