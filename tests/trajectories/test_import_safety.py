"""Secrets never reach storage; a record the database refuses costs only itself."""

from __future__ import annotations

import json

import pytest
import zstandard
from django.db import connection

from tests.trajectories.fixtures_util import run_import
from tests.trajectories.test_views import _record
from trajectories.formats.scrub import scrub
from trajectories.models import ImportStatus, Trajectory
from trajectories.selectors.runs import trajectory_payload

KEY = "sk-live-abcdefghijklmnopqrstuvwxyz012345"
BEARER = "Bearer eyJhbGciOiJIUzI1NiJ9.payload.signature"


def _with_metadata(goal: str, metadata: dict) -> bytes:
    record = json.loads(_record(goal))
    record["metadata"].update(metadata)
    return json.dumps(record).encode() + b"\n"


def test_scrub_finds_secrets_by_key_and_by_shape() -> None:
    value = {
        "llm_config": {"api_key": KEY, "model": "gpt-4o", "max_tokens": 4096},
        "headers": {"Authorization": BEARER, "Accept": "application/json"},
        "note": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "prompt_tokens": 12,
        "tokens": ["a"],
    }
    cleaned, found = scrub(value, pointer="/metadata")
    assert cleaned["llm_config"] == {"api_key": "[scrubbed]", "model": "gpt-4o", "max_tokens": 4096}
    assert cleaned["headers"] == {"Authorization": "[scrubbed]", "Accept": "application/json"}
    assert cleaned["note"] == "[scrubbed]"
    assert cleaned["prompt_tokens"] == 12
    assert set(found.where) == {"/metadata/llm_config/api_key", "/metadata/headers/Authorization", "/metadata/note"}
    assert value["llm_config"]["api_key"] == KEY  # the input is left alone


@pytest.mark.smoke
def test_secrets_in_metadata_are_scrubbed_everywhere_they_would_be_stored(project) -> None:
    secret_record = _with_metadata(
        "with secrets", {"llm_config": {"api_key": KEY}, "headers": {"Authorization": BEARER}}
    )
    job = run_import(project, secret_record + _record("plain"))
    assert job.status == ImportStatus.DONE
    assert job.trajectories_imported == 2
    assert job.scrubbed == {"/metadata/llm_config/api_key": 1, "/metadata/headers/Authorization": 1}
    trajectory = Trajectory.objects.get(project=project, goal_text="with secrets")
    assert trajectory.metadata["llm_config"]["api_key"] == "[scrubbed]"
    payload = trajectory_payload(trajectory)
    assert KEY.encode() not in payload and BEARER.encode() not in payload and b'"[scrubbed]"' in payload
    with job.source_file.stored.open("rb") as stored:
        kept = zstandard.ZstdDecompressor().decompressobj().decompress(stored.read())
    assert KEY.encode() not in kept and BEARER.encode() not in kept
    assert kept.count(b"\n") == 2  # everything else is still there

    again = run_import(project, secret_record)
    assert (again.trajectories_imported, again.duplicates) == (0, 1)


def test_a_record_the_database_refuses_costs_only_itself(project) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE trajectories_trajectory ADD CONSTRAINT test_refuse_model CHECK (model_name <> 'refuse-me')"
        )
    refused = _record("refused").replace(b'"gpt-4o"', b'"refuse-me"')
    job = run_import(project, _record("first") + refused + _record("last"))
    assert job.status == ImportStatus.DONE, job.error
    assert sorted(Trajectory.objects.filter(project=project).values_list("goal_text", flat=True)) == ["first", "last"]
    (error,) = job.errors
    assert error["where"] == "line 2"
    assert error["message"].startswith("the database refused this record:") and "test_refuse_model" in error["message"]
    assert job.records_seen == job.trajectories_imported + job.duplicates + job.rejected == 3


@pytest.mark.smoke
def test_a_zip_of_run_files_imports_as_one_job_with_each_record_located(project, tmp_path) -> None:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("runs/b.jsonl", _record("b1") + b"{broken\n")
        archive.writestr("runs/a.jsonl", _record("a1") + _record("a2"))
        archive.writestr("__MACOSX/runs/._a.jsonl", b"\x00\x05junk")
        archive.writestr("runs/", b"")
    job = run_import(project, buffer.getvalue(), name="runs.zip")
    assert job.status == ImportStatus.DONE, job.error
    assert job.format_detected == "openai_chat"
    assert (job.trajectories_imported, job.rejected) == (3, 1)
    assert [e["where"] for e in job.errors] == ["runs/b.jsonl: line 2"]
    pointers = dict(Trajectory.objects.filter(project=project).values_list("goal_text", "source_pointer"))
    assert pointers == {"a1": "runs/a.jsonl: line 1", "a2": "runs/a.jsonl: line 2", "b1": "runs/b.jsonl: line 1"}

    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("only-a-folder/", b"")
    job = run_import(project, empty.getvalue(), name="empty.zip")
    assert job.status == ImportStatus.FAILED and "the archive holds no files" in job.error
