"""Exporting a batch to OpenAI chat fine-tuning JSONL: rows valid against the schema, options, repeatable
bytes, a manifest that catches any changed byte, and the pages."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from jsonschema import Draft202012Validator

from exports.models import ExportJob, ExportStatus
from exports.services.jobs import export_dir, export_job_create, export_job_run, verify_manifest
from tests.conftest import login

pytestmark = pytest.mark.smoke
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "exports/formats/openai_sft.schema.json").read_text())


def _run(pm, batch, **options) -> tuple[ExportJob, list[dict], Path]:
    job = export_job_run(job_id=export_job_create(actor=pm, batch=batch, format="openai_sft", options=options).pk)
    path = export_dir(job) / job.files[0]["name"]
    return job, [orjson.loads(line) for line in path.read_bytes().splitlines()], path


def test_rows_follow_the_schema_and_keep_calls_with_their_results(batch, pm) -> None:
    job, rows, _ = _run(pm, batch)
    assert job.status == ExportStatus.DONE and job.records_done == 3 and len(rows) == 3
    validator = Draft202012Validator(SCHEMA)
    for row in rows:
        assert not list(validator.iter_errors(row))
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["user", "assistant", "tool", "assistant"]
        call = row["messages"][1]["tool_calls"][0]
        assert row["messages"][2]["tool_call_id"] == call["id"]
        assert row["tools"][0]["function"]["name"] == "get_reservation"
    assert json.loads(rows[1]["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {"reservation_id": "ZFA001"}


def test_corrections_and_dropping_wrong_steps(batch, pm) -> None:
    _, rows, _ = _run(pm, batch, apply_corrections=True, drop_wrong=True)
    corrected = json.loads(rows[1]["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert corrected == {"reservation_id": "ZFA999"}
    assert [m["role"] for m in rows[2]["messages"]] == ["user", "assistant"]  # the wrong call and its result left out


def test_the_same_batch_gives_the_same_bytes_and_the_manifest_catches_a_change(batch, pm) -> None:
    first, _, path_a = _run(pm, batch)
    _second, _, path_b = _run(pm, batch)
    assert path_a.read_bytes() == path_b.read_bytes()
    manifest = orjson.loads((path_a.parent / "manifest.json").read_bytes())
    again = orjson.loads((path_b.parent / "manifest.json").read_bytes())
    assert {**manifest, "created_at": ""} == {**again, "created_at": ""}  # only the creation time differs
    assert manifest["files"][0]["sha256"] == first.files[0]["sha256"] and len(manifest["records"]) == 3
    assert manifest["annotators"] and all(a.startswith("annotator-") for a in manifest["annotators"])
    assert manifest["registry"]["sha256"] and manifest["batch"]["trajectories"] == 3
    assert verify_manifest(path_a.parent / "manifest.json") == []
    call_command("verify_export", str(path_a.parent / "manifest.json"))
    data = bytearray(path_a.read_bytes())
    data[40] ^= 1  # one bit of the first record
    path_a.write_bytes(bytes(data))
    problems = verify_manifest(path_a.parent / "manifest.json")
    assert any("line 1" in p for p in problems) and any("sha256 differs" in p for p in problems)
    with pytest.raises(CommandError, match="does not match"):
        call_command("verify_export", str(path_a.parent / "manifest.json"))


def test_the_batch_page_exports_and_serves_the_files(
    batch, project, pm, reviewer, annotator, django_capture_on_commit_callbacks
) -> None:
    url = reverse("exports:export_create", kwargs={"project_slug": project.slug, "batch_id": batch.pk})
    assert login(reviewer).post(url, {"format": "openai_sft"}).status_code == 403
    with django_capture_on_commit_callbacks() as callbacks:
        response = login(pm).post(url, {"format": "openai_sft", "drop_wrong": "on"})
    assert response.status_code == 302 and len(callbacks) == 1  # the worker's task is queued after commit
    job = ExportJob.objects.get()
    assert job.options == {"drop_wrong": True} and job.status == ExportStatus.QUEUED
    export_job_run(job_id=job.pk)  # what the worker does
    job.refresh_from_db()
    page = login(reviewer).get(response["Location"]).content.decode()
    assert "Done" in page and job.files[0]["name"] in page
    file_url = reverse(
        "exports:export_file",
        kwargs={"project_slug": project.slug, "batch_id": batch.pk, "job_id": job.pk, "name": job.files[0]["name"]},
    )
    download = login(reviewer).get(file_url)
    assert download.status_code == 200 and b"tool_calls" in b"".join(download.streaming_content)
    assert login(annotator).get(file_url).status_code == 403
    assert login(reviewer).get(file_url.replace(job.files[0]["name"], "..%2Fsecret")).status_code == 404
    bad = login(pm).post(url, {"format": "xml"}, follow=True)
    assert "unknown format" in bad.content.decode()
