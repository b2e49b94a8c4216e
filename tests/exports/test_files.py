"""Every format with its Parquet twin and dataset card: Hugging Face `datasets` loads both files (in a
child process, so pyarrow's threads never meet the import workers' fork), and the manifest covers them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exports.formats import FORMATS
from exports.services.jobs import _record, _record_of, export_dir, export_job_create, export_job_run, verify_manifest
from tests.exports.datasets_util import load_with_datasets

pytestmark = pytest.mark.smoke

LOAD = """
import json, sys
import datasets
jsonl, parquet, cache = sys.argv[1:4]
a = datasets.load_dataset("json", data_files=jsonl, split="train", cache_dir=cache)
b = datasets.load_dataset("parquet", data_files=parquet, split="train", cache_dir=cache)
import orjson, pyarrow.parquet as pq
rows = [orjson.loads(line) for line in open(jsonl, "rb")]
table = pq.read_table(parquet).to_pylist()
def expected(value, got):  # a nested value stands in a string column as its canonical JSON text
    if isinstance(got, str) and value is not None and not isinstance(value, str):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return value
same = all(got[k] == expected(row.get(k), got[k]) for row, got in zip(rows, table, strict=True) for k in got)
print(json.dumps({"json": a.num_rows, "parquet": b.num_rows, "columns": sorted(b.column_names), "same": same}))
"""


# the preference formats need runs of one goal or abandoned branches: tests/exports/test_preference.py loads them
@pytest.mark.parametrize("format", sorted(set(FORMATS) - {"trl_dpo", "llamafactory_dpo"}))
def test_the_files_load_with_hugging_face_datasets(batch, pm, tmp_path, format) -> None:
    job = export_job_run(
        job_id=export_job_create(
            actor=pm, batch=batch, format=format, options={"parquet": True, "licence": "cc-by-4.0"}
        ).pk
    )
    folder = export_dir(job)
    names = [f["name"] for f in job.files]
    jsonl, parquet = folder / names[0], folder / names[1]
    assert parquet.suffix == ".parquet" and "README.md" in names and "manifest.json" in names
    loaded = load_with_datasets(LOAD, jsonl, parquet, tmp_path)
    rows = len(jsonl.read_bytes().splitlines())
    assert loaded["json"] == loaded["parquet"] == rows > 0
    assert loaded["same"]  # every cell is the JSONL row's value (a nested one as its canonical JSON text)
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlicense: cc-by-4.0\n") and "## Agreement" in card and "## Difficulty bands" in card
    assert verify_manifest(folder / "manifest.json") == []
    data = bytearray(parquet.read_bytes())
    data[len(data) // 2] ^= 0xFF
    parquet.write_bytes(bytes(data))
    assert any(p.startswith(parquet.name) for p in verify_manifest(folder / "manifest.json"))


def test_a_bad_licence_or_option_is_refused(batch, pm) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="SPDX"):
        export_job_create(actor=pm, batch=batch, format="sharegpt", options={"licence": "all rights reserved"})
    with pytest.raises(ValidationError, match="unknown option"):
        export_job_create(actor=pm, batch=batch, format="sharegpt", options={"zip": True})


def test_the_stored_card_names_the_format(batch, pm) -> None:
    job = export_job_run(job_id=export_job_create(actor=pm, batch=batch, format="trl_prm").pk)
    card = (export_dir(job) / "README.md").read_text()
    assert "trl_prm" in card and "license: not stated" in card
    assert not Path(export_dir(job) / f"{job.files[0]['name'].rsplit('.', 1)[0]}.parquet").exists()


def test_the_manifest_is_read_record_by_record_in_any_layout(batch, pm) -> None:
    import orjson

    job = export_job_run(job_id=export_job_create(actor=pm, batch=batch, format="sharegpt").pk)
    path = export_dir(job) / "manifest.json"
    written = orjson.loads(path.read_bytes())
    assert [r["line"] for r in written["records"]] == [1, 2, 3]  # spliced in from the records file, in order
    path.write_bytes(orjson.dumps(written))  # the same manifest without blanks or newlines
    assert verify_manifest(path) == []
    path.write_bytes(orjson.dumps({**written, "records": written["records"][:2]}))
    assert verify_manifest(path) == [f"{written['files'][0]['name']}: 3 lines, the manifest lists 2 records"]
    path.write_bytes(orjson.dumps(written)[:-40])
    assert verify_manifest(path)[0].startswith(f"{path}: not a readable manifest")


_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(origin=st.tuples(_TEXT, _TEXT, _TEXT, _TEXT, _TEXT), number=st.integers(1, 10**12), line=st.binary(max_size=64))
def test_a_record_of_one_trajectory_is_what_orjson_writes_for_it(origin, number, line) -> None:
    assert _record(number, line, [origin]) == _record_of(number, hashlib.sha256(line).hexdigest(), [origin])
