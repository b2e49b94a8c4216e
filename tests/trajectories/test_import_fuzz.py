"""Property tests of the import over generated OpenAI chat files, and the readers' memory bound.

Whatever the file holds, the import ends in a state a person can read, accounts for every record,
locates every rejection and never leaves a trajectory half-written.
"""

from __future__ import annotations

import gzip
import itertools
import json
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from core.services import project_create
from tests.trajectories.fixtures_util import run_import
from trajectories.formats.base import RawRecord, RecordError
from trajectories.formats.canonical import content_sha256, run_to_dict
from trajectories.formats.openai_chat import OpenAIChatImporter
from trajectories.formats.reading import iter_json_array, iter_jsonl
from trajectories.models import ImportStatus, Step, Trajectory

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis example database in the working tree
    derandomize=True,  # the same examples on every run: a failure here is reproducible, never flaky
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example is a database import; kept fast
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_slugs = itertools.count()

# --- strategies ------------------------------------------------------------------------------------
# Mostly well-formed, with odd shapes now and then: a record that fails its first check never reaches
# segmentation, hashing or the database, so the odd branches are kept rare.


def mostly(valid: st.SearchStrategy, odd: st.SearchStrategy, one_in: int = 25) -> st.SearchStrategy:
    # a middle value: hypothesis favours the bounds of a range
    return st.integers(0, one_in - 1).flatmap(lambda n: odd if n == one_in // 2 else valid)


texts = st.one_of(st.text(max_size=20), st.sampled_from(["", "a\x00b", "é", "😀", "x" * 300]))
ids = mostly(st.one_of(st.sampled_from(["c1", "c2", "c3", ""]), texts), st.one_of(st.integers(), st.none()))
names = mostly(
    st.one_of(st.sampled_from(["lookup", "book", "respond"]), texts.filter(bool)),
    st.one_of(st.just(""), st.none(), st.integers()),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63, -(2**63) - 1, 2**40, -1]),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=8
)
arguments = mostly(
    st.one_of(
        st.none(),
        texts,
        st.dictionaries(texts, json_values, max_size=4),
        st.dictionaries(texts, json_values, max_size=4).map(lambda d: json.dumps(d)),
        json_values.map(lambda v: json.dumps(v)),
        st.sampled_from(["{", '{"a": 1', "[1, 2]", "null", "  "]),
    ),
    st.one_of(st.integers(), st.lists(json_scalars, max_size=2)),
)
parts = st.lists(
    mostly(
        st.one_of(
            texts,
            st.builds(lambda t: {"type": "text", "text": t}, texts),
            st.builds(lambda k: {"type": k}, st.sampled_from(["image_url", "input_audio", "text"])),
        ),
        st.one_of(st.just({"text": "no type"}), st.integers()),
    ),
    max_size=3,
)
contents = mostly(
    st.one_of(st.none(), texts, texts, parts, st.dictionaries(texts, json_scalars, max_size=2)), st.integers()
)
function = mostly(
    st.one_of(st.fixed_dictionaries({"name": names, "arguments": arguments}), st.fixed_dictionaries({"name": names})),
    texts,
)
tool_call = mostly(
    st.one_of(
        st.fixed_dictionaries({"id": ids, "type": st.just("function"), "function": function}),
        st.fixed_dictionaries({"id": ids, "name": names, "arguments": arguments}),  # flattened (τ²)
    ),
    json_scalars,
)
tool_calls = mostly(
    st.one_of(st.lists(tool_call, min_size=1, max_size=3), st.just([]), st.none()),
    st.one_of(texts, st.dictionaries(texts, json_scalars, max_size=1)),
)
roles = mostly(
    st.sampled_from(["system", "user", "assistant", "assistant", "assistant", "tool", "tool", "function", "developer"]),
    st.one_of(st.sampled_from(["robot", "", "Assistant"]), st.none(), st.integers()),
)


@st.composite
def message(draw: st.DrawFn) -> Any:
    role = draw(roles)
    out: dict[str, Any] = {"role": role, "content": draw(contents)}
    if role == "assistant":
        if draw(st.booleans()):
            out["tool_calls"] = draw(tool_calls)
        if draw(st.integers(0, 5)) == 3:
            out["function_call"] = draw(
                mostly(st.fixed_dictionaries({"name": names, "arguments": arguments}), texts, 8)
            )
        if draw(st.booleans()):
            out["usage"] = draw(
                st.fixed_dictionaries(
                    {}, optional={"prompt_tokens": st.integers(0, 10**6), "completion_tokens": st.integers(0, 10**6)}
                )
            )
        if draw(st.booleans()):
            out["id"] = draw(ids)
    if role in ("tool", "function"):
        out[draw(st.sampled_from(["tool_call_id", "id", "name"]))] = draw(ids)
    return draw(mostly(st.just(out), json_scalars, 40))  # now and then not even an object


metadata = mostly(
    st.fixed_dictionaries(
        {},
        optional={
            "model": mostly(texts, st.integers(0, 10**6)),
            "rollout_id": texts,
            "trial": mostly(st.integers(-100, 100), texts),
            "reward": mostly(st.one_of(st.floats(-1, 1), st.integers(0, 1)), texts),
            "goal_id": texts,
            "band": mostly(st.sampled_from(["atomic", "composite", "ambiguous"]), st.just("other")),
            "tags": mostly(st.lists(texts, max_size=2), texts),
            "instance_id": texts,
            "extra": json_values,
        },
    ),
    json_scalars,
)
fuzzed_record = mostly(
    st.fixed_dictionaries(
        {
            "messages": st.tuples(
                st.lists(message(), max_size=5),
                mostly(message().filter(lambda m: isinstance(m, dict) and m["role"] == "assistant"), st.none(), 10),
            ).map(lambda t: [*t[0], t[1]] if t[1] is not None else t[0])
        },
        optional={"metadata": metadata, "tools": mostly(st.lists(json_values, max_size=2), texts)},
    ),
    json_values,
    12,
)


def valid_record(i: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": f"question {i}"},
            {
                "role": "assistant",
                "content": "let me see",
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "lookup", "arguments": f'{{"i": {i}}}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": "Error: none" if i % 3 == 0 else "found"},
            {"role": "assistant", "content": f"answer {i}"},
        ],
        "metadata": {"model": "m", "trial": i},
    }


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()  # orjson cannot write integers beyond 64 bits


def encode(records: list[Any], container: str) -> bytes:
    if container == "array":
        return b"[\n" + b",\n".join(dumps(r) for r in records) + b"\n]\n"
    return b"".join(dumps(r) + b"\n" for r in records)


@st.composite
def structured_files(draw: st.DrawFn) -> tuple[bytes, str]:
    records = draw(st.lists(st.one_of(fuzzed_record, st.integers(0, 50).map(valid_record)), min_size=1, max_size=6))
    # a valid record first, so detection has something to go on; the format is sometimes given
    data = encode([valid_record(99), *records], draw(st.sampled_from(["jsonl", "array"])))
    return data, draw(st.sampled_from(["", "openai_chat"]))


@st.composite
def corrupted_files(draw: st.DrawFn) -> tuple[bytes, str]:
    count = draw(st.integers(1, 6))
    data = bytearray(encode([valid_record(i) for i in range(count)], draw(st.sampled_from(["jsonl", "array"]))))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        else:
            del data[at:]
    if draw(st.integers(0, 5)) == 0:
        return gzip.compress(bytes(data)), ""
    return bytes(data), draw(st.sampled_from(["", "openai_chat"]))


# --- the properties ----------------------------------------------------------------------------------


def import_and_check(pm, data: bytes, format_name: str) -> None:
    project = project_create(actor=pm, name="Fuzz", kind="tool_use", slug=f"fuzz-{next(_slugs)}")
    job = run_import(project, data, format_name=format_name)  # must not raise
    job.refresh_from_db()
    assert job.status in (ImportStatus.DONE, ImportStatus.FAILED)
    assert job.finished_at is not None
    if job.status == ImportStatus.FAILED:
        assert job.error.strip()
    # One bad record must cost only that record: a job fails for a reason about the file, never an
    # internal error that drops the records around the bad one.
    assert "internal error" not in job.error, job.error
    for error in job.errors:
        assert error["where"].strip() and error["message"].strip(), error
    trajectories = Trajectory.objects.filter(project=project)
    assert trajectories.count() == job.trajectories_imported
    assert Step.objects.filter(trajectory__project=project).count() == job.steps_imported
    for trajectory in trajectories:
        indexes = list(trajectory.steps.order_by("index").values_list("index", flat=True))
        assert indexes == list(range(trajectory.step_count))
    assert job.records_seen == job.trajectories_imported + job.duplicates + job.rejected, (
        job.records_seen,
        job.trajectories_imported,
        job.duplicates,
        job.rejected,
        job.error,
    )


@FUZZ
@given(file=structured_files())
def test_generated_chat_records_import_without_surprises(db, pm, file: tuple[bytes, str]) -> None:
    import_and_check(pm, *file)


@FUZZ
@given(file=corrupted_files())
def test_corrupted_files_import_without_surprises(db, pm, file: tuple[bytes, str]) -> None:
    import_and_check(pm, *file)


@FUZZ
@given(record=fuzzed_record, as_array_element=st.booleans())
def test_parse_of_any_record_yields_a_hashable_run_or_a_located_record_error(
    record: Any, as_array_element: bool
) -> None:
    """Parsing alone (no database): a run that can be hashed, or a RecordError with a pointer.

    A JSON-array element arrives parsed by the stdlib scanner (RawRecord.value), a JSONL line as bytes."""
    raw = dumps(record)
    value = json.loads(raw) if as_array_element else None
    try:
        run = OpenAIChatImporter().parse(RawRecord(raw=raw, where="line 1", line=1, index=0, value=value))
        run_dict = run_to_dict(run)
        digest = content_sha256(run_dict)  # what storage.prepare does next
    except RecordError as exc:
        assert exc.message
        assert exc.pointer == "" or exc.pointer.startswith("/")
        return
    assert len(digest) == 64
    assert run.steps
    assert all(step.kind in ("tool_call", "respond") and step.tool_name for step in run.steps)


# --- streaming: memory is bounded by the record, not the file ---------------------------------------

TARGET_BYTES = 60 * 1024 * 1024
MAX_PEAK = 20 * 1024 * 1024


def big_line(i: int) -> bytes:
    record = valid_record(i)
    record["messages"][2]["content"] = f"row {i} " + "x" * 6000
    return orjson.dumps(record)


def write_big_file(path: Path, container: str) -> int:
    count = written = 0
    with path.open("wb") as out:
        if container == "array":
            written += out.write(b"[\n")
        while written < TARGET_BYTES:
            if container == "array" and count:
                written += out.write(b",\n")
            written += out.write(big_line(count))
            if container == "jsonl":
                written += out.write(b"\n")
            count += 1
        if container == "array":
            out.write(b"\n]\n")
    return count


def consume(path: Path, reader) -> tuple[int, int, int]:
    """(records, faults, peak traced bytes) of reading the file while discarding each record."""
    records = faults = 0
    with path.open("rb") as stream:
        tracemalloc.start()
        try:
            for item in reader(stream):
                if isinstance(item, RecordError):
                    faults += 1
                else:
                    records += 1
                del item
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return records, faults, peak


def test_the_readers_stream_a_60_mb_file_in_bounded_memory(tmp_path: Path) -> None:
    for container, reader in (("jsonl", iter_jsonl), ("array", iter_json_array)):
        path = tmp_path / f"big.{container}"
        count = write_big_file(path, container)
        assert path.stat().st_size >= TARGET_BYTES
        records, faults, peak = consume(path, reader)
        assert (records, faults) == (count, 0), container
        assert peak < MAX_PEAK, f"{container}: peak {peak / 2**20:.1f} MB"
        path.unlink()
