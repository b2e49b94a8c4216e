"""How an import stores its bytes: record payloads compressed against their import's first records
(trajectories.blobs.PayloadPacker) come back byte for byte, whichever process packed them and whatever became
of the run that brought their dictionary, and a dictionary holds only scrubbed bytes; rows go in binary COPY
in each column's own format."""

from __future__ import annotations

import io
import json

import pytest
import zstandard
from django.db import connection

from tests.trajectories.fixtures_util import run_import
from tests.trajectories.test_import_safety import BEARER, KEY, _with_metadata
from tests.trajectories.test_views import _record
from trajectories import blobs
from trajectories.blobs import DICTIONARY_RECORDS, PayloadPacker, dictionary_of, unpack
from trajectories.models import ImportStatus, PayloadDictionary, Trajectory
from trajectories.selectors.runs import trajectory_payload
from trajectories.services import imports

POLICY = "# Airline Agent Policy\n" + "\n".join(f"- rule {i}: be exact about reservation fees" for i in range(150))


@pytest.fixture(autouse=True)
def one_record_a_group(monkeypatch) -> None:
    """Records alternate between the two parse workers one at a time: these tests reason about which worker
    packs which record (a worker packs its first DICTIONARY_RECORDS alone, then makes its dictionary)."""
    from trajectories.services import import_workers

    monkeypatch.setattr(import_workers, "GROUP_RECORDS", 1)


def _records(count: int, start: int = 0) -> list[bytes]:
    """OpenAI chat records that share a long system prompt, as every τ-bench run does."""
    out = []
    for i in range(start, start + count):
        record = json.loads(_record(f"Cancel reservation R{i:04d}"))
        record["messages"].insert(0, {"role": "system", "content": POLICY})
        out.append(json.dumps(record).encode() + b"\n")
    return out


def _payloads(project) -> dict[str, bytes]:
    return {t.source_pointer: trajectory_payload(t) for t in Trajectory.objects.filter(project=project)}


def test_a_packer_compresses_alone_until_it_has_its_dictionary_then_against_it() -> None:
    records = [line.rstrip(b"\n") for line in _records(DICTIONARY_RECORDS + 3)]
    packer = PayloadPacker(41)
    packed = [packer.pack(raw) for raw in records]
    first, rest = packed[:DICTIONARY_RECORDS], packed[DICTIONARY_RECORDS:]
    assert all(p.dictionary_id is None and dictionary_of(p.blob) is None for p in first)
    assert [unpack(p.blob) for p in first] == records[:DICTIONARY_RECORDS]
    assert all(p.dictionary_id == 41 == dictionary_of(p.blob) for p in rest)
    dictionary = rest[0].dictionary
    assert dictionary == b"".join(records[:DICTIONARY_RECORDS])  # under DICTIONARY_BYTES: all of them
    assert [p.dictionary for p in rest[1:]] == [None, None]  # the bytes come once
    assert [unpack(p.blob, lambda i: {41: dictionary}[i]) for p in rest] == records[DICTIONARY_RECORDS:]
    assert len(rest[-1].blob) * 3 < len(first[-1].blob)  # the shared prompt costs nothing any more
    with pytest.raises(ValueError, match="dictionary 41"):
        unpack(rest[0].blob)
    # a standard zstd reader skips the frame that names the dictionary
    reader = zstandard.ZstdDecompressor(
        dict_data=zstandard.ZstdCompressionDict(dictionary, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    ).stream_reader(io.BytesIO(rest[1].blob))
    assert reader.read() == records[DICTIONARY_RECORDS + 1]


def test_a_packer_without_an_id_always_compresses_alone() -> None:
    packer = PayloadPacker(None)
    packed = [packer.pack(raw) for raw in _records(DICTIONARY_RECORDS + 2)]
    assert {(p.dictionary_id, p.dictionary, dictionary_of(p.blob)) for p in packed} == {(None, None, None)}


def test_a_dictionary_keeps_the_last_bytes_of_long_records(monkeypatch) -> None:
    monkeypatch.setattr(blobs, "DICTIONARY_BYTES", 1000)
    packer = PayloadPacker(3)
    records = [bytes([65 + i]) * 600 for i in range(DICTIONARY_RECORDS + 1)]
    last = [packer.pack(raw) for raw in records][-1]
    assert last.dictionary == b"".join(records[:DICTIONARY_RECORDS])[-1000:]
    assert unpack(last.blob, lambda i: last.dictionary or b"") == records[-1]


@pytest.mark.django_db
def test_every_payload_of_a_parallel_import_comes_back_byte_for_byte(project, pm) -> None:
    assert imports.PARSE_WORKERS == 2  # two cores: each worker packs every other record
    lines = _records(30)
    job = run_import(project, b"".join(lines))
    assert job.status == ImportStatus.DONE, job.error
    assert _payloads(project) == {f"line {i + 1}": line.rstrip(b"\n") for i, line in enumerate(lines)}
    dictionaries = PayloadDictionary.objects.filter(project=project)
    assert dictionaries.count() == 2  # one per worker
    blobs_ = list(Trajectory.objects.filter(project=project).values_list("payload", flat=True))
    used = [dictionary_of(bytes(b)) for b in blobs_]
    assert used.count(None) == 2 * DICTIONARY_RECORDS
    assert {i for i in used if i is not None} == set(dictionaries.values_list("id", flat=True))
    # what it saves: the policy prompt is kept in the dictionaries, not in every payload
    with_dictionary = [bytes(t.payload) for t in Trajectory.objects.filter(project=project) if dictionary_of(t.payload)]
    alone = [
        blobs.pack(trajectory_payload(t))
        for t in Trajectory.objects.filter(project=project)
        if dictionary_of(t.payload)
    ]
    assert sum(map(len, with_dictionary)) * 3 < sum(map(len, alone))

    # another project's import of the same file has dictionaries of its own
    other = _other_project(pm)
    assert run_import(other, b"".join(lines)).trajectories_imported == 30
    assert PayloadDictionary.objects.filter(project=other).count() == 2
    assert _payloads(other) == _payloads(project)


def _other_project(pm):
    from core.services import project_create

    return project_create(actor=pm, name="Other desk", kind="tool_use")


@pytest.mark.django_db
def test_a_dictionary_is_stored_though_the_run_that_brought_it_is_a_duplicate(project) -> None:
    first = _records(10)
    assert run_import(project, b"".join(first)).trajectories_imported == 10
    # The same ten again, then ten new ones: the runs that bring the workers' dictionaries (the fifth
    # each worker packs) are duplicates, and are not stored; the new runs need those dictionaries.
    more = _records(10, start=10)
    job = run_import(project, b"".join(first + more), name="again.jsonl")
    assert (job.trajectories_imported, job.duplicates) == (10, 10), job.errors
    again = Trajectory.objects.filter(project=project, source_file=job.source_file)
    assert sorted(trajectory_payload(t) for t in again) == sorted(line.rstrip(b"\n") for line in more)
    assert all(dictionary_of(bytes(t.payload)) is not None for t in again)


@pytest.mark.django_db
def test_a_refused_record_takes_no_dictionary_with_it(project) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE trajectories_trajectory ADD CONSTRAINT test_refuse_goal CHECK (goal_text <> 'refuse me')"
        )
    lines = _records(16)
    # the ninth and tenth records bring the two workers' dictionaries; refuse the ninth
    lines[8] = lines[8].replace(b"Cancel reservation R0008", b"refuse me")
    job = run_import(project, b"".join(lines))
    assert job.status == ImportStatus.DONE, job.error
    assert [e["where"] for e in job.errors] == ["line 9"]
    kept = _payloads(project)
    assert kept == {f"line {i + 1}": line.rstrip(b"\n") for i, line in enumerate(lines) if i != 8}
    assert PayloadDictionary.objects.filter(project=project).count() == 2


@pytest.mark.django_db
def test_a_dictionary_holds_only_scrubbed_bytes(project) -> None:
    secret = {"llm_config": {"api_key": KEY}, "headers": {"Authorization": BEARER}}
    lines = [_with_metadata(f"with secrets {i}", secret) for i in range(12)]
    job = run_import(project, b"".join(lines))
    assert job.status == ImportStatus.DONE, job.error
    assert job.scrubbed == {"/metadata/llm_config/api_key": 12, "/metadata/headers/Authorization": 12}
    dictionaries = [bytes(d.data) for d in PayloadDictionary.objects.filter(project=project)]
    assert len(dictionaries) == 2 and all(b'"[scrubbed]"' in d for d in dictionaries)
    for stored in [*dictionaries, *_payloads(project).values()]:
        assert KEY.encode() not in stored and BEARER.encode() not in stored


@pytest.mark.django_db
def test_the_serial_path_packs_with_a_dictionary_too(project, monkeypatch) -> None:
    monkeypatch.setattr(imports, "PARSE_WORKERS", 0)
    lines = _records(DICTIONARY_RECORDS + 4)
    job = run_import(project, b"".join(lines))
    assert job.trajectories_imported == len(lines), job.errors
    assert PayloadDictionary.objects.filter(project=project).count() == 1
    assert _payloads(project) == {f"line {i + 1}": line.rstrip(b"\n") for i, line in enumerate(lines)}


@pytest.mark.django_db
def test_the_binary_copy_types_are_the_columns_types() -> None:
    """Binary COPY sends no types: each field must be in its column's own format (varchar as text)."""
    from trajectories.services.storage import STEP_FIELDS, STEP_TYPES, TRAJECTORY_FIELDS, TRAJECTORY_TYPES

    def columns(table: str) -> dict[str, str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT attname, CASE WHEN t.typname = 'varchar' THEN 'text' ELSE t.typname END FROM pg_attribute a"
                " JOIN pg_type t ON t.oid = a.atttypid WHERE attrelid = %s::regclass AND attnum > 0",
                [table],
            )
            return dict(cursor.fetchall())

    steps, trajectories = columns("trajectories_step"), columns("trajectories_trajectory")
    assert {f: STEP_TYPES.get(f, "text") for f in ("trajectory_id", *STEP_FIELDS)} == {
        f: steps[f] for f in ("trajectory_id", *STEP_FIELDS)
    }
    assert {f: TRAJECTORY_TYPES.get(f, "text") for f in TRAJECTORY_FIELDS} == {
        f: trajectories[f] for f in TRAJECTORY_FIELDS
    }


@pytest.mark.django_db
def test_leads_download_a_runs_original_record_byte_for_byte(project, pm_client, annotator, qa_lead, outsider) -> None:
    import hashlib

    from django.urls import reverse

    from tests.conftest import login

    lines = _records(12)
    run_import(project, b"".join(lines))
    trajectory = Trajectory.objects.get(project=project, source_pointer="line 12")
    assert dictionary_of(bytes(trajectory.payload)) is not None  # compressed against its import's first records
    url = reverse(
        "trajectories:trajectory_record", kwargs={"project_slug": project.slug, "trajectory_id": trajectory.pk}
    )
    response = pm_client.get(url)
    assert response.status_code == 200
    assert response.content == lines[11].rstrip(b"\n")
    assert hashlib.sha256(response.content).hexdigest() == trajectory.payload_sha256
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert login(qa_lead).get(url).status_code == 200
    assert login(annotator).get(url).status_code == 404  # annotators work blind to the outcome the record holds
    assert login(outsider).get(url).status_code == 404
    detail = reverse(
        "trajectories:trajectory_detail", kwargs={"project_slug": project.slug, "trajectory_id": trajectory.pk}
    )
    assert f'href="{url}"' in pm_client.get(detail).content.decode()


@pytest.mark.django_db
def test_a_nul_only_in_what_the_content_hash_leaves_out_is_cleaned_too(project) -> None:
    """prepare cleans nothing when the content's JSON holds no NUL escape; the metadata is outside it."""
    from trajectories.models import Step

    record = json.loads(_with_metadata("nul in the metadata only", {"note": "before\u0000after"}))
    job = run_import(project, json.dumps(record).encode() + b"\n")
    assert job.status == ImportStatus.DONE and job.trajectories_imported == 1, job.errors
    trajectory = Trajectory.objects.get(project=project)
    assert trajectory.metadata["note"] == "before\ufffdafter"
    assert trajectory_payload(trajectory) == json.dumps(record).encode()  # the payload keeps the original
    assert Step.objects.filter(trajectory=trajectory).count() == 2


@pytest.mark.django_db
def test_a_record_whose_dictionary_is_gone_is_a_404_not_a_server_error(project, pm, pm_client) -> None:
    from django.urls import reverse

    run_import(project, b"".join(_records(12)))
    trajectory = Trajectory.objects.get(project=project, source_pointer="line 12")
    PayloadDictionary.objects.filter(pk=dictionary_of(bytes(trajectory.payload))).delete()
    url = reverse(
        "trajectories:trajectory_record", kwargs={"project_slug": project.slug, "trajectory_id": trajectory.pk}
    )
    assert pm_client.get(url).status_code == 404
    from tests.trajectories.test_api import api

    answer = api(pm).get(f"/api/projects/{project.slug}/trajectories/{trajectory.pk}/record/")
    assert answer.status_code == 404
    assert "dictionary it is compressed against is gone" in answer.json()["detail"]


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, 1 << 20, 5 * (1 << 20) + 17])
@pytest.mark.django_db
def test_an_upload_is_kept_byte_for_byte_with_its_sha256(project, size: int) -> None:
    """The kept upload (hashed on a thread of its own while it is compressed) has the sha256 of its bytes and
    unpacks to them, whether it fills its chunks or not."""
    import hashlib
    import random

    data = random.Random(size).randbytes(size)
    source = imports.source_file_store(actor=None, project=project, name="upload.bin", stream=io.BytesIO(data))
    assert source.sha256 == hashlib.sha256(data).hexdigest()
    assert source.size == size
    with source.stored.open("rb") as stored:
        assert zstandard.ZstdDecompressor().decompressobj().decompress(stored.read()) == data


@pytest.mark.django_db
def test_an_upload_over_the_limit_is_refused_and_nothing_is_kept(project, settings) -> None:
    from django.core.exceptions import ValidationError

    from trajectories.models import SourceFile

    settings.STEPWISE_MAX_UPLOAD_BYTES = 3 << 20
    with pytest.raises(ValidationError, match="larger than the limit"):
        imports.source_file_store(actor=None, project=project, name="big.bin", stream=io.BytesIO(bytes(4 << 20)))
    assert not SourceFile.objects.filter(project=project).exists()
